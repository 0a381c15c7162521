"""Rerunning a chapter reproduces every number it glues (issue 13: the book's numbers are reproducible).

One chapter with many glued values (``03_timescales``: ~50 values, ~20 s at ``quick``) is executed
twice with the same parameters; every glued value must be identical in the two runs, except wall
times (keys containing ``wall``, ``time_s``, ``runtime`` or ``seconds``). Figures are compared
through their text representation only (PNG bytes are not part of the claim).
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO_ROOT / "notebooks" / "03_timescales.ipynb"
TIMING_MARKERS = ("wall", "time_s", "runtime", "seconds")


def glued_values(nb) -> dict[str, dict[str, str]]:
    """Glued key -> its non-image mime data (text), from an executed notebook."""
    values: dict[str, dict[str, str]] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is None:
                continue
            data = {
                mime: "".join(v) if isinstance(v, list) else str(v)
                for mime, v in output.get("data", {}).items()
                if "image/" not in mime
            }
            values[name] = data
    return values


def _is_timing(key: str) -> bool:
    return any(marker in key.lower() for marker in TIMING_MARKERS)


@pytest.mark.notebooks
def test_rerun_gives_identical_glued_values(tmp_path: Path, monkeypatch):
    import papermill

    monkeypatch.setenv("MFBOOK_PROFILE", "quick")
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}.ipynb"
        papermill.execute_notebook(
            str(NOTEBOOK), str(out), parameters={"profile": "quick"}, cwd=str(tmp_path),
            kernel_name="python3", progress_bar=False, execution_timeout=600,
        )
        runs.append(glued_values(nbformat.read(out, as_version=4)))
    first, second = runs
    assert len(first) >= 10, f"{NOTEBOOK.name} glued only {len(first)} values: choose a chapter that glues more"
    assert set(first) == set(second), f"the glued keys differ: {sorted(set(first) ^ set(second))}"
    differ = {
        key: (first[key], second[key]) for key in sorted(first)
        if not _is_timing(key) and first[key] != second[key]
    }
    assert not differ, "glued values differ between two identical runs:\n" + "\n".join(
        f"  {k}: {a} != {b}" for k, (a, b) in differ.items())
