r"""The authors' finite-sample protocol: minibatch SGD on Gaussian samples (SPEC §1-2).

Beside the exact population dynamics, this module trains the same network the way the authors'
experiments do: inputs :math:`x\sim N(0,I_d)`, labels :math:`y=\sigma^*(x_1)`, network
:math:`f(x)=\frac1m\sum_i\sigma(\langle w_i,x\rangle)`, loss :math:`\frac12(f(x)-y)^2`.
A minibatch :math:`x_1..x_B` gives the Euclidean gradient

.. math::
    \nabla_{w_i}\hat L=\frac1B\sum_{b}\big(f(x_b)-y_b\big)\,\frac1m\,\sigma'(\langle w_i,x_b\rangle)\,x_b ,

and the step with learning rate :math:`\eta/m` ("learning rate times m", the mean-field scaling) is

.. math::
    w_i\leftarrow \frac{w_i-\eta\,g_i}{\|w_i-\eta\,g_i\|},\qquad g_i=m\,\nabla_{w_i}\hat L,

so mean-field time advances by :math:`\eta` per step, exactly as in the population simulator.
Over fresh samples :math:`\mathbb E[g_i]=m\nabla_{w_i}L`, and its tangential part is minus the
population velocity: :math:`P_{w_i}(-\mathbb E g_i)=v_{\hat\rho}(w_i)` (:func:`mfcore.finite.velocity`).
The radial part of :math:`g_i` only changes the effective step by a factor
:math:`1/(1-\eta\langle w_i,g_i\rangle)`, i.e. at order :math:`\eta^2`.

Samples are either fresh at every step (``samples=None``: online SGD, an unbiased estimate of the
population gradient at every step) or a fixed set of ``n`` samples reused over epochs of shuffled
minibatches (the authors' protocol: n = 131072, batch 8192).
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
                record_times=None, progress: bool | None = None) -> xr.Dataset:
    r"""Train a width-``width`` network by minibatch SGD on Gaussian samples (the authors' protocol).

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
        Mean-field step :math:`\eta` (learning rate :math:`\eta/m` on the unscaled loss); must satisfy
        :meth:`Problem.check_step`.
    batch : int
        Minibatch size :math:`B\ge1`.
    samples : int or None
        ``None``: fresh samples at every step (online SGD). An integer :math:`n\ge B`: one fixed
        training set of :math:`n` samples, reused over epochs; each epoch is a fresh random
        permutation cut into :math:`\lceil n/B\rceil` minibatches (the last one smaller if
        :math:`B\nmid n`).
    seed : int
        ``W(0) = nested_initialisation(width, dim, seed)`` (the same as :func:`mfcore.simulate` with
        this seed); data and shuffles come from the separate stream ``default_rng([seed, 1])``.
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
        * ``overlap_mean(t)``: :math:`\frac1m\sum_i\langle w_i,e_1\rangle`.

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
        order = np.empty(0, dtype=np.int64)
        pos = 0
    epochs = 0

    def next_batch():
        nonlocal order, pos, epochs
        if samples is None:
            X = rng.standard_normal((batch, d))
            return X, tgt(X[:, 0])
        if pos >= order.size:
            order = rng.permutation(samples)
            pos = 0
            epochs += 1
        idx = order[pos:pos + batch]
        pos += batch
        return X_train[idx], y_train[idx]

    loss = np.full(times.size, np.nan)
    train = np.full(times.size, np.nan)
    omean = np.full(times.size, np.nan)

    def record(j, W):
        ev = evaluate(W, problem)
        if not np.isfinite(ev.loss):
            raise FloatingPointError(f"sampled_sgd: population loss became non-finite at t={times[j]:g}")
        loss[j] = ev.loss
        omean[j] = float(np.mean(ev.overlaps))

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
        "model": "sampled minibatch SGD (authors' protocol)",
        "width": width,
        "horizon": horizon,
        "step": step,
        "batch": batch,
        "samples": 0 if samples is None else samples,
        "protocol": "online (fresh samples every step)" if samples is None else "fixed training set, shuffled epochs",
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
    return xr.Dataset(
        {
            "loss": ("t", loss, {"long_name": "population loss L(ρ̂_t) (exact)"}),
            "train_loss": ("t", train, {"long_name": "mean minibatch loss since the previous record"}),
            "overlap_mean": ("t", omean, {"long_name": "mean overlap ⟨w_i, e_1⟩"}),
        },
        coords={"t": ("t", times, {"long_name": "mean-field time"}),
                "step_index": ("t", steps_at, {"long_name": "SGD steps taken"})},
        attrs=attrs,
    )
