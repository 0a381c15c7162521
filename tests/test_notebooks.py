"""Every notebook runs end to end (profile=quick) and follows the book's conventions."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


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


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_quick_profile(path: Path, tmp_path: Path):
    import papermill

    # Raises papermill.PapermillExecutionError (with the traceback) if any cell fails.
    papermill.execute_notebook(
        str(path),
        str(tmp_path / path.name),
        parameters={"profile": "quick"},
        cwd=str(NOTEBOOK_DIR),
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=600,
    )
