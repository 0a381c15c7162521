"""Sweeps on Dask: configs, cache keys, resume after interruption, cache errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from mfcore import Problem, __version__, cli, load_dataset, simulate
from mfcore.sweep import (
    CacheError,
    SweepSpec,
    entry_path,
    load_config,
    load_sweep_result,
    paper_horizon,
    prepare_cache,
    run_key,
    run_parameters,
    run_sweep,
)

REPO = Path(__file__).resolve().parent.parent
TEST_CONFIG = REPO / "configs" / "test.toml"


@pytest.fixture(scope="module")
def thread_client():
    """An in-process Dask cluster (threads): fast to start, for the in-process tests."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                           silence_logs=40)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def _log_keys(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------
# configs and keys
# ------------------------------------------------------------------------------------------
def test_shipped_configs():
    test = load_config(TEST_CONFIG)
    assert list(test) == ["tiny"] and test["tiny"].size >= 24
    paper = load_config(REPO / "configs" / "paper.toml")
    assert {"c1", "c5", "c7_he6"} <= set(paper)
    c5 = paper["c5"]
    # the authors' sizes (SPEC §1): d in 16..128, widths 128..32768 in powers of two, lr 0.01
    assert c5.grid["dim"] == [16, 32, 64, 128]
    assert c5.grid["width"] == [2**j for j in range(7, 16)]
    assert c5.fixed["step"] == 0.01
    horizons = {p["dim"]: p["horizon"] for _, p in c5.runs()}
    assert horizons == {16: 8.0, 32: 16.0, 64: 32.0, 128: 64.0}  # T = d/2 for k = 4
    assert all(p["width"] == 0 for _, p in paper["c1"].runs())


def test_paper_horizon():
    assert paper_horizon(16, 4) == 8.0
    assert paper_horizon(32, 6) == 0.5 * 32**2
    assert paper_horizon(64, 2) == pytest.approx(np.log(64))


def test_keys_are_canonical_and_versioned():
    a = {"dim": 8, "width": 16, "horizon": 1, "step": 0.05}
    b = {"dim": 8.0, "width": 16, "horizon": 1.0, "step": 0.05, "method": "pgd", "activation": "he4"}
    assert run_parameters(a) == run_parameters(b)  # defaults filled in, numbers normalised
    assert run_key(a) == run_key(b)
    assert run_key(a) != run_key({**a, "seed": 1})
    assert run_key(a) != run_key(a, version=__version__ + ".post1")
    assert len(run_key(a)) == 32
    # "paper" horizons are resolved before hashing
    assert run_key({**a, "horizon": "paper", "dim": 16}) == run_key({**a, "horizon": 8.0, "dim": 16})


@pytest.mark.parametrize("fixed,grid,match", [
    ({"dim": 8, "widht": 3}, {}, "unknown sweep parameter"),
    ({"dim": 8}, {"width": [16, 16]}, "duplicates"),
    ({"dim": 8, "width": 16}, {"width": [16, 32]}, "both fixed and swept"),
    ({"width": 16}, {}, "must set dim"),
    ({"dim": 8}, {"seed": []}, "non-empty list"),
    ({"dim": 8, "width": "many"}, {}, "integer"),
    ({"dim": 8, "horizon": "forever"}, {}, "horizon"),
])
def test_bad_specs(fixed, grid, match):
    with pytest.raises(ValueError, match=match):
        SweepSpec("bad", fixed=fixed, grid=grid)


def test_bad_config_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep.x\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)
    bad.write_text("[sweep.x.fixed]\ndim = 8\n[other]\na = 1\n")
    with pytest.raises(ValueError, match="unknown top-level"):
        load_config(bad)
    bad.write_text("[defaults]\ncache = 'c'\n")
    with pytest.raises(ValueError, match="no \\[sweep.NAME\\]"):
        load_config(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


# ------------------------------------------------------------------------------------------
# the acceptance test: 24 runs from the CLI, interrupted, resumed
# ------------------------------------------------------------------------------------------
def test_cli_sweep_interrupted_and_resumed(tmp_path, thread_client):
    text = TEST_CONFIG.read_text()
    assert "step = 0.01" in text
    config = tmp_path / "slow.toml"
    config.write_text(text.replace("step = 0.01", "step = 0.002"))  # ~0.3 s per run: interruptible
    cache, out, log = tmp_path / "cache", tmp_path / "out", tmp_path / "log.jsonl"
    cmd = [sys.executable, "-m", "mfcore", "sweep", str(config), "--cache", str(cache), "--out-dir", str(out),
           "--log", str(log), "--workers", "2", "--no-progress"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    # 1. start, interrupt (Ctrl-C) once a few runs are finished
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    deadline = time.time() + 120
    while len(_log_keys(log)) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    first = _log_keys(log)
    assert proc.returncode == 130, err  # interrupted, not finished
    assert 5 <= len(first) < 24
    stored = sorted(p.stem for p in (cache / "runs").glob("*.nc"))
    assert sorted(first) == stored  # every finished run is stored, nothing half-written is visible
    assert not (out / "tiny.nc").exists()

    # 2. resume: computes only the missing runs
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    keys = _log_keys(log)
    assert len(keys) == 24 and len(set(keys)) == 24  # each run computed exactly once overall
    resumed = load_dataset(out / "tiny.nc")
    assert dict(resumed.sizes) == {"activation": 2, "dim": 2, "width": 2, "seed": 3, "t": 12, "quantile": 4}
    assert np.all(np.isfinite(resumed.loss)) and np.all(np.isfinite(resumed.gap_mean))

    # 3. a third call computes nothing
    res = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 0 and "24 cached, 0 to compute" in res.stdout, res.stdout + res.stderr

    # 4. equals a clean run (fresh cache), up to wall-clock times
    spec = load_config(config)["tiny"]
    clean = run_sweep(spec, cache=tmp_path / "clean-cache", client=thread_client, progress=False)
    from mfcore.results import save_dataset

    clean = load_dataset(save_dataset(clean, tmp_path / "clean.nc"))
    xr.testing.assert_identical(resumed.drop_vars("wall_time_s"), clean.drop_vars("wall_time_s"))

    # 5. ... and each point is the run simulate() gives directly
    point = dict(activation="he3", dim=12, width=32, seed=1)
    direct = simulate(Problem(12, "he3"), width=32, horizon=1.0, step=0.002, method="pgd", nodes=64, seed=1,
                      n_records=12, progress=False)
    sel = resumed.sel(**point)
    np.testing.assert_array_equal(sel.loss.values, direct.loss.values)
    np.testing.assert_array_equal(sel.gap_mean.values, direct.gap_mean.values)
    assert int(sel.velocity_evaluations) == direct.attrs["velocity_evaluations"] == 500


# ------------------------------------------------------------------------------------------
# cache errors
# ------------------------------------------------------------------------------------------
@pytest.fixture()
def small_sweep(tmp_path, thread_client):
    spec = SweepSpec("small", fixed={"dim": 8, "horizon": 0.5, "step": 0.05, "nodes": 32, "n_records": 5},
                     grid={"width": [8, 16], "seed": [0, 1]})
    cache = tmp_path / "cache"
    ds = run_sweep(spec, cache=cache, client=thread_client, progress=False)
    return spec, cache, ds


def test_rerun_uses_cache_and_matches(small_sweep, thread_client, tmp_path):
    spec, cache, ds = small_sweep
    log = tmp_path / "again.jsonl"
    again = run_sweep(spec, cache=cache, client=thread_client, progress=False, log=log)
    assert not log.exists()  # nothing recomputed
    xr.testing.assert_identical(ds, again)
    assert ds.loss.dims == ("width", "seed", "t")
    # a wider grid reuses the four cached runs and computes only the new ones
    wider = SweepSpec("wider", fixed=spec.fixed, grid={"width": [8, 16, 32], "seed": [0, 1]})
    out = run_sweep(wider, cache=cache, client=thread_client, progress=False, log=log)
    assert len(_log_keys(log)) == 2
    xr.testing.assert_equal(out.loss.sel(width=[8, 16]), ds.loss)


def test_corrupt_entry_is_a_clear_error(small_sweep, thread_client, capsys):
    spec, cache, _ = small_sweep
    _, params = next(spec.runs())
    path = entry_path(cache / "runs", run_key(params))
    path.write_bytes(b"this is not a netCDF file")
    with pytest.raises(CacheError, match="corrupt cache entry .*delete this file"):
        run_sweep(spec, cache=cache, client=thread_client, progress=False)


def test_wrong_entry_is_a_clear_error(small_sweep, thread_client):
    spec, cache, _ = small_sweep
    runs = list(spec.runs())
    a, b = (entry_path(cache / "runs", run_key(p)) for _, p in runs[:2])
    b.write_bytes(a.read_bytes())  # a valid result filed under another run's key
    with pytest.raises(CacheError, match="not an mfcore sweep result for key"):
        run_sweep(spec, cache=cache, client=thread_client, progress=False)


def test_foreign_files_are_a_clear_error(small_sweep, tmp_path):
    spec, cache, _ = small_sweep
    (cache / "runs" / "notes.txt").write_text("hello")
    with pytest.raises(CacheError, match="foreign files .*notes.txt"):
        prepare_cache(cache)
    # through the CLI: an input error (exit code 2) with the message, no traceback
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sweep.small.fixed]\ndim = 8\nhorizon = 0.5\nstep = 0.05\nnodes = 32\nn_records = 5\n"
                   "[sweep.small.grid]\nwidth = [8, 16]\n")
    assert cli.main(["sweep", str(cfg), "--cache", str(cache), "--out-dir", str(tmp_path / "o")]) == 2
    # a folder that is not a cache at all
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("...")
    with pytest.raises(CacheError, match="not an mfcore sweep cache"):
        prepare_cache(other)
    # leftovers of an interrupted atomic write are tolerated
    (cache / "runs" / "notes.txt").unlink()
    (cache / "runs" / f".{'0' * 32}.nc.abc123.tmp").write_bytes(b"partial")
    prepare_cache(cache)


def test_failed_run_reports_and_keeps_the_others(tmp_path, thread_client):
    spec = SweepSpec("fails", fixed={"dim": 8, "width": 8, "horizon": 0.5, "nodes": 32, "n_records": 4},
                     grid={"step": [0.05, 0.3]})  # 0.3 > 1/K'(1) = 0.25 for he4: rejected
    with pytest.raises(ValueError, match="1 of 2 runs .* failed .*unstable"):
        run_sweep(spec, cache=tmp_path / "cache", client=thread_client, progress=False)
    assert len(list((tmp_path / "cache" / "runs").glob("*.nc"))) == 1


def test_find_and_load_sweep_result(small_sweep, tmp_path):
    from mfcore.results import save_dataset

    _, _, ds = small_sweep
    assert load_sweep_result("small", profile="paper", search=[tmp_path / "nowhere"]) is None
    folder = tmp_path / "sweeps" / "paper"
    folder.mkdir(parents=True)
    save_dataset(ds, folder / "small.nc")
    back = load_sweep_result("small", search=[folder])
    np.testing.assert_array_equal(back.loss.values, ds.loss.values)


def test_existing_scheduler_by_address(tmp_path, thread_client):
    # --scheduler ADDRESS: connect to a running cluster instead of starting one
    spec = SweepSpec("remote", fixed={"dim": 8, "width": 8, "horizon": 0.5, "step": 0.05, "nodes": 32,
                                      "n_records": 4}, grid={"seed": [0, 1]})
    address = thread_client.scheduler.address
    ds = run_sweep(spec, cache=tmp_path / "cache", scheduler=address, progress=False)
    assert ds.loss.dims == ("seed", "t") and np.all(np.isfinite(ds.loss))
    assert thread_client.status == "running"  # the shared cluster is left running
