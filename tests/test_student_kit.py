"""The student kit (`make student-kit`) and the student edition hold no solution text.

Solution text is detected by runs of eight consecutive words (:func:`tools.handouts.solution_shingles`)
that occur in a `{solution}` block of a notebook and nowhere else in the book (the notebooks without
their solutions, the other pages, the mfcore sources). Markup does not hide a run: math and code give
the same words in a notebook and in a rendered page, and roles only break runs.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from tools import handouts as H

REPO_ROOT = Path(__file__).resolve().parent.parent
STUDENT_HTML = REPO_ROOT / "_build" / "handouts" / "html"
BUILT_KIT = REPO_ROOT / "_build" / "student-kit.zip"


@pytest.fixture(scope="module")
def chapters():
    return H.load_chapters(REPO_ROOT)


@pytest.fixture(scope="module")
def fingerprints(chapters):
    return H.solution_shingles(chapters, REPO_ROOT)


@pytest.fixture(scope="module")
def kit(tmp_path_factory, chapters) -> Path:
    out = tmp_path_factory.mktemp("kit") / "student-kit.zip"
    H.write_kit(out, REPO_ROOT, chapters)
    return out


def _member_text(zf: zipfile.ZipFile, name: str) -> str | None:
    if name.endswith((".nc", ".whl", ".zip", ".png")):
        return None
    text = zf.read(name).decode("utf-8", errors="replace")
    if name.endswith(".ipynb"):
        return H.notebook_text(nbformat.reads(text, as_version=4))
    return text


def _assert_no_solutions(zip_path: Path, fingerprints):
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            text = _member_text(zf, name)
            if text is None:
                continue
            assert "{solution" not in text, f"{name}: a solution block"
            leaks = H.find_solution_text(text, fingerprints)
            assert not leaks, f"{zip_path.name}: {name} holds solution text of {leaks}"


def test_every_solution_can_be_detected(chapters, fingerprints):
    """Each solution has runs of its own, and the book's notebooks (with solutions) are caught."""
    empty = [label for label, runs in fingerprints.items() if not runs]
    assert not empty, f"solutions without a distinctive run of words: {empty}"
    for ch in chapters:
        original = H.notebook_text(nbformat.read(REPO_ROOT / ch.notebook, as_version=4))
        caught = H.find_solution_text(original, fingerprints)
        missing = {ex.label for ex in ch.exercises} - set(caught)
        assert not missing, f"{ch.notebook}: the solutions of {sorted(missing)} would go unnoticed"


def test_detection_survives_rendering(fingerprints, chapters):
    ex = chapters[0].exercises[0]
    rendered = ex.solution.replace("$", "\\(")  # math delimiters of a rendered page
    assert ex.label in H.find_solution_text(" ".join(rendered.split()), fingerprints)


def test_kit_holds_what_a_student_needs(kit, chapters):
    with zipfile.ZipFile(kit) as zf:
        names = set(zf.namelist())
    root = H.KIT_DIR
    for ch in chapters:
        assert f"{root}/notebooks/{Path(ch.notebook).name}" in names
    for path in (REPO_ROOT / "sweeps" / "paper").glob("*.nc"):
        assert f"{root}/sweeps/paper/{path.name}" in names, f"stored sweep {path.name} missing from the kit"
    for name in ("README.md", "requirements.txt", "constraints.txt", "environment.yml", "pyproject.toml",
                 "mfcore/__init__.py", "mfcore/notebook.py", "_toc.yml", "benchmarks/results.json"):
        assert f"{root}/{name}" in names, f"{name} missing from the kit"
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any("answer-key" in n for n in names)


def test_kit_has_no_solution_text(kit, fingerprints):
    _assert_no_solutions(kit, fingerprints)


def test_kit_notebooks_are_quick_handouts(kit, chapters):
    with zipfile.ZipFile(kit) as zf:
        for ch in chapters:
            nb = nbformat.reads(zf.read(f"{H.KIT_DIR}/notebooks/{Path(ch.notebook).name}").decode(), as_version=4)
            params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
            assert len(params) == 1 and 'profile = "quick"' in params[0].source
            for ex in ch.exercises:
                assert any(ex.label in c.source for c in nb.cells), f"{ex.label} missing from the kit"
            assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_kit_readme_gives_three_install_routes(kit):
    with zipfile.ZipFile(kit) as zf:
        readme = zf.read(f"{H.KIT_DIR}/README.md").decode()
    assert "python3 -m venv .venv" in readme and "source .venv/bin/activate" in readme
    assert "py -m venv .venv" in readme and "py -3." not in readme
    assert "Set-ExecutionPolicy" in readme and "Activate.ps1" in readme
    assert readme.index("Set-ExecutionPolicy") < readme.index(".venv\\Scripts\\Activate.ps1")
    assert "conda env create -f environment.yml" in readme
    assert "pip install -r requirements.txt -c constraints.txt" in readme and "pip install -e ." in readme
    assert "/tmp" not in readme


def test_unpacked_kit_is_a_root_for_mfcore(kit, tmp_path):
    """The notebooks find the stored sweeps from the installed package: the kit must be its root."""
    with zipfile.ZipFile(kit) as zf:
        zf.extractall(tmp_path)
    root = tmp_path / H.KIT_DIR
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import mfcore.notebook as n; "
            "print(n.repo_root()); print(n.repo_path('sweeps', 'paper', 'c5.nc').is_file())")
    out = subprocess.run([sys.executable, "-c", code, str(root)], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.split()
    assert Path(out[0]).resolve() == root.resolve() and out[1] == "True"


def test_kit_refuses_solution_text(tmp_path, chapters):
    import copy

    leaky = copy.deepcopy(chapters)
    ex = leaky[0].exercises[0]
    leaky[0].student.cells.append(nbformat.v4.new_markdown_cell(ex.solution))
    with pytest.raises(H.HandoutError, match="solution text"):
        H.write_kit(tmp_path / "kit.zip", REPO_ROOT, leaky)
    assert not (tmp_path / "kit.zip").exists()


def test_built_kit_has_no_solution_text(fingerprints):
    if not BUILT_KIT.exists():
        pytest.skip("_build/student-kit.zip not built: run make student-kit")
    _assert_no_solutions(BUILT_KIT, fingerprints)


# ------------------------------------------------------------------------------------------------
# the student edition
# ------------------------------------------------------------------------------------------------
def test_instructors_only_blocks():
    text = "a\n% instructors-only: begin\nsecret\n% instructors-only: end\nb"
    assert H.remove_instructors_only(text, "p.md") == "a\nb"
    for bad in ("% instructors-only: begin\nx", "x\n% instructors-only: end",
                "% instructors-only: begin\n% instructors-only: begin\n% instructors-only: end"):
        with pytest.raises(H.HandoutError, match="p.md"):
            H.remove_instructors_only(bad, "p.md")


def test_student_sources_hold_no_solution_and_no_instructors_section(tmp_path, chapters, fingerprints):
    course = (REPO_ROOT / "book" / "course.md").read_text()
    assert "% instructors-only: begin" in course and "For instructors" in course
    src = H.write_student_source(tmp_path / "source", chapters, REPO_ROOT)
    assert (src / "_config.yml").exists() and (src / "_toc.yml").exists()
    staged = (src / "book" / "course.md").read_text()
    assert "For instructors" not in staged and "answer-key" not in staged
    for ch in chapters:
        nb = nbformat.read(src / ch.notebook, as_version=4)
        original = nbformat.read(REPO_ROOT / ch.notebook, as_version=4)
        # code unchanged: the execution cache of `make book` serves the student edition
        assert [c.source for c in nb.cells if c.cell_type == "code"] == \
            [c.source for c in original.cells if c.cell_type == "code"]
        assert not H.find_solution_text(H.notebook_text(nb), fingerprints), ch.notebook


def _html_text(path: Path) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    return soup.get_text(" ")


def test_student_html_has_no_solution_text(fingerprints):
    if not STUDENT_HTML.exists():
        pytest.skip("_build/handouts/html not built: run make handouts")
    checked = 0
    for path in sorted(STUDENT_HTML.rglob("*")):
        if path.suffix == ".html":
            text = _html_text(path)
        elif path.suffix == ".ipynb":
            text = H.notebook_text(nbformat.read(path, as_version=4))
        elif path.suffix in (".md", ".txt", ".py"):
            text = path.read_text(encoding="utf-8", errors="replace")
        else:
            continue
        checked += 1
        rel = path.relative_to(STUDENT_HTML)
        assert not __import__("re").search(r"\{solution(?:-start|-end)?\}", text), f"{rel}: a solution block"
        leaks = H.find_solution_text(text, fingerprints)
        assert not leaks, f"student edition: {rel} holds solution text of {leaks}"
    assert checked > 10
    sources = STUDENT_HTML / "_sources"
    assert sources.exists(), "the student edition's downloadable sources are expected (without solutions)"


def test_student_html_has_no_instructors_section():
    if not STUDENT_HTML.exists():
        pytest.skip("_build/handouts/html not built: run make handouts")
    course = _html_text(STUDENT_HTML / "book" / "course.html")
    assert "Teaching with this book" in course
    assert "For instructors" not in course and "answer key" not in course.lower()
