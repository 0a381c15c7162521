"""Saving/loading results and the ``mfcore`` command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import xarray as xr

from mfcore import Problem, load_dataset, save_dataset, simulate
from mfcore import cli


@pytest.fixture(scope="module")
def result():
    return simulate(Problem(16, "he4"), width=32, horizon=1.0, step=0.05, nodes=256, seed=0,
                    keep_neurons=True, keep_nodes=True, progress=False)


# ------------------------------------------------------------------------------------------
# results I/O
# ------------------------------------------------------------------------------------------
def test_netcdf_roundtrip(result, tmp_path):
    path = save_dataset(result, tmp_path / "run.nc")
    back = load_dataset(path)
    assert set(back.data_vars) == set(result.data_vars)
    for name in result.variables:
        assert np.array_equal(back[name].values, result[name].values), name
    for key, val in result.attrs.items():
        assert back.attrs[key] == val, key  # bools, lists and strings come back as they were
    assert back.attrs["keep_neurons"] is True and back.attrs["observers"] == []
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_json_roundtrip(result, tmp_path):
    path = save_dataset(result, tmp_path / "run.json")
    payload = json.loads(path.read_text())
    n = result.sizes["t"]
    for key in ("t", "mf_loss", "loss", "gap_mean", "function_gap", "flipped_fraction"):
        assert len(payload[key]) == n, key
    assert "gap" not in payload and "gap_quantile" not in payload  # multi-dimensional: .nc only
    assert payload["attrs"]["width"] == 32 and payload["attrs"]["keep_neurons"] is True
    back = load_dataset(path)
    assert np.array_equal(back.t.values, result.t.values)
    assert np.array_equal(back.loss.values, result.loss.values)


def test_json_writes_nan_as_null(tmp_path):
    ds = xr.Dataset({"mf_loss": ("t", [0.5, np.nan])}, coords={"t": [0.0, 1.0]}, attrs={"x": np.float64(np.nan)})
    path = save_dataset(ds, tmp_path / "nan.json")
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["mf_loss"] == [0.5, None]
    assert np.isnan(load_dataset(path).mf_loss.values[1])


def test_io_errors(result, tmp_path):
    with pytest.raises(ValueError, match=r"unknown result format '\.csv'.*\.nc, \.json"):
        save_dataset(result, tmp_path / "run.csv")
    with pytest.raises(ValueError, match="no extension"):
        load_dataset(tmp_path / "run")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.nc")
    with pytest.raises(ValueError, match="xarray.Dataset"):
        save_dataset({"t": [0]}, tmp_path / "x.json")


def test_write_is_atomic(result, tmp_path, monkeypatch):
    path = tmp_path / "run.nc"
    save_dataset(result.isel(t=[0]), path)
    before = path.read_bytes()

    def broken(self, target, **kwargs):
        with open(target, "wb") as fh:
            fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(result, path)
    assert path.read_bytes() == before  # the old result is intact
    assert os.listdir(tmp_path) == ["run.nc"]  # and no temporary file is left


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------
def test_python_dash_m_simulate_writes_json(tmp_path):
    out = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, "-m", "mfcore", "simulate", "--activation", "he4", "--dim", "16", "--width", "64",
         "--horizon", "1", "--step", "0.05", "--nodes", "512", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "network loss" in proc.stdout and "limit loss" in proc.stdout and "mean gap" in proc.stdout
    payload = json.loads(out.read_text())
    keys = {"t", "mf_loss", "loss", "gap_mean", "function_gap"}
    assert keys <= set(payload)
    assert len({len(payload[k]) for k in keys}) == 1 and len(payload["t"]) == 21
    assert payload["t"][-1] == pytest.approx(1.0)
    assert payload["attrs"]["width"] == 64 and payload["attrs"]["dim"] == 16


def test_cli_width_zero_gives_the_limit_only(tmp_path, capsys):
    out = tmp_path / "lim.json"
    assert cli.main(["simulate", "--dim", "16", "--width", "0", "--horizon", "1", "--nodes", "256",
                     "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert set(payload) == {"t", "mf_loss", "attrs"}
    assert len(payload["t"]) == len(payload["mf_loss"])
    assert "network loss" not in capsys.readouterr().out


def test_cli_netcdf_and_flow(tmp_path):
    out = tmp_path / "run.nc"
    assert cli.main(["simulate", "--dim", "8", "--width", "16", "--horizon", "0.5", "--nodes", "128",
                     "--method", "flow", "--rtol", "1e-7", "--keep-neurons", "--no-progress",
                     "--out", str(out)]) == 0
    ds = load_dataset(out)
    assert ds.attrs["method"] == "flow" and ds.attrs["rtol"] == 1e-7 and ds.gap.shape[1] == 16


@pytest.mark.parametrize("argv, name", [
    (["--dim", "1"], "dim"),
    (["--width", "-4"], "width"),
    (["--horizon", "0"], "horizon"),
    (["--step", "0.5"], "step"),
    (["--nodes", "1"], "nodes"),
    (["--activation", "swish"], "activation"),
    (["--out", "result.csv"], ".csv"),
    (["--dim", "abc"], "--dim"),
    (["--method", "euler"], "--method"),
])
def test_cli_invalid_input_exits_2(argv, name, capsys):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(cli.main(["simulate", "--width", "4", "--horizon", "0.2", "--nodes", "64", *argv]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err


def test_cli_invalid_input_subprocess():
    proc = subprocess.run([sys.executable, "-m", "mfcore", "simulate", "--dim", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "dim" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_plugins(monkeypatch, capsys):
    """Modules listed in PLUGIN_MODULES add subcommands through add_parser(subparsers)."""
    plugin = types.ModuleType("fake_plugin")

    def run(args):
        if args.n < 0:
            raise ValueError("n must be >= 0")
        print(f"plugin ran with n={args.n}")

    def add_parser(subparsers):
        p = subparsers.add_parser("fake", help="a test subcommand")
        p.add_argument("--n", type=int, default=1)
        p.set_defaults(func=run)

    plugin.add_parser = add_parser
    monkeypatch.setitem(sys.modules, "fake_plugin", plugin)
    monkeypatch.setattr(cli, "PLUGIN_MODULES", ("fake_plugin", "mfcore_no_such_module"))
    assert cli.main(["fake", "--n", "3"]) == 0
    assert "plugin ran with n=3" in capsys.readouterr().out
    assert cli.main(["fake", "--n", "-1"]) == 2
    assert "n must be >= 0" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# evaluation routes, --keep-neurons, permissions, memory refusal
# ------------------------------------------------------------------------------------------
def test_cli_gram_and_moments_agree(tmp_path, capsys):
    outs = {}
    for route in ("gram", "moments"):
        outs[route] = tmp_path / f"{route}.json"
        assert cli.main(["simulate", "--dim", "16", "--width", "2048", "--horizon", "0.4", "--step", "0.2",
                         "--nodes", "128", "--no-progress", "--evaluation", route, "--out", str(outs[route])]) == 0
        assert f"{route} route" in capsys.readouterr().out
    a, b = (json.loads(outs[r].read_text()) for r in ("gram", "moments"))
    assert a["attrs"]["evaluation_route"] == "gram" and b["attrs"]["evaluation_route"] == "moments"
    for key in ("loss", "gap_mean", "function_gap"):
        np.testing.assert_allclose(b[key], a[key], rtol=1e-9)


@pytest.mark.parametrize("extra", [["--out", "k.json"], []])
def test_cli_keep_neurons_needs_netcdf(tmp_path, extra, capsys):
    argv = ["simulate", "--dim", "8", "--width", "4", "--horizon", "0.2", "--nodes", "64", "--keep-neurons"]
    if extra:
        extra = ["--out", str(tmp_path / "k.json")]
    assert cli.main(argv + extra) == 2
    err = capsys.readouterr().err
    assert ".nc" in err and "--keep-neurons" in err and "Traceback" not in err
    assert not (tmp_path / "k.json").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
@pytest.mark.parametrize("ext", [".json", ".nc"])
def test_result_files_follow_the_umask(result, tmp_path, umask, ext):
    old = os.umask(umask)
    try:
        path = save_dataset(result, tmp_path / f"r{ext}")
    finally:
        os.umask(old)
    assert (os.stat(path).st_mode & 0o777) == (0o666 & ~umask)


def test_cli_refuses_a_run_larger_than_memory(capsys):
    assert cli.main(["simulate", "--dim", "3000000", "--width", "100000", "--horizon", "0.1",
                     "--nodes", "64"]) == 2
    err = capsys.readouterr().err
    assert "TiB of memory but only" in err and "installed on this machine" in err and "Traceback" not in err
