"""Hostile or careless input: refused before any work with one line on stderr and exit code 2.

One test per kind of input (the command line, sweep configs and their outputs, schedulers); the
refusals are checked, never the out-of-memory or endless run they prevent.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mfcore import cli

SMALL = ["simulate", "--dim", "8", "--width", "4", "--nodes", "64", "--horizon", "0.2", "--step", "0.05",
         "--no-progress"]


def _refused(capsys, argv, *needles) -> str:
    """``mfcore argv`` exits with 2 and one line on stderr containing every needle."""
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# ------------------------------------------------------------------------------------------
# mfcore simulate: sizes, steps
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, needles", [
    (["--records", "1000000000"], ["records", "of memory but only", "installed on this machine"]),
    (["--activation", "he100000", "--method", "flow"], ["kernel degree 100000", "of memory but only"]),
    (["--nodes", "100000000000"], ["of memory but only"]),
    (["--width", "1000000", "--records", "10000", "--horizon", "1", "--step", "0.0001", "--keep-neurons",
      "--out", "x.nc"], ["of memory but only"]),
    (["--horizon", "1e300"], ["steps, more than the cap max_steps", "--max-steps"]),
    (["--step", "1e-300"], ["steps, more than the cap max_steps"]),
    (["--horizon", "1e300", "--method", "flow"], ["needs at least", "max_steps"]),
    (["--horizon", "0.01", "--step", "0.05"], ["larger than the horizon"]),
    (["--max-steps", "-1"], ["--max-steps"]),
    (["--seed", "-1"], ["--seed"]),
])
def test_simulate_refuses_before_allocating(argv, needles, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = time.time()
    _refused(capsys, SMALL + argv, *needles)
    assert time.time() - start < 60
    assert not list(tmp_path.iterdir())  # nothing written


def test_step_cap_is_an_option(capsys, tmp_path):
    _refused(capsys, SMALL + ["--max-steps", "3"], "max_steps=3")
    out = tmp_path / "r.json"
    assert cli.main(SMALL + ["--max-steps", "0", "--out", str(out)]) == 0  # 0 lifts the cap
    assert json.loads(out.read_text())["t"][-1] == pytest.approx(0.2)


def test_memory_messages_distinguish_total_and_available(capsys, monkeypatch):
    import mfcore.memory as memory

    monkeypatch.setattr(memory, "SAMPLE_PAUSE", 0.0)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2**20)
    err = _refused(capsys, SMALL + ["--width", "4096", "--dtype", "float32"], "only 1.0 MiB is available",
                   "other processes hold the rest")
    assert "use dtype float32" not in err  # float32 is already set
    monkeypatch.setattr(memory, "total_memory_bytes", lambda: 2**20)
    _refused(capsys, SMALL + ["--width", "4096"], "installed on this machine", "or use dtype float32")


# ------------------------------------------------------------------------------------------
# output files
# ------------------------------------------------------------------------------------------
def test_output_paths_are_checked_before_computing(capsys, tmp_path):
    (tmp_path / "dir.json").mkdir()
    _refused(capsys, SMALL + ["--out", str(tmp_path / "dir.json")], "is a directory")
    _refused(capsys, SMALL + ["--out", str(tmp_path / "missing" / "r.json")], "does not exist")
    _refused(capsys, SMALL + ["--out", "/proc/self/r.json"], "under /proc")
    _refused(capsys, ["bench", "--quick", "--out", str(tmp_path / "dir.json")], "is a directory")
    _refused(capsys, ["bench", "--quick", "--out", "/proc/bench.json"], "under /proc")


def test_unwritable_folder_is_refused(capsys, tmp_path, monkeypatch):
    import tempfile

    def no_space(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_space)  # the probe write fails
    _refused(capsys, SMALL + ["--out", str(tmp_path / "r.json")], "cannot write", "Permission denied")
    monkeypatch.undo()
    if os.geteuid() != 0:  # root writes into read-only folders
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            _refused(capsys, SMALL + ["--out", str(ro / "r.json")], "cannot write")
        finally:
            ro.chmod(0o700)


def test_existing_output_needs_overwrite_and_links_stay_links(capsys, tmp_path):
    out = tmp_path / "r.json"
    out.write_text("precious")
    _refused(capsys, SMALL + ["--out", str(out)], "exists; pass --overwrite")
    assert out.read_text() == "precious"
    assert cli.main(SMALL + ["--out", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["attrs"]["width"] == 4
    assert not [p for p in os.listdir(tmp_path) if p.endswith((".tmp", ".probe"))]
    # a symbolic link: refused; with --overwrite its target is replaced and the link stays a link
    target = tmp_path / "target.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    _refused(capsys, SMALL + ["--out", str(link)], "symbolic link")
    assert cli.main(SMALL + ["--out", str(link), "--overwrite"]) == 0
    assert link.is_symlink() and json.loads(target.read_text())["attrs"]["width"] == 4
    # bench: the same rule
    _refused(capsys, ["bench", "--quick", "--out", str(out)], "exists; pass --overwrite")


# ------------------------------------------------------------------------------------------
# sweep configs, grid values, sweep outputs
# ------------------------------------------------------------------------------------------
GOOD = ('[sweep.s.fixed]\ndim = 8\nhorizon = 0.2\nstep = 0.05\nnodes = 32\nn_records = 3\n'
        '[sweep.s.grid]\nwidth = [4, 8]\n')


@pytest.mark.parametrize("text, needles", [
    ("sweep = 3\n", ["'sweep' must be tables"]),
    ("[sweep.s]\nfixed = 3\n", ["fixed of sweep 's' must be a table"]),
    ("[sweep.s]\ngrid = 3\n[sweep.s.fixed]\ndim = 8\n", ["grid of sweep 's' must be a table"]),
    ("[defaults]\ncache = 5\n" + GOOD, ["[defaults] cache must be a folder name"]),
    ("[defaults]\nout_dir = 5\n" + GOOD, ["[defaults] out_dir must be a folder name"]),
    ('defaults = "x"\n' + GOOD, ["'defaults' must be a table"]),
    ("[sweep.s]\nout = 5\n" + GOOD, ["out of sweep 's' must be a file name"]),
    ("[sweep.s]\ndescription = 5\n" + GOOD, ["description of sweep 's' must be a string"]),
    ("[sweep.s]\nfixed = { dim = 8 }\ngrid = { width = 3 }\n", ["must be a non-empty list"]),
    (GOOD.replace("width = [4, 8]", "width = [4, -8]"), ["width must be an integer >= 0"]),
    (GOOD.replace("width = [4, 8]", 'width = [4, "8"]'), ["width must be an integer"]),
    (GOOD.replace("dim = 8", "dim = 1"), ["dim must be an integer >= 2"]),
    (GOOD.replace("step = 0.05\n", "").replace("width = [4, 8]", "step = [0.05, 0.3]"), ["step=0.3", "unstable"]),
    (GOOD.replace("width = [4, 8]", 'activation = ["he4", "swish"]'), ["swish"]),
    (GOOD.replace("width = [4, 8]", 'dtype = ["float64", "float16"]'), ["dtype must be one of"]),
    (GOOD.replace("horizon = 0.2\n", "").replace("width = [4, 8]", "horizon = [0.2, 1e300]"),
     ["more than the cap max_steps"]),
    (GOOD.replace("horizon = 0.2\n", "").replace("width = [4, 8]", "horizon = [0.2, 0.01]"),
     ["larger than the horizon"]),
    (GOOD.replace("width = [4, 8]", "width = [4, 100000000000]"), ["of memory but only"]),
])
def test_bad_configs_are_refused_before_the_cluster(text, needles, capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    start = time.time()
    _refused(capsys, ["sweep", str(cfg), "--cache", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "o"),
                      "--no-progress"], *needles)
    assert time.time() - start < 30  # no cluster was started
    assert not list((tmp_path / "cache" / "runs").glob("*.nc")) if (tmp_path / "cache").exists() else True
    assert not (tmp_path / "o").exists()


def test_sweep_outputs_are_checked_before_the_cluster(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    base = ["sweep", str(cfg), "--cache", str(tmp_path / "cache"), "--no-progress"]
    cfg.write_text(f'[sweep.s]\nout = "{tmp_path}/missing/s.nc"\n' + GOOD)
    _refused(capsys, base, "does not exist")
    cfg.write_text(GOOD)
    _refused(capsys, base + ["--out-dir", str(tmp_path), "--log", str(tmp_path / "missing" / "log.jsonl")],
             "--log", "does not exist")
    _refused(capsys, base + ["--out-dir", str(tmp_path), "--log", str(tmp_path)], "--log", "is a directory")
    (tmp_path / "s.nc").write_text("a stored result")
    _refused(capsys, base + ["--out-dir", str(tmp_path)], "exists; pass --overwrite")
    (tmp_path / "file").write_text("")
    _refused(capsys, base + ["--out-dir", str(tmp_path / "file")], "not a folder")
    assert not list((tmp_path / "cache" / "runs").glob("*.nc"))  # nothing was computed
    _refused(capsys, base + ["--no-worker-timeout", "0"], "--no-worker-timeout")


# ------------------------------------------------------------------------------------------
# schedulers that are not there, or not Dask
# ------------------------------------------------------------------------------------------
class _Server:
    """A local TCP server that accepts connections and either stays silent (an HTTP server waiting
    for a request) or answers like an HTTP server."""

    def __init__(self, reply: bytes | None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.reply, self.conns = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.sendall(self.reply)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"])
def test_foreign_scheduler_is_refused(reply, capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(GOOD)
    server = _Server(reply)
    try:
        start = time.time()
        _refused(capsys, ["sweep", str(cfg), "--cache", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "o"),
                          "--scheduler", f"tcp://127.0.0.1:{server.port}", "--no-progress"],
                 "does not answer as a Dask scheduler")
        assert time.time() - start < 15
    finally:
        server.close()


def test_unreachable_scheduler_is_refused_quickly(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(GOOD)
    base = ["sweep", str(cfg), "--cache", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "o"),
            "--no-progress", "--scheduler"]
    start = time.time()
    _refused(capsys, base + ["tcp://127.0.0.1:1"], "cannot reach the Dask scheduler")
    _refused(capsys, base + ["http://127.0.0.1:8787/status"], "must be an address like tcp://HOST:8786")
    assert time.time() - start < 15


def test_subprocess_exit_codes_are_documented():
    proc = subprocess.run([sys.executable, "-m", "mfcore", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "0 success, 1 numerical failure" in text and "2 invalid input" in text and "130 interrupted" in text
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "130" in readme and "Exit codes" in readme


def test_os_and_memory_errors_are_one_line(capsys, tmp_path, monkeypatch):
    import mfcore.results as results
    import mfcore.simulate as _  # noqa: F401

    def disk_full(ds, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(results, "save_dataset", disk_full)
    _refused(capsys, SMALL + ["--out", str(tmp_path / "r.json")], "No space left on device")
    monkeypatch.undo()

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.00 EiB")

    monkeypatch.setattr(sys.modules["mfcore.simulate"], "simulate", no_memory)
    _refused(capsys, SMALL, "out of memory", "3.00 EiB")
