"""Chapters read the same in JupyterLab as in the book.

JupyterLab (with jupyterlab-myst) renders MyST, but knows nothing of myst-nb's ``glue``: a
``{glue:figure}`` directive shows as a red "Unknown Directive" box and a ``{glue:text}`` role as its
key. So the chapters keep glue only for values other pages read (the claims table), write the
results that their prose states as Markdown from code cells (``mfcore.notebook.say``), and give
each figure its caption twice: in the figure cell's metadata (``mystnb.figure``, rendered by the
book as a numbered figure) and in the JupyterLab-only cell after it (tagged ``remove-cell``).

The static tests read the notebooks as stored. The rendering test reads the chapters as the book
executed them (``_build/jupyter_execute``, after ``make book``), renders each with nbconvert's HTML
exporter (what a reader gets from "Export as HTML"), and fails on a glue directive or role, a glued
key or a ``{{placeholder}}`` shown literally, or an image output without its caption after it.
"""
from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from mfcore.notebook import _PLACEHOLDER

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
#: The executed chapters (``make book``); MFBOOK_EXECUTED_DIR points elsewhere (e.g. papermill outputs).
EXECUTED = Path(os.environ.get("MFBOOK_EXECUTED_DIR", REPO_ROOT / "_build" / "jupyter_execute" / "notebooks"))
TWIN_PREFIX = "**Figure (`{name}`).** "
GLUE_IN_MARKDOWN = re.compile(r"\{glue(?::[a-z]+)?\}")
GLUE_CALL = re.compile(r"\bglue\(\s*[\"']([A-Za-z_]\w*)[\"']")


def _tags(cell) -> set[str]:
    return set(cell.metadata.get("tags", []))


def _figure_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and "show_figure(" in c.source]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_glue_in_markdown_cells(path: Path):
    nb = nbformat.read(path, as_version=4)
    bad = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and GLUE_IN_MARKDOWN.search(c.source)]
    assert not bad, (f"{path.name}: markdown cells {bad} use glue, which JupyterLab shows as 'Unknown Directive' or "
                     "as the bare key: write the result from the code cell (mfcore.notebook.say) instead")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_figures_have_a_caption_in_the_book_and_in_jupyterlab(path: Path):
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in _figure_cells(nb):
        spec = cell.metadata.get("mystnb", {}).get("figure", {})
        name, caption = spec.get("name"), spec.get("caption", "")
        if not name or not caption.strip():
            problems.append(f"cell {i}: no mystnb.figure name and caption in its metadata")
            continue
        if "hide-input" not in _tags(cell) or "remove-output" in _tags(cell):
            problems.append(f"cell {i}: a figure cell is tagged hide-input and not remove-output")
        twin = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
        if twin is None or twin.cell_type != "markdown" or "remove-cell" not in _tags(twin):
            problems.append(f"cell {i}: not followed by its JupyterLab caption (markdown, tagged remove-cell)")
        elif twin.source != TWIN_PREFIX.format(name=name) + caption:
            problems.append(f"cell {i}: the JupyterLab caption differs from the book's ({name})")
        if cell.source.count("show_figure(") != 1:
            problems.append(f"cell {i}: one figure per cell (its caption is the cell's)")
        if re.search(r"\b(say|print|display)\(", cell.source):
            problems.append(f"cell {i}: a figure cell shows its figure only (the book wraps every output "
                            "of the cell in the figure, under the same label)")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_placeholders_name_values_glued_in_the_chapter(path: Path):
    """Every ``{{name}}`` in a say() call names a value that some cell glues (a typo fails here,
    before any execution); names glued from variables (loops over dictionaries) are accepted when
    the chapter glues by variable at all."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    literal = {m for src in code for m in GLUE_CALL.findall(src)}
    dynamic = any(re.search(r"\bglue\(\s*(?:f[\"']|[A-Za-z_])", src) for src in code)
    missing = sorted({m.group(1) for src in code if "say(" in src for m in _PLACEHOLDER.finditer(src)} - literal)
    if missing and dynamic:
        pytest.skip(f"{path.name} glues values by variable name; the rendering test checks its text")
    assert not missing, f"{path.name}: say() reads values never glued: {missing}"


def test_say_fills_and_refuses_unknown_names():
    from mfcore.notebook import fill

    assert fill("a {{x}} b {{y:.2f}}", {"x": "✓ holds", "y": 0.4567}) == "a ✓ holds b 0.46"
    assert fill(r"$\frac{a}{b}$ {{n}}", {"n": 3}) == r"$\frac{a}{b}$ 3"
    import numpy as np

    assert fill("{{v}}", {"v": np.float64(0.25)}) == "0.25"
    with pytest.raises(KeyError, match="c5_typo"):
        fill("{{c5_typo}}", {})


# ------------------------------------------------------------------------------------------------
# the executed chapters, rendered as nbconvert renders them
# ------------------------------------------------------------------------------------------------
class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def _executed():
    if not EXECUTED.is_dir():
        pytest.skip("_build/jupyter_execute not built: run make book")
    found = sorted(EXECUTED.glob("*.ipynb"))
    if not found:
        pytest.skip("no executed chapters in _build/jupyter_execute: run make book")
    return found


@pytest.mark.parametrize("stem", [p.stem for p in NOTEBOOKS])
def test_executed_chapter_reads_without_the_book(stem: str):
    executed = {p.stem: p for p in _executed()}
    if stem not in executed:
        pytest.skip(f"{stem} not executed by the last build")
    nb = nbformat.read(executed[stem], as_version=4)
    from nbconvert import HTMLExporter

    prose = []  # what a reader reads: markdown cells and Markdown/text outputs, not code
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            prose.append(cell.source)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            prose.append(data.get("text/markdown", ""))
    text = "\n".join(prose)
    keys = sorted({m for c in nb.cells if c.cell_type == "code" for m in GLUE_CALL.findall(c.source)})
    shown = [k for k in keys if re.search(rf"(?<![\w/.]){re.escape(k)}(?![\w])", text)]
    assert not shown, f"{stem}: glued keys shown literally in the prose: {shown[:10]}"
    assert not GLUE_IN_MARKDOWN.search(text), f"{stem}: a glue directive or role in the prose"
    assert "{{" not in text, f"{stem}: an unfilled {{{{placeholder}}}} in the prose"

    # a figure cell has one output, its image (the book wraps each output of the cell in the figure)
    extra = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.metadata.get("mystnb", {}).get("figure")
             and len([o for o in c.get("outputs", []) if o.get("output_type") != "stream"]) != 1]
    assert not extra, f"{stem}: figure cells {extra} have other outputs than their figure"

    # every image output is followed by its caption (the next cell, or a Markdown output after it)
    missing = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outs = cell.get("outputs", [])
        for j, out in enumerate(outs):
            if "image/png" not in out.get("data", {}) and "image/svg+xml" not in out.get("data", {}):
                continue
            after = nb.cells[i + 1].source if i + 1 < len(nb.cells) and nb.cells[i + 1].cell_type == "markdown" else ""
            later_md = any("text/markdown" in o.get("data", {}) for o in outs[j + 1:])
            if not (after.startswith("**Figure") or later_md):
                missing.append(f"cell {i}")
    assert not missing, f"{stem}: figures without a caption after them: {missing}"

    html, _ = HTMLExporter().from_notebook_node(nb)
    parser = _Text()
    parser.feed(html)
    visible = "".join(parser.parts)
    assert "Unknown Directive" not in visible and "{glue" not in visible


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_code_folded_in_the_book_is_collapsed_in_jupyterlab(path: Path):
    """A cell whose code the book folds or removes (plots, glue bookkeeping, say() prose) opens with
    its input collapsed in JupyterLab too (``jupyter.source_hidden``): the reader sees its output, the
    same view as the book's, and expands the code with a click."""
    nb = nbformat.read(path, as_version=4)
    bad = [i for i, c in enumerate(nb.cells)
           if c.cell_type == "code" and _tags(c) & {"hide-input", "remove-input"}
           and not c.metadata.get("jupyter", {}).get("source_hidden")]
    assert not bad, f"{path.name}: cells {bad} are folded in the book but not collapsed in JupyterLab"
