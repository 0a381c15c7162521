"""Sweeps on Dask: configs, cache keys, resume after interruption, cache errors."""
from __future__ import annotations

import gc
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
from mfcore.authors import authors_horizon, book_horizon, book_step
from mfcore.sweep import (
    CacheError,
    SweepSpec,
    entry_path,
    load_config,
    load_sweep_result,
    find_sweep_result,
    paper_horizon,
    prepare_cache,
    run_key,
    run_parameters,
    run_sweep,
    t95_horizon,
)

REPO = Path(__file__).resolve().parent.parent
TEST_CONFIG = REPO / "configs" / "test.toml"


@pytest.fixture(scope="module")
def thread_client():
    """An in-process Dask cluster (threads): fast to start, for the in-process tests."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                           silence_logs=40, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


#: Attributes that record when, where and from which commit a result was made (not its content).
PROVENANCE_ATTRS = ("assembled_at", "computed_at", "git_commit", "git_dirty", "hostname", "cpu_count",
                    "platform", "blas")


def _content_attrs(attrs: dict) -> dict:
    return {k: v for k, v in attrs.items()
            if not (k in PROVENANCE_ATTRS or k.startswith("assembled_") or k == "wall_time_s")}


def assert_same_results(a: xr.Dataset, b: xr.Dataset) -> None:
    """Identical data, coordinates and attributes, except the provenance attributes."""
    a, b = a.copy(), b.copy()
    a.attrs, b.attrs = _content_attrs(a.attrs), _content_attrs(b.attrs)
    for name in PROVENANCE_ATTRS:
        a = a.drop_vars(name, errors="ignore")
        b = b.drop_vars(name, errors="ignore")
    xr.testing.assert_identical(a, b)


def _log_keys(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------
# configs and keys
# ------------------------------------------------------------------------------------------
def test_shipped_configs():
    test = load_config(TEST_CONFIG)
    assert "tiny" in test and test["tiny"].size >= 24
    paper = load_config(REPO / "configs" / "paper.toml")
    assert {"c1", "c5", "c5_d64", "c5_wide", "c7_he4", "c7_he4_heldout", "c7_he6"} <= set(paper)
    c5 = paper["c5"]
    # the authors' widths (their code, glasgow2025code): 128..32768 in powers of two; horizon
    # max(T95, d) in book time; >= 3 seeds; float32, moment route where cheaper. The step is 0.2,
    # ten times the authors' lr 0.01 = book step 0.02 (the gap curves move by <= 5% between the two,
    # a check repeated by chapter 05) and still stable: eta K'(1) = 0.8 < 1 for h4.
    assert c5.grid["dim"] == [16, 32]
    assert c5.grid["width"] == [2**j for j in range(7, 16)]
    assert len(c5.grid["seed"]) >= 3
    assert c5.fixed["step"] == 0.2 and 0.2 * 4 < 1
    assert c5.fixed["dtype"] == "float32" and c5.fixed["evaluation"] == "auto"
    assert c5.fixed["horizon"] == "full"
    assert paper["c5_d64"].fixed["dim"] == 64 and max(paper["c5_d64"].grid["width"]) == 8192
    assert paper["c5_wide"].fixed["dtype"] == "float64" and max(paper["c5_wide"].grid["width"]) == 2**20
    # C7 for h4 at the authors' widths (1024, 4096), d = 16, 32, 64, and a held-out d = 128
    c7, held = paper["c7_he4"], paper["c7_he4_heldout"]
    assert c7.grid["dim"] == [16, 32, 64] and c7.grid["width"] == [1024, 4096] and len(c7.grid["seed"]) >= 3
    assert held.fixed["dim"] == 128 > max(c7.grid["dim"]) and len(held.grid["seed"]) >= 3
    assert max(held.grid["width"]) == 4096 == max(c7.grid["width"])
    for spec in (c7, held):
        assert {k: spec.fixed[k] for k in ("step", "horizon", "dtype")} == {"step": 0.2, "horizon": "full", "dtype": "float32"}
    assert all(p["width"] == 0 for _, p in paper["c1"].runs())
    assert paper["c1"].fixed["step"] == paper["c7_he6"].fixed["step"] == 0.02 == book_step(0.01)


def test_paper_horizon_is_in_book_units():
    # the authors' T_auth = max(log d, d^(k/2-1)/2) in their time; the book's time is twice theirs
    assert paper_horizon(16, 4) == 16.0 == book_horizon(16, 4) == 2 * authors_horizon(16, 4)
    assert paper_horizon(32, 6) == 32.0**2
    assert paper_horizon(64, 2) == pytest.approx(2 * np.log(64))
    assert run_parameters({"dim": 32, "horizon": "paper"})["horizon"] == 32.0
    assert run_parameters({"dim": 32, "horizon": "3*paper"})["horizon"] == 96.0


def test_t95_and_full_horizons():
    t95 = t95_horizon(16, "he4")
    assert float(f"{t95:.3g}") == t95  # rounded: the same key on every machine
    # the limit's loss has fallen by 95% at T95 and not long before
    probe = simulate(Problem(16, "he4"), width=0, horizon=t95, method="flow", nodes=2048,
                     record_times=[0.0, 0.97 * t95, t95], progress=False)
    rel = probe.mf_loss.values / probe.mf_loss.values[0]
    assert rel[2] <= 0.05 + 1e-4 and rel[1] > 0.05
    assert 2 * 16 < t95 < 6 * 16  # measured 53.8: about 3.4 d (well beyond the authors' t = d)
    assert run_parameters({"dim": 16, "horizon": "t95"})["horizon"] == t95
    assert run_parameters({"dim": 16, "horizon": "full"})["horizon"] == max(t95, 16.0)
    assert run_parameters({"dim": 16, "horizon": "2*full"})["horizon"] == 2 * max(t95, 16.0)
    # a short-horizon problem (k = 2): full is at least the authors' horizon
    assert run_parameters({"dim": 16, "activation": "he2", "horizon": "full"})["horizon"] >= paper_horizon(16, 2)


def test_keys_are_canonical_and_versioned():
    a = {"dim": 8, "width": 16, "horizon": 1, "step": 0.05}
    b = {"dim": 8.0, "width": 16, "horizon": 1.0, "step": 0.05, "method": "pgd", "activation": "he4"}
    assert run_parameters(a) == run_parameters(b)  # defaults filled in, numbers normalised
    assert run_key(a) == run_key(b)
    assert run_key(a) != run_key({**a, "seed": 1})
    assert run_key(a) != run_key(a, version=__version__ + ".post1")
    assert len(run_key(a)) == 32
    # "paper" horizons are resolved (in book time) before hashing
    assert run_key({**a, "horizon": "paper", "dim": 16}) == run_key({**a, "horizon": 16.0, "dim": 16})


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
    config.write_text(text.replace("step = 0.01", "step = 0.002"))  # ~0.3 s per run
    cache, out, log = tmp_path / "cache", tmp_path / "out", tmp_path / "log.jsonl"
    cmd = [sys.executable, "-m", "mfcore", "sweep", str(config), "--only", "tiny", "--cache", str(cache),
           "--out-dir", str(out), "--log", str(log), "--workers", "2", "--no-progress"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    # 1. interrupted (as by Ctrl-C) once 5 runs are stored: deterministic, whatever the machine's load
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**env, "MFCORE_SWEEP_STOP_AFTER": "5"})
    first = _log_keys(log)
    assert proc.returncode == 130, proc.stderr  # interrupted, not finished
    assert "interrupted" in proc.stderr and "Traceback" not in proc.stderr
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

    # 3. a third call computes nothing; the result is not replaced without --overwrite
    res = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 0 and "24 cached, 0 to compute" in res.stdout, res.stdout + res.stderr

    # 4. equals a clean run (fresh cache), up to wall-clock times
    spec = load_config(config)["tiny"]
    clean = run_sweep(spec, cache=tmp_path / "clean-cache", client=thread_client, progress=False)
    from mfcore.results import save_dataset

    clean = load_dataset(save_dataset(clean, tmp_path / "clean.nc"))
    provenance = ["wall_time_s", "computed_at"]
    assert_same_results(resumed.drop_vars(provenance), clean.drop_vars(provenance))

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
    assert_same_results(ds, again)
    assert ds.loss.dims == ("width", "seed", "t")
    # provenance: every run parameter, version, commit, dates, machine, per-run wall time
    assert ds.wall_time_s.dims == ("width", "seed") and np.all(ds.wall_time_s > 0)
    assert ds.computed_at.dims == ("width", "seed")
    for name in ("mfcore_version", "git_commit", "git_dirty", "assembled_at", "assembled_git_commit",
                 "assembled_on_cpu_count", "assembled_on_platform", "assembled_on_blas", "sweep_grid",
                 "sweep_fixed", "horizon", "step", "nodes", "method", "dtype", "units"):
        assert name in ds.attrs, name
    assert ds.attrs["horizon"] == 0.5 and ds.attrs["assembled_on_cpu_count"] >= 1
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


def test_invalid_run_is_refused_before_any_run(tmp_path, thread_client):
    spec = SweepSpec("fails", fixed={"dim": 8, "width": 8, "horizon": 0.5, "nodes": 32, "n_records": 4},
                     grid={"step": [0.05, 0.3]})  # 0.3 > 1/K'(1) = 0.25 for he4: rejected
    with pytest.raises(ValueError, match="sweep 'fails', run .*step=0.3.*unstable"):
        run_sweep(spec, cache=tmp_path / "cache", client=thread_client, progress=False)
    assert not list((tmp_path / "cache" / "runs").glob("*.nc"))  # nothing was computed


def test_failed_run_reports_and_keeps_the_others(tmp_path, thread_client, monkeypatch):
    sim_module = sys.modules["mfcore.simulate"]
    original = sim_module.simulate

    def blows_up_for_seed_1(problem, **kwargs):
        if kwargs["seed"] == 1:
            raise FloatingPointError("non-finite values in the finite neurons W at t=0.1")
        return original(problem, **kwargs)

    monkeypatch.setattr(sim_module, "simulate", blows_up_for_seed_1)  # the threads of thread_client see it
    spec = SweepSpec("fails", fixed={"dim": 8, "width": 8, "horizon": 0.5, "nodes": 32, "n_records": 4},
                     grid={"seed": [0, 1]})
    with pytest.raises(FloatingPointError, match="1 of 2 runs .* failed .*non-finite"):
        run_sweep(spec, cache=tmp_path / "cache", client=thread_client, progress=False)
    assert len(list((tmp_path / "cache" / "runs").glob("*.nc"))) == 1


def test_find_sweep_result_uses_the_repository(tmp_path, monkeypatch):
    monkeypatch.delenv("MFCORE_SWEEPS", raising=False)
    monkeypatch.chdir(tmp_path)  # any working directory
    assert find_sweep_result("no-such-sweep-xyz") is None
    found = find_sweep_result("c5")
    stored = REPO / "sweeps" / "paper" / "c5.nc"
    assert found == (stored if stored.is_file() else None)
    monkeypatch.setenv("MFCORE_SWEEPS", str(tmp_path / "sweeps"))
    (tmp_path / "sweeps" / "paper").mkdir(parents=True)
    (tmp_path / "sweeps" / "paper" / "mine.nc").write_bytes(b"")
    assert find_sweep_result("mine") == tmp_path / "sweeps" / "paper" / "mine.nc"


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


# ------------------------------------------------------------------------------------------
# faults: a worker process killed in the middle of a sweep
# ------------------------------------------------------------------------------------------
def test_killed_worker_loses_nothing(tmp_path):
    """SIGKILL one worker process while runs are in flight: the sweep still finishes, every run is
    in the result exactly once, each computed once, and the cache holds complete entries only."""
    import threading

    from distributed import Client, LocalCluster

    from mfcore.sweep import read_entry

    spec = SweepSpec("faults", fixed={"dim": 8, "width": 16, "horizon": 1.0, "step": 0.002, "nodes": 32,
                                      "n_records": 5}, grid={"seed": list(range(6))})  # ~0.3 s per run
    cache, log = tmp_path / "cache", tmp_path / "log.jsonl"
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=50)
    client = Client(cluster)
    try:
        out, errors = {}, []

        def work():
            try:
                out["ds"] = run_sweep(spec, cache=cache, client=client, log=log, progress=False)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        # wait until a run is in flight on a worker, then kill that worker's process
        deadline, victim = time.time() + 60, None
        while time.time() < deadline and victim is None:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            if busy:
                victim = sorted(busy)[0]
            else:
                time.sleep(0.02)
        assert victim is not None, "no run in flight"
        in_flight = set(client.processing()[victim])
        pid = client.run(os.getpid, workers=[victim])[victim]
        done_before = set(_log_keys(log))
        os.kill(pid, signal.SIGKILL)
        thread.join(timeout=120)
        assert not thread.is_alive() and not errors, errors
    finally:
        client.close()
        cluster.close()

    ds = out["ds"]
    assert ds.loss.dims == ("seed", "t") and ds.sizes["seed"] == 6 and np.all(np.isfinite(ds.loss))
    keys = _log_keys(log)
    assert len(keys) == 6 and len(set(keys)) == 6  # every run computed exactly once
    assert sorted(ds.run_key.values) == sorted(keys)  # ... and in the result once
    killed = {k.removeprefix("mfcore-run-") for k in in_flight}
    assert killed and killed <= set(keys) and not (killed & done_before)  # the killed runs were redone
    files = sorted(p.name for p in (cache / "runs").iterdir())
    assert files == sorted(f"{k}.nc" for k in keys)  # no partial or temporary file left
    for (_, params), key in zip(spec.runs(), ds.run_key.values):
        read_entry(entry_path(cache / "runs", key), key, params)  # complete and the right run
    direct = simulate(Problem(8, "he4"), width=16, horizon=1.0, step=0.002, nodes=32, n_records=5, seed=3,
                      progress=False)
    # the same run as a direct call (up to BLAS summation order in another process)
    np.testing.assert_allclose(ds.sel(seed=3).loss.values, direct.loss.values, rtol=1e-12)


# ------------------------------------------------------------------------------------------
# no live worker; a private local cluster
# ------------------------------------------------------------------------------------------
def test_sweep_without_live_workers_stops_with_a_message(tmp_path):
    """All workers gone (killed and not restarted): the sweep stops after the timeout, says why
    and how to resume, and keeps the finished runs."""
    from distributed import Client, LocalCluster

    from mfcore.sweep import SweepStalled

    spec = SweepSpec("stalls", fixed={"dim": 8, "width": 8, "horizon": 0.5, "step": 0.05, "nodes": 32,
                                      "n_records": 4}, grid={"seed": [0, 1, 2]})
    cache = tmp_path / "cache"
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                           silence_logs=50, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    client = Client(cluster)
    try:
        run_sweep(SweepSpec("first", fixed=spec.fixed, grid={"seed": [0]}), cache=cache, client=client,
                  progress=False)  # one run finished and cached
        cluster.scale(0)  # every worker gone, none restarted
        deadline = time.time() + 30
        while client.scheduler_info()["workers"] and time.time() < deadline:
            time.sleep(0.05)
        start = time.time()
        with pytest.raises(SweepStalled, match=r"no live Dask worker for 1 s .* 1 of its runs are finished "
                                               r"and kept in the cache: rerun the same command to resume"):
            run_sweep(spec, cache=cache, client=client, progress=False, no_worker_timeout=1.0)
        assert time.time() - start < 20
    finally:
        client.close()
        cluster.close()
    assert len(list((cache / "runs").glob("*.nc"))) == 1


def test_local_cluster_is_private():
    """TLS with credentials made for the run: a client without them (or with others) is refused; no
    dashboard, and the scheduler's HTTP server serves nothing."""
    import urllib.error
    import urllib.request

    from distributed import Client
    from distributed.security import Security

    from mfcore.sweep import _local_client

    client, cluster = _local_client(1)
    try:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        assert client.submit(int, "41").result(timeout=60) == 41  # the sweep's own client works
        connected = []
        for addr, kwargs in ((address, {}), (address.replace("tls://", "tcp://"), {}),
                             (address, {"security": Security.temporary()})):
            # A refused Client is left in a reference cycle; if the cyclic collector finalises it
            # while the next Client starts its event loop, Client.__del__ -> LoopRunner.stop waits
            # for the lock LoopRunner.start holds: a deadlock (seen once under two busy loops). So
            # collect before each attempt, and not during it.
            gc.collect()
            gc.disable()
            try:  # no credentials, plain TCP, other credentials
                foreign = Client(addr, timeout=5, **kwargs)
            except Exception:  # refused (TypeError, CommClosedError, TLS errors, ...)
                continue
            finally:
                gc.enable()
            connected.append((addr, kwargs))
            foreign.close()
        gc.collect()
        assert not connected
        port = cluster.scheduler.http_server.port
        assert port != 8787
        with pytest.raises(urllib.error.HTTPError) as http:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/json/identity.json", timeout=5)
        assert http.value.code == 404
    finally:
        client.close()
        cluster.close()
