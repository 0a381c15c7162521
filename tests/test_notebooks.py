"""Every notebook runs end to end (profile quick, through nbmake) and follows the book's conventions."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
#: Quick-profile wall times measured by test_notebook_runs_quick_profile: under _build/, never a
#: tracked file. `python -m tools.quick_times --commit` copies them into book/quick_times.json (read
#: by book/course.md).
QUICK_TIMES = REPO_ROOT / "_build" / "quick_times.json"
#: Per-cell timeout of the quick runs (seconds).
CELL_TIMEOUT = 600


def _toc_files(toc_path: Path) -> set[str]:
    """All document paths (without extension) listed in a jb-book _toc.yml."""
    toc = yaml.safe_load(toc_path.read_text())
    found = {toc["root"]}

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.add(str(node["file"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return {str(Path(f).with_suffix("")) if f.endswith((".md", ".ipynb")) else f for f in found}


def _parameters_cell(nb):
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    return cells


def test_kernel_python3_resolves_to_this_interpreter():
    """papermill/jupyter-book start kernel "python3": it must run this (venv) Python."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    exe = spec.argv[0]
    # jupyter_client replaces a bare "python"/"python3"/"python3.X" by sys.executable.
    generic = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    assert exe in generic or Path(exe).resolve() == Path(sys.executable).resolve(), (
        f"kernel 'python3' ({spec.resource_dir}) runs {exe!r}, not {sys.executable!r}; "
        "remove that kernel spec or run via `make test` (which sets JUPYTER_PATH)"
    )


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_conventions(path: Path, repo_root: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)

    # Kernel: the generic python3 kernel (resolves to the interpreter running the build).
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernelspec.name must be 'python3'"

    # A cell tagged `parameters` that assigns `profile` (papermill injects overrides after it).
    params = _parameters_cell(nb)
    assert len(params) == 1, f"expected exactly one cell tagged 'parameters', found {len(params)}"
    tree = ast.parse(params[0].source)
    assigned = {
        t.id
        for node in ast.walk(tree)
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }
    assert "profile" in assigned, "the 'parameters' cell must define `profile`"
    # `profile = None`: the profile then comes from $MFBOOK_PROFILE (the test suite runs nbmake with
    # MFBOOK_PROFILE=quick; a notebook that fixed its profile would run at book size in the tests).
    profile_lines = [line for line in params[0].source.splitlines() if re.match(r"\s*profile\s*=", line)]
    assert profile_lines and re.match(r"\s*profile\s*=\s*None\s*(#|$)", profile_lines[0]), (
        f"the parameters cell must say `profile = None  # ...` (found {profile_lines[:1]})"
    )
    # The cell before the parameters ends with `_before_parameters = set(globals())`.
    index = nb.cells.index(params[0])
    before = [c for c in nb.cells[:index] if c.cell_type == "code"]
    last_line = before[-1].source.strip().splitlines()[-1].strip() if before and before[-1].source.strip() else ""
    assert last_line == "_before_parameters = set(globals())", (
        "the code cell before the parameters cell must end with `_before_parameters = set(globals())`"
    )

    # Committed without outputs.
    dirty = [
        i for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"cells {dirty} have outputs/execution counts: clear them before committing"

    # Listed in the table of contents.
    rel = path.relative_to(repo_root).with_suffix("").as_posix()
    assert rel in _toc_files(repo_root / "_toc.yml"), f"{rel} is not listed in _toc.yml"


def test_toc_entries_exist(repo_root: Path):
    missing = [
        f for f in sorted(_toc_files(repo_root / "_toc.yml"))
        if not any((repo_root / f).with_suffix(ext).exists() for ext in (".md", ".ipynb"))
    ]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def _record_quick_time(stem: str, seconds: float) -> None:
    """Store the measured quick run time in _build/quick_times.json (never in book/)."""
    from mfcore.notebook import record_quick_time

    record_quick_time(stem, seconds, QUICK_TIMES, measured_by=(
        "tests/test_notebooks.py::test_notebook_runs_quick_profile (pytest --nbmake, MFBOOK_PROFILE=quick)"))


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_quick_profile(path: Path):
    """`pytest --nbmake` on the notebook with MFBOOK_PROFILE=quick (read by `profile = None`)."""
    env = dict(os.environ, MFBOOK_PROFILE="quick")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake",
           f"--nbmake-timeout={CELL_TIMEOUT}", str(path)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, f"{path.name} failed at the quick profile:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    _record_quick_time(path.stem, elapsed)
