"""Every notebook's parameters are listed, documented, checked and echoed (the book's parameter convention).

The convention (see ``mfcore/notebook.py``):

1. the imports cell ends with ``_before_parameters = set(globals())``;
2. the cell tagged ``parameters`` has one line per parameter, ``name = default  # comment``, with
   no ``=`` in the comment (so that ``papermill --help-notebook`` lists them), the first being
   ``profile = None``;
3. the next code cell defines ``PROFILES`` and calls ``mfcore.notebook.resolve_parameters``, which
   refuses unknown names, unknown profiles, values of the wrong type and values out of range (the
   range checks are tested in ``tests/test_notebook_parameters.py``), and prints the settings.

Static checks run with the unit tests. The checks marked ``notebooks`` execute, for each notebook, a
truncated copy holding only the cells up to the one that resolves the parameters (a few seconds).

The README's table of parameters is checked against the notebooks; regenerate it with
``.venv/bin/python tests/test_parameters.py --write``.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
README = REPO_ROOT / "README.md"
TABLE_START = "<!-- notebook-parameters:start -->"
TABLE_END = "<!-- notebook-parameters:end -->"
BEFORE_LINE = "_before_parameters = set(globals())"

_LINE = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>.+?)\s+#\s*(?P<comment>\S.*)$")


# ------------------------------------------------------------------------------------------------
# reading the notebooks
# ------------------------------------------------------------------------------------------------
def _code_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def parameters_cell(nb):
    """(index, cell) of the unique cell tagged ``parameters`` (``None`` if there is not exactly one)."""
    found = [(i, c) for i, c in _code_cells(nb) if "parameters" in c.metadata.get("tags", [])]
    return found[0] if len(found) == 1 else None


def parameter_lines(source: str) -> list[dict]:
    """The parameters of a parameters cell: name, default (source text) and comment, in order."""
    out = []
    for line in source.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            out.append({"name": None, "line": line})
        else:
            out.append({"name": m["name"], "default": m["value"], "comment": m["comment"].strip(), "line": line})
    return out


def notebook_parameters(path: Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    found = parameters_cell(nb)
    return [] if found is None else [p for p in parameter_lines(found[1].source) if p["name"]]


def resolve_cell_index(nb) -> int | None:
    for i, c in _code_cells(nb):
        if "resolve_parameters(" in c.source:
            return i
    return None


# ------------------------------------------------------------------------------------------------
# the README table
# ------------------------------------------------------------------------------------------------
def render_table() -> str:
    """The README's table of every notebook's parameters (markdown)."""
    rows = ["| notebook | parameter | what it is (and what it costs) |", "|---|---|---|"]
    for path in NOTEBOOKS:
        first = True
        for p in notebook_parameters(path):
            comment = p["comment"].replace("|", "\\|")
            nb_cell = f"`{path.stem}`" if first else ""
            rows.append(f"| {nb_cell} | `{p['name']}` | {comment} |")
            first = False
    return "\n".join(rows)


def readme_table_entries(text: str) -> set[tuple[str, str]]:
    """(notebook, parameter) pairs of the README's table (an empty notebook cell repeats the one above)."""
    if TABLE_START not in text or TABLE_END not in text:
        return set()
    block = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    entries, current = set(), None
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] == "notebook":
            continue
        if cells[0] and set(cells[0]) <= {"-", ":"}:  # the separator row
            continue
        if cells[0]:
            current = cells[0].strip("`")
        name = cells[1].strip("`")
        if current and name:
            entries.add((current, name))
    return entries


# ------------------------------------------------------------------------------------------------
# static checks
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_cell_follows_the_convention(path: Path):
    nb = nbformat.read(path, as_version=4)
    found = parameters_cell(nb)
    assert found is not None, f"{path.name}: expected exactly one cell tagged 'parameters'"
    index, cell = found
    ast.parse(cell.source)  # the cell parses
    params = parameter_lines(cell.source)
    bad = [p["line"] for p in params if p["name"] is None]
    assert not bad, f"{path.name}: parameter lines must read `name = default  # comment`: {bad}"
    with_equals = [p["name"] for p in params if "=" in p["comment"]]
    assert not with_equals, f"{path.name}: no '=' in parameter comments (papermill misreads them): {with_equals}"
    names = [p["name"] for p in params]
    assert names and names[0] == "profile", f"{path.name}: the first parameter must be `profile`"
    assert params[0]["default"] == "None", f"{path.name}: `profile = None` (None: $MFBOOK_PROFILE, else 'book')"
    assert len(set(names)) == len(names), f"{path.name}: a parameter is assigned twice: {names}"

    # the imports cell before it ends with the marker line
    before = [c for i, c in _code_cells(nb) if i < index]
    assert before and any(c.source.rstrip().splitlines()[-1:] == [BEFORE_LINE] for c in before), (
        f"{path.name}: the imports cell before the parameters cell must end with `{BEFORE_LINE}`"
    )
    # the next code cell resolves them
    after = [c for i, c in _code_cells(nb) if i > index]
    assert after and "resolve_parameters(" in after[0].source and "PROFILES" in after[0].source, (
        f"{path.name}: the code cell after the parameters cell must define PROFILES and call "
        "mfcore.notebook.resolve_parameters"
    )
    for profile in ("quick", "book", "paper"):
        assert re.search(r"[\"']" + profile + r"[\"']", after[0].source), (
            f"{path.name}: PROFILES has no {profile!r} profile"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_papermill_lists_every_parameter_with_its_comment(path: Path):
    import papermill

    listed = papermill.inspect_notebook(str(path))
    declared = notebook_parameters(path)
    assert declared, f"{path.name}: no parameters found"
    for p in declared:
        assert p["name"] in listed, f"{path.name}: papermill --help-notebook does not list {p['name']!r}"
        assert listed[p["name"]]["help"].strip(), f"{path.name}: parameter {p['name']!r} has no comment"
    extra = set(listed) - {p["name"] for p in declared}
    assert not extra, f"{path.name}: papermill lists parameters the convention does not: {sorted(extra)}"


def test_readme_lists_every_notebook_parameter():
    text = README.read_text(encoding="utf-8")
    assert TABLE_START in text and TABLE_END in text, (
        f"README.md lacks the parameters table between {TABLE_START} and {TABLE_END}; "
        "generate it with `.venv/bin/python tests/test_parameters.py --write`"
    )
    listed = readme_table_entries(text)
    actual = {(path.stem, p["name"]) for path in NOTEBOOKS for p in notebook_parameters(path)}
    missing, stale = sorted(actual - listed), sorted(listed - actual)
    assert not missing and not stale, (
        f"README.md's parameters table is out of date (missing: {missing}; no longer parameters: {stale}); "
        "regenerate it with `.venv/bin/python tests/test_parameters.py --write`"
    )


# ------------------------------------------------------------------------------------------------
# executed checks: a truncated copy of each notebook, up to the cell that resolves the parameters
# ------------------------------------------------------------------------------------------------
def _truncated_copy(path: Path, tmp_path: Path) -> Path:
    nb = nbformat.read(path, as_version=4)
    stop = resolve_cell_index(nb)
    if stop is None:
        pytest.fail(f"{path.name}: no cell calls mfcore.notebook.resolve_parameters")
    nb.cells = nb.cells[: stop + 1]
    out = tmp_path / f"{path.stem}_head.ipynb"
    nbformat.write(nb, out)
    return out


def _run_head(path: Path, tmp_path: Path, parameters: dict):
    import papermill

    head = _truncated_copy(path, tmp_path)
    return papermill.execute_notebook(
        str(head), str(tmp_path / f"{path.stem}_out.ipynb"), parameters=parameters,
        cwd=str(NOTEBOOK_DIR), kernel_name="python3", progress_bar=False, execution_timeout=300,
    )


def _expect_failure(path: Path, tmp_path: Path, parameters: dict) -> str:
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as info:
        _run_head(path, tmp_path, parameters)
    return str(info.value)


def _stream_text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")


@pytest.fixture
def quick_env(monkeypatch):
    monkeypatch.setenv("MFBOOK_PROFILE", "quick")


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_unknown_parameter_is_refused(path: Path, tmp_path: Path, quick_env):
    message = _expect_failure(path, tmp_path, {"dimm": 24})
    assert "ParameterError" in message and "unknown parameter" in message and "dimm" in message, message


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_unknown_profile_is_refused_with_the_valid_ones(path: Path, tmp_path: Path, quick_env):
    message = _expect_failure(path, tmp_path, {"profile": "huge"})
    assert "ParameterError" in message and "huge" in message, message
    for valid in ("'quick'", "'book'", "'paper'"):
        assert valid in message, f"the message does not list the valid profile {valid}: {message}"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_wrong_type_is_refused(path: Path, tmp_path: Path, quick_env):
    names = [p["name"] for p in notebook_parameters(path) if p["name"] != "profile"]
    if not names:
        pytest.skip(f"{path.name} has no parameter besides profile")
    # a mapping is the wrong type for every int, float, str, bool or list parameter
    message = _expect_failure(path, tmp_path, {name: {"wrong": "type"} for name in names})
    assert "ParameterError" in message and "must be" in message, message


_ECHO = [p for p in NOTEBOOKS if any(q["name"] == "dim" for q in notebook_parameters(p))]


@pytest.mark.notebooks
@pytest.mark.parametrize("path", _ECHO, ids=[p.stem for p in _ECHO])
def test_scalar_override_is_echoed(path: Path, tmp_path: Path, quick_env):
    nb = _run_head(path, tmp_path, {"dim": 24})
    text = _stream_text(nb)
    assert "profile 'quick'" in text, f"MFBOOK_PROFILE=quick not in force or not printed: {text[:300]!r}"
    assert "set by the reader: dim" in text and "dim=24" in text, f"the override is not echoed: {text[:300]!r}"


def test_the_chaos_chapter_takes_a_dimension():
    """The example of the book's reproducibility page (``-p dim 24`` on 05_chaos) must stay valid."""
    assert any(p.stem == "05_chaos" for p in _ECHO), "notebooks/05_chaos.ipynb has no `dim` parameter"


def test_estimate_never_prints_a_zero_standard_error():
    from mfcore.notebook import estimate

    assert estimate(0.98, 0.0123) == "0.98 ± 0.01"
    assert estimate(-0.5237, 0.0021) == "-0.524 ± 0.002"      # was "-0.52 ± 0.00"
    assert estimate(0.1, 0.0004, 3) == "0.1000 ± 0.0004"
    assert estimate(0.1, 0.0) == "0.10 ± 0.00"                # an exact zero stays as it is
    assert estimate(0.1, float("nan")) == "0.10" and estimate(float("nan"), 0.1) == "n/a"


def write_readme_table() -> None:
    """Replace the README's table (between the markers) by the current one."""
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    README.write_text(head + TABLE_START + "\n" + render_table() + "\n" + TABLE_END + tail, encoding="utf-8")


if __name__ == "__main__":  # `--write`: update README.md in place; else print the table
    if "--write" in sys.argv[1:]:
        write_readme_table()
    else:
        sys.stdout.write(TABLE_START + "\n" + render_table() + "\n" + TABLE_END + "\n")
