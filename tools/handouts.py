"""Student handouts and answer key, made from the chapter notebooks (``make handouts``).

Reads the sphinx-exercise blocks of every notebook listed in ``_toc.yml``::

    ```{exercise}            ```{solution} ex-c5-1
    :label: ex-c5-1          :class: dropdown
    ...                      ...
    ```                      ```

(colon fences ``:::`` and the gated form ``{solution-start}`` ... ``{solution-end}`` work too) and
writes, into ``_build/handouts/``:

- ``notebooks/*.ipynb``: every notebook without its solutions, outputs cleared, ``profile = "quick"``;
- ``source/``: the sources of the student edition (``make handouts`` builds ``html/`` from them):
  the book's pages and notebooks with every solution block removed (code cells unchanged, so the
  execution cache of ``make book`` serves them), the blocks marked *instructors only* removed from
  the pages, and ``_config.yml`` with ``hide_solutions: true``. The built edition's "Download
  source" therefore offers no solution either;
- ``answer-key.md``, ``answer-key.html``: every exercise with its solution, by chapter, made from
  the built book (``python -m tools.handouts key-html``), so that glued numbers and references are
  resolved (``answer-key.pdf``: ``make pdf``).

``python -m tools.handouts kit`` writes the student kit (``make student-kit``): one zip archive with
the handout notebooks, the ``mfcore`` sources, the stored sweeps, the pinned requirements and a
README with the install routes; it refuses to write an archive that contains solution text
(:func:`solution_shingles`).

Pages may mark a passage for instructors only with two MyST comment lines::

    % instructors-only: begin
    ...
    % instructors-only: end

A malformed block (exercise without ``:label:``, solution of an unknown exercise, exercise without
solution, unclosed fence, duplicated label) raises :class:`HandoutError` naming the notebook and
the label.
"""
from __future__ import annotations

import argparse
import copy
import html as html_lib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "_build" / "handouts"

_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|:{3,})[ \t]*(?:\{(?P<name>[A-Za-z0-9:_-]+)\})?[ \t]*(?P<arg>.*?)[ \t]*$")
_OPTION = re.compile(r"^[ \t]*:(?P<key>[A-Za-z0-9_-]+):[ \t]*(?P<value>.*?)[ \t]*$")
_PROFILE_LINE = re.compile(r"^(?P<lhs>profile[ \t]*=[ \t]*)(?P<value>[^#\n]*?)(?P<rest>[ \t]*(#.*)?)$", re.M)
_DIRECTIVES = {"exercise", "solution", "exercise-start", "exercise-end", "solution-start", "solution-end"}


class HandoutError(ValueError):
    """A malformed exercise or solution block (the message names the notebook and the label)."""


@dataclass
class Exercise:
    notebook: str  # path relative to the repository, e.g. "notebooks/05_chaos.ipynb"
    label: str
    text: str
    solution: str | None = None
    number: str = ""  # "5.1" (chapter.exercise) when the chapter is numbered
    options: dict = field(default_factory=dict)


@dataclass
class Chapter:
    notebook: str
    title: str
    number: str  # "" for an unnumbered chapter
    exercises: list[Exercise]
    student: nbformat.NotebookNode  # the handout
    stripped: nbformat.NotebookNode | None = None  # solutions removed, code and profile unchanged


# ------------------------------------------------------------------------------------------------
# table of contents
# ------------------------------------------------------------------------------------------------
def toc_chapters(root: Path = REPO_ROOT) -> list[tuple[str, str]]:
    """``[(docname, number)]`` of every chapter of ``_toc.yml`` in reading order ("" if unnumbered).

    Chapters of parts marked ``numbered: true`` are numbered 1, 2, ... across parts (the book uses
    ``html.use_multitoc_numbering``), as Sphinx numbers them.
    """
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    out, n = [], 0
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            if part.get("numbered"):
                n += 1
                out.append((str(chapter["file"]), str(n)))
            else:
                out.append((str(chapter["file"]), ""))
    return out


# ------------------------------------------------------------------------------------------------
# parsing
# ------------------------------------------------------------------------------------------------
def _close_index(lines: list[str], start: int, fence: str) -> int | None:
    """Index of the line closing the fence opened at ``start`` (same character, at least as long)."""
    char, n = fence[0], len(fence)
    closing = re.compile(r"^[ \t]*" + re.escape(char) + "{" + str(n) + r",}[ \t]*$")
    for j in range(start + 1, len(lines)):
        if closing.match(lines[j]):
            return j
    return None


def _split_options(body: list[str]) -> tuple[dict, str]:
    """Directive options (``:key: value`` lines or a ``---`` YAML block) and the remaining content."""
    options: dict = {}
    i = 0
    if body and body[0].strip() == "---":
        end = next((k for k in range(1, len(body)) if body[k].strip() == "---"), None)
        if end is not None:
            options = yaml.safe_load("\n".join(body[1:end])) or {}
            i = end + 1
    else:
        while i < len(body) and (m := _OPTION.match(body[i])):
            options[m["key"]] = m["value"]
            i += 1
    return options, "\n".join(body[i:]).strip("\n")


def parse_notebook(nb: nbformat.NotebookNode, name: str) -> tuple[list[Exercise], nbformat.NotebookNode]:
    """The exercises of a notebook (with their solutions) and the notebook without its solutions.

    ``name`` is used in error messages (e.g. ``"notebooks/05_chaos.ipynb"``). Raises
    :class:`HandoutError` on a malformed block.
    """
    exercises: dict[str, Exercise] = {}
    order: list[str] = []
    solutions: dict[str, str] = {}
    student = copy.deepcopy(nb)
    kept_cells = []
    gated: dict | None = None  # {"kind": "solution"|"exercise", "label":..., "parts": [...], "cell": i}

    def error(label: str | None, msg: str, cell: int) -> HandoutError:
        return HandoutError(f"{name}: {label or '(no label)'}: {msg} (cell {cell})")

    def add_exercise(label, text, options, cell):
        if not label:
            raise error(None, "exercise without a :label: option", cell)
        if label in exercises:
            raise error(label, "exercise label used twice", cell)
        exercises[label] = Exercise(name, label, text, options=options)
        order.append(label)

    def add_solution(label, text, cell):
        if not label:
            raise error(None, "solution without the label of its exercise (```{solution} ex-...)", cell)
        if label not in exercises:
            raise error(label, "solution of an exercise not defined before it in this notebook", cell)
        if label in solutions:
            raise error(label, "second solution of the same exercise", cell)
        solutions[label] = text

    for ci, cell in enumerate(student.cells):
        if cell.cell_type != "markdown":
            if gated is not None:
                gated["parts"].append(f"```python\n{cell.source}\n```")
                if gated["kind"] == "solution":
                    continue  # a code cell inside a gated solution is part of the solution
            if "solution" in cell.metadata.get("tags", []):
                continue  # a code cell tagged `solution` never goes to students
            kept_cells.append(cell)
            continue
        lines = cell.source.split("\n")
        kept: list[str] = []
        i = 0
        while i < len(lines):
            m = _OPEN.match(lines[i])
            if not m:
                if gated is not None:
                    gated["parts"].append(lines[i])
                if gated is None or gated["kind"] != "solution":
                    kept.append(lines[i])
                i += 1
                continue
            directive = (m["name"] or "").strip()
            j = _close_index(lines, i, m["fence"])
            if j is None:
                if directive in _DIRECTIVES:
                    label = m["arg"] or None
                    if directive.startswith("exercise"):
                        label = next((mm["value"] for mm in map(_OPTION.match, lines[i + 1:]) if mm and mm["key"] == "label"), label)
                    raise error(label, f"the {{{directive}}} block is not closed in the same cell", ci)
                j = len(lines) - 1  # an unclosed code fence: keep it as it is
            block = lines[i:j + 1]
            body = lines[i + 1:j]
            in_solution = gated is not None and gated["kind"] == "solution"
            if directive == "exercise":
                options, text = _split_options(body)
                add_exercise(options.get("label"), text, options, ci)
                if not in_solution:
                    kept.extend(block)
            elif directive == "solution":
                _, text = _split_options(body)
                add_solution(m["arg"], text, ci)  # dropped from the handout
            elif directive in ("exercise-start", "solution-start"):
                if gated is not None:
                    raise error(gated["label"], f"{{{directive}}} inside an open {{{gated['kind']}-start}}", ci)
                options, _ = _split_options(body)
                kind = directive.split("-")[0]
                label = options.get("label") if kind == "exercise" else (m["arg"] or None)
                gated = {"kind": kind, "label": label, "parts": [], "cell": ci, "options": options}
                if kind == "exercise":
                    kept.extend(block)
            elif directive in ("exercise-end", "solution-end"):
                kind = directive.split("-")[0]
                if gated is None or gated["kind"] != kind:
                    raise error(None, f"{{{directive}}} without a matching {{{kind}-start}}", ci)
                text = "\n".join(gated["parts"]).strip("\n")
                if kind == "exercise":
                    add_exercise(gated["label"], text, gated["options"], gated["cell"])
                    kept.extend(block)
                else:
                    add_solution(gated["label"], text, gated["cell"])
                gated = None
            else:
                if gated is not None:
                    gated["parts"].extend(block)
                if not in_solution:
                    kept.extend(block)
            i = j + 1
        source = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")
        if source.strip():
            cell.source = source
            kept_cells.append(cell)
    if gated is not None:
        raise error(gated["label"], f"{{{gated['kind']}-start}} without {{{gated['kind']}-end}}", gated["cell"])
    for label in order:
        if label not in solutions:
            raise HandoutError(f"{name}: {label}: exercise without a solution")
        exercises[label].solution = solutions[label]
    student.cells = kept_cells
    return [exercises[label] for label in order], student


# ------------------------------------------------------------------------------------------------
# handouts
# ------------------------------------------------------------------------------------------------
def set_quick_profile(nb: nbformat.NotebookNode, name: str) -> None:
    """Set ``profile = "quick"`` in the cell tagged ``parameters`` (keeping its comment)."""
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise HandoutError(f"{name}: expected one cell tagged 'parameters', found {len(cells)}")
    source, n = _PROFILE_LINE.subn(lambda m: f'{m["lhs"]}"quick"{m["rest"]}', cells[0].source, count=1)
    if n != 1:
        raise HandoutError(f"{name}: the parameters cell has no `profile = ...` line")
    cells[0].source = source


def clear_outputs(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#[ \t]+(.+?)[ \t]*$", cell.source, re.M)
            if m:
                return m.group(1)
    return fallback


def load_chapters(root: Path = REPO_ROOT) -> list[Chapter]:
    """Every notebook of the table of contents, parsed, with its handout (in reading order)."""
    chapters = []
    seen: dict[str, str] = {}
    for docname, number in toc_chapters(root):
        path = root / f"{docname}.ipynb"
        if not path.exists():
            continue
        name = path.relative_to(root).as_posix()
        nb = nbformat.read(path, as_version=4)
        exercises, student = parse_notebook(nb, name)
        for cell in student.cells:
            if cell.cell_type == "markdown":
                cell.source = remove_instructors_only(cell.source, name)
        stripped = copy.deepcopy(student)
        for k, ex in enumerate(ex for ex in exercises if "nonumber" not in ex.options):
            ex.number = f"{number}.{k + 1}" if number else str(k + 1)
        for ex in exercises:
            if ex.label in seen:
                raise HandoutError(f"{name}: {ex.label}: label also used in {seen[ex.label]}")
            seen[ex.label] = name
        clear_outputs(student)
        set_quick_profile(student, name)
        title = _title(nb, path.stem)
        student.cells.insert(0, nbformat.v4.new_markdown_cell(
            f"*Student handout of chapter {number + ' ' if number else ''}“{title}” "
            "(made by `make handouts`): the solutions are removed and the notebook runs at the "
            "`quick` profile; set `profile = \"book\"` in the parameters cell, or run "
            f"`papermill {path.name} out.ipynb -p profile book`, for the book's sizes.*"))
        chapters.append(Chapter(name, title, number, exercises, student, stripped))
    return chapters


def answer_key_markdown(chapters: list[Chapter]) -> str:
    """Every exercise and its solution, by chapter, in their *source* form (MyST, roles unresolved).

    Not written to disk (the answer key that instructors get is made from the built book, where glued
    numbers and references are resolved: :func:`answer_key_html`); used to check that the parsing
    loses nothing.
    """
    out = ["# Answer key", ""]
    for ch in chapters:
        if not ch.exercises:
            continue
        out += [f"## {'Chapter ' + ch.number + ': ' if ch.number else ''}{ch.title}", "",
                f"Source: `{ch.notebook}`", ""]
        for ex in ch.exercises:
            out += [f"### Exercise {ex.number} (`{ex.label}`)", "", ex.text, "",
                    "**Solution.**", "", ex.solution or "", ""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------------------------
# instructors-only passages, solution text fingerprints
# ------------------------------------------------------------------------------------------------
_INSTR_BEGIN = re.compile(r"^[ \t]*%[ \t]*instructors-only:[ \t]*begin[ \t]*$")
_INSTR_END = re.compile(r"^[ \t]*%[ \t]*instructors-only:[ \t]*end[ \t]*$")


def remove_instructors_only(text: str, name: str) -> str:
    """``text`` without the passages between ``% instructors-only: begin`` and ``... end`` lines."""
    out, inside, start = [], False, 0
    for k, line in enumerate(text.split("\n")):
        if _INSTR_BEGIN.match(line):
            if inside:
                raise HandoutError(f"{name}: instructors-only block opened twice (line {k + 1})")
            inside, start = True, k
        elif _INSTR_END.match(line):
            if not inside:
                raise HandoutError(f"{name}: instructors-only end without begin (line {k + 1})")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise HandoutError(f"{name}: instructors-only block not closed (opened at line {start + 1})")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out))


_ROLE_OR_FENCE = re.compile(r"\{[\w:.+-]+\}`[^`]*`|^[ \t]*(?:`{3,}|:{3,}).*$|^[ \t]*:[\w-]+:.*$", re.M)
_TOKEN = re.compile(r"[a-z0-9]+")
SHINGLE = 8  # words


def shingles(text: str, n: int = SHINGLE) -> set[tuple[str, ...]]:
    """Every run of ``n`` consecutive words of ``text`` (lower case, letters and digits only).

    MyST roles, fence lines and directive options break a run (their rendered form differs from
    their source), so a run found in a source is found in the rendered page as well: math (``$x$``
    in a source, ``\\(x\\)`` in a page) and code give the same words on both sides.
    """
    out: set[tuple[str, ...]] = set()
    for segment in _ROLE_OR_FENCE.split(text):
        words = _TOKEN.findall(segment.lower())
        out.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return out


def _page_sources(root: Path) -> dict[str, str]:
    """Text of every page of the table of contents that is not a chapter notebook."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    docs = [str(toc["root"])] + [str(c["file"]) for part in toc.get("parts", []) for c in part.get("chapters", [])]
    out = {}
    for doc in docs:
        for suffix in (".md", ".ipynb"):
            path = root / f"{doc}{suffix}"
            if path.exists() and suffix == ".md":
                out[doc] = path.read_text(encoding="utf-8")
    return out


def solution_shingles(chapters: list[Chapter], root: Path = REPO_ROOT, n: int = SHINGLE) -> dict[str, set]:
    """``{label: runs of n words}`` found in that exercise's solution and nowhere else in the book.

    "Nowhere else" is the book without its solutions: every notebook with its solution blocks removed
    (markdown and code), every other page, and the sources of ``mfcore`` (a solution may quote a
    formula of a docstring). A student file that contains one of these runs contains solution text.
    """
    allowed: set = set()
    for _, path in _kit_members(root):
        if path.suffix in (".py", ".md", ".toml", ".txt", ".yml", ".json"):
            allowed |= shingles(path.read_text(encoding="utf-8", errors="replace"), n)
    for ch in chapters:
        for cell in (ch.stripped or ch.student).cells:
            allowed |= shingles(cell.source, n)
    for text in _page_sources(root).values():
        allowed |= shingles(text, n)
    return {ex.label: shingles(ex.solution or "", n) - allowed for ch in chapters for ex in ch.exercises}


def find_solution_text(text: str, fingerprints: dict[str, set], n: int = SHINGLE) -> list[str]:
    """Labels of the solutions of which ``text`` contains a run (see :func:`solution_shingles`)."""
    found = shingles(text, n)
    return sorted(label for label, runs in fingerprints.items() if runs & found)


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """Every cell source and every text output of a notebook (what a reader of the file can see)."""
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(out["text"] if isinstance(out["text"], str) else "".join(out["text"]))
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    parts.append(value if isinstance(value, str) else str(value))
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------
# the student edition's sources
# ------------------------------------------------------------------------------------------------
def student_config(root: Path, out: Path) -> dict:
    """The book's _config.yml with solutions hidden and the execution cache of ``make book``."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    config.setdefault("execute", {})["cache"] = str((root / "_build" / ".jupyter_cache").resolve())
    config["title"] = f"{config.get('title', '')} (student edition)".strip()
    _absolute_extension_paths(config, root)
    return config


def _absolute_extension_paths(config: dict, root: Path) -> None:
    """Local Sphinx extensions are found relative to the configuration file: make their paths absolute."""
    local = config.get("sphinx", {}).get("local_extensions") or {}
    for name, path in local.items():
        local[name] = str((root / path).resolve())


def write_student_source(out: Path, chapters: list[Chapter], root: Path = REPO_ROOT) -> Path:
    """The sources of the student edition in ``out`` (a fresh folder): see the module's docstring."""
    import shutil

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config = student_config(root, out)
    shutil.copy2(root / "_toc.yml", out / "_toc.yml")
    for bib in config.get("bibtex_bibfiles", []):
        (out / bib).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / bib, out / bib)
    by_notebook = {ch.notebook: ch for ch in chapters}
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    docs = [str(toc["root"])] + [str(c["file"]) for part in toc.get("parts", []) for c in part.get("chapters", [])]
    for doc in docs:
        for suffix in (".ipynb", ".md"):
            src = root / f"{doc}{suffix}"
            if not src.exists():
                continue
            dst = out / f"{doc}{suffix}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            name = src.relative_to(root).as_posix()
            if name in by_notebook:
                nbformat.write(by_notebook[name].stripped, dst)
            elif suffix == ".md":
                dst.write_text(remove_instructors_only(src.read_text(encoding="utf-8"), name), encoding="utf-8")
            else:
                nb = nbformat.read(src, as_version=4)
                for cell in nb.cells:
                    if cell.cell_type == "markdown":
                        cell.source = remove_instructors_only(cell.source, name)
                nbformat.write(nb, dst)
            text = dst.read_text(encoding="utf-8")
            if re.search(r"\{solution(?:-start|-end)?\}", text):
                raise HandoutError(f"{name}: a solution block is left in the student edition's source")
    (out / "_config.yml").write_text(
        "# Written by tools/handouts.py: the student edition (no solutions). Do not edit.\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return out


def write_handouts(out: Path = DEFAULT_OUT, root: Path = REPO_ROOT) -> list[Chapter]:
    chapters = load_chapters(root)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    for ch in chapters:
        nbformat.write(ch.student, out / ch.notebook)
    write_student_source(out / "source", chapters, root)
    (out / "README.md").write_text(
        "# Handouts\n\nMade by `make handouts`.\n\n"
        "- For students: `notebooks/` (no solutions, profile quick) and `html/` (the book without "
        "solutions; open `html/index.html`). `make student-kit` packs the notebooks with everything "
        "needed to run them into `_build/student-kit.zip`.\n"
        "- For instructors only: `answer-key.md`, `answer-key.html` (and `answer-key.pdf` after "
        "`make pdf`): every exercise with its solution.\n")
    n = sum(len(ch.exercises) for ch in chapters)
    print(f"handouts: {len(chapters)} notebooks, {n} exercises -> {out}")
    return chapters


# ------------------------------------------------------------------------------------------------
# the student kit
# ------------------------------------------------------------------------------------------------
KIT_DIR = "mfbook-student"
#: Files and folders of the repository that the kit carries (folders recursively).
KIT_FILES = ("mfcore", "configs", "sweeps/paper", "benchmarks/results.json", "pyproject.toml",
             "requirements.txt", "constraints.txt", "environment.yml", "_toc.yml")
_KIT_SKIP = {"__pycache__", ".ipynb_checkpoints"}

KIT_README = """\
# Student kit: {title}

This archive holds what you need to run the chapters of the book on your own computer:

- `notebooks/`: one notebook per chapter, with the exercises and **without their solutions**, set
  to the small `quick` profile (seconds to a minute per chapter);
- `mfcore/` and `pyproject.toml`: the book's Python package (the simulations), installed below;
- `sweeps/paper/`: the stored results at the authors' sizes, which chapters 2, 5 and 7 read;
- `configs/`, `benchmarks/results.json`: the sweep configurations and stored timings;
- `requirements.txt`, `constraints.txt`, `environment.yml`: the exact versions the book was
  built and tested with.

You need Python 3.11 or newer. Unpack the archive, open a terminal in the folder `{kit}` (the one
holding this README) and follow one of the three routes.

## Linux and macOS (venv)

```bash
python3 -m venv .venv
source .venv/bin/activate
python -m pip install --upgrade pip
python -m pip install -r requirements.txt -c constraints.txt
python -m pip install -e .
```

## Windows (PowerShell, `py` launcher)

```powershell
py -m venv .venv
Set-ExecutionPolicy -Scope Process -ExecutionPolicy RemoteSigned
.venv\\Scripts\\Activate.ps1
python -m pip install --upgrade pip
python -m pip install -r requirements.txt -c constraints.txt
python -m pip install -e .
```

`py` starts the newest Python installed (`py --list` shows them; it must say 3.11 or newer, else
install one from python.org). The `Set-ExecutionPolicy` line lets PowerShell run the activation
script in this window only; without it PowerShell may refuse `Activate.ps1` ("running scripts is
disabled on this system"). From `cmd.exe` instead, activate with `.venv\\Scripts\\activate.bat`.

## Conda (any system)

```bash
conda env create -f environment.yml
conda activate mfbook
```

## Run the notebooks

With the environment active, in this folder:

```bash
jupyter lab notebooks/
```

Run a chapter with *Run → Run All Cells*. From a terminal, papermill runs a chapter with other
parameters and keeps the executed copy next to it (this works the same on every system):

```bash
cd notebooks
papermill 05_chaos.ipynb 05_chaos_run.ipynb -y "seeds: [3, 4]"
papermill --help-notebook 05_chaos.ipynb
```

Set `profile = "book"` in a notebook's `parameters` cell for the sizes of the book's figures
(minutes per chapter). The book's pages explain every chapter; the exercises are numbered as there.
"""


def _kit_members(root: Path) -> list[tuple[str, Path]]:
    members = []
    for name in KIT_FILES:
        path = root / name
        if path.is_file():
            members.append((name, path))
        elif path.is_dir():
            for f in sorted(path.rglob("*")):
                rel = f.relative_to(root)
                if f.is_file() and not (set(rel.parts) & _KIT_SKIP) and not f.name.endswith((".pyc", "~")):
                    members.append((rel.as_posix(), f))
        else:
            raise HandoutError(f"the student kit needs {name}, which is missing")
    return members


def write_kit(out: Path, root: Path = REPO_ROOT, chapters: list[Chapter] | None = None) -> list[str]:
    """Write the student kit (a zip archive) to ``out``; returns its member names.

    Raises :class:`HandoutError` (and writes nothing) if any text member contains solution text.
    """
    import io
    import zipfile

    chapters = chapters if chapters is not None else load_chapters(root)
    config = yaml.safe_load((root / "_config.yml").read_text())
    files: dict[str, bytes] = {}
    for ch in chapters:
        files[f"notebooks/{Path(ch.notebook).name}"] = nbformat.writes(ch.student).encode()
    for name, path in _kit_members(root):
        files[name] = path.read_bytes()
    files["README.md"] = KIT_README.format(title=config.get("title", "the book"), kit=KIT_DIR).encode()
    fingerprints = solution_shingles(chapters, root)
    for name, data in files.items():
        if name.endswith((".nc", ".whl", ".zip")):
            continue
        text = data.decode("utf-8", errors="replace")
        if name.endswith(".ipynb"):
            text = notebook_text(nbformat.reads(text, as_version=4))
        leaks = find_solution_text(text, fingerprints)
        if leaks or re.search(r"\{solution(?:-start|-end)?\}", text):
            raise HandoutError(f"student kit: {name} contains solution text ({', '.join(leaks) or '{solution}'})")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(f"{KIT_DIR}/{name}", date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[name])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(out)
    return [f"{KIT_DIR}/{name}" for name in sorted(files)]


# ------------------------------------------------------------------------------------------------
# answer key from the built book (glued numbers, references and math resolved)
# ------------------------------------------------------------------------------------------------
def _inline_md(node) -> str:
    from bs4 import NavigableString, Tag

    if isinstance(node, NavigableString):
        return re.sub(r"\s+", " ", str(node))
    if not isinstance(node, Tag):
        return ""
    classes = node.get("class", [])
    if node.name in ("script", "style") or "headerlink" in classes:
        return ""
    inner = "".join(_inline_md(c) for c in node.children)
    if "math" in classes:
        text = node.get_text()
        return re.sub(r"^\s*\\\((.*)\\\)\s*$", r"$\1$", text, flags=re.S)
    if node.name in ("em", "i"):
        return f"*{inner.strip()}*" if inner.strip() else ""
    if node.name in ("strong", "b"):
        return f"**{inner.strip()}**" if inner.strip() else ""
    if node.name == "code" or "literal" in classes:
        return f"`{node.get_text()}`"
    if node.name == "a":
        href = node.get("href", "")
        return f"[{inner.strip()}]({href})" if href.startswith("http") else inner
    if node.name == "img":
        return f"[figure: {node.get('alt', '')}]"
    if node.name == "br":
        return "\n"
    return inner


def html_to_markdown(node, indent: str = "") -> str:
    """Markdown of a rendered HTML fragment (paragraphs, lists, math, code, tables), for the answer key."""
    from bs4 import NavigableString, Tag

    blocks: list[str] = []
    inline: list[str] = []

    def flush():
        text = " ".join("".join(inline).split())
        if text:
            blocks.append(text)
        inline.clear()

    for child in node.children:
        if isinstance(child, NavigableString):
            inline.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        classes = child.get("class", [])
        name = child.name
        if name in ("script", "style") or "headerlink" in classes:
            continue
        if name == "div" and "math" in classes:
            flush()
            tex = re.sub(r"^\s*\\\[(.*)\\\]\s*$", r"\1", child.get_text(), flags=re.S).strip()
            blocks.append(f"$$\n{tex}\n$$")
        elif name == "pre" or (name == "div" and ("highlight" in classes or any(c.startswith("highlight-") for c in classes))):
            flush()
            pre = child if name == "pre" else child.find("pre")
            code = (pre or child).get_text().rstrip("\n")
            blocks.append(f"```\n{code}\n```")
        elif name in ("ul", "ol"):
            flush()
            items = []
            for k, li in enumerate(child.find_all("li", recursive=False)):
                mark = f"{k + 1}. " if name == "ol" else "- "
                body = html_to_markdown(li).strip().replace("\n", "\n" + " " * len(mark))
                items.append(mark + body)
            blocks.append("\n".join(items))
        elif name in ("h1", "h2", "h3", "h4", "h5", "h6"):
            flush()
            blocks.append("#" * int(name[1]) + " " + " ".join(_inline_md(child).split()))
        elif name == "table":
            flush()
            rows = [[" ".join(_inline_md(c).split()).replace("|", "\\|") for c in tr.find_all(["th", "td"])]
                    for tr in child.find_all("tr")]
            if rows:
                width = max(len(r) for r in rows)
                rows = [r + [""] * (width - len(r)) for r in rows]
                lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
                lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
                blocks.append("\n".join(lines))
        elif name == "p" and "admonition-title" in classes:
            flush()
            blocks.append("**" + " ".join(_inline_md(child).split()) + "**")
        elif name in ("p", "div", "section", "blockquote", "figure", "dl", "dd", "dt", "li", "details", "summary"):
            flush()
            inner = html_to_markdown(child)
            if inner.strip():
                blocks.append(inner)
        else:
            inline.append(_inline_md(child))
    flush()
    return "\n\n".join(b for b in blocks if b.strip())


def answer_key_html(html_dir: Path, out_file: Path, root: Path = REPO_ROOT) -> int:
    """Collect every exercise and its solution from the built full book into one HTML page, and
    the same as Markdown (``answer-key.md`` beside it) with every number and reference resolved.

    The page uses the built book's stylesheets and offline MathJax (``html_dir/_static``).
    Returns the number of exercises written; raises :class:`HandoutError` if one is missing.
    """
    from bs4 import BeautifulSoup

    chapters = load_chapters(root)
    rel_static = Path(__import__("os").path.relpath(html_dir, out_file.parent)).as_posix()
    config = yaml.safe_load((root / "_config.yml").read_text())
    head = None
    sections, count = [], 0
    md = ["# Answer key", "",
          f"*{config.get('title', '')}*: every exercise of the book with its solution, by chapter. "
          "For instructors: do not hand this file to students.", ""]
    for ch in chapters:
        if not ch.exercises:
            continue
        page = html_dir / Path(ch.notebook).with_suffix(".html")
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        if head is None:
            head = soup.head
            for tag in head.find_all(["link", "script"]):
                for attr in ("href", "src"):
                    value = tag.get(attr)
                    if value and value.startswith("../"):
                        tag[attr] = f"{rel_static}/{value[3:]}"
        heading = f"{'Chapter ' + ch.number + ': ' if ch.number else ''}{ch.title}"
        parts = [f"<h2>{html_lib.escape(heading)}</h2>"]
        md += [f"## {heading}", ""]
        for ex in ch.exercises:
            node = soup.find(id=ex.label)
            if node is None:
                raise HandoutError(f"{ch.notebook}: {ex.label}: exercise not found in {page}")
            solution = None
            for div in soup.find_all("div", class_="solution"):
                link = div.find("a", href=re.compile(r"#" + re.escape(ex.label) + r"$"))
                if link is not None:
                    solution = div
                    break
            if solution is None:
                raise HandoutError(f"{ch.notebook}: {ex.label}: solution not found in {page}")
            for div in (node, solution):
                div["class"] = [c for c in div.get("class", []) if c not in ("dropdown", "toggle-hidden")]
                for a in div.find_all("a", href=True):
                    href = a["href"]
                    if not href.startswith(("http", "#", "/")):
                        a["href"] = f"{rel_static}/notebooks/{href}"
            parts += [str(node), str(solution)]
            body = node.find("section") or node
            sol_body = solution.find("section") or solution
            md += [f"### Exercise {ex.number} (`{ex.label}`)", "", html_to_markdown(body), "",
                   "**Solution.**", "", html_to_markdown(sol_body), ""]
            count += 1
        sections.append("\n".join(parts))
    if head is None:
        raise HandoutError("no exercises found")
    title = head.find("title")
    if title is not None:
        title.string = "Answer key"
    body = ("<body><main class='bd-main'><div class='bd-article' style='max-width:50em;margin:auto;padding:2em'>"
            "<h1>Answer key</h1><p>For instructors: every exercise of the book with its solution. "
            "Do not hand this page to students.</p>" + "\n".join(sections) + "</div></main></body>")
    out_file.write_text(f"<!DOCTYPE html><html>{head}{body}</html>", encoding="utf-8")
    text = "\n".join(md).rstrip() + "\n"
    unresolved = re.findall(r"\{(?:glue|numref|doc|ref|prf:ref|eq|cite)[^}]*\}`", text)
    if unresolved:
        raise HandoutError(f"answer key: unresolved roles {sorted(set(unresolved))}")
    out_file.with_suffix(".md").write_text(text, encoding="utf-8")
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (_build/handouts)")
    key = sub.add_parser("key-html", help="answer-key.html and answer-key.md from the built book")
    key.add_argument("--html", type=Path, default=REPO_ROOT / "_build" / "html")
    # accepted after the subcommand too (`key-html --html H --out O`, as the Makefile calls it)
    key.add_argument("--out", type=Path, default=argparse.SUPPRESS, help="output folder (_build/handouts)")
    kit = sub.add_parser("kit", help="the student kit (one zip archive, no solutions)")
    kit.add_argument("--zip", type=Path, default=REPO_ROOT / "_build" / "student-kit.zip")
    args = parser.parse_args(argv)
    try:
        if args.command == "key-html":
            n = answer_key_html(args.html, args.out / "answer-key.html")
            print(f"answer key: {n} exercises -> {args.out / 'answer-key.html'}, {args.out / 'answer-key.md'}")
        elif args.command == "kit":
            members = write_kit(args.zip)
            print(f"student kit: {len(members)} files -> {args.zip}")
        else:
            write_handouts(args.out)
    except HandoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
