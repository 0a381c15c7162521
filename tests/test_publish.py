"""Teaching and publishing: handouts and answer key, course page, numbering, PDF, the Pages workflow.

The tests on built artefacts (``_build/html``, ``_build/handouts``, ``_build/pdf``) skip when the
artefact is absent: ``make pdf`` (which makes the handouts) produces all of them; .ci/run runs it
before ``make test``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from tools import handouts as H

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD = REPO_ROOT / "_build"
HANDOUTS = BUILD / "handouts"
WORKFLOW_DIR = REPO_ROOT / ".github" / "workflows"


# ------------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------------
def _nb(*markdown: str, params: str = "profile = None  # quick, book, paper") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell("import math\n_before_parameters = set(globals())"))
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    nb.cells += [nbformat.v4.new_markdown_cell(m) for m in markdown]
    return nb


EXERCISE = "```{exercise}\n:label: ex-t-1\n\nCompute $x$.\n```"
SOLUTION = "```{solution} ex-t-1\n:class: dropdown\n\nThe secret answer is forty-two.\n```"


def _plain_fragments(markdown: str, min_len: int = 24) -> list[str]:
    """Runs of plain prose in a MyST text (no math, roles, directives), whitespace-normalised."""
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|\{[^}]*\}`[^`]*`|`[^`]*`|^\s*(```|:::).*$|^\s*:\w+:.*$",
                  "\n", markdown, flags=re.S | re.M)
    pieces = re.split(r"[\n*_()\[\]|]|(?<=[.;:!?])\s", text)
    return [" ".join(p.split()) for p in pieces if len(" ".join(p.split())) >= min_len]


@pytest.fixture(scope="module")
def chapters():
    return H.load_chapters(REPO_ROOT)


def _solution_fingerprints(chapters) -> list[tuple[str, str]]:
    """(label, fragment) for prose fragments of a solution that are not in the exercises' text."""
    out = []
    for ch in chapters:
        rest = " ".join(" ".join(ex.text.split()) for ex in ch.exercises)
        for ex in ch.exercises:
            for frag in _plain_fragments(ex.solution or ""):
                if frag not in rest:
                    out.append((ex.label, frag))
    return out


def _visible_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    text = soup.get_text(" ").translate(str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"'}))
    return " ".join(text.split())


# ------------------------------------------------------------------------------------------------
# the handout tool on small notebooks
# ------------------------------------------------------------------------------------------------
def test_handout_strips_solutions_and_sets_quick():
    nb = _nb("## Exercises\n\n" + EXERCISE + "\n\n" + SOLUTION + "\n\nAfter the block.")
    exercises, student = H.parse_notebook(nb, "notebooks/t.ipynb")
    assert [e.label for e in exercises] == ["ex-t-1"]
    assert "secret answer" in exercises[0].solution and "Compute" in exercises[0].text
    H.set_quick_profile(student, "t")
    text = "\n".join(c.source for c in student.cells)
    assert "secret answer" not in text and "{solution}" not in text
    assert "ex-t-1" in text and "After the block." in text
    assert 'profile = "quick"  # quick, book, paper' in text


def test_handout_colon_fences_and_gated_solutions():
    nb = _nb(":::{exercise}\n:label: ex-t-1\nCompute.\n:::",
             "```{solution-start} ex-t-1\n```\nGated secret text.",
             "more secret", "```{solution-end}\n```\nVisible again.")
    nb.cells.insert(4, nbformat.v4.new_code_cell("secret_code = 1"))
    exercises, student = H.parse_notebook(nb, "notebooks/t.ipynb")
    assert "Gated secret text." in exercises[0].solution and "secret_code" in exercises[0].solution
    text = "\n".join(c.source for c in student.cells)
    assert "secret" not in text and "Visible again." in text


@pytest.mark.parametrize(
    "cells, message",
    [
        (["```{exercise}\nNo label.\n```"], "exercise without a :label:"),
        ([EXERCISE], "ex-t-1: exercise without a solution"),
        ([SOLUTION], "ex-t-1: solution of an exercise not defined"),
        ([EXERCISE + "\n" + SOLUTION.replace("\n```", "")], "ex-t-1: the {solution} block is not closed"),
        (["```{exercise}\n:label: ex-t-1\nUnclosed."], "ex-t-1: the {exercise} block is not closed"),
        ([EXERCISE, EXERCISE], "ex-t-1: exercise label used twice"),
        ([EXERCISE, SOLUTION, SOLUTION], "ex-t-1: second solution"),
        ([EXERCISE, "```{solution}\nNo target.\n```"], "solution without the label"),
    ],
)
def test_malformed_blocks_name_notebook_and_label(cells, message):
    with pytest.raises(H.HandoutError) as info:
        H.parse_notebook(_nb(*cells), "notebooks/99_bad.ipynb")
    assert "notebooks/99_bad.ipynb" in str(info.value) and message in str(info.value)


def test_parameters_cell_without_profile_is_an_error():
    nb = _nb(params="seed = 0")
    with pytest.raises(H.HandoutError, match="no `profile"):
        H.set_quick_profile(nb, "notebooks/t.ipynb")


# ------------------------------------------------------------------------------------------------
# the handouts of the book's notebooks (no execution: same code as the tested notebooks)
# ------------------------------------------------------------------------------------------------
def test_every_exercise_has_a_solution_and_a_unique_label(chapters):
    labels = [ex.label for ch in chapters for ex in ch.exercises]
    assert labels, "no exercises found"
    assert len(labels) == len(set(labels))
    assert all(ex.solution and ex.solution.strip() for ch in chapters for ex in ch.exercises)


def test_handouts_keep_every_exercise_and_drop_every_solution(chapters):
    for ch in chapters:
        text = "\n".join(c.source for c in ch.student.cells)
        assert "{solution" not in text, f"{ch.notebook}: a solution block is left in the handout"
        for ex in ch.exercises:
            assert re.search(r":label:\s*" + re.escape(ex.label) + r"\s*$", text, re.M), (
                f"{ch.notebook}: {ex.label} missing from the handout")
    prints = _solution_fingerprints(chapters)
    without = sorted({ex.label for ch in chapters for ex in ch.exercises} - {label for label, _ in prints})
    assert len(without) <= 2, f"solutions without plain-prose fragments to look for: {without}"
    leaks = [(label, frag) for label, frag in prints
             if any(frag in " ".join(" ".join(c.source.split()) for c in ch.student.cells) for ch in chapters)]
    assert not leaks, f"solution text in handouts: {leaks[:3]}"


def test_handouts_run_the_tested_code_at_quick(chapters):
    """A handout's code is the notebook's code, with `profile = "quick"`: the nbmake run of the
    notebook at MFBOOK_PROFILE=quick (tests/test_notebooks.py) is the run of the handout."""
    for ch in chapters:
        original = nbformat.read(REPO_ROOT / ch.notebook, as_version=4)
        code = [c for c in original.cells if c.cell_type == "code" and "solution" not in c.metadata.get("tags", [])]
        student = [c for c in ch.student.cells if c.cell_type == "code"]
        assert len(code) == len(student), ch.notebook
        for a, b in zip(code, student):
            if "parameters" in a.metadata.get("tags", []):
                assert re.search(r'^profile\s*=\s*"quick"', b.source, re.M), f"{ch.notebook}: not quick"
                assert re.sub(r"^profile\s*=[^#\n]*", "", a.source, flags=re.M) == \
                    re.sub(r"^profile\s*=[^#\n]*", "", b.source, flags=re.M)
            else:
                assert a.source == b.source
            assert not b.outputs and b.execution_count is None


def test_answer_key_has_every_exercise_and_solution(chapters):
    key = H.answer_key_markdown(chapters)
    for ch in chapters:
        for ex in ch.exercises:
            assert f"(`{ex.label}`)" in key
            assert ex.solution.strip() in key


def test_write_handouts(tmp_path, chapters):
    H.write_handouts(tmp_path)
    written = sorted(p.name for p in (tmp_path / "notebooks").glob("*.ipynb"))
    assert written == sorted(Path(ch.notebook).name for ch in chapters)
    config = yaml.safe_load((tmp_path / "source" / "_config.yml").read_text())
    assert config["sphinx"]["config"]["hide_solutions"] is True
    assert config["execute"]["cache"].endswith("_build/.jupyter_cache")
    assert config["title"].endswith("(student edition)") and "((" not in config["title"]
    for path in config["sphinx"].get("local_extensions", {}).values():
        assert Path(path).is_absolute()
    assert not (tmp_path / "answer-key.md").exists(), "the answer key is made from the built book"


# ------------------------------------------------------------------------------------------------
# course and student pages
# ------------------------------------------------------------------------------------------------
def _notebook_labels() -> set[str]:
    labels = set()
    for path in (REPO_ROOT / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            labels |= set(re.findall(r"^\s*:(?:label|name):\s*(\S+)\s*$", cell.source, re.M))
            labels |= set(re.findall(r"^\((\S+)\)=\s*$", cell.source, re.M))
    return labels


@pytest.mark.parametrize("page", ["book/course.md", "book/students.md"])
def test_teaching_pages_cite_existing_labels(page):
    text = (REPO_ROOT / page).read_text()
    cited = set(re.findall(r"\{(?:ref|numref)\}`(?:[^`<]*<)?([^`>]+)>?`", text))
    missing = sorted(cited - _notebook_labels())
    assert not missing, f"{page} cites labels that no notebook defines: {missing}"
    for doc in re.findall(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", text):
        target = (REPO_ROOT / page).parent / doc
        assert any(target.with_suffix(s).exists() for s in (".md", ".ipynb")), f"{page}: {{doc}} {doc}"
    for nb_path, anchor in re.findall(r"\]\(\.\./(notebooks/[\w.]+\.ipynb)#([\w-]+)\)", text):
        nb = nbformat.read(REPO_ROOT / nb_path, as_version=4)
        headings = {re.sub(r"[^\w\s-]", "", h).strip().lower().replace(" ", "-")
                    for c in nb.cells if c.cell_type == "markdown"
                    for h in re.findall(r"^#{1,2}\s+(.+)$", c.source, re.M)}
        assert anchor in headings, f"{page}: {nb_path} has no heading #{anchor}"


def _parameter_names(nb_path: Path) -> set[str]:
    nb = nbformat.read(nb_path, as_version=4)
    names = set()
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.metadata.get("tags", []):
            names |= set(re.findall(r"^(\w+)\s*=", cell.source, re.M))
            if i + 1 < len(nb.cells):  # PROFILES keys are parameters too
                names |= set(re.findall(r"\b(\w+)\s*=", nb.cells[i + 1].source))
    return names


def test_course_activities_use_existing_parameters():
    text = (REPO_ROOT / "book" / "course.md").read_text()
    commands = re.findall(r"^\s*papermill\s+(\S+\.ipynb)\s+\S+((?:\s+-[py]\s+(?:\"[^\"]*\"|\S+)(?:\s+\S+)?)*)\s*$",
                          text, re.M)
    assert len(commands) >= 4, "the course page should give an in-class papermill command per unit"
    for notebook, args in commands:
        names = set(re.findall(r"-p\s+(\w+)", args)) | set(re.findall(r"-y\s+\"(\w+):", args))
        unknown = names - _parameter_names(REPO_ROOT / "notebooks" / notebook)
        assert not unknown, f"course.md: papermill {notebook} uses unknown parameters {sorted(unknown)}"


def test_course_units_and_toc():
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for page in ("book/course", "book/students", "book/math_reference"):
        assert page in files, f"{page} missing from _toc.yml"
    units = re.findall(r"^## Unit (\d+)", (REPO_ROOT / "book" / "course.md").read_text(), re.M)
    assert 4 <= len(units) <= 7


# ------------------------------------------------------------------------------------------------
# built artefacts (make book / make handouts / make pdf)
# ------------------------------------------------------------------------------------------------
def _need(path: Path, how: str) -> Path:
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO_ROOT)} not built: run {how}")
    return path


def test_numbering_by_chapter_in_built_book(chapters):
    html_dir = _need(BUILD / "html", "make book")
    for ch in chapters:
        if not ch.number or not ch.exercises:
            continue
        text = _visible_text((html_dir / Path(ch.notebook).with_suffix(".html")).read_text())
        assert f"Exercise {ch.number}.1" in text, f"{ch.notebook}: no 'Exercise {ch.number}.1'"
        assert f"Exercise {ch.number}.{len(ch.exercises)}" in text
        if any(c.metadata.get("mystnb", {}).get("figure") for c in ch.student.cells):
            assert f"Fig. {ch.number}.1" in text, f"{ch.notebook}: no 'Fig. {ch.number}.1'"


def test_student_edition_has_no_solutions(chapters):
    html_dir = _need(HANDOUTS / "html", "make handouts")
    prints = _solution_fingerprints(chapters)
    for ch in chapters:
        page = (html_dir / Path(ch.notebook).with_suffix(".html")).read_text()
        assert 'class="solution' not in page, f"{ch.notebook}: solution block in the student edition"
        text = _visible_text(page)
        for ex in ch.exercises:
            assert f"Exercise {ex.number}" in text, f"{ch.notebook}: {ex.label} missing from the student edition"
        leaks = [label for label, frag in prints if frag in text]
        assert not leaks, f"{ch.notebook}: solution text of {leaks} in the student edition"


def test_answer_key_html_has_every_solution(chapters):
    key = _need(HANDOUTS / "answer-key.html", "make handouts").read_text()
    for ch in chapters:
        for ex in ch.exercises:
            assert f'id="{ex.label}"' in key, f"{ex.label} missing from answer-key.html"
    text = _visible_text(key)
    missing = [label for label, frag in _solution_fingerprints(chapters) if frag not in text]
    assert not missing, f"solutions missing from answer-key.html: {missing}"


def test_jupyterlab_myst_is_compatible_with_jupyterlab():
    """`make lab` renders MyST: the pinned jupyterlab-myst must load in the pinned JupyterLab."""
    import sys

    jupyter = Path(sys.executable).parent / "jupyter"
    out = subprocess.run([str(jupyter), "labextension", "list"], capture_output=True, text=True)
    listing = out.stdout + out.stderr
    assert re.search(r"jupyterlab-myst v\S+ \S*enabled\S* \S*OK", listing), listing
    assert "not compatible" not in listing, listing


def _pdf_text(path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("name", ["book.pdf", "book-student.pdf"])
def test_pdf_has_every_chapter_and_typeset_math(name, chapters):
    text = _pdf_text(_need(BUILD / "pdf" / name, "make pdf"))
    flat = " ".join(text.split())
    for ch in chapters:
        assert " ".join(ch.title.split()) in flat, f"{name}: chapter {ch.title!r} not found"
    assert "Contents" in text and "Bibliography" in flat
    for raw in ("$$", "\\(", "\\begin{"):
        assert raw not in text, f"{name}: raw TeX {raw!r} in the PDF (MathJax did not run)"
    if name == "book-student.pdf":
        leaks = [label for label, frag in _solution_fingerprints(chapters) if frag in flat]
        assert not leaks, f"solutions of {leaks} in the student PDF"
    else:
        assert "Solution to Exercise" in flat


# ------------------------------------------------------------------------------------------------
# the GitHub Pages workflow
# ------------------------------------------------------------------------------------------------
def _workflow() -> dict:
    files = sorted(WORKFLOW_DIR.glob("*.yml"))
    assert files, "no workflow in .github/workflows"
    flows = {p.name: yaml.safe_load(p.read_text()) for p in files}
    assert "book.yml" in flows
    return flows["book.yml"]


def _runs(job: dict) -> str:
    return "\n".join(str(step.get("run", "")) for step in job.get("steps", []))


def _uses(job: dict) -> list[str]:
    return [str(step.get("uses", "")).split("@")[0] for step in job.get("steps", [])]


def test_workflow_builds_deploys_and_tests():
    flow = _workflow()
    on = flow.get("on", flow.get(True))  # YAML 1.1 reads the key `on` as True
    assert "main" in on["push"]["branches"] and "pull_request" in on
    jobs = flow["jobs"]
    build = next(j for j in jobs.values() if "actions/upload-pages-artifact" in _uses(j))
    assert "make book" in _runs(build)
    upload = next(s for s in build["steps"] if str(s.get("uses", "")).startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/site"
    deploy = next(j for j in jobs.values() if "actions/deploy-pages" in _uses(j))
    assert "github.event_name == 'push'" in str(build.get("if", "")) + str(deploy.get("if", ""))
    assert flow["permissions"]["pages"] == "write" and flow["permissions"]["id-token"] == "write"
    test = next(j for j in jobs.values() if "make test" in _runs(j) or ".ci/run" in _runs(j))
    assert "pull_request" in str(test.get("if", "pull_request"))


def test_workflow_runs_the_readme_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    m = re.search(r"^## Publishing\s*$(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert m, "README.md has no '## Publishing' section"
    commands = set(re.findall(r"`(make [\w-]+)`", m.group(1)))
    assert {"make book", "make test"} <= commands
    runs = "\n".join(_runs(j) for j in _workflow()["jobs"].values())
    if ".ci/run" in runs:  # the CI entry point runs make book and make test
        runs += "\n" + (REPO_ROOT / ".ci" / "run").read_text()
    missing = [c for c in sorted(commands) if c in ("make book", "make test") and c not in runs]
    assert not missing, f"the workflow does not run {missing}"


def test_pdf_tool_reads_titles_and_toc_order():
    from tools import pdf

    page = ('<h1>Site title</h1><h1><span class="section-number">5. </span>Chaos'
            '<a class="headerlink" href="#chaos">#</a></h1>')
    assert pdf._page_title(page, "x") == "5. Chaos"
    pages = pdf.toc_pages(REPO_ROOT)
    assert pages[0].docname == "book/intro" and pages[-1].docname == "book/bibliography"
    assert [p.docname for p in pages if p.docname.startswith("notebooks/0")] == sorted(
        p.docname for p in pages if p.docname.startswith("notebooks/0"))



# ------------------------------------------------------------------------------------------------
# Windows-proof commands on the teaching pages
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["book/course.md", "book/students.md"])
def test_teaching_commands_work_on_windows(page):
    text = (REPO_ROOT / page).read_text()
    assert "/tmp" not in text, f"{page}: a command writes to /tmp (no such folder on Windows)"
    assert not re.search(r"\bpy -3\.\d+", text), f"{page}: the py launcher with a hard-coded version"
    if page.endswith("students.md"):
        assert "py -m venv" in text and "Set-ExecutionPolicy" in text and "Activate.ps1" in text
        assert text.index("Set-ExecutionPolicy") < text.index("Activate.ps1")


def test_course_unit1_matches_chapter1():
    """Chapter 01 has no Monte-Carlo estimate: the course must not promise one."""
    text = (REPO_ROOT / "book" / "course.md").read_text()
    unit1 = re.search(r"^## Unit 1.*?(?=^## Unit 2)", text, re.M | re.S).group(0)
    nb = "\n".join(c.source for c in nbformat.read(REPO_ROOT / "notebooks" / "01_model.ipynb", as_version=4).cells)
    if "Monte-Carlo" not in nb and "Monte Carlo" not in nb:
        assert not re.search(r"Monte[- ]Carlo estimates (move|change)", unit1)


# ------------------------------------------------------------------------------------------------
# printing like a book
# ------------------------------------------------------------------------------------------------
def test_prepare_for_print_drops_folded_code_and_code_only_cells():
    from tools import pdf

    page = """<html><head></head><body>
    <div class="cell tag_hide-input docutils container"><details class="hide above-input">
      <summary><p>Show code cell source</p></summary><div class="cell_input"><pre>glue("a", 1)</pre></div>
    </details><div class="cell_output docutils container"><img src="fig.png"/></div></div>
    <div class="cell tag_hide-input tag_remove-output docutils container"><details class="hide above-input">
      <summary><p>Show code cell source</p></summary><div class="cell_input"><pre>secret_plot()</pre></div>
    </details></div>
    <div class="cell docutils container"><div class="cell_input"><pre>glue("b", 2)</pre></div></div>
    <div class="cell docutils container"><div class="cell_input"><pre>x = 1</pre></div>
      <div class="cell_output docutils container"><pre>kept output</pre></div></div>
    <div class="cell tag_hide-output docutils container"><div class="cell_input"><pre>y</pre></div>
      <details class="hide below-input"><summary>Show code cell output</summary>
      <div class="cell_output docutils container"><pre>folded output</pre></div></details></div>
    </body></html>"""
    out = pdf.prepare_for_print(page)
    assert "Show code cell source" not in out and "secret_plot" not in out and 'glue("a"' not in out
    assert 'glue("b"' not in out, "a code cell without output is left out of the print"
    assert "fig.png" in out and "kept output" in out and "x = 1" in out
    assert "folded output" in out and re.search(r"<details[^>]*open", out)
    assert "@page { size: A4" in out


def test_pdf_title_is_clean():
    from tools import pdf

    title = pdf.pdf_title("Propagation of Chaos", "Student edition")
    assert title == "Propagation of Chaos \u2014 Student edition" and "((" not in title
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "(student edition (without solutions))" not in makefile


def _pdf_pages(path: Path):
    from pypdf import PdfReader

    return PdfReader(path)


def _page_texts(path: Path) -> list[str]:
    text = _pdf_text(path)
    return text.split("\f")


A4 = (595.3, 841.9)


@pytest.mark.parametrize("name", ["pdf/book.pdf", "pdf/book-student.pdf", "handouts/answer-key.pdf"])
def test_pdf_pages_are_a4_and_numbered(name):
    path = _need(BUILD / name, "make pdf")
    reader = _pdf_pages(path)
    for k, page in enumerate(reader.pages):
        w, h = float(page.mediabox.width), float(page.mediabox.height)
        assert abs(w - A4[0]) < 2 and abs(h - A4[1]) < 2, f"{name}: page {k + 1} is {w:.0f} x {h:.0f} pt, not A4"
    texts = _page_texts(path)
    numbered = [k for k, t in enumerate(texts[:len(reader.pages)])
                if re.search(rf"(?m)^\s*{k + 1}\s*$", t)]
    assert len(numbered) >= 0.8 * (len(reader.pages) - 2), f"{name}: pages without page numbers"


@pytest.mark.parametrize("name", ["pdf/book.pdf", "pdf/book-student.pdf"])
def test_pdf_has_no_dead_toggles_or_code_only_pages(name):
    path = _need(BUILD / name, "make pdf")
    reader = _pdf_pages(path)
    texts = _page_texts(path)
    for k, text in enumerate(texts[:len(reader.pages)]):
        assert "Show code cell" not in text and "Hide code cell" not in text, f"{name}: toggle on page {k + 1}"
        body = re.sub(r"(?m)^\s*\d+\s*$", "", text).strip()
        resources = reader.pages[k].get("/Resources") or {}
        has_image = bool(resources.get("/XObject")) if hasattr(resources, "get") else False
        assert body or has_image, f"{name}: page {k + 1} is empty"
        lines = [ln for ln in body.splitlines() if ln.strip()]
        glue_lines = [ln for ln in lines if re.search(r"\bglue\(", ln)]
        assert len(glue_lines) < 5, f"{name}: page {k + 1} prints {len(glue_lines)} glue() calls"


def test_student_pdf_title_and_cover():
    path = _need(BUILD / "pdf" / "book-student.pdf", "make pdf")
    title = str(_pdf_pages(path).metadata.get("/Title", ""))
    assert "Student edition" in title and "((" not in title and "(student edition" not in title
    assert "Student edition" in _page_texts(path)[0]


def test_answer_key_pdf_has_cover_and_resolved_references(chapters):
    path = _need(HANDOUTS / "answer-key.pdf", "make pdf")
    texts = _page_texts(path)
    assert "Answer key" in texts[0] and "For instructors" in texts[0]
    flat = " ".join(" ".join(texts).split())
    for ch in chapters:
        for ex in ch.exercises:
            assert f"Exercise {ex.number}" in flat
    for raw in ("{glue", "{numref}", "{doc}", "{prf:ref}", "{ref}"):
        assert raw not in flat, f"answer-key.pdf: unresolved {raw}"


def test_answer_key_markdown_is_resolved(chapters):
    key = _need(HANDOUTS / "answer-key.md", "make handouts").read_text()
    for raw in ("{glue", "{numref}", "{doc}", "{prf:ref}", "{ref}"):
        assert raw not in key, f"answer-key.md: unresolved {raw}"
    for ch in chapters:
        for ex in ch.exercises:
            assert f"### Exercise {ex.number} (`{ex.label}`)" in key
