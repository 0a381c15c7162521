"""Checksums of ``.nc`` results (:mod:`mfcore.results`): written by ``save_dataset``, verified by
``load_dataset`` and by the sweep cache, renewed by ``mfcore reseal``.

Every edit is made with h5py on a file in a temporary folder, the way a careless tool or a hand
edit would change it, and must give one :class:`mfcore.results.IntegrityError` (a ``ValueError``)
naming the file and what changed. The stored sweeps ``sweeps/paper/*.nc`` are checked the same way
in ``tests/test_stored_sweeps.py``.
"""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import xarray as xr

from mfcore import cli
from mfcore.results import CHECKSUM_ATTR, IntegrityError, checksums, load_dataset, reseal, save_dataset


@pytest.fixture
def sealed(tmp_path):
    """A small result with every kind of variable and attribute, saved (and so sealed) as ``run.nc``."""
    ds = xr.Dataset(
        {"loss": (("seed", "t"), np.array([[0.5, 0.25, np.nan], [0.5, 0.3, 0.1]])),
         "loss32": (("seed", "t"), np.arange(6, dtype=np.float32).reshape(2, 3)),
         "run_key": ("seed", np.array(["a" * 32, "b" * 32])),
         "git_dirty": ("seed", np.array([False, True])),
         "velocity_evaluations": ("seed", np.array([10, 12], dtype=np.int64))},
        coords={"seed": [0, 1], "t": [0.0, 0.5, 1.0]},
        attrs={"step": 0.2, "width": 64, "activation": "he4", "keep_neurons": False, "observers": [],
               "target": None, "grid": np.array([1.0, 2.0]), "git_commit": "0" * 40},
    )
    path = tmp_path / "run.nc"
    save_dataset(ds, path)
    return path


def _raw(path) -> dict:
    """Every HDF5 dataset of a file: raw bytes (numbers) or the list of elements (strings)."""
    with h5py.File(path, "r") as fh:
        arrays = {name: fh[name][...] for name in fh if isinstance(fh[name], h5py.Dataset)}
    return {name: a.tolist() if a.dtype.kind == "O" else a.tobytes() for name, a in arrays.items()}


def _edit(path, change) -> None:
    with h5py.File(path, "r+") as fh:
        change(fh)


def _scale(name, factor):
    def change(fh):
        fh[name][...] = fh[name][...] * factor
    return change


def _set(name, index, value):
    def change(fh):
        fh[name][index] = value
    return change


def _set_attr(name, value):
    def change(fh):
        fh.attrs[name] = value
    return change


def _del_attr(name):
    def change(fh):
        del fh.attrs[name]
    return change


def _set_var_attr(var, name, value):
    def change(fh):
        fh[var].attrs[name] = value
    return change


def test_save_seals_and_load_verifies(sealed):
    with h5py.File(sealed, "r") as fh:
        stored = json.loads(fh.attrs[CHECKSUM_ATTR])
    assert stored["format"] == 1 and stored["algorithm"] == "sha256"
    assert set(stored["variables"]) == {"loss", "loss32", "run_key", "git_dirty", "velocity_evaluations", "seed", "t"}
    assert "step" in stored["attributes"] and "_json_attrs" in stored["attributes"]
    back = load_dataset(sealed)
    assert CHECKSUM_ATTR not in back.attrs  # the seal belongs to the file, not to the result
    assert back.attrs["keep_neurons"] is False and back.attrs["target"] is None and back.attrs["step"] == 0.2
    # saving a loaded result again seals it again, with the same checksums
    again = save_dataset(back, sealed.with_name("again.nc"))
    with h5py.File(again, "r") as fh:
        assert json.loads(fh.attrs[CHECKSUM_ATTR]) == stored


@pytest.mark.parametrize("change, named", [
    (_scale("loss", 0.5), "data variable 'loss' changed"),
    (_set("loss", (1, 2), 0.1 + 1e-16), "data variable 'loss' changed"),  # one ulp of one value
    (_set("loss", (0, 2), 0.0), "data variable 'loss' changed"),  # a missing run (NaN) filled in
    (_scale("loss32", 2.0), "data variable 'loss32' changed"),
    (_set("run_key", 1, "c" * 32), "data variable 'run_key' changed"),
    (_set("git_dirty", 0, 1), "data variable 'git_dirty' changed"),
    (_set("velocity_evaluations", 0, 11), "data variable 'velocity_evaluations' changed"),
    (_set("seed", 1, 7), "coordinate 'seed' changed"),
    (_set("t", 2, 1.5), "coordinate 't' changed"),
    (_set_attr("step", 0.25), "attribute 'step' changed"),
    (_set_attr("width", 65), "attribute 'width' changed"),
    (_set_attr("git_commit", "1" * 40), "attribute 'git_commit' changed"),
    (_set_attr("grid", np.array([1.0, 3.0])), "attribute 'grid' changed"),
    (_set_attr("_json_attrs", '["keep_neurons"]'), "attribute '_json_attrs' changed"),
    (_set_attr("note", "added by hand"), "attribute 'note' added"),
    (_del_attr("activation"), "attribute 'activation' removed"),
    (_set_var_attr("loss", "units", "m"), "data variable 'loss' changed"),
], ids=["scale", "one-ulp", "nan-filled", "float32", "string", "bool", "int", "coordinate", "time",
        "step", "width", "provenance", "array-attr", "json-attrs", "added-attr", "removed-attr", "var-attr"])
def test_any_edit_is_named(sealed, change, named):
    _edit(sealed, change)
    with pytest.raises(IntegrityError) as info:
        load_dataset(sealed)
    msg = str(info.value)
    assert "\n" not in msg and str(sealed) in msg and named in msg, msg
    assert f"mfcore reseal {sealed}" in msg
    assert isinstance(info.value, ValueError) and info.value.path == str(sealed)
    load_dataset(sealed, verify=False)  # tools may still read it


def test_several_edits_are_all_named(sealed):
    _edit(sealed, _scale("loss", 0.5))
    _edit(sealed, _set_attr("step", 0.3))
    with pytest.raises(IntegrityError, match=r"data variable 'loss' changed, attribute 'step' changed"):
        load_dataset(sealed)


def test_unsealed_or_garbled_checksums_are_refused(tmp_path):
    ds = xr.Dataset({"mf_loss": ("t", [0.5, 0.4])}, coords={"t": [0.0, 1.0]}, attrs={"step": 0.1})
    plain = tmp_path / "plain.nc"
    ds.to_netcdf(plain, engine="h5netcdf")  # written without mfcore: no checksums
    with pytest.raises(IntegrityError, match=r"plain\.nc: no checksums .*mfcore reseal"):
        load_dataset(plain)
    assert load_dataset(plain, verify=False).attrs == {"step": 0.1}
    _edit(plain, _set_attr(CHECKSUM_ATTR, "{not json"))
    with pytest.raises(IntegrityError, match="unreadable attribute mfcore_checksums"):
        load_dataset(plain)


def test_reseal_rewrites_only_the_checksums(sealed, capsys):
    _edit(sealed, _scale("loss", 0.5))  # a legitimate change
    _edit(sealed, _set_attr("step", 0.3))
    before = _raw(sealed)
    with h5py.File(sealed, "r") as fh:
        attrs = {k: v for k, v in fh.attrs.items() if k != CHECKSUM_ATTR}
    assert cli.main(["reseal", str(sealed)]) == 0
    out = capsys.readouterr().out
    assert f"resealed {sealed} (changed: data variable 'loss' changed, attribute 'step' changed)" in out, out
    back = load_dataset(sealed)
    assert back.attrs["step"] == 0.3 and back.loss.values[0, 0] == 0.25
    assert _raw(sealed) == before  # the data are untouched
    with h5py.File(sealed, "r") as fh:
        assert {k: v for k, v in fh.attrs.items() if k != CHECKSUM_ATTR}.keys() == attrs.keys()
    assert reseal(sealed) == "content unchanged"


def test_reseal_refuses_what_it_cannot_seal(tmp_path, capsys):
    with pytest.raises(ValueError, match="only .nc results carry checksums"):
        reseal(tmp_path / "run.json")
    with pytest.raises(ValueError, match="no result file"):
        reseal(tmp_path / "missing.nc")
    (tmp_path / "garbage.nc").write_bytes(b"not a netCDF file")
    assert cli.main(["reseal", str(tmp_path / "garbage.nc")]) == 2
    err = capsys.readouterr().err
    assert "mfcore reseal: error: cannot read" in err and "garbage.nc" in err and err.count("\n") == 1, err


def test_json_results_carry_no_checksum(tmp_path):
    ds = xr.Dataset({"mf_loss": ("t", [0.5, 0.4])}, coords={"t": [0.0, 1.0]}, attrs={"step": 0.1})
    path = save_dataset(ds, tmp_path / "run.json")
    assert CHECKSUM_ATTR not in json.loads(path.read_text())["attrs"]
    assert load_dataset(path).attrs == {"step": 0.1}


def test_checksums_ignore_their_own_attribute_and_nan_payloads():
    a = xr.Dataset({"x": ("i", np.array([1.0, np.nan]))}, attrs={"k": 1})
    b = a.copy(deep=True)
    b["x"].values[1] = np.frombuffer(np.uint64(0x7FF8000000000123).tobytes(), dtype=np.float64)[0]  # another NaN
    b.attrs[CHECKSUM_ATTR] = "anything"
    assert checksums(a) == checksums(b)


# ------------------------------------------------------------------------------------------
# the sweep cache
# ------------------------------------------------------------------------------------------
def _filled_cache(tmp_path):
    """A tiny sweep whose two runs are computed straight into a fresh cache (no Dask cluster)."""
    from mfcore import __version__
    from mfcore.sweep import SweepSpec, compute_run, entry_path, prepare_cache, run_key

    spec = SweepSpec("tiny", fixed={"dim": 8, "width": 8, "horizon": 0.5, "step": 0.05, "nodes": 32,
                                    "n_records": 4}, grid={"seed": [0, 1]})
    cache = tmp_path / "cache"
    runs = prepare_cache(cache)
    for _, params in spec.runs():
        compute_run(params, str(runs), __version__)
    entries = [entry_path(runs, run_key(p)) for _, p in spec.runs()]
    return spec, cache, entries


def test_edited_cache_entry_stops_the_sweep_before_any_work(tmp_path):
    from mfcore.sweep import CacheError, run_sweep

    spec, cache, entries = _filled_cache(tmp_path)
    clean = run_sweep(spec, cache=cache, progress=False)  # every run cached: no cluster is started
    _edit(entries[1], _scale("loss", 0.5))
    with pytest.raises(CacheError) as info:
        run_sweep(spec, cache=cache, progress=False)
    msg = str(info.value)
    assert "\n" not in msg and str(entries[1]) in msg and "data variable 'loss' changed" in msg, msg
    assert "delete this file and rerun the sweep" in msg
    # resealed (the change declared legitimate), the entry flows into the result as it now is
    assert cli.main(["reseal", str(entries[1])]) == 0
    edited = run_sweep(spec, cache=cache, progress=False)
    np.testing.assert_array_equal(edited.loss.sel(seed=1).values, 0.5 * clean.loss.sel(seed=1).values)


def test_unsealed_cache_entry_is_refused(tmp_path):
    from mfcore.sweep import CacheError, read_entry, run_key

    spec, cache, entries = _filled_cache(tmp_path)
    _edit(entries[0], _del_attr(CHECKSUM_ATTR))  # as an older mfcore wrote it
    params = next(spec.runs())[1]
    with pytest.raises(CacheError, match=r"fails its integrity check: no checksums .*mfcore reseal"):
        read_entry(entries[0], run_key(params), params)
    shutil.copy(entries[1], tmp_path / "copy.nc")  # the other entry is untouched
    load_dataset(tmp_path / "copy.nc")


def test_sealing_survives_processes_forked_by_other_threads(tmp_path):
    """A sweep worker runs several runs in threads, and each starts ``git`` (provenance): a child
    forked while another thread's file is open inherits its HDF5 file lock for a moment. Sealing
    must not reopen the file with HDF5 (that failed with BlockingIOError in about a third of the
    saves of this test)."""
    import subprocess
    import threading

    stop, errors = threading.Event(), []

    def fork():
        while not stop.is_set():
            subprocess.run(["git", "--version"], capture_output=True)

    def write(i):
        for k in range(25):
            try:
                save_dataset(xr.Dataset({"a": ("x", np.full(50, float(k)))}), tmp_path / f"r{i}_{k}.nc")
            except Exception as exc:  # reported below
                errors.append(f"{type(exc).__name__}: {exc}")

    forkers = [threading.Thread(target=fork) for _ in range(2)]
    writers = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in forkers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in forkers:
        t.join()
    assert not errors, errors[:3]
    assert load_dataset(tmp_path / "r1_24.nc").a.values[0] == 24.0
