"""Repository hygiene: the book cites its own pages, its mathematical reference is complete, and
figure cells of the notebooks are folded and shown once.

* No tracked (or new, not ignored) file refers to an external design document: the book's
  mathematical content lives in ``book/math_reference.md`` and is cited there by label.
* ``book/math_reference.md`` exists, is in ``_toc.yml``, defines every ``math-...`` section label
  of the book, and every label cited anywhere (``{ref}`math-x``` in pages and notebooks,
  "section ``math-x``" in docstrings) is defined there.
* Every notebook cell that shows or glues a matplotlib figure is tagged ``hide-input`` and
  ``remove-output``; notebooks are stored without outputs.
* Every value the book's pages glue from a notebook (``{glue:...}`../notebooks/X.ipynb::key```)
  is glued by that notebook.
* No test writes under version control: after every other test of the session the git working
  tree is as it was when the session started (measured quick run times go to ``_build/``;
  ``python -m tools.quick_times --commit`` stores them in ``book/quick_times.json``).
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
MATH_REFERENCE = REPO_ROOT / "book" / "math_reference.md"
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))

#: The section labels of the mathematical reference (book/math_reference.md).
MATH_LABELS = (
    "math-model",
    "math-limit",
    "math-step1d",
    "math-coupling",
    "math-function-gap",
    "math-hessian",
    "math-gap-equation",
    "math-authors",
    "math-moment-route",
)

# Built from pieces so that this file does not match its own patterns.
_DOC_WORD = re.compile(r"\b" + "SP" + r"EC\b")
_SHARED_PATTERNS = ("../" + "shared", "shared/" + "SP" + "EC")

_BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".pdf", ".nc", ".h5", ".npz", ".npy", ".woff", ".woff2",
                    ".ttf", ".ico", ".pkl", ".zip", ".gz"}


def _repository_files() -> list[Path]:
    """Files of the repository: tracked ones and new ones that are not ignored (never .git)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT, check=True, capture_output=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (git ls-files failed)")
    files = []
    for name in sorted(set(filter(None, out.split("\0")))):
        path = REPO_ROOT / name
        if path.is_file() and not path.is_symlink() and path.suffix.lower() not in _BINARY_SUFFIXES:
            files.append(path)
    return files


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def test_no_reference_to_external_design_documents():
    offenders = []
    for path in _repository_files():
        text = _text(path)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            if _DOC_WORD.search(line) or any(p in line for p in _SHARED_PATTERNS):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{lineno}: {line.strip()[:100]}")
    assert not offenders, (
        "these lines refer to a document outside the book; cite the book's mathematical reference "
        "instead ({ref}`math-...` in pages, \"section ``math-...``\" in docstrings):\n  "
        + "\n  ".join(offenders)
    )


def _toc_files() -> set[str]:
    from test_notebooks import _toc_files as toc_files  # one parser of _toc.yml for the suite

    return toc_files(REPO_ROOT / "_toc.yml")


def _defined_labels(text: str) -> set[str]:
    return set(re.findall(r"^\(([A-Za-z0-9_.:-]+)\)=\s*$", text, flags=re.MULTILINE))


def test_math_reference_exists_and_is_in_the_toc():
    assert MATH_REFERENCE.is_file(), f"{MATH_REFERENCE.relative_to(REPO_ROOT)} is missing"
    assert "book/math_reference" in _toc_files(), "book/math_reference is not listed in _toc.yml"


def test_math_reference_defines_every_section_label():
    labels = _defined_labels(MATH_REFERENCE.read_text(encoding="utf-8"))
    missing = [label for label in MATH_LABELS if label not in labels]
    assert not missing, f"book/math_reference.md lacks the labels {missing}"


# {ref}`math-x`, {ref}`text <math-x>`, and ``math-x`` (docstrings: "section ``math-x``").
_CITED = (
    re.compile(r"\{ref\}`(?:[^`<]*<)?(math-[a-z0-9-]+)>?`"),
    re.compile(r"``(math-[a-z0-9-]+)``"),
)


def test_every_cited_math_label_exists():
    if not MATH_REFERENCE.is_file():
        pytest.fail("book/math_reference.md is missing")
    defined = _defined_labels(MATH_REFERENCE.read_text(encoding="utf-8"))
    dangling = []
    for path in _repository_files():
        if path.suffix not in {".py", ".md", ".ipynb", ".rst", ".txt", ".toml", ".yml", ".yaml"}:
            continue
        if path.resolve() == Path(__file__).resolve():
            continue
        text = _text(path) or ""
        for pattern in _CITED:
            for label in pattern.findall(text):
                if label not in defined:
                    dangling.append(f"{path.relative_to(REPO_ROOT)}: {label}")
    assert not dangling, "labels cited but not defined in book/math_reference.md:\n  " + "\n  ".join(
        sorted(set(dangling)))


# ------------------------------------------------------------------------------------------------
# notebooks: figure cells, outputs
# ------------------------------------------------------------------------------------------------
_GLUED_FIGURE = re.compile(r"\bglue\(\s*[\"'][^\"']+[\"']\s*,\s*(?:fig\w*|plt\.gcf\(\)|[\w.]*figure\b)")


def _figure_cells(nb) -> list[tuple[int, list[str]]]:
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if "show_figure(" in cell.source or _GLUED_FIGURE.search(cell.source):
            found.append((index, list(cell.metadata.get("tags", []))))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_figure_cells_are_folded_and_shown_once(path: Path):
    """A figure is displayed by its own cell (code folded in the book), never glued: a glued figure
    would need a ``{glue:figure}`` directive, which JupyterLab cannot render
    (tests/test_notebook_reading.py checks the captions)."""
    nb = nbformat.read(path, as_version=4)
    bad = [
        f"cell {i} (tags {tags})" for i, tags in _figure_cells(nb)
        if "hide-input" not in tags or "remove-output" in tags
    ]
    glued = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and _GLUED_FIGURE.search(c.source)]
    assert not bad, f"{path.name}: figure cells must be tagged hide-input, not remove-output: " + ", ".join(bad)
    assert not glued, f"{path.name}: cells {glued} glue a figure; display it with mfcore.notebook.show_figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_stored_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts (clear them)"


_GLUE_REF = re.compile(r"\{glue(?::[a-z]+)?\}`(?:\.\./)?notebooks/([\w.-]+)\.ipynb::([A-Za-z0-9_]+)")


def test_glued_keys_used_by_pages_exist_in_their_notebooks():
    """A page that glues ``X.ipynb::key`` needs ``key`` to appear in X's code (a glue call)."""
    missing = []
    for page in sorted((REPO_ROOT / "book").glob("*.md")):
        for notebook, key in _GLUE_REF.findall(page.read_text(encoding="utf-8")):
            path = REPO_ROOT / "notebooks" / f"{notebook}.ipynb"
            if not path.is_file():
                missing.append(f"{page.name}: {notebook}.ipynb does not exist")
                continue
            nb = nbformat.read(path, as_version=4)
            code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
            if not re.search(r"[\"']" + re.escape(key) + r"[\"']", code):
                missing.append(f"{page.name}: {notebook}.ipynb does not glue {key!r}")
    assert not missing, "\n  ".join(["glued values missing:"] + sorted(set(missing)))


# ------------------------------------------------------------------------------------------------
# the tests leave the checkout as they found it
# ------------------------------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
                   cwd=cwd, check=True, capture_output=True)


def test_working_tree_state_sees_every_kind_of_change(tmp_path: Path):
    """The state compared at the end of the session changes with each write a test could make."""
    from conftest import git_working_tree_state

    try:
        _git(tmp_path, "init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / ".gitignore").write_text("_build/\n")
    (tmp_path / "tracked.json").write_text("{}\n")
    (tmp_path / "dirty.txt").write_text("a\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "start")
    (tmp_path / "dirty.txt").write_text("b\n")                # changed before the "session"
    start = git_working_tree_state(tmp_path)
    assert start is not None and set(start) == {"dirty.txt"}, start

    (tmp_path / "_build").mkdir()
    (tmp_path / "_build" / "quick_times.json").write_text("{}")  # ignored: allowed
    assert git_working_tree_state(tmp_path) == start
    (tmp_path / "dirty.txt").write_text("c\n")                # an already changed file rewritten
    assert git_working_tree_state(tmp_path) != start
    (tmp_path / "dirty.txt").write_text("b\n")
    assert git_working_tree_state(tmp_path) == start
    (tmp_path / "tracked.json").write_text("{\"x\": 1}\n")     # a clean tracked file rewritten
    assert "tracked.json" in git_working_tree_state(tmp_path)
    _git(tmp_path, "checkout", "-q", "--", "tracked.json")
    (tmp_path / "new.txt").write_text("x")                    # a new file that is not ignored
    assert "new.txt" in git_working_tree_state(tmp_path)


def test_quick_times_are_measured_outside_version_control():
    import test_notebooks

    measured = test_notebooks.QUICK_TIMES.resolve()
    assert REPO_ROOT / "_build" in measured.parents, (
        f"the notebook tests write their times to {measured}: it must be under _build/"
    )


@pytest.mark.run_last
def test_tests_leave_the_checkout_as_they_found_it(git_state_at_start):
    """Runs after every other test: no test changed, deleted or created a file git would report."""
    from conftest import git_working_tree_state

    now = git_working_tree_state()
    if git_state_at_start is None or now is None:
        pytest.skip("not a git checkout (git status failed)")
    changed = sorted(p for p in set(git_state_at_start) | set(now) if git_state_at_start.get(p) != now.get(p))
    assert not changed, (
        "files under version control (or new, not ignored) changed during the test session, by a test "
        "or by an editor running meanwhile; tests must write under tmp_path or _build/: "
        + ", ".join(f"{p} ({git_state_at_start.get(p, 'clean')} -> {now.get(p, 'clean')})" for p in changed)
    )
