r"""Finite-sample training: minibatch SGD on Gaussian samples, in the book's or the authors' convention.

Beside the exact population dynamics, this module trains the same network on samples:
inputs :math:`x\sim N(0,I_d)`, labels :math:`y=\sigma^*(x_1)`, network
:math:`f(x)=\frac1m\sum_i\sigma(\langle w_i,x\rangle)` (the model of the book's mathematical
reference, section ``math-model``).

The book's convention (:func:`sampled_sgd`)
    loss :math:`\hat L=\frac1{2B}\sum_b(f(x_b)-y_b)^2` on a minibatch, Euclidean gradient
    :math:`\nabla_{w_i}\hat L=\frac1B\sum_b(f(x_b)-y_b)\frac1m\sigma'(\langle w_i,x_b\rangle)x_b`,
    learning rate :math:`\eta\,m` ("learning rate times m", the mean-field scaling):

    .. math::
        w_i\leftarrow \frac{w_i-\eta\,g_i}{\|w_i-\eta\,g_i\|},\qquad g_i=m\,\nabla_{w_i}\hat L,

    so time advances by :math:`\eta` per step, as in the population simulator
    (:func:`mfcore.simulate` with ``method="pgd"``). Over fresh samples
    :math:`\mathbb E[g_i]=m\nabla_{w_i}L` and its tangential part is minus the population velocity,
    :math:`P_{w_i}(-\mathbb E g_i)=v_{\hat\rho}(w_i)` (:func:`mfcore.finite.velocity`); the radial part
    only changes the effective step by a factor :math:`1/(1-\eta\langle w_i,g_i\rangle)`, i.e. at order
    :math:`\eta^2`.

The authors' protocol (:func:`authors_sgd`; their public code, repository ``margalitglasgow/prop-chaos``
at commit ``9b8eb668c27b9313527f724ef1b2fab870f6d656``, cited in the book as ``glasgow2025code``)
    ``torch.nn.MSELoss`` = :math:`\hat R=\frac1B\sum_b(f-y)^2` (**no** :math:`\tfrac12`), SGD on the
    first layer with learning rate ``lr × m``, rows normalised to the sphere before training and
    after every step, time ``lr × steps``. Their Euclidean gradient is :math:`\frac2m g_i`, so one
    of their steps is :math:`w_i\leftarrow(w_i-2\,\mathrm{lr}\,g_i)/\|\cdot\|`: **the book's step
    with** :math:`\eta=2\,\mathrm{lr}`; book time :math:`t=2T_{\rm auth}`, book loss :math:`L=R/2`
    (:mod:`mfcore.authors`). Data as in ``main_nn.py``/``prop_chaos.py`` at that commit: one
    training set of :math:`n=131072` samples reused over ``int(T·B/(lr·n))`` epochs, each epoch the
    minibatches :math:`[0,B),[B,2B),\dots` with :math:`B=8192` **in the same fixed order, no
    shuffling** (16 steps per epoch); the risk is recorded at the start of every epoch on **one
    fixed test set** of :math:`\max(n/2,2048)=65536` samples; the same sizes at every :math:`d`
    (:func:`mfcore.authors.authors_data_sizes`). Their GPU runs evaluate the network under
    ``torch.cuda.amp.autocast`` (float16 products); this module computes in float64 and does not
    emulate that rounding. (Their first commit ``924ff45`` differs: :math:`n=2048d`, random
    minibatches, :math:`\max(n,2048)` test samples. It is not what this module reproduces.)

    The test-set risk is one Monte Carlo draw reused at every time: for :math:`h_4` the labels are
    heavy-tailed (:math:`\mathbb E\,h_4^4=639`), so :math:`(f-y)^2` has a large variance (where :math:`f`
    is small, early in training, the relative standard deviation of the estimate is about
    :math:`\sqrt{638/n_{\rm test}}`, 10% for 65536 samples) and the recorded risk of one run is off
    the population risk of the same weights by a **random offset that differs from run to run**
    (one test-set draw each), not by a systematic bias. An earlier build of chapter 08 (three seeds,
    :math:`d=16`, test sets of 32768 samples, the size of their first commit) measured time-averaged
    offsets of −12.6%, +2.2% and +2.3%; ``tests/test_sampled.py`` checks that the offsets of
    independent draws average to zero.
    Because the draw is the same at every time, it shifts the recorded curve of a run rather than
    adding noise to it. This module also records the exact population loss of the same weights,
    which has no such error.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np
import xarray as xr

from numpy.polynomial.hermite_e import herme2poly

from .finite import evaluate
from .kernels import Kernel
from .problem import Problem, check_int, check_positive
from .simulate import _check_record_times, default_record_times
from .sphere import nested_initialisation, normalize_rows

#: Relative half-width of the central difference used for activations known only as a function.
FD_STEP = 6e-6  # ~ eps**(1/3): truncation O(h^2) and round-off O(eps/h) balance near 1e-11


def activation_derivative(activation):
    r"""A callable :math:`z\mapsto\sigma'(z)` of the *exact* activation.

    Polynomial activations (Hermite sums, no ``func``): the derivative of the series,
    :math:`h_j'=\sqrt j\,h_{j-1}`, exact. Activations given as a function (``relu``, ``tanh``,
    ``bump``, user callables): central difference of the exact function,
    :math:`\big(\sigma(z+h)-\sigma(z-h)\big)/2h` with :math:`h=6\cdot10^{-6}(1+|z|)`, relative error
    about :math:`10^{-10}` for smooth :math:`\sigma` (at a kink, e.g. relu at 0, it returns the mean of
    the one-sided slopes). The truncated Hermite series is *not* used there: the protocol trains the
    true function, whose population dynamics differ from the truncated kernel's by the truncation error.
    """
    if activation.func is None:
        return activation.derivative

    def derivative(z):
        z = np.asarray(z, dtype=float)
        h = FD_STEP * (1.0 + np.abs(z))
        return (activation(z + h) - activation(z - h)) / (2.0 * h)

    return derivative


class _Pointwise:
    """Fast in-place evaluation of sigma and sigma' on blocks of pre-activations.

    Polynomial activations are converted once to the monomial basis (``herme2poly``) and evaluated
    by Horner's rule in place (the same values as the Hermite series up to rounding); activations
    given as a function use ``Activation.__call__`` and :func:`activation_derivative`.
    """

    def __init__(self, activation):
        self.activation = activation
        if activation.func is None and activation.degree <= 16:
            c = np.asarray(activation.coeffs, dtype=float)
            scaled = c / np.sqrt([float(math.factorial(j)) for j in range(c.size)])
            power = herme2poly(scaled)
            self.f = Kernel(power)
            self.df = self.f.derivative()
        else:
            self.f = self.df = None
            self._d = activation_derivative(activation)

    def value(self, Z, out):
        if self.f is not None:
            return self.f(Z, out=out)
        out[...] = self.activation(Z)
        return out

    def derivative(self, Z, out):
        if self.df is not None:
            return self.df(Z, out=out)
        out[...] = self._d(Z)
        return out


def minibatch_gradient(W, X, y, problem: Problem, pointwise=None, chunk: int | None = None):
    r"""Scaled minibatch gradient :math:`g_i=m\nabla_{w_i}\hat L` and the minibatch loss.

    Parameters
    ----------
    W : ndarray (m, d)
    X : ndarray (B, d)
        Inputs of the minibatch.
    y : ndarray (B,)
        Labels :math:`\sigma^*(x_{b,1})`.
    problem : Problem
    pointwise : optional
        Cached evaluator of :math:`\sigma,\sigma'` (internal; built from ``problem`` if omitted).
    chunk : int, optional
        Samples processed at once (default :math:`2^{20}/m` clipped to [256, 8192]: few BLAS calls, temporaries of ~8 MB).

    Returns
    -------
    g : ndarray (m, d)
        :math:`g_i=\frac1B\sum_b (f(x_b)-y_b)\,\sigma'(\langle w_i,x_b\rangle)\,x_b` (the :math:`1/m` of
        the network cancels the learning-rate factor :math:`m`).
    loss : float
        :math:`\frac1{2B}\sum_b (f(x_b)-y_b)^2` at ``W``.
    """
    pw = _Pointwise(problem.activation) if pointwise is None else pointwise
    W = np.asarray(W, dtype=float)
    X = np.asarray(X, dtype=float)
    m, B = W.shape[0], X.shape[0]
    if chunk is None:
        chunk = min(8192, max(256, (1 << 20) // m))
    chunk = min(chunk, B)
    Wt = np.ascontiguousarray(W.T)
    zbuf = np.empty((chunk, m))
    sbuf = np.empty((chunk, m))
    g = np.zeros((m, X.shape[1]))
    sq = 0.0
    for start in range(0, B, chunk):
        stop = min(start + chunk, B)
        Xc = X[start:stop]
        Z = np.matmul(Xc, Wt, out=zbuf[: stop - start])
        S = pw.value(Z, out=sbuf[: stop - start])
        resid = S.mean(axis=1) - y[start:stop]
        sq += float(resid @ resid)
        D = pw.derivative(Z, out=S)
        D *= resid[:, None]
        g += D.T @ Xc
    g /= B
    return g, 0.5 * sq / B


def sampled_sgd(problem: Problem, width: int, horizon: float, step: float, batch: int = 8192,
                samples: int | None = None, seed: int = 0, n_records: int = 80,
                record_times=None, progress: bool | None = None, order: str = "shuffled",
                test_samples: int | None = None) -> xr.Dataset:
    r"""Train a width-``width`` network by minibatch SGD on Gaussian samples (the book's convention).

    For the authors' exact protocol and units use :func:`authors_sgd` (which calls this function
    with ``step = 2 lr``, ``order="fixed"`` and a fixed test set).

    Parameters
    ----------
    problem : Problem
        Dimension, activation :math:`\sigma` and target :math:`\sigma^*` (labels :math:`y=\sigma^*(x_1)`,
        both evaluated as exact functions).
    width : int
        Number of neurons :math:`m\ge1`.
    horizon : float
        Mean-field time :math:`T>0`. The run takes :math:`\max(1,\mathrm{round}(T/\eta))` steps of
        length :math:`\eta` (the convention of :func:`mfcore.simulate` with ``method="pgd"``).
    step : float
        Mean-field step :math:`\eta` (learning rate :math:`\eta\,m` on the loss
        :math:`\tfrac12(f-y)^2`); must satisfy :meth:`Problem.check_step`.
    batch : int
        Minibatch size :math:`B\ge1`.
    samples : int or None
        ``None``: fresh samples at every step (online SGD). An integer :math:`n\ge B`: one fixed
        training set of :math:`n` samples, reused over epochs, cut into :math:`\lceil n/B\rceil`
        minibatches (the last one smaller if :math:`B\nmid n`).
    order : {"shuffled", "fixed"}
        With ``samples``: ``"shuffled"``, a fresh random permutation each epoch; ``"fixed"``, the
        minibatches :math:`[0,B),[B,2B),\dots` of the training set in the same order every epoch
        (the authors' protocol).
    test_samples : int, optional
        Also record ``test_loss``: :math:`\frac12\overline{(f-y)^2}` on one fixed test set of this
        many samples drawn once (from its own stream ``default_rng([seed, 2])``).
    seed : int
        ``W(0) = nested_initialisation(width, dim, seed)`` (the same as :func:`mfcore.simulate` with
        this seed); training data and shuffles come from the separate stream
        ``default_rng([seed, 1])``, so the batch sequence is reproducible from the seed.
    n_records : int
        Size of the default record grid, :func:`mfcore.simulate.default_record_times` (each time
        rounded to the nearest step, duplicates dropped): the same grid as ``simulate`` with ``pgd``.
    record_times : sequence of float, optional
        Explicit record times in :math:`[0,T]` (overrides ``n_records``).
    progress : bool, optional
        Show a tqdm progress bar over steps on stderr.

    Returns
    -------
    xarray.Dataset
        Coordinate ``t`` (mean-field time of the recorded steps) and variables

        * ``loss(t)``: exact population loss :math:`L(\hat\rho_t)` of the current weights
          (:func:`mfcore.finite.evaluate`, evaluated only at record times);
        * ``train_loss(t)``: mean minibatch loss :math:`\frac12\overline{(f-y)^2}` of the steps taken
          since the previous record, each measured at the weights before its update (at ``t = 0``:
          the first minibatch's loss at :math:`W(0)`);
        * ``overlap_mean(t)``: :math:`\frac1m\sum_i\langle w_i,e_1\rangle`;
        * ``test_loss(t)`` (if ``test_samples``): the loss on the fixed test set.

        ``attrs`` hold every parameter, ``problem.describe()``, ``mfcore_version``, the number of
        steps/gradient evaluations, samples seen, epochs, and ``wall_time_s``.

    Raises
    ------
    ValueError
        For a bad parameter (``batch < 1``, ``samples < batch``, unstable ``step``, ...).
    FloatingPointError
        If a weight or loss becomes non-finite (the message gives the step and time).
    """
    from . import __version__

    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a mfcore.Problem, got {type(problem).__name__}")
    width = check_int("width (number of neurons m)", width, 1)
    horizon = check_positive("horizon (mean-field time T)", horizon)
    step = problem.check_step(step)
    batch = check_int("batch (minibatch size B)", batch, 1)
    if samples is not None:
        samples = check_int("samples (size n of the fixed training set)", samples, 1)
        if samples < batch:
            raise ValueError(f"samples (training-set size n) must be >= batch={batch}, got {samples}")
    n_records = check_int("n_records", n_records, 2)
    seed = check_int("seed", seed, 0)
    if order not in ("shuffled", "fixed"):
        raise ValueError(f"order must be 'shuffled' or 'fixed', got {order!r}")
    if test_samples is not None:
        test_samples = check_int("test_samples (size of the fixed test set)", test_samples, 1)

    d = problem.dim
    act, tgt = problem.activation, problem.target
    pointwise = _Pointwise(act)
    W = nested_initialisation(width, d, seed)
    rng = np.random.default_rng([seed, 1])

    times = (default_record_times(horizon, step, n_records) if record_times is None
             else _check_record_times(record_times, horizon))
    n_steps = max(1, int(round(horizon / step)))
    steps_at = np.unique(np.clip(np.rint(times / step).astype(np.int64), 0, n_steps))
    times = steps_at * step

    if samples is not None:
        X_train = rng.standard_normal((samples, d))
        y_train = tgt(X_train[:, 0])
        perm = np.empty(0, dtype=np.int64)
        pos = 0
    if test_samples is not None:
        trng = np.random.default_rng([seed, 2])
        X_test = trng.standard_normal((test_samples, d))
        y_test = tgt(X_test[:, 0])
    epochs = 0

    def next_batch():
        nonlocal perm, pos, epochs
        if samples is None:
            X = rng.standard_normal((batch, d))
            return X, tgt(X[:, 0])
        if pos >= perm.size:
            perm = rng.permutation(samples) if order == "shuffled" else np.arange(samples)
            pos = 0
            epochs += 1
        idx = perm[pos:pos + batch]
        pos += batch
        if order == "fixed":  # a contiguous slice, as in the authors' code
            return X_train[idx[0]:idx[-1] + 1], y_train[idx[0]:idx[-1] + 1]
        return X_train[idx], y_train[idx]

    loss = np.full(times.size, np.nan)
    train = np.full(times.size, np.nan)
    omean = np.full(times.size, np.nan)
    tloss = np.full(times.size, np.nan)

    def record(j, W):
        ev = evaluate(W, problem)
        if not np.isfinite(ev.loss):
            raise FloatingPointError(f"sampled_sgd: population loss became non-finite at t={times[j]:g}")
        loss[j] = ev.loss
        omean[j] = float(np.mean(ev.overlaps))
        if test_samples is not None:
            tloss[j] = _sample_loss(W, X_test, y_test, pointwise)

    from tqdm import tqdm  # text bar on stderr (tqdm.auto needs ipywidgets in notebooks)

    bar = tqdm(total=n_steps, desc="sampled SGD", unit="step", file=sys.stderr, disable=not progress,
               leave=False)
    t0 = time.perf_counter()
    next_rec, acc, nacc, seen = 0, 0.0, 0, 0
    if steps_at[0] == 0:
        record(0, W)
        next_rec = 1
    for k in range(1, n_steps + 1):
        X, y = next_batch()
        seen += X.shape[0]
        g, bl = minibatch_gradient(W, X, y, problem, pointwise)
        if k == 1 and steps_at[0] == 0:
            train[0] = bl
        acc += bl
        nacc += 1
        W = normalize_rows(W - step * g)
        if not (np.isfinite(bl) and np.all(np.isfinite(W))):
            raise FloatingPointError(
                f"sampled_sgd: non-finite {'minibatch loss' if not np.isfinite(bl) else 'weights'} "
                f"at step {k} (t={k * step:g}); try a smaller step"
            )
        if next_rec < steps_at.size and k == steps_at[next_rec]:
            train[next_rec] = acc / nacc
            acc, nacc = 0.0, 0
            record(next_rec, W)
            next_rec += 1
        bar.update(1)
    bar.close()
    wall = time.perf_counter() - t0

    attrs = {
        "model": "sampled minibatch SGD",
        "width": width,
        "horizon": horizon,
        "step": step,
        "batch": batch,
        "samples": 0 if samples is None else samples,
        "protocol": ("online (fresh samples every step)" if samples is None else
                     f"fixed training set, {'shuffled epochs' if order == 'shuffled' else 'minibatches in a fixed order'}"),
        "order": order,
        "test_samples": 0 if test_samples is None else test_samples,
        "convention": "book: loss (1/2)(f-y)^2, learning rate step x m, time = step x steps",
        "seed": seed,
        "n_records": n_records,
        "record_times": "log-spaced default" if record_times is None else [float(x) for x in times],
        "n_steps": n_steps,
        "gradient_evaluations": n_steps,
        "samples_seen": seen,
        "epochs": epochs,
        "derivative": "Hermite series (exact)" if act.func is None else "central difference of the exact function",
        "mfcore_version": __version__,
        "wall_time_s": wall,
    }
    attrs.update(problem.describe())
    data = {
        "loss": ("t", loss, {"long_name": "population loss L(ρ̂_t) (exact)"}),
        "train_loss": ("t", train, {"long_name": "mean minibatch loss since the previous record"}),
        "overlap_mean": ("t", omean, {"long_name": "mean overlap ⟨w_i, e_1⟩"}),
    }
    if test_samples is not None:
        data["test_loss"] = ("t", tloss, {"long_name": f"loss on one fixed test set of {test_samples} samples"})
    return xr.Dataset(
        data,
        coords={"t": ("t", times, {"long_name": "mean-field time"}),
                "step_index": ("t", steps_at, {"long_name": "SGD steps taken"})},
        attrs=attrs,
    )


def _sample_loss(W, X, y, pointwise, chunk: int = 8192) -> float:
    r""":math:`\frac1{2n}\sum_j(f(x_j)-y_j)^2` on the samples ``X, y`` (blocks of ``chunk`` samples)."""
    Wt = np.ascontiguousarray(np.asarray(W, dtype=float).T)
    sq = 0.0
    for start in range(0, X.shape[0], chunk):
        Z = X[start:start + chunk] @ Wt
        f = pointwise.value(Z, out=np.empty_like(Z)).mean(axis=1)
        r = f - y[start:start + chunk]
        sq += float(r @ r)
    return 0.5 * sq / X.shape[0]


def authors_record_times(authors_time: float, lr: float = 0.01, samples: int | None = None,
                         batch: int | None = None) -> np.ndarray:
    r"""Book times at which their code records the test risk: the start of every epoch.

    ``prop_chaos.train`` (``test_freq = 1``) evaluates the fixed test set before the steps of each
    epoch :math:`e=0,\dots,E-1`, i.e. after :math:`e\lceil n/B\rceil` steps, book time
    :math:`2\,\mathrm{lr}\,e\lceil n/B\rceil`; the state after the last epoch is not recorded.
    :math:`E` is :func:`mfcore.authors.authors_epochs`. Defaults: their data sizes.
    """
    from .authors import AUTHORS_BATCH, AUTHORS_TRAIN_SAMPLES, authors_epochs, book_step

    samples = AUTHORS_TRAIN_SAMPLES if samples is None else int(samples)
    batch = AUTHORS_BATCH if batch is None else int(batch)
    per_epoch = -(-samples // batch)
    epochs = authors_epochs(authors_time, lr, samples, batch)
    return book_step(lr) * per_epoch * np.arange(epochs, dtype=float)


def authors_sgd(problem: Problem, width: int, authors_time: float, lr: float = 0.01,
                samples: int | None = None, batch: int | None = None, test_samples: int | None = None,
                seed: int = 0, n_records: int = 80, record_times=None, progress: bool | None = None) -> xr.Dataset:
    r"""The authors' training protocol (commit ``9b8eb66`` of their code), with its results also in the book's units.

    Their code (``glasgow2025code``): ``torch.nn.MSELoss`` (no :math:`\tfrac12`), SGD with learning
    rate ``lr × m`` on the first layer, rows on the sphere (normalised before training and after
    each step), one training set of ``samples`` Gaussian inputs reused over epochs in minibatches
    of ``batch`` taken **in a fixed order** (no shuffling), the risk on **one fixed test set** of
    ``test_samples``; their time is ``lr × steps``. The run takes exactly their number of steps,
    ``int(T·B/(lr·n))`` epochs of :math:`\lceil n/B\rceil` steps (:func:`mfcore.authors.authors_epochs`).
    This is :func:`sampled_sgd` with ``step = 2 lr`` (one of their steps is the book's step
    :math:`\eta=2\,\mathrm{lr}`, see the module docstring) and ``order="fixed"``. Initial neurons:
    :func:`mfcore.nested_initialisation` (uniform on the sphere, the law of their normalised Gaussian
    rows). Arithmetic in float64 (their GPU runs use float16 autocast, not emulated).

    Parameters
    ----------
    problem : Problem
    width : int
    authors_time : float
        Horizon in **their** time :math:`T_{\rm auth}` (lr × steps), their option ``-t``; the book's
        horizon is :math:`2T_{\rm auth}`. ``job.sh`` uses 64 for :math:`h_4`
        (:data:`mfcore.authors.AUTHORS_JOB_TIME`); the default of ``main_nn.py`` is
        :func:`mfcore.authors.authors_horizon`.
    lr : float
        Their learning rate (0.01 by default in ``main_nn.py``).
    samples, batch, test_samples : int, optional
        Default: their code's sizes, :math:`n=131072`, :math:`B=8192`, :math:`n_{\rm test}=65536`
        (:func:`mfcore.authors.authors_data_sizes`).
    seed, n_records, record_times, progress
        As in :func:`sampled_sgd`; ``record_times`` in the **book's** time (their own record times, the
        start of every epoch, are :func:`authors_record_times`; one record costs a population and a
        test-set evaluation).

    Returns
    -------
    xarray.Dataset
        :func:`sampled_sgd`'s dataset (coordinate ``t`` = book time, ``loss`` = exact population
        loss :math:`L` in the book's convention, ``test_loss`` = :math:`\tfrac12` × their recorded
        risk) plus the coordinate ``t_authors`` (:math:`=t/2`) and the variables ``authors_risk``
        (their recorded test risk :math:`R` on the fixed test set: a random offset per run, see the
        module docstring) and ``authors_population_risk`` (:math:`2L`).
    """
    from .authors import TIME_FACTOR, authors_data_sizes, authors_epochs, book_step

    sizes = authors_data_sizes(problem.dim)
    samples = sizes["samples"] if samples is None else samples
    batch = sizes["batch"] if batch is None else batch
    test_samples = sizes["test_samples"] if test_samples is None else test_samples
    epochs = authors_epochs(authors_time, lr, samples, batch)
    if epochs < 1:
        raise ValueError(f"authors_time={authors_time!r} is shorter than one epoch of their protocol "
                         f"(int(T B / (lr n)) = 0)")
    n_steps = epochs * (-(-int(samples) // int(batch)))
    eta = book_step(lr)
    ds = sampled_sgd(problem, width, horizon=n_steps * eta, step=eta, batch=batch,
                     samples=samples, seed=seed, n_records=n_records, record_times=record_times,
                     progress=progress, order="fixed", test_samples=test_samples)
    if ds.attrs["n_steps"] != n_steps:  # horizon / step rounds back to the same integer
        raise RuntimeError(f"authors_sgd: took {ds.attrs['n_steps']} steps instead of {n_steps}")
    ds = ds.assign_coords(t_authors=("t", ds.t.values / TIME_FACTOR, {"long_name": "the authors' time lr x steps"}))
    ds["authors_risk"] = ("t", TIME_FACTOR * ds.test_loss.values,
                          {"long_name": f"their recorded risk E(f-y)^2 on the fixed test set ({test_samples} samples)"})
    ds["authors_population_risk"] = ("t", TIME_FACTOR * ds.loss.values,
                                     {"long_name": "exact population risk E(f-y)^2 = 2L"})
    ds.attrs.update({"model": "sampled minibatch SGD, the authors' protocol (glasgow2025code)",
                     "authors_commit": "margalitglasgow/prop-chaos@9b8eb668c27b9313527f724ef1b2fab870f6d656",
                     "authors_lr": float(lr), "authors_time": float(authors_time), "authors_epochs": epochs,
                     "authors_time_reached": float(n_steps * lr),
                     "convention": "authors: MSELoss (no 1/2), lr x m, time lr x steps; book t = 2 x theirs, "
                                   "book step = 2 lr, book loss = risk / 2"})
    return ds
