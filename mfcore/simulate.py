r"""Simulation driver: a finite network, its exact infinite-width limit and the coupling.

See the book's mathematical reference, sections ``math-model``, ``math-limit`` and ``math-coupling``.

One call runs, from one seed and on one time grid,

* the **finite network** :math:`W=(w_1..w_m)` with the exact population velocity
  :math:`v_{\hat\rho}` (:func:`mfcore.finite.evaluate`, by the Gram or the moment route,
  ``evaluation=``);
* the **exact limit** :math:`\rho_t`, carried by :math:`N` quantile nodes of the overlap law and
  moved by :class:`mfcore.meanfield.OverlapField`;
* the **mean-field twins** :math:`\bar w_i=\bar u_i e_1+\sqrt{1-\bar u_i^2}\,z_i` of the finite
  neurons: :math:`z_i` is the normalised part of :math:`w_i(0)` orthogonal to :math:`e_1` (fixed
  for ever, by symmetry) and the tracer :math:`\bar u_i`, started at :math:`u_i(0)`, is moved by the
  same field as the nodes.

Two time discretisations share everything else:

``method="pgd"``
    projected gradient descent with step :math:`\eta` for the three objects:
    :math:`w_i\leftarrow(w_i+\eta v_i)/\|w_i+\eta v_i\|` and, for the nodes and tracers, the exact
    1-D image of the same step (:func:`mfcore.meanfield.projected_step_1d`). Time is
    :math:`t=\eta\times` steps.
``method="flow"``
    the gradient flow :math:`\dot w_i=v_{\hat\rho}(w_i)`, :math:`\dot u=V(u)` integrated by an
    adaptive explicit Runge-Kutta method of :mod:`scipy.integrate` (RK45 by default) with the
    user's ``rtol``/``atol``.

The gap :math:`\|w_i-\bar w_i\|` of neuron :math:`i` costs :math:`O(d)` (only :math:`\bar u_i` and
the fixed :math:`z_i` are stored); the function gap :math:`\|f_{\hat\rho}-f_\rho\|^2` reuses the
Gram pass of the finite step (:meth:`mfcore.meanfield.OverlapField.function_gap`).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import xarray as xr

from . import finite as _finite
from .meanfield import OverlapField, initial_overlaps, projected_step_1d
from .problem import Problem, check_int, check_positive
from .runspec import FLOW_INTEGRATORS, MAX_STEPS, check_run, memory_estimate  # noqa: F401  (re-exported)
from .sphere import as_generator, nested_initialisation, normalize_rows

#: Quantiles of the per-neuron gap recorded in ``gap_quantile``.
GAP_QUANTILES = (0.5, 0.9, 0.99, 1.0)
_DTYPES = {"float64": np.float64, "float32": np.float32}


# ---------------------------------------------------------------------------------------------
# state handed to observers
# ---------------------------------------------------------------------------------------------
@dataclass
class SimulationState:
    r"""Everything an observer may look at after a step (``method="pgd"`` only).

    Attributes
    ----------
    t : float
        Mean-field time reached (after the step).
    step : float or None
        The step :math:`\eta` just taken (``None`` at :math:`t=0`).
    problem : Problem
    W : ndarray (m, d) or None
        Finite neurons (``None`` if ``width=0``).
    nodes : ndarray (N,)
        Quantile-node overlaps representing :math:`\rho_t`.
    tracers : ndarray (m,)
        Overlaps :math:`\bar u_i` of the mean-field twins.
    perp : ndarray (m, d)
        Unit vectors :math:`z_i\perp e_1` (first coordinate 0).
    field : OverlapField
        The limit field of the current nodes.
    finite : FiniteEvaluation or None
        Velocity, loss and kernel mean of the finite network at ``W``.
    """

    t: float
    step: float | None
    problem: Problem
    W: np.ndarray | None
    nodes: np.ndarray
    tracers: np.ndarray
    perp: np.ndarray
    field: OverlapField
    finite: Any

    def twins(self) -> np.ndarray:
        r"""The mean-field twins :math:`\bar W` with rows :math:`\bar u_i e_1+\sqrt{1-\bar u_i^2}\,z_i` (float64)."""
        u = np.clip(self.tracers, -1.0, 1.0)
        out = np.sqrt(1.0 - u * u)[:, None] * self.perp
        out[:, 0] = u
        return out


# ---------------------------------------------------------------------------------------------
# record grid, gaps, recorder
# ---------------------------------------------------------------------------------------------
def default_record_times(horizon: float, step: float, n_records: int) -> np.ndarray:
    r"""Record grid: :math:`t=0` and ``n_records - 1`` log-spaced times from :math:`\min(\eta, T/2)` to :math:`T`."""
    horizon = check_positive("horizon", horizon)
    step = check_positive("step", step)
    n_records = check_int("n_records", n_records, 2)
    t_min = min(step, 0.5 * horizon)
    return np.unique(np.concatenate([[0.0], np.geomspace(t_min, horizon, n_records - 1)]))


def _check_record_times(record_times, horizon: float) -> np.ndarray:
    t = np.asarray(record_times, dtype=float).ravel()
    if t.size < 1 or not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(t > horizon * (1 + 1e-12)):
        raise ValueError(
            f"record_times must be a non-empty list of finite times in [0, horizon={horizon:g}], got {record_times!r}"
        )
    return np.unique(np.minimum(t, horizon))


def _perpendicular_directions(W: np.ndarray) -> np.ndarray:
    r"""Unit vectors :math:`z_i=(w_i-u_ie_1)/\|w_i-u_ie_1\|` (float64, first coordinate 0)."""
    Z = np.array(W, dtype=np.float64, copy=True)
    Z[:, 0] = 0.0
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    # a neuron exactly at a pole has no meridian (probability zero); any unit vector works
    bad = norms[:, 0] == 0.0
    if np.any(bad):
        Z[bad, 1] = 1.0
        norms[bad] = 1.0
    return Z / norms


def _gaps(W: np.ndarray, perp: np.ndarray, tracers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-neuron gaps :math:`\|w_i-\bar w_i\|` and the overlaps :math:`u_i`, in :math:`O(md)` float64.

    The difference is formed explicitly (same cost as the identity
    :math:`\|\Delta_i\|^2=2-2(u_i\bar u_i+\bar r_i\langle w_i,z_i\rangle)`, without its
    :math:`\sqrt{\epsilon}\approx10^{-8}` cancellation floor for tiny gaps).
    """
    W64 = np.asarray(W, dtype=np.float64)
    ub = np.clip(tracers, -1.0, 1.0)
    D = W64 - np.sqrt(1.0 - ub * ub)[:, None] * perp
    D[:, 0] -= ub
    return np.linalg.norm(D, axis=1), W64[:, 0].copy()


def _nonfinite_error(quantity: str, t: float, step_hint: str) -> FloatingPointError:
    return FloatingPointError(
        f"non-finite values in the {quantity} at t={t:.6g}; {step_hint}"
    )


class _Recorder:
    """Accumulates the recorded quantities (memory: n_records x m at most)."""

    def __init__(self, width: int, keep_neurons: bool, keep_nodes: bool):
        self.width = width
        self.keep_neurons = keep_neurons and width > 0
        self.keep_nodes = keep_nodes
        self.rows: dict[str, list] = {k: [] for k in (
            "t", "mf_loss", "loss", "gap_mean", "gap_quantile", "function_gap", "flipped_fraction",
            "overlap_gap", "gap", "overlap", "twin_overlap", "nodes")}

    def record(self, t, field: OverlapField, fe, W, perp, tracers, nodes):
        r = self.rows
        r["t"].append(float(t))
        r["mf_loss"].append(field.loss())
        if self.width > 0:
            gaps, u = _gaps(W, perp, tracers)
            r["loss"].append(fe.loss)
            r["gap_mean"].append(float(gaps.mean()))
            r["gap_quantile"].append(np.quantile(gaps, GAP_QUANTILES))
            r["function_gap"].append(field.function_gap(fe.kernel_mean, fe.overlaps))
            r["flipped_fraction"].append(float(np.mean(gaps > 1.0)))
            # sign-blind overlap gap mean_i ||u_i| - |ubar_i|| (the criterion of the width chapter)
            r["overlap_gap"].append(float(np.mean(np.abs(np.abs(u) - np.abs(np.asarray(tracers, dtype=np.float64))))))
            if self.keep_neurons:
                r["gap"].append(gaps.astype(np.float64))
                r["overlap"].append(u.copy())
                r["twin_overlap"].append(np.array(tracers, dtype=np.float64))
        if self.keep_nodes:
            r["nodes"].append(np.array(nodes, dtype=np.float64))

    def dataset(self) -> xr.Dataset:
        r = self.rows
        t = np.array(r["t"])
        data = {
            "mf_loss": ("t", np.array(r["mf_loss"]),
                        {"long_name": "loss of the exact infinite-width limit L(rho_t)"}),
        }
        if self.width > 0:
            data.update({
                "loss": ("t", np.array(r["loss"]),
                         {"long_name": "exact population loss of the finite network L(rho_hat_t)"}),
                "gap_mean": ("t", np.array(r["gap_mean"]),
                             {"long_name": "mean gap omega_t = mean_i ||w_i - wbar_i||"}),
                "gap_quantile": (("t", "quantile"), np.array(r["gap_quantile"]),
                                 {"long_name": "quantiles over neurons of ||w_i - wbar_i||"}),
                "function_gap": ("t", np.array(r["function_gap"]),
                                 {"long_name": "||f_rho_hat - f_rho||^2 (L2 of the Gaussian input)"}),
                "flipped_fraction": ("t", np.array(r["flipped_fraction"]),
                                     {"long_name": "fraction of neurons with ||w_i - wbar_i|| > 1"}),
                "overlap_gap": ("t", np.array(r["overlap_gap"]),
                                {"long_name": "sign-blind overlap gap gamma_t/sqrt(d) = mean_i ||u_i| - |ubar_i||"}),
            })
            if self.keep_neurons:
                data.update({
                    "gap": (("t", "neuron"), np.array(r["gap"]), {"long_name": "||w_i - wbar_i||"}),
                    "overlap": (("t", "neuron"), np.array(r["overlap"]), {"long_name": "u_i = <w_i, e1>"}),
                    "twin_overlap": (("t", "neuron"), np.array(r["twin_overlap"]),
                                     {"long_name": "overlap ubar_i of the mean-field twin"}),
                })
        if self.keep_nodes:
            data["nodes"] = (("t", "node"), np.array(r["nodes"]),
                             {"long_name": "quantile-node overlaps representing rho_t"})
        coords = {"t": ("t", t, {"long_name": "mean-field time"})}
        if self.width > 0:
            coords["quantile"] = ("quantile", np.array(GAP_QUANTILES))
        return xr.Dataset(data, coords=coords)


def _progress_bar(progress, total, desc, unit):
    from tqdm import tqdm  # text bar on stderr (tqdm.auto needs ipywidgets in notebooks)

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not progress, leave=False)


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------
def simulate(
    problem: Problem,
    width: int = 512,
    horizon: float = 20.0,
    step: float = 0.05,
    method: str = "pgd",
    nodes: int = 4096,
    seed=0,
    n_records: int = 80,
    record_times: Sequence[float] | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    chunk: int = _finite.DEFAULT_CHUNK,
    dtype: str = "float64",
    keep_neurons: bool = False,
    keep_nodes: bool = False,
    observers: Sequence = (),
    progress: bool | None = None,
    integrator: str = "RK45",
    evaluation: str = "auto",
    max_steps: int | None = MAX_STEPS,
) -> xr.Dataset:
    r"""Run a finite network, the exact infinite-width limit and the coupling between them.

    Parameters
    ----------
    problem : Problem
        Dimension, activation and target.
    width : int
        Number of neurons :math:`m\ge0`; ``0`` runs the limit alone. The width-:math:`m` network
        is the first :math:`m` rows of every wider one from the same ``seed``.
    horizon : float
        Final mean-field time :math:`T>0`.
    step : float
        Step :math:`\eta` of projected GD (``method="pgd"``; must satisfy :math:`\eta K'(1)<1`).
        With ``method="flow"`` it only sets the first time of the default record grid.
    method : {"pgd", "flow"}
        Projected GD, or adaptive integration of the gradient flow.
    nodes : int
        Number :math:`N\ge2` of quantile nodes of the limit.
    seed : int or numpy.random.Generator
        Seed of the initial neurons.
    n_records : int
        Size of the default record grid (:math:`t=0` plus ``n_records-1`` log-spaced times up to
        ``horizon``). With ``pgd`` each time is rounded to the nearest step and duplicates are
        dropped; the actual times are stored.
    record_times : sequence of float, optional
        Explicit record times in :math:`[0,T]` (overrides ``n_records``).
    rtol, atol : float
        Tolerances of the adaptive integrator (``flow``).
    chunk : int
        Rows of the Gram matrix processed at once.
    dtype : {"float64", "float32"}
        Precision of the finite network: with ``"float32"`` the neurons, the Gram matrix and the
        velocity are single precision (about twice faster, errors :math:`\sim10^{-7}` per entry);
        overlaps, losses, gaps and the whole limit stay float64.
    keep_neurons : bool
        Also store ``gap``, ``overlap`` and ``twin_overlap`` per neuron (``n_records x m`` each).
    keep_nodes : bool
        Also store the quantile nodes (``n_records x N``).
    observers : sequence
        Objects with ``start(state)`` and ``update(state)`` (:class:`SimulationState`), called
        after initialisation and after every step (``pgd`` only).
    progress : bool or None
        tqdm bar on stderr; ``None`` turns it on for long runs (> 2000 steps or width >= 2048).
    integrator : {"RK45", "RK23", "DOP853"}
        Explicit Runge-Kutta method of :mod:`scipy.integrate` for ``flow``.
    evaluation : {"auto", "gram", "moments"}
        Route of the finite interaction term (:func:`mfcore.finite.evaluate`): ``"gram"``
        (:math:`O(m^2d)`), ``"moments"`` (exact polynomial moments, :math:`O(mDd)`, linear in
        :math:`m`; a ValueError if the kernel degree makes the monomial count :math:`D` too large)
        or ``"auto"`` (the cheaper by the cost model of :func:`mfcore.finite.choose_evaluation`).
        The resolved route is stored in ``attrs["evaluation_route"]``.
    max_steps : int or None
        Cap on the number of steps (``pgd``; for ``flow`` a lower bound ``horizon * K'(1) / 3`` of
        the Runge-Kutta steps), :data:`mfcore.runspec.MAX_STEPS` by default; ``None`` lifts it.

    Returns
    -------
    xarray.Dataset
        Coordinate ``t``; ``mf_loss``; if ``width > 0`` also ``loss``, ``gap_mean``,
        ``gap_quantile`` (coordinate ``quantile`` = 0.5, 0.9, 0.99, 1), ``function_gap``,
        ``flipped_fraction``, ``overlap_gap`` (:math:`\frac1m\sum_i\big||u_i|-|\bar u_i|\big|`, the
        sign-blind overlap gap); optional per-neuron and per-node arrays. ``attrs`` hold every
        parameter, ``problem.describe()``, ``mfcore_version``, ``velocity_evaluations`` (evaluations
        of the velocity that advanced the dynamics: steps for ``pgd``, right-hand-side calls for
        ``flow``; the evaluations at record times of ``flow`` are not counted) and ``wall_time_s``.

    Raises
    ------
    ValueError
        Invalid parameters, a step larger than the horizon (``pgd``), more steps than
        ``max_steps``, or a run whose memory (neurons, velocity buffers, Gram blocks or monomial
        features, the record grid and kept records, the limit's nodes and moment tables) does not
        fit the machine's total or available memory; all checked by
        :func:`mfcore.runspec.check_run` before anything large is allocated
        (:func:`mfcore.runspec.memory_estimate`).
    """
    start_clock = time.perf_counter()
    # every parameter, the step count and the memory estimate, before anything large is allocated
    run = check_run(problem, width=width, horizon=horizon, step=step, method=method, nodes=nodes,
                    seed=seed, n_records=n_records, record_times=record_times, rtol=rtol, atol=atol,
                    chunk=chunk, dtype=dtype, keep_neurons=keep_neurons, keep_nodes=keep_nodes,
                    integrator=integrator, evaluation=evaluation, max_steps=max_steps)
    width, horizon, step, n_nodes = run["width"], run["horizon"], run["step"], run["nodes"]
    n_records, chunk, rtol, atol = run["n_records"], run["chunk"], run["rtol"], run["atol"]
    keep_neurons, keep_nodes = run["keep_neurons"], run["keep_nodes"]
    route = run["route"] if width > 0 else _finite._check_evaluation(evaluation)
    if method == "flow" and observers:
        raise ValueError(
            "observers are only supported with method='pgd' (they are called after every "
            "projected-GD step); use method='pgd' or drop the observers"
        )
    observers = tuple(observers)
    for obs in observers:
        if not (callable(getattr(obs, "start", None)) and callable(getattr(obs, "update", None))):
            raise ValueError(f"observer {obs!r} must have start(state) and update(state) methods")
    times = (default_record_times(horizon, step, n_records) if record_times is None
             else _check_record_times(record_times, horizon))

    # initial state -------------------------------------------------------------------------
    dim = problem.dim
    if width > 0:
        W0 = nested_initialisation(width, dim, seed)
        perp = _perpendicular_directions(W0)
        tracers = W0[:, 0].copy()
        W = W0.astype(_DTYPES[dtype])
    else:
        as_generator(seed)  # validate the seed even though the limit uses no randomness
        W, perp, tracers = None, np.zeros((0, dim)), np.zeros(0)
    u_nodes = initial_overlaps(dim, n_nodes)
    recorder = _Recorder(width, keep_neurons, keep_nodes)
    n_steps = run["n_steps"] if method == "pgd" else None
    if progress is None:
        progress = width >= 2048 or (method == "pgd" and horizon / step > 2000)

    if method == "pgd":
        rec_steps = np.unique(np.clip(np.rint(times / step).astype(np.int64), 0, n_steps))
        evaluations = _run_pgd(problem, W, perp, tracers, u_nodes, step, n_steps, rec_steps, chunk,
                               recorder, observers, progress, route)
    else:
        evaluations = _run_flow(problem, W, perp, tracers, u_nodes, horizon, times, rtol, atol, chunk,
                                dtype, integrator, recorder, progress, route)

    ds = recorder.dataset()
    from . import __version__

    attrs = {
        "method": method, "width": width, "horizon": horizon, "step": step, "nodes": n_nodes,
        "seed": seed if isinstance(seed, (int, np.integer)) else repr(seed),
        "n_records": n_records,
        "record_times": "log-spaced default" if record_times is None else [float(x) for x in times],
        "rtol": rtol, "atol": atol, "chunk": chunk, "dtype": dtype,
        "keep_neurons": bool(keep_neurons), "keep_nodes": bool(keep_nodes),
        "observers": [type(o).__name__ for o in observers],
        "integrator": integrator if method == "flow" else "projected GD",
        "evaluation": evaluation, "evaluation_route": route if width > 0 else "none",
        **problem.describe(),
        "mfcore_version": __version__,
        "velocity_evaluations": int(evaluations),
        "wall_time_s": time.perf_counter() - start_clock,
    }
    ds.attrs.update(attrs)
    return ds


def _run_pgd(problem, W, perp, tracers, u_nodes, step, n_steps, rec_steps, chunk, recorder,
             observers, progress, route="gram") -> int:
    """Projected GD loop; one finite evaluation and one OverlapField per state."""
    width = 0 if W is None else W.shape[0]
    hint = (f"the step {step:g} may be too large (stable range step < {problem.max_stable_step:.4g}); "
            "try a smaller step")
    rec_set = set(int(k) for k in rec_steps)

    def evaluate_state(k):
        # the kernel mean (an extra Horner pass over G) is needed only for the loss and the
        # function gap: at record steps, or when observers may read state.finite.loss
        full = k in rec_set or bool(observers)
        fe = (_finite.evaluate(W, problem, chunk, with_kernel_mean=full, evaluation=route,
                                  memory_check=False)
              if width > 0 else None)
        return fe, OverlapField(problem, u_nodes)

    fe, field = evaluate_state(0)
    if 0 in rec_set:
        recorder.record(0.0, field, fe, W, perp, tracers, u_nodes)
    for obs in observers:
        obs.start(SimulationState(0.0, None, problem, W, u_nodes, tracers, perp, field, fe))
    bar = _progress_bar(progress, n_steps, "simulate (pgd)", "step")
    try:
        for k in range(1, n_steps + 1):
            t = k * step
            if width > 0:
                W = _finite.projected_step(W, fe.velocity, step)
                if not np.all(np.isfinite(W)):
                    raise _nonfinite_error("finite neurons W", t, hint)
            both = np.concatenate([u_nodes, tracers])
            both = projected_step_1d(both, field.speed(both), step)
            if not np.all(np.isfinite(both)):
                which = "quantile nodes" if not np.all(np.isfinite(both[: u_nodes.size])) else "tracers"
                raise _nonfinite_error(which, t, hint)
            u_nodes, tracers = both[: u_nodes.size], both[u_nodes.size:]
            fe, field = evaluate_state(k)
            if k in rec_set:
                recorder.record(t, field, fe, W, perp, tracers, u_nodes)
            if observers:
                state = SimulationState(t, step, problem, W, u_nodes, tracers, perp, field, fe)
                for obs in observers:
                    obs.update(state)
            bar.update(1)
    finally:
        bar.close()
    return n_steps


def _run_flow(problem, W, perp, tracers, u_nodes, horizon, times, rtol, atol, chunk, dtype,
              integrator, recorder, progress, route="gram") -> int:
    """Gradient flow by an adaptive explicit Runge-Kutta method; records by dense output.

    Equivalent to ``scipy.integrate.solve_ivp(..., t_eval=times)`` but records on the fly, so the
    memory stays that of a few states instead of ``len(times)`` copies of the state.
    """
    import scipy.integrate as si

    width = 0 if W is None else W.shape[0]
    dim = problem.dim
    n_w = width * dim
    n_nodes = u_nodes.size
    fdtype = _DTYPES[dtype]
    counter = [0]
    hint = "try smaller tolerances rtol/atol (or method='pgd' with a small step)"

    def split(y):
        Wy = normalize_rows(y[:n_w].reshape(width, dim)) if width > 0 else None
        nodes = np.clip(y[n_w:n_w + n_nodes], -1.0, 1.0)
        trac = np.clip(y[n_w + n_nodes:], -1.0, 1.0)
        return Wy, nodes, trac

    def rhs(t, y):
        counter[0] += 1
        Wy, nodes, trac = split(y)
        out = np.empty_like(y)
        if width > 0:
            v = _finite.evaluate(Wy.astype(fdtype), problem, chunk, with_kernel_mean=False,
                                 evaluation=route, memory_check=False).velocity
            if not np.all(np.isfinite(v)):
                raise _nonfinite_error("finite neurons W (velocity)", t, hint)
            out[:n_w] = v.ravel()
        field = OverlapField(problem, nodes)
        V = field.velocity(np.concatenate([nodes, trac]))
        if not np.all(np.isfinite(V)):
            which = "quantile nodes" if not np.all(np.isfinite(V[:n_nodes])) else "tracers"
            raise _nonfinite_error(which + " (velocity)", t, hint)
        out[n_w:] = V
        return out

    def record(t, y):
        Wy, nodes, trac = split(y)
        if width > 0:
            Wy = Wy.astype(fdtype)
            fe = _finite.evaluate(Wy, problem, chunk, evaluation=route, memory_check=False)
        else:
            fe = None
        recorder.record(t, OverlapField(problem, nodes), fe, Wy, perp, trac, nodes)

    y0 = np.concatenate([W.astype(np.float64).ravel() if width > 0 else np.zeros(0), u_nodes, tracers])
    solver = getattr(si, integrator)(rhs, 0.0, y0, horizon, rtol=rtol, atol=atol)
    idx = 0
    while idx < times.size and times[idx] <= 0.0:
        record(0.0, y0)
        idx += 1
    bar = _progress_bar(progress, horizon, "simulate (flow)", "time")
    try:
        while idx < times.size:
            t_old = solver.t
            message = solver.step()
            if solver.status == "failed":
                raise FloatingPointError(f"the {integrator} integrator failed at t={solver.t:.6g}: {message}; {hint}")
            if not np.all(np.isfinite(solver.y)):
                raise _nonfinite_error("state", solver.t, hint)
            bar.update(solver.t - t_old)
            if idx < times.size and times[idx] <= solver.t:
                dense = solver.dense_output()
                while idx < times.size and times[idx] <= solver.t:
                    record(times[idx], dense(times[idx]))
                    idx += 1
            if solver.status == "finished":
                while idx < times.size:  # rounding at the end of the interval
                    record(times[idx], solver.y)
                    idx += 1
    finally:
        bar.close()
    return counter[0]
