r"""The authors' units and protocol, converted to the book's.

Source: the authors' public experiment code, repository ``margalitglasgow/prop-chaos`` at commit
``9b8eb668c27b9313527f724ef1b2fab870f6d656`` (their head, 11 April 2025; cited in the
bibliography as ``glasgow2025code``; files ``main_nn.py``, ``prop_chaos.py``, ``problems.py``,
``utils.py``, ``job.sh``). Their first public commit ``924ff45`` used a different protocol
(:math:`n=2048d` training samples, random minibatches, :math:`n_{\rm test}=\max(n,2048)`, no
``problems.py``); the book follows the head commit throughout.

They train the same network with ``torch.nn.MSELoss``, i.e. the risk :math:`R=\mathbb E(f-y)^2`
**without** the factor :math:`\tfrac12` of the book's loss :math:`L=\tfrac12\mathbb E(f-y)^2`, and
call ``lr × steps`` their time. One of their steps moves a neuron by :math:`2\,\mathrm{lr}\,v` where
:math:`v` is the book's mean-field velocity, so

.. math::
    t_{\rm book} = 2\,T_{\rm auth},\qquad \eta_{\rm book}=2\,\mathrm{lr},\qquad L = R/2.

**Horizons.** The default of ``main_nn.py`` (option ``-t 0``) is
:math:`T_{\rm auth}=\max(\log d,\ \tfrac12 d^{k/2-1})`, i.e. :math:`t=\max(2\log d,\ d^{k/2-1})` in
the book's units (:math:`t=d` for :math:`h_4`): :func:`authors_horizon`, :func:`book_horizon`. Their
runs do not use it: ``job.sh`` passes ``-t 64`` for :math:`h_4` at every :math:`d` (book
:math:`t=128`), see :data:`AUTHORS_JOB_TIME`.

The protocol itself (training set of :math:`n=131072` samples, minibatches of 8192 in a fixed order,
test set of 65536 samples) is :func:`mfcore.sampled.authors_sgd`.
"""
from __future__ import annotations

import math

#: The repository and commit whose protocol the book follows (their head commit).
AUTHORS_REPOSITORY = "margalitglasgow/prop-chaos"
AUTHORS_COMMIT = "9b8eb668c27b9313527f724ef1b2fab870f6d656"

#: Ratio of the book's mean-field time to the authors' time (their loss has no 1/2).
TIME_FACTOR = 2.0
#: The default learning rate of ``main_nn.py`` (their units); the book's step is ``TIME_FACTOR`` times it.
#: ``job.sh`` also uses 0.02 (h4, width 32768), 0.005 and 0.0025 (misspecified pair, d >= 32).
AUTHORS_LR = 0.01
#: Their data sizes at the cited commit (``main_nn.py`` with ``-n 0``), the same at every d:
#: n = 131072 training samples, minibatches of 8192 (16 per epoch), test set max(n/2, 2048) = 65536.
AUTHORS_TRAIN_SAMPLES = 131072
AUTHORS_BATCH = 8192
AUTHORS_TEST_SAMPLES = 65536
#: Their time for h4 in ``job.sh`` (``-t 64`` at every d; book time 128).
AUTHORS_JOB_TIME = 64.0
#: Widths of their h4 runs in ``job.sh``: 128, 256, 512 (``-mb 128 -ms 3``) at each d in
#: :data:`AUTHORS_DIMS`, and one run of width 32768 at d = 32 with lr 0.02 (``-mb 32768 -ms 1``).
#: Within one call the widths are nested subsets of one initialisation. (The book's stored sweeps
#: use widths 2^7 ... 2^15 at d = 16 and 32: more than the authors ran.)
AUTHORS_WIDTHS = (128, 256, 512)
AUTHORS_WIDE_RUN = {"dim": 32, "width": 32768, "lr": 0.02, "time": 64.0}
#: Dimensions of their h4 runs in ``job.sh``.
AUTHORS_DIMS = (16, 32, 64, 128)


def authors_data_sizes(dim: int) -> dict:
    r"""Their code's data sizes (``main_nn.py`` at the cited commit, option ``-n 0``).

    :math:`n=131072` training samples, minibatch :math:`B=8192`, so :math:`n/B=16` minibatches per
    epoch, and a test set of :math:`\max(n/2,2048)=65536` samples: the same at every dimension
    (``dim`` is only validated). Returns ``{"samples", "batch", "test_samples"}``. (Their first
    commit ``924ff45`` used :math:`n=2048d`, :math:`B=4n/d` and :math:`\max(n,2048)` test samples
    instead; the book does not use those.)
    """
    if int(dim) < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    n = AUTHORS_TRAIN_SAMPLES
    return {"samples": n, "batch": AUTHORS_BATCH, "test_samples": max(int(n / 2), 2048)}


def authors_epochs(authors_time: float, lr: float = AUTHORS_LR, samples: int = AUTHORS_TRAIN_SAMPLES,
                   batch: int = AUTHORS_BATCH) -> int:
    r"""Number of epochs their code runs: ``int(T * batch / (lr * n))`` (``main_nn.py``).

    Each epoch takes :math:`\lceil n/B\rceil` steps, so the run ends at their time
    ``epochs × ceil(n/B) × lr`` (:math:`T_{\rm auth}` when it divides evenly, e.g. 400 epochs of 16
    steps for :math:`T=64`, lr 0.01).
    """
    if float(authors_time) <= 0 or float(lr) <= 0:
        raise ValueError(f"authors_time and lr must be positive, got {authors_time!r}, {lr!r}")
    return int(float(authors_time) * int(batch) / (float(lr) * int(samples)))


def book_time(authors_time: float) -> float:
    r"""Book time :math:`t = 2\,T_{\rm auth}` of an authors' time ``lr × steps``."""
    return TIME_FACTOR * float(authors_time)


def authors_time(book_time_: float) -> float:
    r"""Authors' time :math:`T_{\rm auth}=t/2` of a book time :math:`t`."""
    return float(book_time_) / TIME_FACTOR


def book_step(authors_lr: float = AUTHORS_LR) -> float:
    r"""Book projected-GD step :math:`\eta = 2\,\mathrm{lr}` of an authors' learning rate (0.01 → 0.02)."""
    return TIME_FACTOR * float(authors_lr)


def book_loss(authors_risk: float) -> float:
    r"""Book loss :math:`L=R/2` of the authors' recorded risk :math:`R=\mathbb E(f-y)^2`."""
    return float(authors_risk) / TIME_FACTOR


def authors_horizon(dim: int, information_exponent: int) -> float:
    r"""The default horizon of their ``main_nn.py``, in **their** time: :math:`T_{\rm auth}=\max(\log d,\ \tfrac12 d^{k/2-1})`.

    Used when ``-t`` is not given; their ``job.sh`` passes ``-t 64`` for :math:`h_4` instead
    (:data:`AUTHORS_JOB_TIME`).
    """
    if int(dim) < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    if int(information_exponent) < 1:
        raise ValueError(f"information_exponent must be an integer >= 1, got {information_exponent!r}")
    d, k = int(dim), int(information_exponent)
    return max(math.log(d), 0.5 * d ** (k / 2 - 1))


def book_horizon(dim: int, information_exponent: int) -> float:
    r"""The default of ``main_nn.py`` in the **book's** time: :math:`t=\max(2\log d,\ d^{k/2-1})` (:math:`d` for :math:`h_4`)."""
    return book_time(authors_horizon(dim, information_exponent))
