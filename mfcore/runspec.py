r"""One run of :func:`mfcore.simulate`: its parameters, their types, ranges and defaults, its
step count and its memory estimate.

The command line (``mfcore simulate``), the sweeps (:mod:`mfcore.sweep`) and :func:`mfcore.simulate`
itself validate a run through this module, so that every bad input is refused the same way and
before anything large is allocated:

* :func:`coerce` checks the type and range of one parameter (a config value, an argument);
* :class:`RunSpec` holds a complete, canonical parameter set (defaults filled in);
* :func:`check_run` checks a whole run: the problem, the step against the horizon and against
  :math:`\eta K'(1)<1`, the step count against :data:`MAX_STEPS`, and the memory estimate
  (:func:`memory_estimate`) against the machine (:func:`mfcore.memory.check_memory`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from . import memory as _memory
from .finite import DEFAULT_CHUNK, EVALUATIONS, evaluation_memory_bytes, resolve_evaluation
from .problem import Problem

#: Largest number of steps a run may take unless the caller lifts the cap (``max_steps=``,
#: ``mfcore simulate --max-steps``): projected-GD steps, or for the adaptive flow a lower bound
#: ``horizon * K'(1) / 3`` on the Runge-Kutta steps (explicit methods are stable only for steps
#: below about 3 / K'(1)).
MAX_STEPS = 10**7
METHODS = ("pgd", "flow")
DTYPES = ("float64", "float32")
#: Explicit integrators of :mod:`scipy.integrate` accepted by ``method="flow"``.
FLOW_INTEGRATORS = ("RK45", "RK23", "DOP853")
#: Symbolic horizons a sweep may give (resolved by :func:`mfcore.sweep.resolve_horizon`).
HORIZON_KINDS = ("paper", "t95", "full")

#: Parameters of a run: ``name -> (kind, default, minimum or choices)``. The defaults are those
#: of :func:`mfcore.simulate` (``dim`` has none).
PARAMETERS = {
    "activation": ("str", "he4", None),
    "target": ("str", None, None),
    "dim": ("int", None, 2),
    "width": ("int", 512, 0),
    "horizon": ("positive", 20.0, None),
    "step": ("positive", 0.05, None),
    "method": ("choice", "pgd", METHODS),
    "nodes": ("int", 4096, 2),
    "seed": ("int", 0, 0),
    "n_records": ("int", 80, 2),
    "record_times": ("times", None, None),
    "rtol": ("positive", 1e-6, None),
    "atol": ("positive", 1e-9, None),
    "chunk": ("int", DEFAULT_CHUNK, 1),
    "dtype": ("choice", "float64", DTYPES),
    "keep_neurons": ("bool", False, None),
    "keep_nodes": ("bool", False, None),
    "integrator": ("choice", "RK45", FLOW_INTEGRATORS),
    "evaluation": ("choice", "auto", EVALUATIONS),
}
#: Parameters that may be ``None``.
_OPTIONAL = ("target", "record_times")


def _horizon_symbol(value: str) -> bool:
    import re

    kinds = "|".join(HORIZON_KINDS)
    m = re.fullmatch(r"\s*(?:([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*\*\s*)?(" + kinds + r")\s*", value)
    return m is not None and (m.group(1) is None or float(m.group(1)) > 0)


def coerce(name: str, value, source: str = "parameter", symbolic_horizon: bool = False):
    """Check the type and range of one run parameter; return its canonical value.

    Parameters
    ----------
    name : str
        A key of :data:`PARAMETERS` (anything else is a ValueError listing the allowed names).
    value
        The value as given (a TOML value, an argument).
    source : str
        How the message names the parameter (``"sweep parameter"``, ``"parameter"``; ``"--"``
        names the command-line option, ``--records`` for ``n_records``).
    symbolic_horizon : bool
        Accept ``"paper"``, ``"t95"``, ``"full"`` with an optional factor for ``horizon``.
    """
    if name not in PARAMETERS:
        raise ValueError(f"unknown {source} {name!r}; allowed: {', '.join(sorted(PARAMETERS))}")
    kind, _, rule = PARAMETERS[name]
    label = ("--" + {"n_records": "records"}.get(name, name).replace("_", "-") if source == "--"
             else f"{source} {name}")
    if value is None and name in _OPTIONAL:
        return None
    if name == "horizon" and isinstance(value, str) and symbolic_horizon:
        if not _horizon_symbol(value):
            raise ValueError(f"{label} must be a number or one of {', '.join(HORIZON_KINDS)} with an "
                             f"optional factor ('4*paper'), got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{label} must be true or false, got {value!r}")
        return bool(value)
    if kind == "int":
        if isinstance(value, (bool, np.bool_)) or not (
                isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer())):
            raise ValueError(f"{label} must be an integer, got {value!r}")
        if value < rule:
            raise ValueError(f"{label} must be an integer >= {rule}, got {value!r}")
        return int(value)
    if kind == "positive":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{label} must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{label} must be a finite number > 0, got {value!r}")
        return float(value)
    if kind == "times":
        if not isinstance(value, (list, tuple)) or not value or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                for v in value):
            raise ValueError(f"{label} must be a non-empty list of finite times >= 0, got {value!r}")
        return [float(v) for v in value]
    if not isinstance(value, str):
        raise ValueError(f"{label} must be a string, got {value!r}")
    if kind == "choice" and value not in rule:
        raise ValueError(f"{label} must be one of {', '.join(rule)}, got {value!r}")
    return value


@dataclass(frozen=True)
class RunSpec:
    """A complete, canonical parameter set of one run (see :data:`PARAMETERS`).

    Build it with :meth:`from_mapping` (types and ranges checked by :func:`coerce`); check the
    whole run with :meth:`check`.
    """

    dim: int
    activation: str = "he4"
    target: str | None = None
    width: int = 512
    horizon: float | str = 20.0
    step: float = 0.05
    method: str = "pgd"
    nodes: int = 4096
    seed: int = 0
    n_records: int = 80
    record_times: list | None = None
    rtol: float = 1e-6
    atol: float = 1e-9
    chunk: int = DEFAULT_CHUNK
    dtype: str = "float64"
    keep_neurons: bool = False
    keep_nodes: bool = False
    integrator: str = "RK45"
    evaluation: str = "auto"

    @classmethod
    def from_mapping(cls, params, source: str = "parameter", symbolic_horizon: bool = False) -> "RunSpec":
        """Check every value of ``params`` (a dict) and fill in the defaults; ``dim`` is required."""
        if not isinstance(params, dict):
            raise ValueError(f"run parameters must be a table of name = value, got {params!r}")
        values = {k: coerce(k, v, source, symbolic_horizon) for k, v in params.items()}
        if values.get("dim") is None:
            raise ValueError("a run needs dim (the input dimension d)")
        return cls(**values)

    def as_dict(self) -> dict:
        """All parameters, sorted by name (the canonical form hashed by the sweep cache)."""
        d = asdict(self)
        return {k: d[k] for k in sorted(d)}

    def replace(self, **changes) -> "RunSpec":
        return replace(self, **changes)

    def problem(self) -> Problem:
        return _problem(self.dim, self.activation, self.target)

    def simulate_kwargs(self) -> dict:
        """Keywords of :func:`mfcore.simulate` (everything but the problem)."""
        return {k: v for k, v in self.as_dict().items() if k not in ("dim", "activation", "target")}

    def check(self, max_steps: int = MAX_STEPS, memory: bool = True) -> dict:
        """:func:`check_run` of this run (a numeric horizon is needed)."""
        if isinstance(self.horizon, str):
            raise ValueError(f"the symbolic horizon {self.horizon!r} must be resolved first")
        return check_run(self.problem(), max_steps=max_steps, memory=memory, **self.simulate_kwargs())


def _problem(dim, activation, target) -> Problem:
    key = (dim, activation, target)
    cached = _PROBLEMS.get(key)
    if cached is None:
        cached = Problem(dim, activation, target)
        if len(_PROBLEMS) < 256:
            _PROBLEMS[key] = cached
    return cached


_PROBLEMS: dict = {}


def step_count(problem: Problem, method: str, horizon: float, step: float) -> int:
    """Projected-GD steps of a run, or for ``flow`` a lower bound on the Runge-Kutta steps."""
    if method == "pgd":
        return max(1, int(round(horizon / step))) if horizon / step < 2**62 else 2**62
    return int(min(horizon / (3.0 * problem.max_stable_step), 2**62))


def memory_estimate(problem: Problem, width: int, nodes: int, n_records: int, method: str = "pgd",
                    evaluation: str = "gram", chunk: int = DEFAULT_CHUNK, dtype: str = "float64",
                    keep_neurons: bool = False, keep_nodes: bool = False, n_steps: int | None = None) -> int:
    r"""Bytes a :func:`mfcore.simulate` run allocates at its peak (an estimate, checked before the run).

    Sum of

    * the finite network: the neurons in float64 and ``dtype``, the fixed directions :math:`z_i`
      and about four more :math:`m\times d` arrays (velocity, step, projections; ``flow``: about
      fourteen states of the Runge-Kutta stages); one evaluation's buffers
      (:func:`mfcore.finite.evaluation_memory_bytes`: Gram blocks or monomial features);
    * the limit: a few dozen arrays of the :math:`N` nodes and :math:`m` tracers, the moments of
      the law and the coefficient tables of :meth:`mfcore.meanfield.OverlapField.expect`
      (:math:`(\deg K+3)^2` each) and the power rows of a block of nodes;
    * the records: the grid of ``n_records`` times (built whole before it is rounded to steps)
      and the recorded rows (at most ``n_steps + 1`` with ``pgd``), kept per-neuron and per-node
      arrays (and their copies when the dataset is built).

    Calibrated against the measured peak resident memory of runs of 0.2 to 1 GB (Gram and moment
    routes, pgd and flow, limit alone): the estimate lies within about 15% of the peak (above it
    for pgd); :func:`mfcore.memory.check_memory` adds :data:`mfcore.memory.MEMORY_MARGIN`.
    """
    m, d, N, R = int(width), problem.dim, int(nodes), int(n_records)
    item = np.dtype(dtype).itemsize
    stored = R if n_steps is None else min(R, int(n_steps) + 1)
    deg = max(problem.kernel.degree, 1)
    points = N + m  # the field is evaluated at the nodes and the tracers together
    total = 16 * N * 8 + 16 * points * 8
    total += 3 * (deg + 3) ** 2 * 8 + 2 * (deg + 3) * min(N, 8192) * 8
    total += R * 128 + stored * 700
    if method == "flow":
        total += 14 * points * 8
    if m > 0:
        states = 14 if method == "flow" else 0
        total += m * d * (8 + 8 + 4 * item + states * 8) + 8 * m * 8
        total += evaluation_memory_bytes(m, problem, evaluation, chunk, np.dtype(dtype).type)
        if keep_neurons:
            total += 6 * stored * m * 8
    if keep_nodes:
        total += 2 * stored * N * 8
    return int(total)


def check_run(problem: Problem, width=512, horizon=20.0, step=0.05, method="pgd", nodes=4096, seed=0,
              n_records=80, record_times=None, rtol=1e-6, atol=1e-9, chunk=DEFAULT_CHUNK, dtype="float64",
              keep_neurons=False, keep_nodes=False, integrator="RK45", evaluation="auto",
              max_steps: int = MAX_STEPS, memory: bool = True) -> dict:
    """Validate a whole run before anything is allocated; return its normalised values.

    Checks the type and range of every parameter (:func:`coerce`), the step (``pgd``: not larger
    than the horizon, stable, :math:`\\eta K'(1)<1`), the step count against ``max_steps`` and, if
    ``memory``, the estimate of :func:`memory_estimate` against the machine's total and available
    memory. Raises a one-line ValueError naming the parameter otherwise.

    Returns
    -------
    dict
        The parameters as canonical values, plus ``n_steps`` (``pgd``; for ``flow`` a lower bound),
        ``route`` (the resolved evaluation route, ``"none"`` for ``width=0``), ``n_times`` and
        ``estimate`` (bytes).
    """
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a mfcore.Problem, got {type(problem).__name__}")
    names = {"width": "width (number of neurons m)", "horizon": "horizon (final mean-field time)",
             "nodes": "nodes (quantile nodes N)"}
    given = dict(width=width, horizon=horizon, method=method, nodes=nodes, n_records=n_records,
                 rtol=rtol, atol=atol, chunk=chunk, dtype=dtype, keep_neurons=keep_neurons,
                 keep_nodes=keep_nodes, integrator=integrator, evaluation=evaluation)
    out = {}
    for name, value in given.items():
        try:
            out[name] = coerce(name, value, "parameter")
        except ValueError as exc:
            raise ValueError(str(exc).replace(f"parameter {name}", names.get(name, name), 1)) from None
    out["seed"] = seed if isinstance(seed, np.random.Generator) else coerce("seed", seed, "parameter")
    method, horizon = out["method"], out["horizon"]
    if method == "pgd":
        out["step"] = problem.check_step(step)
        if out["step"] > horizon:
            raise ValueError(
                f"step={out['step']:g} is larger than the horizon={horizon:g}: projected GD would end "
                f"at t={out['step']:g}, not at the horizon; use a step <= horizon"
            )
    else:
        out["step"] = coerce("step", step, "parameter")
    n_steps = step_count(problem, method, horizon, out["step"])
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer))
                                  or max_steps < 1):
        raise ValueError(f"max_steps must be an integer >= 1 (or None: no cap), got {max_steps!r}")
    if max_steps is not None and n_steps > max_steps:
        what = (f"horizon/step = {horizon:g}/{out['step']:g} = {horizon / out['step']:.3g} steps"
                if method == "pgd" else
                f"the flow to horizon={horizon:g} needs at least horizon*K'(1)/3 = {n_steps:.3g} steps")
        raise ValueError(f"{what}, more than the cap max_steps={max_steps:.3g}; shorten the horizon, "
                         "enlarge the step, or lift the cap (max_steps=, --max-steps)")
    if record_times is not None:
        times = np.asarray(record_times, dtype=float).ravel() if not isinstance(record_times, np.ndarray) \
            else record_times.ravel()
        if times.size < 1 or not np.all(np.isfinite(times)) or np.any(times < 0) or \
                np.any(times > horizon * (1 + 1e-12)):
            raise ValueError(f"record_times must be a non-empty list of finite times in [0, horizon={horizon:g}]")
        n_times = int(times.size)
    else:
        n_times = out["n_records"]
    width = out["width"]
    route = (resolve_evaluation(out["evaluation"], width, problem, np.dtype(out["dtype"]).type)
             if width > 0 else "none")
    estimate = memory_estimate(problem, width, out["nodes"], n_times, method,
                               route if width > 0 else "gram", out["chunk"], out["dtype"],
                               out["keep_neurons"], out["keep_nodes"],
                               n_steps if method == "pgd" else None)
    if memory:
        _memory.check_memory(estimate, f"this run (width m={width}, dim d={problem.dim}, {method}, "
                                       f"{route} route, {out['dtype']}, {out['nodes']} nodes, "
                                       f"{n_times} records, kernel degree {problem.kernel.degree})",
                             dtype=out["dtype"])
    out.update(record_times=record_times, n_steps=n_steps, route=route, n_times=n_times, estimate=estimate)
    return out
