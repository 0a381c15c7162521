"""The chapter ``notebooks/09_uniform.ipynb`` reads its stored sweeps (``u1_he4``, ``u1_he4_d32``,
``u1_misspec``) correctly.

The tiny versions of those sweeps in ``configs/test.toml`` (same names and structure as in
``configs/paper.toml``, tiny sizes) are computed into a temporary folder, and the notebook is executed
at the ``quick`` profile with ``sweep_file`` pointing at its ``u1_he4.nc``: every stored case must enter the check's
table and the claims-table keys, and the quick sizes must give no verdict.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_CONFIG = REPO / "configs" / "test.toml"
U1_SWEEPS = ["u1_he4", "u1_he4_d32", "u1_misspec"]


def _glued(nb, name: str) -> str:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("metadata", {}).get("scrapbook", {}).get("name") == name:
                data = out["data"]
                key = next(k for k in data if k.endswith("text/plain"))
                return str(data[key]).strip("'\"")
    raise KeyError(f"{name!r} is not glued in the executed notebook")


def _markdown_outputs(nb) -> str:
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/markdown" in data:
                texts.append(str(data["text/markdown"]))
    return "\n".join(texts)


@pytest.fixture(scope="module")
def tiny_u1_sweeps(tmp_path_factory) -> Path:
    from mfcore.sweep import run_config

    root = tmp_path_factory.mktemp("u1-sweeps")
    run_config(TEST_CONFIG, only=U1_SWEEPS, cache=root / "cache", out_dir=root, workers=1, progress=False)
    for name in U1_SWEEPS:
        assert (root / f"{name}.nc").is_file(), name
    return root


@pytest.mark.notebooks
def test_uniform_notebook_reads_the_stored_sweeps(tiny_u1_sweeps: Path, tmp_path: Path):
    import nbformat
    import papermill

    notebook = REPO / "notebooks" / "09_uniform.ipynb"
    out = tmp_path / notebook.name
    papermill.execute_notebook(str(notebook), str(out),
                               parameters={"profile": "quick", "sweep_file": str(tiny_u1_sweeps / "u1_he4.nc")},
                               cwd=str(notebook.parent), kernel_name="python3", progress_bar=False,
                               execution_timeout=600)
    nb = nbformat.read(out, as_version=4)
    text = _markdown_outputs(nb)
    for name in U1_SWEEPS:
        assert f"{name}.nc (mfcore" in text, f"{name}.nc is not read"
        assert f"({name}.nc)" in text, f"{name}.nc has no row in the check"
    measured = _glued(nb, "U1_measured")
    assert "misspecified" in measured and "n = 3" in measured, measured
    assert "nan" not in measured.lower(), measured
    assert "not checked" in _glued(nb, "U1_verdict")  # quick profile: no verdict
    assert _glued(nb, "U1_expected")
