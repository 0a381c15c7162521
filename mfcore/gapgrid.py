r"""Stored grids of the gap closures of :class:`mfcore.gap.MeanFieldGapObserver` (the book's chapter on the gap equation).

One *closure run* couples a finite network of width :math:`m` with the exact limit and the
mean-field twins (:func:`mfcore.simulate`, projected GD with step :math:`\eta` up to the horizon
:math:`T_{95}`) and integrates every closed gap equation of the observer from the mean-field side.
:func:`closure_run` keeps, per recorded time, the measured mean gap :math:`\omega_t` and the base-10
logarithm of every closure's mean, and per run the summaries a verdict needs:

``sup_log10_<variant>`` / ``min_log10_<variant>``
    :math:`\sup_t` and :math:`\min_t` of :math:`\log_{10}(\text{closure}/\omega_t)` over
    :math:`\eta\le t\le T`: a closure bounds the mean gap at every recorded time iff ``min >= 0``;
    its tightness is :math:`10^{\rm sup}`;
``neuron_cover_<variant>``
    for the per-neuron bounds ``split`` and ``split_self``, the fraction of the kept neurons whose
    bound :math:`b_i(t)\ge\|\Delta_i(t)\|` at every recorded time;
``flipped_end``
    the fraction of neurons with :math:`\|\Delta_i(T)\|>1` (sign flips).

:func:`run_grid` runs a grid of (d, m, seed), caches each run as ``<cache>/<key>.nc`` (``key``:
:func:`joblib.hash` of the parameters and ``mfcore.__version__``; a finished run is never recomputed,
an interrupted grid resumes), shows a tqdm bar and returns one :class:`xarray.Dataset` on the
dimension ``run`` (coordinates ``dim``, ``width``, ``seed`` per run; the time series on ``(run, rec)``
padded with NaN), with the provenance of :func:`mfcore.sweep.run_provenance` and each run's wall time.
The command line is ``python -m tools.c6_bounds``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import xarray as xr

from .gap import MeanFieldGapObserver
from .problem import Problem, check_int, check_positive

__all__ = ["closure_run", "run_grid", "CLOSURE_KIND"]

#: value of the attribute ``mfcore_kind`` of a stored closure grid (not a :mod:`mfcore.sweep` result)
CLOSURE_KIND = "gap-closure-grid"


def closure_run(dim: int, width: int, seed: int, step: float = 0.2, horizon: float | None = None,
                nodes: int = 4096, records: int = 150, activation: str = "he4") -> xr.Dataset:
    r"""One coupled run with every closure of :class:`MeanFieldGapObserver`; summaries as described above.

    Parameters
    ----------
    dim, width, seed : int
        Dimension :math:`d\ge3`, width :math:`m\ge2`, seed of the initial neurons.
    step : float
        Projected-GD step :math:`\eta` (needs :math:`\eta K'(1)<1`, checked by :class:`Problem`).
    horizon : float, optional
        Final time; default :math:`T_{95}` of the limit (:func:`mfcore.sweep.t95_horizon`).
    nodes : int
        Quantile nodes of the exact limit.
    records : int
        About this many recorded times (log-spaced).
    activation : str
        Activation and target (well-specified).
    """
    from .simulate import simulate
    from .sweep import t95_horizon

    dim = check_int("dim", dim, 3)
    width = check_int("width", width, 2)
    problem = Problem(dim, activation)
    problem.check_step(step)
    T = float(t95_horizon(dim, activation)) if horizon is None else check_positive("horizon", horizon)
    obs = MeanFieldGapObserver(problem, horizon=T, max_records=check_int("records", records, 3),
                               neurons=width)
    start = time.perf_counter()
    simulate(problem, width=width, horizon=T, step=step, method="pgd", nodes=nodes, seed=seed,
             observers=[obs], progress=False)
    wall = time.perf_counter() - start
    r = obs.result()
    r = r.sel(t=slice(step * (1 - 1e-9), None))  # at t = 0 every gap and closure vanishes
    log_omega = np.log10(r["omega"].values)
    out = {"omega": ("rec", r["omega"].values), "t": ("rec", r["t"].values),
           "flipped_fraction": ("rec", r["flipped_fraction"].values)}
    summary = {}
    for v in MeanFieldGapObserver.VARIANTS:
        lr = r[f"{v}_log10"].values - log_omega
        out[f"{v}_log10"] = ("rec", r[f"{v}_log10"].values)
        summary[f"sup_log10_{v}"] = float(np.max(lr))
        summary[f"min_log10_{v}"] = float(np.min(lr))
    gap = np.log10(np.maximum(r["gap"].values, 1e-300))
    for v in MeanFieldGapObserver.SPLIT:
        summary[f"neuron_cover_{v}"] = float(np.mean(np.all(r[f"{v}_neuron_log10"].values >= gap, axis=0)))
    summary["flipped_end"] = float(r["flipped_fraction"].values[-1])
    ds = xr.Dataset(out)
    ds.attrs.update(dim=dim, width=width, seed=int(seed), step=float(step), horizon=T, nodes=int(nodes),
                    records=int(records), activation=activation, wall_time_s=wall, **summary)
    return ds


def run_grid(dims, widths, seeds, step: float = 0.2, nodes: int = 4096, records: int = 150,
             activation: str = "he4", cache=".mfcore-cache/c6", pairs=None, progress: bool = True) -> xr.Dataset:
    r"""Every (d, m, seed) of the grid (or only ``pairs`` = [(d, m), ...] crossed with ``seeds``), cached per run.

    Returns one dataset on ``run`` (see the module docstring), with the provenance of the call.
    """
    import joblib
    from tqdm.auto import tqdm

    from . import __version__
    from .results import load_dataset, save_dataset
    from .sweep import run_provenance

    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    grid = [(d, m) for d in dims for m in widths] if pairs is None else [tuple(p) for p in pairs]
    jobs = [(int(d), int(m), int(s)) for d, m in grid for s in seeds]
    if not jobs:
        raise ValueError("run_grid: the grid is empty (give dims, widths and seeds, or pairs and seeds)")
    provenance = run_provenance()
    runs = []
    for d, m, s in tqdm(jobs, desc="gap closures", unit="run", disable=not progress):
        params = dict(dim=d, width=m, seed=s, step=float(step), nodes=int(nodes), records=int(records),
                      activation=activation)
        path = cache / f"{joblib.hash([params, __version__])}.nc"
        if path.is_file():
            ds = load_dataset(path)
        else:
            ds = closure_run(**params)
            ds.attrs.update(computed_at=run_provenance()["computed_at"])
            save_dataset(ds, path)
        runs.append(ds)
    n_rec = max(ds.sizes["rec"] for ds in runs)
    names = [k for k in runs[0].data_vars]
    data = {}
    for k in names:
        arr = np.full((len(runs), n_rec), np.nan)
        for i, ds in enumerate(runs):
            arr[i, :ds.sizes["rec"]] = ds[k].values
        data[k] = (("run", "rec"), arr)
    scalars = [k for k, v in runs[0].attrs.items() if k.startswith(("sup_log10_", "min_log10_", "neuron_cover_"))]
    for k in scalars + ["flipped_end", "wall_time_s", "horizon"]:
        data[k] = ("run", np.array([float(ds.attrs[k]) for ds in runs]))
    data["computed_at"] = ("run", np.array([str(ds.attrs.get("computed_at", "")) for ds in runs]))
    coords = {"dim": ("run", np.array([j[0] for j in jobs])), "width": ("run", np.array([j[1] for j in jobs])),
              "seed": ("run", np.array([j[2] for j in jobs]))}
    out = xr.Dataset(data, coords=coords)
    out.attrs.update(mfcore_kind=CLOSURE_KIND, mfcore_version=__version__, step=float(step), nodes=int(nodes),
                     records=int(records), activation=activation, **provenance,
                     description="closures of the gap equation (MeanFieldGapObserver) against the measured "
                                 "mean gap, horizon T95 of the limit, projected GD")
    return out
