r"""The authors' units and protocol, converted to the book's.

The authors' public experiment code (repository ``margalitglasgow/prop-chaos``, cited in the
bibliography as ``glasgow2025code``) trains the same network with ``torch.nn.MSELoss``, i.e. the
risk :math:`R=\mathbb E(f-y)^2` **without** the factor :math:`\tfrac12` of the book's loss
:math:`L=\tfrac12\mathbb E(f-y)^2`, and calls ``lr × steps`` its time. One of their steps moves a
neuron by :math:`2\,\mathrm{lr}\,v` where :math:`v` is the book's mean-field velocity, so

.. math::
    t_{\rm book} = 2\,T_{\rm auth},\qquad \eta_{\rm book}=2\,\mathrm{lr},\qquad L = R/2,

and their horizon :math:`T_{\rm auth}=\max(\log d,\ \tfrac12 d^{k/2-1})` is
:math:`t=\max(2\log d,\ d^{k/2-1})` in the book's units (:math:`t=d` for :math:`h_4`).
See the book's mathematical reference, section ``math-authors``. The protocol itself (fixed
training set, minibatches in a fixed order, fixed test set) is :func:`mfcore.sampled.authors_sgd`.
"""
from __future__ import annotations

import math

#: Ratio of the book's mean-field time to the authors' time (their loss has no 1/2).
TIME_FACTOR = 2.0
#: The authors' learning rate (their units); the book's step is ``TIME_FACTOR`` times it.
AUTHORS_LR = 0.01
#: The authors' minibatch protocol at :math:`d=64` (their code's defaults are :math:`n=2048d`,
#: :math:`B=4n/d`, :math:`n_{\rm test}=\max(n,2048)`; see :func:`authors_data_sizes`).
AUTHORS_TRAIN_SAMPLES = 131072
AUTHORS_BATCH = 8192
AUTHORS_TEST_SAMPLES = 65536
#: Widths of their experiments: 128 ... 32768 in powers of two (nested subsets of one initialisation).
AUTHORS_WIDTHS = tuple(2**j for j in range(7, 16))
#: Dimensions of their experiments.
AUTHORS_DIMS = (16, 32, 64, 128)


def authors_data_sizes(dim: int) -> dict:
    r"""Their code's data sizes for dimension :math:`d` (``main_nn.py``, option ``-n 0``).

    :math:`n=2048\,d` training samples, minibatch :math:`B=\lfloor 4n/d\rfloor=8192`, so
    :math:`n/B=d/4` minibatches per epoch (16 at :math:`d=64`), and a test set of
    :math:`\max(n,2048)` samples. Returns ``{"samples", "batch", "test_samples"}``.
    """
    if int(dim) < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    n = 2048 * int(dim)
    return {"samples": n, "batch": int(n * 4 / int(dim)), "test_samples": max(n, 2048)}


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
    r"""The authors' horizon in **their** time: :math:`T_{\rm auth}=\max(\log d,\ \tfrac12 d^{k/2-1})`."""
    if int(dim) < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    if int(information_exponent) < 1:
        raise ValueError(f"information_exponent must be an integer >= 1, got {information_exponent!r}")
    d, k = int(dim), int(information_exponent)
    return max(math.log(d), 0.5 * d ** (k / 2 - 1))


def book_horizon(dim: int, information_exponent: int) -> float:
    r"""The authors' horizon in the **book's** time: :math:`t=\max(2\log d,\ d^{k/2-1})` (:math:`d` for :math:`h_4`)."""
    return book_time(authors_horizon(dim, information_exponent))
