"""Stored sweeps: the notebooks read them correctly, and each stored file can be recomputed.

(a) ``notebooks/05_chaos.ipynb`` is executed at the ``quick`` profile with ``sweep_file`` pointing at
    a tiny sweep built from ``configs/test.toml`` (one run removed, as an unfinished sweep would
    leave it), so the section "At the authors' sizes" runs in the test suite.
(b) Every stored sweep ``sweeps/paper/*.nc`` (each file found there, whatever its name) matches its
    checksums, and an edit of any of its variables or attributes is refused by name (on a copy).
    For every file and every dimension d in it, every run of the smallest width (all seeds, all
    values of any other swept parameter) is rebuilt from the file's own attributes, recomputed
    with BLAS on one thread and compared with the stored curves a chapter reads (``mf_loss``,
    ``loss``, ``gap_mean``, ``function_gap``, ``overlap_gap``, ``gap_quantile``,
    ``flipped_fraction``) at every recorded time: bitwise, or within the float32/float64 envelope
    of :func:`allowed_deviation`. A case whose stored runs took more than ``MFCORE_REPRO_BUDGET_S``
    seconds (default 600) is checked on a prefix: its first run recomputed up to its last record within
    ``MFCORE_REPRO_PREFIX_S`` seconds (default 40) of its stored run time. Nothing is collected when no
    stored sweep is present.
"""
from __future__ import annotations

import inspect
import itertools
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from mfcore.results import load_dataset

REPO = Path(__file__).resolve().parent.parent
TEST_CONFIG = REPO / "configs" / "test.toml"
STORED = sorted((REPO / "sweeps" / "paper").glob("*.nc"))


def _glued(nb, name: str) -> str:
    """The text of a value glued with ``myst_nb.glue(name, ..., display=False)`` in an executed notebook."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("metadata", {}).get("scrapbook", {}).get("name") == name:
                data = out["data"]
                key = next(k for k in data if k.endswith("text/plain"))
                return str(data[key]).strip("'\"")
    raise KeyError(f"{name!r} is not glued in the executed notebook")


def _run_quick(name: str, sweep_file: Path, tmp_path: Path):
    """Execute ``notebooks/<name>.ipynb`` at the quick profile reading ``sweep_file``; the executed notebook."""
    import nbformat
    import papermill

    notebook = REPO / "notebooks" / f"{name}.ipynb"
    out = tmp_path / notebook.name
    papermill.execute_notebook(str(notebook), str(out), parameters={"profile": "quick", "sweep_file": str(sweep_file)},
                               cwd=str(notebook.parent), kernel_name="python3", progress_bar=False,
                               execution_timeout=600)
    return nbformat.read(out, as_version=4)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> Path:
    """The he4 part of the sweep ``tiny`` of configs/test.toml, with the run (d=12, m=32, seed 2) removed."""
    from distributed import Client, LocalCluster

    from mfcore.results import save_dataset
    from mfcore.sweep import SweepSpec, load_config, run_sweep

    tiny = load_config(TEST_CONFIG)["tiny"]
    grid = dict(tiny.grid)
    grid["activation"] = ["he4"]  # a one-value dimension: the notebook must select it and say so
    spec = SweepSpec(name="c5_tiny", fixed=tiny.fixed, grid=grid, description="test of 05_chaos")
    root = tmp_path_factory.mktemp("stored-sweep")
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                           silence_logs=40)
    client = Client(cluster)
    try:
        ds = run_sweep(spec, cache=root / "cache", client=client, progress=False)
    finally:
        client.close()
        cluster.close()
    dims, widths = list(ds.dim.values), list(ds.width.values)
    hole = dict(activation="he4", dim=dims[-1], width=widths[-1], seed=int(ds.seed.values[-1]))
    for name in ("gap_mean", "function_gap", "loss", "overlap_gap"):
        ds[name] = ds[name].astype(float)
        ds[name].loc[hole] = np.nan
    path = root / "c5.nc"
    save_dataset(ds, path)
    return path


@pytest.mark.notebooks
def test_chaos_notebook_reads_a_stored_sweep(tiny_sweep: Path, tmp_path: Path):
    nb = _run_quick("05_chaos", tiny_sweep, tmp_path)
    paper, verdict_text, notes = _glued(nb, "C5_paper"), _glued(nb, "C5_paper_verdict"), _glued(nb, "c5_paper_notes")
    assert paper != "not computed" and "d = 8" in paper and "b_ω" in paper, paper
    assert "nan" not in paper.lower(), paper
    # two widths over a 2-fold range: shown, never judged
    assert verdict_text == "– not checked at this size", verdict_text
    assert "missing" in notes and "activation = he4" in notes, notes
    assert "not checked" in _glued(nb, "C5_verdict")  # quick profile: no verdict either


@pytest.mark.notebooks
def test_limit_notebook_reads_a_stored_sweep(tiny_sweep: Path, tmp_path: Path):
    nb = _run_quick("02_limit", tiny_sweep, tmp_path)
    paper = _glued(nb, "C2_paper")
    # d = 8: three seeds at both widths; d = 12: the run (m = 32, seed 2) is missing, so only m = 16
    # is complete for every seed and no slope can be fitted: skipped and said so, not a number
    status = _glued(nb, "limit_paper_status")
    assert paper.startswith("d = 8: ") and "d = 12" not in paper and "nan" not in paper.lower(), paper
    assert "read from c5.nc" in status and "d = 12: fewer than two widths" in status, status


@pytest.fixture(scope="module")
def tiny_width_sweeps(tiny_sweep: Path) -> Path:
    """The tiny he4 sweep as the fit file of 07_width (``c7_he4.nc``, d = 8, 12, widths 16, 32, one run
    missing) and a held-out file ``c7_he4_heldout.nc`` at d = 16 (width 32, and 16 as an anchor)."""
    import shutil

    from distributed import Client, LocalCluster

    from mfcore.results import save_dataset
    from mfcore.sweep import SweepSpec, load_config, run_sweep

    tiny = load_config(TEST_CONFIG)["tiny"]
    fixed = {**tiny.fixed, "activation": "he4", "dim": 16}
    spec = SweepSpec(name="c7_he4_heldout", fixed=fixed, grid={"width": [16, 32], "seed": [0, 1]},
                     description="test of 07_width")
    root = tiny_sweep.parent / "width"
    root.mkdir()
    shutil.copy(tiny_sweep, root / "c7_he4.nc")
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                           silence_logs=40)
    client = Client(cluster)
    try:
        save_dataset(run_sweep(spec, cache=root / "cache", client=client, progress=False),
                     root / "c7_he4_heldout.nc")
    finally:
        client.close()
        cluster.close()
    return root / "c7_he4.nc"


@pytest.mark.notebooks
def test_width_notebook_reads_stored_sweeps(tiny_width_sweeps: Path, tmp_path: Path):
    nb = _run_quick("07_width", tiny_width_sweeps, tmp_path)
    paper, notes = _glued(nb, "C7_paper"), _glued(nb, "c7_paper_notes")
    # fit on d = 8, 12 (both widths), held out d = 16 measured at its widest width 32
    assert "fit d = 8, 12" in paper and "d = 16: predicted" in paper and "seeds at m = 32" in paper, paper
    assert "nan" not in paper.lower(), paper
    assert "missing (d, m, seed) = (12, 32, 2)" in notes and "activation = he4" in notes, notes
    assert _glued(nb, "C7_paper_verdict") in {"✓ holds", "✗ does not hold", "– not checked at this size"}
    assert "c7_he4_heldout.nc" in _glued(nb, "c7_paper_source")


# ------------------------------------------------------------------------------------------------
# (b) every stored sweep is sealed, and reproducible from its own attributes
# ------------------------------------------------------------------------------------------------
#: float32 and float64 machine epsilons (spacing of the floats at 1).
EPS32, EPS64 = 2.0 ** -23, 2.0 ** -52
#: How many times this machine's own float32-vs-float64 spread a stored curve may lie from float64.
KAPPA = 10.0
#: Floor of a network curve, in float32 (float64) ulps of the curve's scale.
FLOOR_ULPS = 16
#: Rounding the exact limit may accumulate over a run, in float64 ulps of the curve's scale (mf_loss).
LIMIT_ULPS = 2.0 ** 16
#: Cases whose runs took longer than this (stored wall time, seconds) are checked on a prefix only.
BUDGET_S = float(os.environ.get("MFCORE_REPRO_BUDGET_S", "600"))
#: Stored run time (seconds) whose prefix such a case recomputes: the first run of the cheapest
#: width up to the last record before this share of its stored wall time (x3 at most with the
#: float32 and float64 recomputations of the envelope).
PREFIX_S = float(os.environ.get("MFCORE_REPRO_PREFIX_S", "40"))
#: The recorded curves the chapters read (gap_quantile: all quantiles under one envelope).
CURVES = ("mf_loss", "loss", "gap_mean", "function_gap", "overlap_gap", "flipped_fraction", "gap_quantile")


def _dims_of(path: Path) -> list:
    """The dimensions d of a stored sweep, read with h5py (cheap at collection time); ``[None]`` if
    unreadable (the test then reports why)."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            if "dim" in fh:
                return sorted(int(v) for v in fh["dim"][...])
            if "dim" in fh.attrs:  # h5netcdf stores a number as a 1-element array
                return [int(np.asarray(fh.attrs["dim"]).ravel()[0])]
    except Exception:
        pass
    return [None]


def _is_sweep(path) -> bool:
    """A result of ``mfcore sweep`` (the closure grid of chapter 06 has its own test, tests/test_gapgrid.py)."""
    import h5py

    with h5py.File(path, "r") as fh:
        kind = fh.attrs.get("mfcore_kind", b"")
    return (kind.decode() if isinstance(kind, bytes) else str(kind)) != "gap-closure-grid"


SWEEPS = [p for p in STORED if _is_sweep(p)]
CASES = [pytest.param(p, d, id=f"{p.stem}-d{d}") for p in SWEEPS for d in _dims_of(p)]


def _plain_value(v):
    return v.item() if hasattr(v, "item") else v


def _cheapest_runs(ds, dim) -> tuple[int, list[dict]]:
    """``(width, points)``: the smallest positive width of the sweep (its only width if it has one)
    and every swept point at that width and dimension whose run holds data (all seeds, and all values
    of any other swept parameter)."""
    dims = ds.attrs["sweep_dims"]
    dims = json.loads(dims) if isinstance(dims, str) else list(dims)
    if "width" in dims:
        widths = [int(w) for w in ds.width.values]
        width = min([w for w in widths if w > 0] or widths)
    else:
        width = int(json.loads(ds.attrs["sweep_fixed"]).get("width", ds.attrs.get("width", 0)))
    base = {"width": width} if "width" in dims else {}
    if "dim" in dims:
        base["dim"] = dim
    others = [n for n in dims if n not in ("width", "dim")]
    points = []
    for values in itertools.product(*[list(ds[n].values) for n in others]):
        point = {**base, **{n: _plain_value(v) for n, v in zip(others, values)}}
        if np.isfinite(ds["mf_loss"].sel(point).values).any():
            points.append(point)
    return width, points


def _stored_wall(ds, point) -> float:
    if "wall_time_s" in ds.data_vars:
        return float(ds["wall_time_s"].sel(point))
    return float(ds.attrs.get("wall_time_s", 0.0))


def _simulate(params: dict, dtype: str):
    """The run ``params`` recomputed in ``dtype``, BLAS on one thread (as in the sweep's workers)."""
    import mfcore
    from threadpoolctl import threadpool_limits

    accepted = set(inspect.signature(mfcore.simulate).parameters) - {"problem"}
    kwargs = {k: v for k, v in params.items() if k in accepted}
    kwargs["dtype"] = dtype
    problem = mfcore.Problem(params["dim"], params["activation"], params.get("target"))
    with threadpool_limits(limits=1, user_api="blas"):
        return mfcore.simulate(problem, progress=False, **kwargs)


def _curves(ds) -> dict:
    """``{name: values}`` of the recorded curves of :data:`CURVES`: over ``t``, and over
    ``(t, quantile)`` for ``gap_quantile`` (its quantiles share one envelope)."""
    return {name: np.asarray(ds[name].transpose("t", ...).values, dtype=float) for name in CURVES if name in ds}


def _sup(x) -> float:
    x = np.abs(np.asarray(x, dtype=float))
    return float(np.nanmax(x)) if np.isfinite(x).any() else 0.0


def allowed_deviation(name: str, dtype: str, width: int, r64, r32=None) -> float:
    r"""Largest :math:`\sup|S-R_{64}|` accepted between a stored curve :math:`S` and its
    recomputation :math:`R_{64}` in float64.

    :math:`R_{32}` and :math:`R_{64}` are the same run recomputed in float32 and in float64 from the
    same initial neurons (drawn in float64; the float32 network starts from their rounding).
    :math:`\|x\|=\sup|x|` over every recorded time (and, for ``gap_quantile``, every quantile: the
    quantiles share one envelope, since each is 1-Lipschitz in the neurons' gaps and the median,
    which jumps from neuron to neuron, is a noisy measure of their rounding on its own).
    :math:`\varepsilon_{32}=2^{-23}`, :math:`\varepsilon_{64}=2^{-52}`.

    * **float32 run**, network curve: :math:`\kappa\|R_{32}-R_{64}\|+\text{floor}`, :math:`\kappa=10`.
      The stored :math:`S` and :math:`R_{32}` are the same float32 computation; they differ only in
      the order of summation (BLAS kernels, vector width of the compiled loops, thread count): two
      realisations of float32 rounding along one trajectory, which also share the same rounding
      of the initial neurons, so their distances to the float64 trajectory are of one size.
      Measured with runs :math:`P` from initial neurons perturbed by one float32 ulp, standing for
      another machine's rounding (c7_he4 at d = 16 and 64, m = 1024; c5 at d = 32, m = 128; 4
      perturbations of 1 or 2 seeds): :math:`\|P-R_{64}\|/\|R_{32}-R_{64}\|` between 0.3 and 3.3
      per curve (0.8 to 1.7 at d = 64). :math:`\kappa=10` is three times the largest ratio seen,
      and still far below a real difference (initial neurons moved by 1e-4, about 1000 ulps, are
      refused: :func:`test_envelope_accepts_another_rounding_and_refuses_a_real_difference`). The
      floor, :math:`16\varepsilon_{32}\|R_{64}\|` (16 float32 ulps of the curve's scale), covers a
      curve whose two recomputations agree to the last bits by chance; for ``flipped_fraction``, a
      count of neurons over :math:`m`, it is :math:`2/m` (two neurons whose overlap lies within
      rounding of zero may be counted on the other side).
    * **float64 run**, network curve: :math:`\kappa(\varepsilon_{64}/\varepsilon_{32})
      \|R_{32}-R_{64}\|+16\varepsilon_{64}\|R_{64}\|` (floor :math:`2/m` for ``flipped_fraction``).
      The dynamics amplify a float64 rounding as they amplify a float32 one (the deviation is
      linear in the perturbation at these sizes), so the run's own float32 spread scaled by
      :math:`\varepsilon_{64}/\varepsilon_{32}=2^{-29}` is its float64 spread. Measured (c5_wide and
      c5 at d = 32, m = 128, 3 perturbations of the initial neurons and nodes by one float64 ulp):
      the deviation over the scaled float32 spread is 0.15 to 2.7 per curve.
    * ``mf_loss``, the exact limit, float64 in every run (:math:`R_{32}` and :math:`R_{64}` share
      it): :math:`\kappa\,2^{16}\varepsilon_{64}\|R_{64}\|`, about :math:`1.5\times10^{-10}` of its
      scale. The limit does not amplify a rounding (measured: a one-ulp perturbation of its initial
      nodes moves ``mf_loss`` by one ulp of its scale, c5 at d = 16 and 32), so two float64
      recomputations differ by the rounding accumulated over the steps: :math:`2^{16}` ulps cover
      5 ulps per step over the 12,200 steps of the longest stored sweep (c7_he4_d512).
    """
    scale = _sup(r64)
    if name == "mf_loss" or width == 0:
        return KAPPA * LIMIT_ULPS * EPS64 * scale
    if r32 is None:
        raise ValueError(f"the float32 recomputation of {name} is needed for width {width}")
    spread = _sup(np.asarray(r32) - np.asarray(r64))
    eps = EPS32 if dtype == "float32" else EPS64
    floor = 2.0 / width if name == "flipped_fraction" else FLOOR_ULPS * eps * scale
    return KAPPA * (eps / EPS32) * spread + floor


def _check_parameters(ds, stored, params: dict, label: str) -> None:
    """The parameters rebuilt from the attributes give the stored run key and horizon."""
    import mfcore
    from mfcore.sweep import run_key

    if "run_key" in stored and ds.attrs.get("mfcore_version") == mfcore.__version__:
        assert run_key(params) == str(stored["run_key"].values), (
            f"{label}: the parameters rebuilt from the attributes do not give the stored run's key")
    horizon = float(stored["horizon"].values) if "horizon" in stored.variables else float(ds.attrs["horizon"])
    assert horizon == params["horizon"], f"{label}: stored horizon {horizon} != rebuilt {params['horizon']}"


def _check_run(ds, point: dict, fixed: dict, width: int, label: str, until: float | None = None) -> str:
    """Recompute one stored run and compare every recorded curve at every recorded time; returns
    ``"bitwise"`` or ``"envelope"`` (see :func:`allowed_deviation`). With ``until``, only the run's
    first steps are recomputed, to its last record at or before ``until`` (projected gradient descent
    is the same step by step whatever the horizon), and the records up to there are compared."""
    from mfcore.sweep import run_parameters

    params = run_parameters({**fixed, **point})
    stored = ds.sel(point)
    _check_parameters(ds, stored, params, label)
    dtype = params["dtype"]
    t_stored = stored.t.values[np.isfinite(stored.mf_loss.values)]
    if until is not None:
        t_stored = t_stored[t_stored <= until]
        params = {**params, "horizon": float(t_stored[-1]), "record_times": [float(x) for x in t_stored]}
    run = _simulate(params, dtype)
    assert t_stored.size == run.t.size and np.allclose(t_stored, run.t.values, rtol=1e-12, atol=1e-12), (
        f"{label}: record times differ")
    stored_curves, recomputed = _curves(stored.sel(t=t_stored)), _curves(run)
    # a curve an older mfcore did not record is all NaN in a sweep assembled with newer runs
    names = [n for n in stored_curves if n in recomputed and np.isfinite(stored_curves[n]).any()]
    assert "mf_loss" in names and (width == 0 or "loss" in names), f"{label}: compared only {names}"
    if "velocity_evaluations" in stored and until is None:
        assert int(stored["velocity_evaluations"]) == run.attrs["velocity_evaluations"], f"{label}: step count"
    if all(np.array_equal(stored_curves[n], recomputed[n], equal_nan=True) for n in names):
        return "bitwise"  # same machine and BLAS thread count as the sweep's worker
    r64 = recomputed if dtype == "float64" else _curves(_simulate(params, "float64"))
    r32 = None if width == 0 else (recomputed if dtype == "float32" else _curves(_simulate(params, "float32")))
    for name in names:
        s, ref = stored_curves[name], r64[name]
        assert np.array_equal(np.isnan(s), np.isnan(ref)), f"{label}: {name} is missing at other times"
        deviation = _sup(s - ref)
        allowed = allowed_deviation(name, dtype, width, ref, None if r32 is None else r32[name])
        assert deviation <= allowed, (
            f"{label}: {name} lies {deviation:.3g} (sup over t) from its float64 recomputation, more "
            f"than the {allowed:.3g} allowed for a {dtype} run (kappa x float32 spread + floor)")
    return "envelope"


@pytest.mark.slow
@pytest.mark.parametrize("path, dim", CASES)
def test_stored_sweep_is_reproducible(path: Path, dim):
    """Every run of the cheapest width of (sweep file, d), every recorded curve, every recorded time.

    The file is read with its checksums verified; each run is rebuilt from the file's attributes
    (``sweep_fixed`` + the swept values), checked against its stored key and horizon, recomputed
    with BLAS on one thread and compared by :func:`allowed_deviation` (bitwise equality, the usual
    outcome on the machine that made the file, is accepted at once).
    """
    start = time.perf_counter()
    ds = load_dataset(path)
    assert "sweep_fixed" in ds.attrs, f"{path.name}: no sweep_fixed attribute (not written by mfcore sweep?)"
    assert dim is not None, f"{path.name}: no dimension d found in the file"
    fixed = json.loads(ds.attrs["sweep_fixed"])
    width, points = _cheapest_runs(ds, dim)
    assert points, f"{path.name} d={dim}: no run of width {width} holds data"
    wall = sum(_stored_wall(ds, p) for p in points)
    if wall > BUDGET_S:
        # too long to recompute whole: the first run's first records (the same steps, a shorter horizon)
        first = points[0]
        stored = ds.sel(first)
        t_rec = stored.t.values[np.isfinite(stored.mf_loss.values)]
        until = float(t_rec[-1]) * PREFIX_S / _stored_wall(ds, first)
        n_rec = int((t_rec[(t_rec > 0)] <= until).sum())
        if n_rec < 3:
            pytest.skip(f"{path.name} d={dim}: its runs of the cheapest width {width} took {wall:.0f} s when stored "
                        f"and fewer than 3 records fall in a {PREFIX_S:.0f} s prefix; run with "
                        f"MFCORE_REPRO_BUDGET_S={math.ceil(wall * 3)} to check them whole")
        outcome = _check_run(ds, first, fixed, width, f"{path.name} {first} (prefix)", until=until)
        print(f"{path.name} d={dim}: runs too long to recompute whole ({wall:.0f} s stored); the first, {first}, "
              f"reproduced up to t = {t_rec[t_rec <= until][-1]:g} of {t_rec[-1]:g} ({n_rec} records, {outcome}) in "
              f"{time.perf_counter() - start:.0f} s; MFCORE_REPRO_BUDGET_S={math.ceil(wall * 3)} checks them whole")
        return
    outcome = [_check_run(ds, p, fixed, width, f"{path.name} {p}") for p in points]
    print(f"{path.name} d={dim}: {len(points)} runs of width {width} reproduced "
          f"({outcome.count('bitwise')} bitwise, {outcome.count('envelope')} within the envelope) in "
          f"{time.perf_counter() - start:.0f} s (stored: {wall:.0f} s)")


def _edit_last(fh, name: str) -> None:
    """Change the last element of an HDF5 dataset (the widest width, last seed, last time): a
    tiny change for numbers (NaN or 0 -> 1), a flip for booleans, one more character for strings."""
    data = fh[name]
    index = tuple(n - 1 for n in data.shape)
    value = data[index]
    if isinstance(value, (bytes, str)):
        data[index] = (value.decode() if isinstance(value, bytes) else value) + "x"
    elif data.attrs.get("dtype") == "bool":
        data[index] = 1 - value
    elif np.issubdtype(data.dtype, np.floating):
        data[index] = value * (1 + 2.0 ** -40) if np.isfinite(value) and value != 0 else 1.0
    else:
        data[index] = value + 1


@pytest.mark.parametrize("path", STORED, ids=[p.stem for p in STORED])
def test_stored_sweep_is_sealed_and_edits_are_named(path: Path, tmp_path: Path):
    """The stored file matches its checksums; on a temporary copy, an edit of the last element of
    every variable (a run the reproduction test never recomputes), of a width value, of the step and
    of a provenance attribute is refused, naming each."""
    import shutil

    import h5py

    from mfcore.results import IntegrityError

    load_dataset(path)  # sealed, and unchanged since
    raw = load_dataset(path, verify=False)
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    with h5py.File(copy, "r+") as fh:
        names = [n for n in fh if isinstance(fh[n], h5py.Dataset)
                 and not str(fh[n].attrs.get("NAME", b"")).count("not a netCDF variable")]
        for name in names:
            _edit_last(fh, name)
        expected = {f"{'coordinate' if n in raw.coords else 'data variable'} {n!r} changed" for n in names}
        step = float(np.asarray(fh.attrs.get("step", 0.2)).ravel()[0])
        for attr, value in (("step", step * (1 + 2.0 ** -40)), ("assembled_git_commit", "0" * 40)):
            expected.add(f"attribute {attr!r} {'changed' if attr in fh.attrs else 'added'}")
            fh.attrs[attr] = value
    assert set(names) == set(raw.variables), (names, list(raw.variables))
    with pytest.raises(IntegrityError) as info:
        load_dataset(copy)
    assert set(info.value.changes) == expected
    assert str(copy) in str(info.value) and "\n" not in str(info.value)

    # one width value alone
    shutil.copy(path, copy)
    with h5py.File(copy, "r+") as fh:
        if "width" in fh:
            fh["width"][0] = fh["width"][0] + 1
            named = "coordinate 'width' changed"
        else:
            fh.attrs["width"] = np.asarray(fh.attrs.get("width", 0)) + 1
            named = "attribute 'width'"
    with pytest.raises(IntegrityError, match=named):
        load_dataset(copy)


def test_allowed_deviation_rules():
    r64 = np.array([0.5, 0.25, 0.125])
    r32 = r64 + np.array([0.0, 1e-7, -2e-7])
    # float32: kappa x the float32 spread + 16 float32 ulps of the scale
    assert allowed_deviation("loss", "float32", 128, r64, r32) == pytest.approx(KAPPA * 2e-7 + 16 * EPS32 * 0.5)
    # float64: the float32 spread scaled by eps64 / eps32 = 2^-29
    assert allowed_deviation("loss", "float64", 128, r64, r32) == pytest.approx(
        KAPPA * 2e-7 * 2.0 ** -29 + 16 * EPS64 * 0.5)
    assert allowed_deviation("flipped_fraction", "float32", 128, r64 * 0, r64 * 0) == 2 / 128
    assert allowed_deviation("mf_loss", "float32", 128, r64, r64) == pytest.approx(KAPPA * 2.0 ** 16 * EPS64 * 0.5)
    assert allowed_deviation("mf_loss", "float64", 0, r64) == allowed_deviation("mf_loss", "float32", 128, r64, r32)
    with pytest.raises(ValueError, match="float32 recomputation"):
        allowed_deviation("loss", "float32", 128, r64)


def _perturbed(monkeypatch, relative: float, seed: int, nodes: bool = False) -> None:
    """Multiply the initial neurons (or the limit's initial quantile nodes) by 1 + relative x U(-1, 1)."""
    import sys

    module = sys.modules["mfcore.simulate"]
    rng = np.random.default_rng(seed)
    name = "initial_overlaps" if nodes else "nested_initialisation"
    original = getattr(module, name)

    def perturbed(*args):
        x = original(*args)
        y = x * (1 + relative * rng.uniform(-1, 1, x.shape))
        return np.clip(y, -1, 1) if nodes else y

    monkeypatch.setattr(module, name, perturbed)


@pytest.mark.slow
def test_envelope_accepts_another_rounding_and_refuses_a_real_difference(monkeypatch):
    """The rule of :func:`allowed_deviation` on a small run: the curves of another machine's rounding
    (initial neurons perturbed by one ulp, float32 and float64; initial quantile nodes by one float64
    ulp) are accepted; a real difference (initial neurons moved by 1e-4) is refused."""
    params = dict(dim=16, activation="he4", target=None, width=256, horizon=20.0, step=0.2, nodes=2048,
                  n_records=30, seed=0, evaluation="auto", method="pgd")

    def curves(dtype):
        return _curves(_simulate(params, dtype))

    def deviations(stored, dtype, r64, r32):
        return {n: (_sup(stored[n] - r64[n]), allowed_deviation(n, dtype, 256, r64[n], r32[n])) for n in stored}

    r64, r32 = curves("float64"), curves("float32")
    with monkeypatch.context() as m:
        _perturbed(m, EPS32, seed=1)
        other32 = curves("float32")
    with monkeypatch.context() as m:
        _perturbed(m, EPS64, seed=2)
        _perturbed(m, EPS64, seed=3, nodes=True)
        other64 = curves("float64")
    with monkeypatch.context() as m:
        _perturbed(m, 1e-4, seed=4)
        wrong = curves("float32")
    for stored, dtype in ((other32, "float32"), (other64, "float64")):
        for name, (dev, allowed) in deviations(stored, dtype, r64, r32).items():
            assert dev <= allowed, f"{dtype} {name}: {dev:.3g} > {allowed:.3g}"
    refused = [n for n, (dev, allowed) in deviations(wrong, "float32", r64, r32).items() if dev > allowed]
    assert {"loss", "gap_mean"} <= set(refused), refused


def test_stored_sweeps_present_or_skipped():
    """Documents the skip: without sweeps/paper/*.nc, the reproducibility test is not collected."""
    if not STORED:
        pytest.skip("no stored sweep under sweeps/paper/ (run `mfcore sweep configs/paper.toml`)")
    assert all(p.stat().st_size > 0 for p in STORED)
