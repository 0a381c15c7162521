r"""Parameter sweeps of :func:`mfcore.simulate` on Dask, with a resumable on-disk cache.

A sweep is a Cartesian grid over any parameters of :func:`mfcore.simulate` and of the problem
(``activation``, ``target``, ``dim``, ``width``, ``seed``, ``step``, ``method``, ``horizon``, ...).
Its result is **one** :class:`xarray.Dataset` with a dimension per swept parameter (plus ``t``
and the dimensions of the individual runs).

Configuration (TOML, read with the standard library's :mod:`tomllib`)::

    [defaults]                     # optional, shared by all sweeps of the file
    cache = ".mfcore-cache/sweeps" # run cache (see below)
    out_dir = "sweeps/test"        # where `mfcore sweep` writes <name>.nc

    [sweep.tiny]
    description = "what this sweep is for"
    [sweep.tiny.fixed]             # passed unchanged to every run
    horizon = 1.0
    step = 0.05
    [sweep.tiny.grid]              # one dimension of the result per key, in this order
    dim = [8, 16]
    width = [16, 32]
    seed = [0, 1, 2]

Horizons and steps are in the **book's units** (loss :math:`\tfrac12\mathbb E(f-y)^2`, time
:math:`t=\eta\times` steps; see :mod:`mfcore.authors` and the book's mathematical reference, section
``math-authors``): the authors' learning rate 0.01 is the book's step ``step = 0.02``. Symbolic
horizons, resolved run by run (:math:`k` the information exponent):

``"paper"``
    the default horizon of the authors' ``main_nn.py`` converted to book time, :math:`t=\max(2\log d,\ d^{k/2-1})`
    (:func:`mfcore.authors.book_horizon`; :math:`t=d` for :math:`h_4`);
``"t95"``
    :math:`T_{95}`, the first time the exact limit's loss has fallen by 95% of its initial value,
    from a limit-only probe (:func:`t95_horizon`; deterministic, rounded up to 3 significant digits
    so that the cache key is the same on every machine);
``"full"``
    :math:`\max(T_{95},\ \text{paper})`, the horizon of the book's chaos chapters (the whole of
    training, and at least that default horizon).

Each may carry a factor: ``"4*paper"``, ``"2*full"``.

Cache and resume
----------------
Every run is stored as one netCDF file ``<cache>/runs/<key>.nc``; ``key`` is
:func:`joblib.hash` of the run's full parameter set (defaults of :func:`mfcore.simulate` filled
in, so equal runs share a key across sweeps) together with ``mfcore.__version__``. The worker that
computed the run writes the file itself through :func:`mfcore.results.save_dataset`, i.e. under a
temporary name moved into place by :func:`os.replace`: a file with the final name is always
complete. A rerun submits only the runs whose file is missing, so an interrupted sweep loses at
most the runs in flight. Each file also stores its key and parameters, checked when it is read,
and its checksums (:mod:`mfcore.results`): an entry edited after it was written stops the sweep.

``joblib.Memory`` was considered and not used: it wipes a function's cache when the function's
source changes (the key here must be the parameters and the package version only), and it
silently recomputes an unreadable entry with a warning, where a corrupt or foreign file must
stop the sweep with a clear error (:class:`CacheError`, a ``ValueError``).

Execution
---------
Runs are submitted to a Dask ``distributed`` cluster: by default an embedded, private
``LocalCluster`` (worker processes, one thread each, bound to 127.0.0.1, TLS with credentials
created for the run so that no other client can connect or run code in its workers, no dashboard
unless ``--dashboard`` asks for one), or an existing scheduler given by its address (refused within
:data:`CONNECT_TIMEOUT` seconds if it cannot be reached or is not a Dask scheduler). A tqdm bar
counts finished runs out of the total. With no live worker for ``--no-worker-timeout`` seconds
(60 by default) the sweep stops with a message; the cache keeps every finished run.

Before any cluster starts, every key of the config is type-checked, every run still to compute is
validated by the run specification shared with ``mfcore simulate`` (:mod:`mfcore.runspec`: types,
ranges, step count, memory estimate), and the output files and the log are checked
(an existing result file is replaced only with ``--overwrite``).
"""
from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from .runspec import HORIZON_KINDS, PARAMETERS, RunSpec, coerce

#: Parameters a sweep may set (problem + :func:`mfcore.simulate` keywords), with their types; their
#: ranges and defaults are those of the run specification (:data:`mfcore.runspec.PARAMETERS`).
PARAMETER_TYPES = {name: {"str": str, "choice": str, "int": int, "positive": float, "bool": bool,
                          "times": list}[kind] for name, (kind, _, _) in PARAMETERS.items()}
#: Seconds without any live Dask worker after which a sweep stops (:func:`run_sweep`).
NO_WORKER_TIMEOUT = 60.0
#: Seconds allowed to connect to a scheduler given by its address.
CONNECT_TIMEOUT = 5.0
#: Test hook: an interrupt (as Ctrl-C) after this many runs are stored, so that tests of the resume
#: path do not depend on timing.
STOP_AFTER_ENV = "MFCORE_SWEEP_STOP_AFTER"
#: Keys of a ``[sweep.NAME]`` table.
SWEEP_KEYS = ("description", "fixed", "grid", "out")
DEFAULT_CACHE = ".mfcore-cache/sweeps"
_MARKER = "mfcore-sweep-cache.json"
_CACHE_FORMAT = 1
_ENTRY = re.compile(r"^[0-9a-f]{32}\.nc$")
_TEMP = re.compile(r"^\.[0-9a-f]{32}\.nc\..*\.tmp$")  # left by an interrupted atomic write
#: Per-run attributes that become variables of the combined dataset even when constant.
PER_RUN_VARIABLES = ("velocity_evaluations", "wall_time_s", "run_key", "computed_at")


class CacheError(ValueError):
    """A file in the sweep cache is unreadable, foreign, or does not match its parameters."""


# ---------------------------------------------------------------------------------------------
# specification
# ---------------------------------------------------------------------------------------------
def paper_horizon(dim: int, information_exponent: int) -> float:
    r"""The default horizon of the authors' ``main_nn.py`` in the **book's** time, :math:`t=\max(2\log d,\ d^{k/2-1})`.

    Their code stops at :math:`T_{\rm auth}=\max(\log d,\ \tfrac12 d^{k/2-1})` in their time
    ``lr × steps``; the book's time is twice theirs (:func:`mfcore.authors.book_horizon`).
    """
    from .authors import book_horizon

    return float(book_horizon(dim, information_exponent))


@functools.lru_cache(maxsize=256)
def t95_horizon(dim: int, activation: str = "he4", target: str | None = None, fraction: float = 0.05,
                nodes: int = 2048) -> float:
    r"""First time :math:`T` with :math:`L(\rho_T)\le` ``fraction`` :math:`\times L(\rho_0)` for the exact limit.

    A limit-only probe (:func:`mfcore.simulate` with ``width=0``, ``method="flow"``, ``nodes``
    quantile nodes), started at 8 × the authors' horizon (book units) and doubled until the loss
    has fallen that far (at most 8 doublings, else ``ValueError``). The crossing is located on
    2000 evenly spaced records by linear interpolation and rounded **up** to 3 significant digits,
    so the value (and the sweep's cache keys) does not depend on the machine's last bits. Cached
    per process. Measured (he4, :math:`T_{95}/d`): 3.4 at :math:`d=16`, 3.9 at 32, 4.4 at 64.
    """
    from .analysis import first_crossing_time
    from .problem import Problem
    from .simulate import simulate

    problem = Problem(int(dim), activation, target)
    horizon = 8.0 * paper_horizon(problem.dim, problem.information_exponent)
    for _ in range(9):
        times = np.linspace(0.0, horizon, 2001)
        probe = simulate(problem, width=0, horizon=horizon, method="flow", step=0.02, nodes=int(nodes),
                         record_times=times, rtol=1e-7, atol=1e-10, progress=False)
        rel = probe.mf_loss.values / probe.mf_loss.values[0]
        crossing = first_crossing_time(probe.t.values, rel, float(fraction), on_missing="nan")
        if np.isfinite(crossing):
            return _round_up(float(crossing), 3)
        horizon *= 2.0
    raise ValueError(f"the limit loss of {problem.describe()} does not fall below {fraction} of its "
                     f"initial value before t = {horizon / 2:g}")


def _round_up(x: float, digits: int) -> float:
    if x <= 0:
        return float(x)
    e = math.floor(math.log10(x)) - digits + 1
    return float(round(math.ceil(x / 10.0**e - 1e-9) * 10.0**e, max(0, -e) + 1))


def _horizon_spec(value: str):
    """``"paper"`` -> (1.0, "paper"), ``"4*full"`` -> (4.0, "full"), anything else -> None."""
    kinds = "|".join(HORIZON_KINDS)
    m = re.fullmatch(r"\s*(?:([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*\*\s*)?(" + kinds + r")\s*", value)
    if m is None:
        return None
    factor = float(m.group(1)) if m.group(1) else 1.0
    return (factor, m.group(2)) if factor > 0 else None


def _paper_factor(value: str):
    """``"paper"`` -> 1.0, ``"4*paper"`` -> 4.0, anything else -> None (kept for callers)."""
    spec = _horizon_spec(value)
    return spec[0] if spec is not None and spec[1] == "paper" else None


def resolve_horizon(value, dim: int, activation: str = "he4", target: str | None = None) -> float:
    """A numeric horizon (book time) from a number or a symbolic one (``"paper"``, ``"t95"``, ``"full"``)."""
    from .problem import Problem

    if not isinstance(value, str):
        return float(value)
    spec = _horizon_spec(value)
    if spec is None:
        raise ValueError(f"horizon must be a number or [FACTOR*]{'|'.join(HORIZON_KINDS)}, got {value!r}")
    factor, kind = spec
    k = Problem(int(dim), activation, target).information_exponent
    paper = paper_horizon(int(dim), k)
    if kind == "paper":
        return factor * paper
    t95 = t95_horizon(int(dim), activation, target)
    return factor * (t95 if kind == "t95" else max(t95, paper))


def _coerce(name: str, value):
    """Type and range of one sweep value (:func:`mfcore.runspec.coerce`; symbolic horizons allowed)."""
    return coerce(name, value, "sweep parameter", symbolic_horizon=True)


@dataclass(frozen=True)
class SweepSpec:
    """A named Cartesian grid of simulations.

    Parameters
    ----------
    name : str
    fixed : dict
        Parameters shared by every run.
    grid : dict
        ``parameter -> list of values``; one dimension of the result per key, in order.
    description : str
    out : str, optional
        Output file (default ``<out_dir>/<name>.nc`` when run from a config).
    """

    name: str
    fixed: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    description: str = ""
    out: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"sweep name must be letters, digits, '_', '-' or '.', got {self.name!r}")
        for key, value, kind in (("fixed", self.fixed, dict), ("grid", self.grid, dict),
                                 ("description", self.description, str)):
            if not isinstance(value, kind):
                what = "a table of name = value" if kind is dict else "a string"
                raise ValueError(f"{key} of sweep {self.name!r} must be {what}, got {value!r}")
        if self.out is not None and (not isinstance(self.out, str) or not self.out.strip()):
            raise ValueError(f"out of sweep {self.name!r} must be a file name (string), got {self.out!r}")
        fixed = {k: _coerce(k, v) for k, v in dict(self.fixed).items()}
        grid = {}
        for k, values in dict(self.grid).items():
            if not isinstance(values, (list, tuple)) or len(values) == 0:
                raise ValueError(f"grid values of {k!r} must be a non-empty list, got {values!r}")
            if k == "record_times":
                raise ValueError("record_times cannot be swept (it is a list); set it in [fixed]")
            vals = [_coerce(k, v) for v in values]
            if len(set(map(repr, vals))) != len(vals):
                raise ValueError(f"grid values of {k!r} contain duplicates: {values!r}")
            grid[k] = vals
        both = set(fixed) & set(grid)
        if both:
            raise ValueError(f"parameters {sorted(both)} are both fixed and swept in sweep {self.name!r}")
        if "dim" not in fixed and "dim" not in grid:
            raise ValueError(f"sweep {self.name!r} must set dim (fixed or in the grid)")
        object.__setattr__(self, "fixed", fixed)
        object.__setattr__(self, "grid", grid)

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.grid)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.grid.values())

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.grid else 1

    def runs(self):
        """``(index, params)`` for every grid point, ``params`` complete (see :func:`run_parameters`)."""
        axes = [range(n) for n in self.shape]
        for index in itertools.product(*axes):
            point = {k: self.grid[k][i] for k, i in zip(self.grid, index)}
            yield index, run_parameters({**self.fixed, **point})


def run_parameters(params: dict) -> dict:
    """The complete, canonical parameter set of one run (defaults filled, symbolic horizons resolved).

    Built by :class:`mfcore.runspec.RunSpec`, the run specification shared with the command line
    and :func:`mfcore.simulate`.
    """
    spec = RunSpec.from_mapping(params, "sweep parameter", symbolic_horizon=True)
    if isinstance(spec.horizon, str):
        spec = spec.replace(horizon=resolve_horizon(spec.horizon, spec.dim, spec.activation, spec.target))
    return spec.as_dict()


def validate_sweep(spec: "SweepSpec", memory: bool = True, max_steps=None, cache=None) -> int:
    """Check every run of ``spec`` as :func:`mfcore.simulate` will, before any cluster starts.

    Each run goes through :meth:`mfcore.runspec.RunSpec.check` (problem, step, step count,
    memory estimate against this machine if ``memory``). With ``cache``, runs already cached there
    are skipped (they are read, not computed). Raises a ValueError naming the sweep and the run;
    returns the largest memory estimate (bytes).
    """
    from .runspec import MAX_STEPS

    runs = [params for _, params in spec.runs()]
    if cache is not None:
        runs_dir = prepare_cache(cache)
        runs = [p for p in runs if not entry_path(runs_dir, run_key(p)).exists()]
    largest, seen = 0, set()
    for params in runs:
        key = json.dumps(params, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        try:
            run = RunSpec.from_mapping(params, "sweep parameter").check(
                max_steps=MAX_STEPS if max_steps is None else max_steps, memory=memory)
        except ValueError as exc:
            raise ValueError(f"sweep {spec.name!r}, run {_short(params)}: {exc}") from None
        largest = max(largest, run["estimate"])
    return largest


def run_key(params: dict, version: str | None = None) -> str:
    """Cache key: :func:`joblib.hash` (md5) of the complete parameters and the package version."""
    import joblib

    from . import __version__

    return joblib.hash({"params": run_parameters(params),
                        "mfcore_version": __version__ if version is None else version})


def load_config(path) -> dict[str, SweepSpec]:
    """Read a TOML sweep configuration: ``{name: SweepSpec}`` plus ``defaults`` in ``.defaults``.

    Returns
    -------
    dict
        ``name -> SweepSpec`` in file order; the ``[defaults]`` table is available as the
        attribute ``defaults`` of the returned :class:`SweepConfig`.
    """
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep config {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"sweep config {str(path)!r} is not valid TOML: {exc}") from None
    unknown = set(data) - {"defaults", "sweep"}
    if unknown:
        raise ValueError(f"sweep config {str(path)!r}: unknown top-level tables {sorted(unknown)} "
                         "(allowed: [defaults], [sweep.NAME])")
    sweeps = data.get("sweep", {})
    if not isinstance(sweeps, dict):
        raise ValueError(f"sweep config {str(path)!r}: 'sweep' must be tables [sweep.NAME], got {sweeps!r}")
    if not sweeps:
        raise ValueError(f"sweep config {str(path)!r} defines no [sweep.NAME] table")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ValueError(f"sweep config {str(path)!r}: 'defaults' must be a table [defaults], got {defaults!r}")
    bad = set(defaults) - {"cache", "out_dir"}
    if bad:
        raise ValueError(f"sweep config {str(path)!r}: unknown [defaults] keys {sorted(bad)} (allowed: cache, out_dir)")
    for key, value in defaults.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"sweep config {str(path)!r}: [defaults] {key} must be a folder name (string), "
                             f"got {value!r}")
    out = SweepConfig(defaults=defaults, source=str(path))
    for name, table in sweeps.items():
        if not isinstance(table, dict):
            raise ValueError(f"{str(path)!r}: [sweep.{name}] must be a table (with fixed, grid, ...), got {table!r}")
        extra = set(table) - set(SWEEP_KEYS)
        if extra:
            raise ValueError(f"[sweep.{name}]: unknown keys {sorted(extra)} (allowed: {', '.join(SWEEP_KEYS)})")
        try:
            out[name] = SweepSpec(name=name, fixed=table.get("fixed", {}), grid=table.get("grid", {}),
                                  description=table.get("description", ""), out=table.get("out"))
        except ValueError as exc:
            raise ValueError(f"{str(path)!r}, [sweep.{name}]: {exc}") from None
    return out


class SweepConfig(dict):
    """``name -> SweepSpec`` with the file's ``defaults`` table and ``source`` path."""

    def __init__(self, defaults=None, source=None):
        super().__init__()
        self.defaults = dict(defaults or {})
        self.source = source


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------
def prepare_cache(cache) -> Path:
    """Create or validate a cache directory; returns its ``runs`` folder.

    A new (or empty) directory is initialised with a marker file. An existing non-empty
    directory must carry that marker and contain only cache entries ``<32 hex>.nc`` (and
    temporary files of interrupted writes) in ``runs/``; anything else raises :class:`CacheError`.
    """
    root = Path(cache)
    marker = root / _MARKER
    runs = root / "runs"
    if root.exists() and not root.is_dir():
        raise CacheError(f"sweep cache {str(root)!r} exists and is not a directory")
    if not root.exists() or (not any(root.iterdir())):
        runs.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{_MARKER}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"format": _CACHE_FORMAT, "content": "mfcore sweep cache"}))
        os.replace(tmp, marker)
        return runs
    if not marker.is_file():
        raise CacheError(
            f"{str(root)!r} is not an mfcore sweep cache (no {_MARKER}); refusing to write into a "
            "foreign directory: choose an empty or new folder with --cache"
        )
    try:
        info = json.loads(marker.read_text())
        ok = info.get("format") == _CACHE_FORMAT
    except (ValueError, AttributeError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise CacheError(f"unreadable or unsupported cache marker {str(marker)!r}; "
                         "delete the cache folder to start afresh")
    runs.mkdir(exist_ok=True)
    foreign = sorted(p.name for p in runs.iterdir() if not (_ENTRY.match(p.name) or _TEMP.match(p.name)))
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise CacheError(
            f"foreign files in the sweep cache {str(runs)!r}: {shown}; the cache holds only files "
            "named <key>.nc written by mfcore: move these files away"
        )
    return runs


def entry_path(runs: Path, key: str) -> Path:
    return Path(runs) / f"{key}.nc"


def read_entry(path: Path, key: str, params: dict | None = None) -> xr.Dataset:
    """Load a cache entry, verify its checksums (:func:`mfcore.results.load_dataset`) and check that
    it is the run ``key`` (and ``params``); else :class:`CacheError`."""
    from .results import IntegrityError, load_dataset

    try:
        ds = load_dataset(path)
    except IntegrityError as exc:  # edited after it was written, or written before checksums existed
        raise CacheError(
            f"cache entry {str(path)!r} fails its integrity check: {exc.reason}; delete this file and "
            "rerun the sweep to recompute that run (or, if its content is trusted, `mfcore reseal` it)"
        ) from None
    except Exception as exc:  # h5py/h5netcdf raise OSError, KeyError, ValueError ... on garbage
        raise CacheError(
            f"corrupt cache entry {str(path)!r} ({type(exc).__name__}: {exc}); delete this file "
            "and rerun the sweep to recompute that run"
        ) from None
    stored_key = ds.attrs.get("sweep_key")
    if stored_key != key:
        raise CacheError(f"cache entry {str(path)!r} is not an mfcore sweep result for key {key} "
                         f"(it says {stored_key!r}); delete this file and rerun the sweep")
    if params is not None:
        stored = ds.attrs.get("sweep_params")
        if stored != json.dumps(run_parameters(params), sort_keys=True):
            raise CacheError(f"cache entry {str(path)!r} holds different parameters than its key "
                             "promises; delete this file and rerun the sweep")
    return ds


def compute_run(params: dict, runs_dir: str, version: str, log: str | None = None) -> dict:
    """Unit of work: run :func:`mfcore.simulate` for ``params`` and store it atomically in the cache.

    Returns a small summary (the dataset itself stays on disk). Skips the computation if the
    entry appeared meanwhile (another worker or sweep computed it).
    """
    from . import __version__
    from .problem import Problem
    from .results import save_dataset
    from .simulate import simulate

    if version != __version__:
        raise RuntimeError(f"worker runs mfcore {__version__}, the sweep expects {version}: "
                           "install the same version on every worker")
    params = run_parameters(params)
    key = run_key(params, version)
    path = entry_path(Path(runs_dir), key)
    if path.exists():
        return {"key": key, "computed": False}
    kwargs = {k: v for k, v in params.items() if k not in ("activation", "target", "dim")}
    # provenance of the code that runs: the git state when the run starts (edits made while a long
    # run computes do not change the code it executes); the date is the finishing time
    provenance = run_provenance()
    start = time.perf_counter()
    ds = simulate(Problem(params["dim"], params["activation"], params["target"]), progress=False, **kwargs)
    wall = time.perf_counter() - start
    ds.attrs.update({**provenance, "computed_at": _utc_now()})
    ds.attrs["sweep_key"] = key
    ds.attrs["sweep_params"] = json.dumps(params, sort_keys=True)
    save_dataset(ds, path)  # atomic: temporary file in the cache folder, then os.replace
    if log is not None:
        line = json.dumps({"key": key, "params": params, "wall_time_s": wall, "pid": os.getpid(),
                           "finished": time.time()}) + "\n"
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write with O_APPEND: lines from workers never interleave
        finally:
            os.close(fd)
    return {"key": key, "computed": True, "wall_time_s": wall}


# ---------------------------------------------------------------------------------------------
# provenance
# ---------------------------------------------------------------------------------------------
def git_state() -> dict:
    """``{"git_commit": <HEAD or "unknown">, "git_dirty": bool or None}`` of the repository holding mfcore.

    ``git_dirty`` is true when tracked files differ from ``HEAD`` (untracked files are ignored);
    ``None`` when git or the repository is not available (e.g. an installed package on a worker).
    """
    import subprocess

    try:
        from .notebook import repo_root

        root = str(repo_root())
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=20)
        if head.returncode != 0:
            return {"git_commit": "unknown", "git_dirty": None}
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=60)
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"git_commit": head.stdout.strip(), "git_dirty": dirty}
    except Exception:  # no git, no repository, timeout: provenance must never stop a sweep
        return {"git_commit": "unknown", "git_dirty": None}


@functools.lru_cache(maxsize=1)
def machine_info() -> dict:
    """CPU count, platform, Python, NumPy and the BLAS NumPy uses (threadpoolctl if installed, else
    ``numpy.show_config``)."""
    import platform

    info = {"cpu_count": os.cpu_count() or 0, "platform": platform.platform(),
            "machine": platform.machine(), "hostname": platform.node(),
            "python": platform.python_version(), "numpy": np.__version__}
    blas = None
    try:
        import threadpoolctl

        pools = [f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
                 for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
        blas = "; ".join(pools) or None
    except Exception:
        pass
    if blas is None:
        try:
            cfg = np.show_config(mode="dicts")
            b = cfg.get("Build Dependencies", {}).get("blas", {})
            blas = f"{b.get('name', '?')} {b.get('version', '?')} (numpy.show_config)"
        except Exception:
            blas = "unknown"
    info["blas"] = blas
    return info


def _utc_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_provenance() -> dict:
    """Attributes stored with each computed run: date (UTC), git commit and dirty flag, machine."""
    m = machine_info()
    return {"computed_at": _utc_now(), **git_state(), "hostname": m["hostname"],
            "cpu_count": m["cpu_count"], "platform": m["platform"], "blas": m["blas"]}


# ---------------------------------------------------------------------------------------------
# execution
# ---------------------------------------------------------------------------------------------
class SweepStalled(RuntimeError):
    """No Dask worker was alive for longer than the allowed time; the sweep stopped."""


def _local_client(workers: int | None, dashboard: str | None = None):
    """A private LocalCluster and its client.

    Worker processes with one thread each, bound to 127.0.0.1; TLS with credentials created for this
    cluster (``security=True``: a client without them cannot connect or run code in the workers);
    no dashboard unless ``dashboard`` gives its address (the scheduler's HTTP server then serves
    only the dashboard; otherwise it serves nothing, on a random local port).
    """
    import dask
    from distributed import Client, LocalCluster

    n = workers or os.cpu_count() or 1
    http = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}
    with dask.config.set(http):
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", silence_logs=40,
            security=True, dashboard_address=dashboard,
            scheduler_kwargs={} if dashboard else {"dashboard": False, "dashboard_address": "127.0.0.1:0"})
    return Client(cluster), cluster


def _connect(scheduler: str, timeout: float = CONNECT_TIMEOUT):
    """A client of the scheduler at ``scheduler``, or a one-line ValueError within about ``timeout`` s.

    An unreachable address (nothing listens, a firewall) and a server that is not a Dask scheduler
    (an HTTP endpoint, whose reply Dask would read as a frame of exabytes) are refused.
    """
    from distributed import Client

    if not isinstance(scheduler, str) or not re.fullmatch(r"((tcp|tls|inproc|ucx|ws|wss)://)?(\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+)(:[0-9]+)?(/\S*)?", scheduler):
        raise ValueError(f"--scheduler must be an address like tcp://HOST:8786, got {scheduler!r}")
    hint = "check the address, or omit --scheduler to start a local cluster"
    _probe_scheduler(scheduler, timeout, hint)
    try:
        return Client(scheduler, timeout=timeout, set_as_default=False)
    except MemoryError:  # a length prefix read from a foreign protocol
        raise ValueError(f"{scheduler!r} does not answer as a Dask scheduler (a foreign server, e.g. "
                         f"HTTP?); {hint}") from None
    except (OSError, TimeoutError) as exc:
        text = " ".join(str(exc).split())[:200]
        raise ValueError(f"cannot reach the Dask scheduler {scheduler!r} within {timeout:g} s ({text}); "
                         f"{hint}") from None
    except Exception as exc:  # protocol errors of a foreign server
        text = " ".join(str(exc).split())[:200]
        raise ValueError(f"{scheduler!r} does not answer as a Dask scheduler ({type(exc).__name__}: {text}); "
                         f"{hint}") from None


def _probe_scheduler(address: str, timeout: float, hint: str) -> None:
    """For a plain ``tcp://`` address: refuse within ``timeout`` seconds what is not a Dask scheduler.

    A Dask scheduler sends its handshake as soon as a connection is accepted: a little-endian
    64-bit frame length, then the frames. Nothing listening, silence (an HTTP server waits for a
    request) or a length no handshake has (a foreign protocol) is a one-line ValueError.
    """
    import socket

    m = re.fullmatch(r"(?:tcp://)?(\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+):([0-9]+)", address)
    if m is None:  # TLS, in-process or other protocols: Dask's own connection timeout applies
        return
    host, port = m.group(1).strip("[]"), int(m.group(2))
    data = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            while len(data) < 8:
                chunk = sock.recv(8 - len(data))
                if not chunk:
                    break
                data += chunk
    except socket.timeout:
        if not data:
            pass  # connected, but silent: checked below
    except OSError as exc:
        raise ValueError(f"cannot reach the Dask scheduler {address!r} ({exc.strerror or exc}); {hint}") from None
    if len(data) < 8 or not 0 < int.from_bytes(data, "little") < 2**24:
        said = "nothing" if not data else repr(data)
        raise ValueError(f"{address!r} does not answer as a Dask scheduler (it sent {said} within "
                         f"{timeout:g} s; a foreign server, e.g. HTTP, or a TLS scheduler given as tcp://?); {hint}")


def _live_workers(client) -> int | None:
    """Number of workers the scheduler knows, or None if the scheduler cannot be asked."""
    try:
        return len(client.scheduler_info(n_workers=-1)["workers"])
    except TypeError:  # older distributed: no n_workers argument
        return len(client.scheduler_info()["workers"])
    except Exception:
        return None


def run_sweep(spec: SweepSpec, cache=DEFAULT_CACHE, scheduler: str | None = None, client=None,
              workers: int | None = None, log=None, progress: bool = True, retries: int = 0,
              no_worker_timeout: float = NO_WORKER_TIMEOUT, dashboard: str | None = None) -> xr.Dataset:
    """Run (or resume) a sweep and return its combined dataset.

    Parameters
    ----------
    spec : SweepSpec
    cache : path
        Cache directory (created if needed; see the module docstring).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); default: an embedded
        ``LocalCluster`` with ``workers`` single-threaded processes on 127.0.0.1, no dashboard.
        It is started only if some run is missing.
    client : distributed.Client, optional
        An existing client (overrides ``scheduler``).
    workers : int, optional
        Worker processes of the local cluster (default: number of CPUs).
    log : path, optional
        Append one JSON line per *computed* run (key, parameters, wall time, process id).
    progress : bool
        tqdm bar on stderr: finished runs out of the total (cached runs count as finished).
    retries : int
        Dask's ``retries``: a run that *raises* is resubmitted up to this many times before it is
        reported (default 0: the simulations are deterministic). A run whose worker process
        *dies* (killed, out of memory) is rescheduled by the Dask scheduler on another worker
        without counting as a retry (up to ``distributed.scheduler.allowed-failures`` deaths, 3 by
        default); its partial cache write is a temporary file, never an entry
        (``tests/test_sweep.py::test_killed_worker_loses_nothing``).
    no_worker_timeout : float
        Seconds without any live worker (all died and were not restarted, or none started) after
        which the sweep stops with :class:`SweepStalled`; the finished runs stay in the cache.
    dashboard : str, optional
        Address of the local cluster's dashboard (default: none).

    Every run still to compute is validated first (:func:`validate_sweep`; its memory against this
    machine only for the local cluster), before any cluster starts. The environment variable
    ``MFCORE_SWEEP_STOP_AFTER=N`` (a test hook) interrupts the sweep as Ctrl-C would once ``N``
    runs are stored.

    Returns
    -------
    xarray.Dataset
        Dimensions ``spec.dims`` (coordinates: the swept values) + those of the runs; run
        attributes equal across runs become dataset attributes, the others (and
        ``velocity_evaluations``, ``wall_time_s``, ``run_key``) become variables over the swept
        dimensions.

    Raises
    ------
    CacheError
        Corrupt or foreign files in the cache.
    FloatingPointError, ValueError
        If some run failed (all other runs are still computed and cached).
    SweepStalled
        No live worker for ``no_worker_timeout`` seconds.
    """
    from . import __version__

    if not (isinstance(no_worker_timeout, (int, float)) and no_worker_timeout > 0):
        raise ValueError(f"no_worker_timeout must be a number of seconds > 0, got {no_worker_timeout!r}")
    validate_sweep(spec, memory=client is None and scheduler is None, cache=cache)
    runs_dir = prepare_cache(cache)
    runs = list(spec.runs())
    keys = [run_key(p) for _, p in runs]
    # validate existing entries up front: a corrupt file must not cost a long sweep first
    missing = []
    for (index, params), key in zip(runs, keys):
        path = entry_path(runs_dir, key)
        if path.exists():
            read_entry(path, key, params)
        else:
            missing.append((index, params, key))
    unique_missing = list({key: (index, params, key) for index, params, key in missing}.values())

    from tqdm import tqdm  # text bar on stderr (tqdm.auto needs ipywidgets in notebooks)

    bar = tqdm(total=len(runs), initial=len(runs) - len(missing), desc=f"sweep {spec.name}", unit="run",
               file=sys.stderr, disable=not progress, leave=True)
    failures = []
    if unique_missing:
        own = None
        if client is None:
            if scheduler is not None:
                client = _connect(scheduler)
                own = (client, None)
            else:
                client, cluster = _local_client(workers, dashboard)
                own = (client, cluster)
        try:
            futures = {}
            for index, params, key in unique_missing:
                fut = client.submit(compute_run, params, str(runs_dir.resolve()), __version__,
                                    None if log is None else str(Path(log).resolve()),
                                    key=f"mfcore-run-{key}", pure=False, retries=retries)
                futures[fut] = params
            count = {key: keys.count(key) for _, _, key in unique_missing}
            try:
                for fut in _completed(client, futures, no_worker_timeout, spec.name,
                                      len(runs) - len(missing)):
                    if fut.status == "error":
                        exc = fut.exception()
                        failures.append((futures[fut], exc))
                        bar.update(count[run_key(futures[fut])])
                        continue
                    out = fut.result()
                    bar.update(count[out["key"]])
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        finally:
            bar.close()
            if own is not None:
                own[0].close()
                if own[1] is not None:
                    own[1].close()
    else:
        bar.close()
    _remove_stale_temporaries(runs_dir, set(keys))
    if failures:
        params, exc = failures[0]
        summary = "; ".join(f"{_short(p)}: {type(e).__name__}: {e}" for p, e in failures[:3])
        msg = (f"{len(failures)} of {len(runs)} runs of sweep {spec.name!r} failed ({summary}"
               f"{' ...' if len(failures) > 3 else ''}); the other runs are cached")
        raise (FloatingPointError if isinstance(exc, FloatingPointError) else ValueError)(msg) from exc
    return assemble(spec, runs_dir)


def _completed(client, futures, no_worker_timeout: float, name: str, cached: int):
    """Yield the futures as they finish; raise :class:`SweepStalled` after ``no_worker_timeout``
    seconds without a live worker, and KeyboardInterrupt after ``$MFCORE_SWEEP_STOP_AFTER`` stored
    runs (test hook)."""
    from distributed import as_completed

    stop_after = os.environ.get(STOP_AFTER_ENV)
    stop_after = int(stop_after) if stop_after and stop_after.isdigit() else None
    pending = as_completed(futures)
    stored = 0
    alive_at = next_probe = time.monotonic()
    while not pending.is_empty():
        if pending.has_ready():
            fut = next(pending)
            stored += fut.status == "finished"
            yield fut
            if stop_after is not None and stored >= stop_after and not pending.is_empty():
                raise KeyboardInterrupt(f"{STOP_AFTER_ENV}={stop_after}")
            continue
        now = time.monotonic()
        if now >= next_probe:
            live = _live_workers(client)
            if live:  # None: the scheduler does not answer, no better than no worker
                alive_at = now
            elif now - alive_at > no_worker_timeout:
                raise SweepStalled(
                    f"sweep {name!r} stopped: no live Dask worker for {no_worker_timeout:g} s (the "
                    f"workers died, e.g. killed or out of memory, and were not restarted, or the scheduler is "
                    f"gone); {cached + stored} "
                    f"of its runs are finished and kept in the cache: rerun the same command to resume"
                )
            next_probe = now + min(1.0, no_worker_timeout / 4)
        time.sleep(0.05)


def _remove_stale_temporaries(runs_dir: Path, keys: set) -> int:
    """Delete the temporary files left by writers of these runs that died mid-write.

    Only temporaries ``.<key>.nc.*.tmp`` of runs whose entry exists and that were last touched
    before the entry was completed are removed (a live concurrent writer of the same run keeps
    its file newer). Returns the number removed.
    """
    removed = 0
    for tmp in Path(runs_dir).glob(".*.nc.*.tmp"):
        key = tmp.name[1:33]
        entry = entry_path(runs_dir, key)
        if key not in keys or not _TEMP.match(tmp.name) or not entry.exists():
            continue
        try:
            if tmp.stat().st_mtime <= entry.stat().st_mtime:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def _short(params: dict) -> str:
    return ", ".join(f"{k}={params[k]}" for k in ("activation", "dim", "width", "seed", "horizon", "step")
                     if k in params)


def assemble(spec: SweepSpec, runs_dir) -> xr.Dataset:
    """Combine the cached runs of ``spec`` into one dataset (raises :class:`CacheError` if one is missing)."""
    runs_dir = Path(runs_dir)
    datasets, run_attrs = {}, {}
    for index, params in spec.runs():
        key = run_key(params)
        path = entry_path(runs_dir, key)
        if not path.exists():
            raise CacheError(f"run {_short(params)} of sweep {spec.name!r} is not in the cache {str(runs_dir)!r}")
        ds = read_entry(path, key, params)
        attrs = dict(ds.attrs)
        attrs["run_key"] = key
        attrs.pop("sweep_key", None)
        attrs.pop("sweep_params", None)
        run_attrs[index] = attrs
        ds = ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds.assign_attrs({})
        ds.attrs = {}
        coords = {name: [spec.grid[name][i]] for name, i in zip(spec.dims, index)}
        datasets[index] = ds.expand_dims(coords) if coords else ds

    if spec.dims:
        def nest(prefix):
            depth = len(prefix)
            if depth == len(spec.dims):
                return datasets[prefix]
            return [nest(prefix + (i,)) for i in range(spec.shape[depth])]

        combined = xr.combine_nested(nest(()), concat_dim=list(spec.dims), join="outer",
                                     combine_attrs="drop", data_vars="all", coords="different",
                                     compat="no_conflicts")
    else:
        combined = datasets[()]

    # run attributes: constant -> dataset attrs, varying -> variables over the swept dims
    names = sorted(set().union(*[set(a) for a in run_attrs.values()]) - set(spec.dims))
    attrs = {}
    for name in names:
        values = [run_attrs[idx].get(name) for idx in sorted(run_attrs)]
        same = all(json.dumps(v, sort_keys=True, default=str) == json.dumps(values[0], sort_keys=True, default=str)
                   for v in values)
        if same and name not in PER_RUN_VARIABLES:
            attrs[name] = values[0]
            continue
        arr = np.empty(spec.shape, dtype=object)
        for idx in run_attrs:
            arr[idx] = run_attrs[idx].get(name)
        flat = [v for v in arr.ravel()]
        if all(isinstance(v, (bool, np.bool_)) for v in flat):
            arr = arr.astype(bool)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in flat):
            arr = arr.astype(np.int64)
        elif all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in flat):
            arr = arr.astype(float)
        else:
            arr = np.array([json.dumps(v) if not isinstance(v, str) else v for v in flat], dtype=str).reshape(spec.shape)
        combined[name] = (spec.dims, arr) if spec.dims else ((), arr[()] if arr.ndim else arr)
    from . import __version__

    attrs.update({
        "sweep_name": spec.name,
        "sweep_description": spec.description,
        "sweep_dims": list(spec.dims),
        "sweep_fixed": json.dumps(spec.fixed, sort_keys=True),
        "sweep_grid": json.dumps(spec.grid, sort_keys=True),
        "sweep_runs": spec.size,
        "mfcore_version": __version__,
        "units": "book: loss (1/2)E(f-y)^2, time = step x steps = 2 x the authors' lr x steps",
        "assembled_at": _utc_now(),
    })
    attrs.update({f"assembled_{k}": v for k, v in git_state().items()})
    attrs.update({f"assembled_on_{k}": v for k, v in machine_info().items()})
    combined.attrs = attrs
    return combined


# ---------------------------------------------------------------------------------------------
# configs, results on disk, CLI
# ---------------------------------------------------------------------------------------------
def run_config(config, only=None, cache=None, out_dir=None, scheduler=None, workers=None, log=None,
               progress=True, write=True, overwrite=False, no_worker_timeout=NO_WORKER_TIMEOUT,
               dashboard=None) -> dict[str, xr.Dataset]:
    """Run every sweep of a TOML config (or those named in ``only``); write ``<out_dir>/<name>.nc``.

    ``cache`` and ``out_dir`` default to the config's ``[defaults]`` (then ``.mfcore-cache/sweeps``
    and ``sweeps/<config stem>``). One Dask cluster is shared by all sweeps of the call.

    Before any cluster starts: every run still to compute is validated (:func:`validate_sweep`),
    and every output file and the ``log`` are checked (:func:`mfcore.cli.check_output_file`: an
    existing folder where a file can be created; an existing result only with ``overwrite``).
    """
    from .cli import check_output_file
    from .results import save_dataset

    cfg = config if isinstance(config, SweepConfig) else load_config(config)
    names = list(cfg) if not only else list(only)
    unknown = [n for n in names if n not in cfg]
    if unknown:
        raise ValueError(f"no sweep named {unknown} in the config; available: {', '.join(cfg)}")
    cache = cache or cfg.defaults.get("cache", DEFAULT_CACHE)
    stem = Path(cfg.source).stem if cfg.source else "sweeps"
    out_dir = Path(out_dir or cfg.defaults.get("out_dir", f"sweeps/{stem}"))
    # everything that can be refused is refused before the cluster starts
    for name in names:
        validate_sweep(cfg[name], memory=scheduler is None, cache=cache)
    targets = {}
    if write:
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"output folder {str(out_dir)!r} exists and is not a folder")
        for name in names:
            path = Path(cfg[name].out) if cfg[name].out else out_dir / f"{name}.nc"
            if path.parent == out_dir and not out_dir.exists():
                targets[name] = path  # the folder is created below
                continue
            targets[name] = check_output_file(path, overwrite, f"output of sweep {name!r}", (".nc",))
    if log is not None:
        _check_log(log)
    if write and not out_dir.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, path in targets.items():
            targets[name] = check_output_file(path, overwrite, f"output of sweep {name!r}", (".nc",))
    client = cluster = None
    results = {}
    try:
        for name in names:
            spec = cfg[name]
            if client is None and _needs_work(spec, cache):
                if scheduler is not None:
                    client = _connect(scheduler)
                else:
                    client, cluster = _local_client(workers, dashboard)
            ds = run_sweep(spec, cache=cache, client=client, log=log, progress=progress,
                           no_worker_timeout=no_worker_timeout)
            if write:
                path = targets[name]
                save_dataset(ds, path)
                ds.attrs["written_to"] = str(path)
            results[name] = ds
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return results


def _check_log(log) -> None:
    """The run log is appended to: an existing regular file we may append to, or a new file in an
    existing, writable folder (:func:`mfcore.cli.check_output_file`)."""
    from .cli import check_output_file

    path = Path(log)
    if not path.exists():
        check_output_file(path, False, "--log")
        return
    if path.is_dir() or not path.is_file():
        raise ValueError(f"--log {str(log)!r} is {'a directory' if path.is_dir() else 'not a regular file'}")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
    except OSError as exc:
        raise ValueError(f"cannot append to --log {str(log)!r}: {exc.strerror or exc}") from None


def _needs_work(spec: SweepSpec, cache) -> bool:
    runs_dir = prepare_cache(cache)
    return any(not entry_path(runs_dir, run_key(p)).exists() for _, p in spec.runs())


def find_sweep_result(name: str, profile: str = "paper", search=None) -> Path | None:
    """Path of a stored sweep result ``sweeps/<profile>/<name>.nc``, or ``None`` when absent.

    Looked up in ``$MFCORE_SWEEPS/<profile>`` (if set), then in the repository's
    ``sweeps/<profile>`` (:func:`mfcore.notebook.repo_path`, independent of the working
    directory), or only in the folders ``search`` if given. Notebooks use it to load a stored
    sweep when present and otherwise compute their own data.
    """
    if search is not None:
        folders = [Path(s) for s in search]
    else:
        folders = [Path(os.environ["MFCORE_SWEEPS"]) / profile] if os.environ.get("MFCORE_SWEEPS") else []
        try:
            from .notebook import repo_path

            folders.append(repo_path("sweeps", profile))
        except FileNotFoundError:  # installed package outside the repository
            pass
    for folder in folders:
        path = folder / f"{name}.nc"
        if path.is_file():
            return path
    return None


def load_sweep_result(name: str, profile: str = "paper", search=None) -> xr.Dataset | None:
    """Load :func:`find_sweep_result`'s file with :func:`mfcore.results.load_dataset`, or ``None``."""
    from .results import load_dataset

    path = find_sweep_result(name, profile, search)
    return None if path is None else load_dataset(path)


def add_parser(subparsers) -> None:
    """Register ``mfcore sweep CONFIG`` (hook of :mod:`mfcore.cli`)."""
    p = subparsers.add_parser(
        "sweep", help="run a grid of simulations on Dask (resumable, cached)",
        description="Run the sweeps of a TOML config on a Dask cluster (an embedded LocalCluster by "
        "default). Finished runs are cached under --cache; rerunning computes only what is missing. "
        "Each sweep is written to <out_dir>/<name>.nc.",
    )
    p.add_argument("config", help="TOML sweep configuration (e.g. configs/test.toml, configs/paper.toml)")
    p.add_argument("--only", action="append", default=None, metavar="NAME",
                   help="run only this sweep of the config (repeatable)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of an existing Dask scheduler (default: embedded LocalCluster)")
    p.add_argument("--workers", type=int, default=None, help="worker processes of the LocalCluster (default: CPUs)")
    p.add_argument("--cache", default=None, help=f"cache directory (default: config [defaults].cache or {DEFAULT_CACHE})")
    p.add_argument("--out-dir", default=None, help="output folder (default: config [defaults].out_dir)")
    p.add_argument("--log", default=None, help="append one JSON line per computed run to this file")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing result files <out_dir>/<name>.nc (default: refuse before any work)")
    p.add_argument("--no-worker-timeout", type=float, default=NO_WORKER_TIMEOUT, metavar="SECONDS",
                   help=f"stop when no Dask worker is alive for this long (default {NO_WORKER_TIMEOUT:g}); "
                   "finished runs stay cached")
    p.add_argument("--dashboard", default=None, metavar="ADDRESS",
                   help="serve the local cluster's dashboard at this address, e.g. 127.0.0.1:8787 (default: none)")
    p.add_argument("--dry-run", action="store_true", help="only print the number of runs and how many are cached")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar (default on)")
    p.set_defaults(func=_run_cli)


def _run_cli(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if not (math.isfinite(args.no_worker_timeout) and args.no_worker_timeout > 0):
        raise ValueError(f"--no-worker-timeout must be a number of seconds > 0, got {args.no_worker_timeout}")
    cfg = load_config(args.config)
    if args.dry_run:
        cache = args.cache or cfg.defaults.get("cache", DEFAULT_CACHE)
        runs_dir = prepare_cache(cache)
        for name in (args.only or cfg):
            if name not in cfg:
                raise ValueError(f"no sweep named {name!r} in the config; available: {', '.join(cfg)}")
            spec = cfg[name]
            validate_sweep(spec, memory=args.scheduler is None, cache=cache)
            done = sum(entry_path(runs_dir, run_key(p)).exists() for _, p in spec.runs())
            print(f"{name}: {spec.size} runs over {', '.join(spec.dims) or '(no swept parameter)'}; "
                  f"{done} cached, {spec.size - done} to compute")
        return 0
    try:
        results = run_config(cfg, only=args.only, cache=args.cache, out_dir=args.out_dir,
                             scheduler=args.scheduler, workers=args.workers, log=args.log,
                             progress=args.progress, overwrite=args.overwrite,
                             no_worker_timeout=args.no_worker_timeout, dashboard=args.dashboard)
    except SweepStalled as exc:
        print(f"mfcore sweep: error: {exc}", file=sys.stderr)
        return 1
    for name, ds in results.items():
        dims = ", ".join(f"{d}={ds.sizes[d]}" for d in ds.attrs["sweep_dims"])
        print(f"{name}: {ds.attrs['sweep_runs']} runs ({dims}) -> {ds.attrs.get('written_to')}")
    return 0
