"""Student handouts and answer key, made from the chapter notebooks (``make handouts``).

Reads the sphinx-exercise blocks of every notebook listed in ``_toc.yml``::

    ```{exercise}            ```{solution} ex-c5-1
    :label: ex-c5-1          :class: dropdown
    ...                      ...
    ```                      ```

(colon fences ``:::`` and the gated form ``{solution-start}`` ... ``{solution-end}`` work too) and
writes, into ``_build/handouts/``:

- ``notebooks/*.ipynb``: every notebook without its solutions, outputs cleared, ``profile = "quick"``;
- ``answer-key.md``: every exercise with its solution, by chapter (``answer-key.html`` and
  ``answer-key.pdf`` are added from the built book by ``python -m tools.handouts key-html`` and
  ``make pdf``);
- ``_config.student.yml``: the book's configuration with ``hide_solutions: true`` and the execution
  cache of ``make book``, from which ``make handouts`` builds the student edition (``html/``).

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
        chapters.append(Chapter(name, title, number, exercises, student))
    return chapters


def answer_key_markdown(chapters: list[Chapter]) -> str:
    """Every exercise and its solution, by chapter (MyST Markdown; glue roles are left as they are)."""
    out = ["# Answer key", "",
           "For instructors: every exercise of the book with its solution. Do not hand this file "
           "to students. Numbers such as {glue:text}`...` are filled in by the book "
           "(`answer-key.html`, made from the built book, shows them).", ""]
    for ch in chapters:
        if not ch.exercises:
            continue
        out += [f"## {'Chapter ' + ch.number + ': ' if ch.number else ''}{ch.title}", "",
                f"Source: `{ch.notebook}`", ""]
        for ex in ch.exercises:
            out += [f"### Exercise {ex.number} (`{ex.label}`)", "", ex.text, "",
                    "**Solution.**", "", ex.solution or "", ""]
    return "\n".join(out).rstrip() + "\n"


def student_config(root: Path, out: Path) -> dict:
    """The book's _config.yml with solutions hidden and the execution cache of ``make book``."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    config.setdefault("execute", {})["cache"] = str((root / "_build" / ".jupyter_cache").resolve())
    config["title"] = f"{config.get('title', '')} (student edition)".strip()
    return config


def write_handouts(out: Path = DEFAULT_OUT, root: Path = REPO_ROOT) -> list[Chapter]:
    chapters = load_chapters(root)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    for ch in chapters:
        nbformat.write(ch.student, out / ch.notebook)
    (out / "answer-key.md").write_text(answer_key_markdown(chapters))
    (out / "_config.student.yml").write_text(
        "# Written by tools/handouts.py: the student edition (solutions hidden). Do not edit.\n"
        + yaml.safe_dump(student_config(root, out), sort_keys=False, allow_unicode=True))
    (out / "README.md").write_text(
        "# Handouts\n\nMade by `make handouts`.\n\n"
        "- For students: `notebooks/` (no solutions, profile quick) and `html/` (the book without "
        "solutions; open `html/index.html`).\n"
        "- For instructors only: `answer-key.md`, `answer-key.html` (and `answer-key.pdf` after "
        "`make pdf`): every exercise with its solution.\n")
    n = sum(len(ch.exercises) for ch in chapters)
    print(f"handouts: {len(chapters)} notebooks, {n} exercises -> {out}")
    return chapters


# ------------------------------------------------------------------------------------------------
# answer key from the built book (glued numbers and math rendered)
# ------------------------------------------------------------------------------------------------
def answer_key_html(html_dir: Path, out_file: Path, root: Path = REPO_ROOT) -> int:
    """Collect every exercise and its solution from the built full book into one HTML page.

    The page uses the built book's stylesheets and offline MathJax (``html_dir/_static``).
    Returns the number of exercises written; raises :class:`HandoutError` if one is missing.
    """
    from bs4 import BeautifulSoup

    chapters = load_chapters(root)
    rel_static = Path(__import__("os").path.relpath(html_dir, out_file.parent)).as_posix()
    head = None
    sections, count = [], 0
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
        parts = [f"<h2>{'Chapter ' + ch.number + ': ' if ch.number else ''}{html_lib.escape(ch.title)}</h2>"]
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
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (_build/handouts)")
    key = sub.add_parser("key-html", help="answer-key.html from the built book")
    key.add_argument("--html", type=Path, default=REPO_ROOT / "_build" / "html")
    # accepted after the subcommand too (`key-html --html H --out O`, as the Makefile calls it)
    key.add_argument("--out", type=Path, default=argparse.SUPPRESS, help="output folder (_build/handouts)")
    args = parser.parse_args(argv)
    try:
        if args.command == "key-html":
            n = answer_key_html(args.html, args.out / "answer-key.html")
            print(f"answer key: {n} exercises -> {args.out / 'answer-key.html'}")
        else:
            write_handouts(args.out)
    except HandoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
