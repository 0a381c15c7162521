"""The in-class activities of the course page (``book/course.md``), as data, and how to run them.

Each unit of the course page gives one or more in-class commands, run from the ``notebooks/``
folder, each followed by an *Observe* sentence that says what the students will see::

    ```bash
    papermill 02_limit.ipynb 02_limit_he3.ipynb -p profile quick -p activation he3
    ```

    *Observe*: ...

:func:`parse_course` reads them back from the page (so that the tests of
``tests/test_course_activities.py`` run exactly the commands that the page prints),
:func:`run_activity` executes one with papermill's Python API into a folder of the caller's choice
(never into ``notebooks/``), and :func:`glued`, :func:`printed` and :func:`number` read the executed
notebook: the values glued by ``mfcore.notebook.glue`` (display outputs whose metadata holds
``{"scrapbook": {"name": ...}}``) and the text it printed or displayed.

Parameters are read as papermill's command line reads them: ``-p name value`` converts ``True``,
``False``, ``None``, integers and floats and keeps anything else as a string; ``-y "name: value"``
is YAML.
"""
from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import nbformat
import yaml

from mfcore.notebook import repo_path

#: The course page.
COURSE_PAGE = ("book", "course.md")
#: Kernel of every chapter (``kernelspec.name`` of the notebooks).
KERNEL = "python3"
#: Tag of the read-only cell that :func:`run_activity` may append (``probe=``).
PROBE_TAG = "course-probe"
#: Prefix of the line that a probe cell prints (followed by a Python literal).
PROBE_PREFIX = "COURSE-PROBE "


class CourseError(ValueError):
    """The course page does not have the expected shape (a unit without command or Observe)."""


@dataclass(frozen=True)
class Activity:
    """One in-class command of a unit, with the *Observe* sentence that follows it."""

    unit: int
    command: str
    notebook: str
    output: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    observe: str = ""

    @property
    def stem(self) -> str:
        """The chapter, e.g. ``"02_limit"``."""
        return Path(self.notebook).stem

    @property
    def name(self) -> str:
        """A short identifier, e.g. ``"unit2-02_limit_he3"``."""
        return f"unit{self.unit}-{Path(self.output).stem}"


def _resolve_type(value: str) -> Any:
    """The value of ``papermill -p name value`` (as papermill's command line converts it)."""
    if value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[value]
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse_papermill(command: str) -> tuple[str, str, dict[str, Any]]:
    """``(input notebook, output notebook, parameters)`` of one ``papermill`` command line.

    Understands the options the course uses: ``-p/--parameters name value`` and
    ``-y/--parameters_yaml "name: value"`` (later options win, as in papermill). Raises
    :class:`CourseError` for anything else, so that a command the test cannot reproduce is noticed.
    """
    words = shlex.split(command)
    if not words or words[0] != "papermill":
        raise CourseError(f"not a papermill command: {command!r}")
    positional, parameters, i = [], {}, 1
    while i < len(words):
        word = words[i]
        if word in ("-p", "--parameters"):
            if i + 2 >= len(words):
                raise CourseError(f"{command!r}: -p needs a name and a value")
            parameters[words[i + 1]] = _resolve_type(words[i + 2])
            i += 3
        elif word in ("-y", "--parameters_yaml"):
            if i + 1 >= len(words):
                raise CourseError(f"{command!r}: -y needs a YAML mapping")
            loaded = yaml.safe_load(words[i + 1])
            if not isinstance(loaded, dict):
                raise CourseError(f"{command!r}: -y needs a YAML mapping, got {words[i + 1]!r}")
            parameters.update(loaded)
            i += 2
        elif word.startswith("-"):
            raise CourseError(f"{command!r}: option {word} is not understood by the course tests")
        else:
            positional.append(word)
            i += 1
    if len(positional) != 2 or not all(p.endswith(".ipynb") for p in positional):
        raise CourseError(f"{command!r}: expected an input and an output notebook, got {positional}")
    return positional[0], positional[1], parameters


_UNIT = re.compile(r"^## Unit (\d+)\b.*$", re.M)
_SECTION_END = re.compile(r"^(?:## |% instructors-only)", re.M)
_COMMAND = re.compile(r"^\s*(papermill\s.+?)\s*$", re.M)
_OBSERVE = re.compile(r"\*Observe\*(?:\s*\([^)]*\))?:\s*(.*?)(?=\n\s*\n|\n\s*- \*\*|\n\s*```|\Z)", re.S)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def parse_course(text: str | None = None) -> list[Activity]:
    """Every in-class activity of the course page, in page order.

    Within a unit each ``papermill`` line is paired with the first *Observe* sentence after it (and
    before the next command). Raises :class:`CourseError` for a unit without a command, or a command
    without its Observe.
    """
    if text is None:
        text = repo_path(*COURSE_PAGE).read_text(encoding="utf-8")
    starts = list(_UNIT.finditer(text))
    activities: list[Activity] = []
    for k, start in enumerate(starts):
        end = starts[k + 1].start() if k + 1 < len(starts) else len(text)
        body = text[start.end():end]
        stop = _SECTION_END.search(body)
        body = body[: stop.start()] if stop else body
        unit = int(start.group(1))
        commands = list(_COMMAND.finditer(body))
        if not commands:
            raise CourseError(f"Unit {unit} of the course page has no in-class papermill command")
        for j, match in enumerate(commands):
            stop_at = commands[j + 1].start() if j + 1 < len(commands) else len(body)
            observe = _OBSERVE.search(body, match.end(), stop_at)
            if observe is None:
                raise CourseError(f"Unit {unit}: the command {match.group(1)!r} is not followed by an *Observe*")
            notebook, output, parameters = parse_papermill(match.group(1))
            activities.append(Activity(unit=unit, command=_normalise(match.group(1)), notebook=notebook,
                                       output=output, parameters=parameters,
                                       observe=_normalise(observe.group(1))))
    return activities


# ------------------------------------------------------------------------------------------------
# running an activity
# ------------------------------------------------------------------------------------------------
def run_activity(activity: Activity, out_dir: Path, *, parameters: Mapping[str, Any] | None = None,
                 output: str | None = None, probe: str | None = None,
                 notebooks_dir: Path | None = None, timeout: int = 600) -> nbformat.NotebookNode:
    """Execute ``activity`` as its command does, writing only under ``out_dir``; return the result.

    The kernel is ``python3`` and the working directory the ``notebooks/`` folder, as for a student
    who runs the command there; the executed copy goes to ``out_dir/output`` (``output`` defaults to
    the command's own output name). ``parameters`` replaces the command's parameters (e.g. the
    chapter's plain quick run, for a comparison). ``probe`` is the source of one read-only cell
    appended after the chapter's last cell (from a copy of the notebook under ``out_dir``); it
    should ``print(PROBE_PREFIX + repr(...))`` what it measures (read back by :func:`probed`).
    """
    import papermill as pm

    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else repo_path("notebooks")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = notebooks_dir / activity.notebook
    if probe is not None:
        nb = nbformat.read(source, as_version=4)
        cell = nbformat.v4.new_code_cell(probe)
        cell.metadata["tags"] = [PROBE_TAG]
        nb.cells.append(cell)
        source = out_dir / f"probe-{activity.notebook}"
        nbformat.write(nb, source)
    target = out_dir / (output or activity.output)
    pm.execute_notebook(
        str(source), str(target),
        parameters=dict(activity.parameters if parameters is None else parameters),
        kernel_name=KERNEL, cwd=str(notebooks_dir), progress_bar=False, log_output=False,
        execution_timeout=timeout,
    )
    return nbformat.read(target, as_version=4)


# ------------------------------------------------------------------------------------------------
# reading an executed notebook
# ------------------------------------------------------------------------------------------------
def _outputs(nb: nbformat.NotebookNode) -> Iterable[dict]:
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


def _plain(data: Mapping[str, Any]) -> str | None:
    for key, value in data.items():
        if key.endswith("text/plain"):
            return value if isinstance(value, str) else "".join(value)
    return None


def glued(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """``{name: value}`` of every value glued in the executed notebook (the last one of a name).

    A value whose text is a Python literal (strings, numbers, lists) is returned as that literal;
    anything else (a table, a figure) as its text.
    """
    values: dict[str, Any] = {}
    for out in _outputs(nb):
        name = out.get("metadata", {}).get("scrapbook", {}).get("name")
        if name is None:
            continue
        text = _plain(out.get("data", {}))
        try:
            values[name] = ast.literal_eval(text) if text is not None else None
        except (ValueError, SyntaxError):
            values[name] = text
    return values


def glued_html(nb: nbformat.NotebookNode, name: str) -> str | None:
    """The HTML of a glued table, with the random element ids of pandas' styler removed."""
    for out in _outputs(nb):
        if out.get("metadata", {}).get("scrapbook", {}).get("name") == name:
            for key, value in out.get("data", {}).items():
                if key.endswith("text/html"):
                    return re.sub(r"T_[0-9a-f]{5}\w*", "T_", value if isinstance(value, str) else "".join(value))
    return None


def printed(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook printed or displayed as text (streams, Markdown, plain text), in order."""
    parts = []
    for out in _outputs(nb):
        if out.get("metadata", {}).get("scrapbook"):
            continue
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
        else:
            data = out.get("data", {})
            text = data.get("text/markdown") or data.get("text/plain")
            if text:
                parts.append(text if isinstance(text, str) else "".join(text))
    return "\n".join(parts)


def html_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """The HTML outputs that are not glued values (tables shown by the notebook)."""
    found = []
    for out in _outputs(nb):
        if out.get("metadata", {}).get("scrapbook"):
            continue
        html = out.get("data", {}).get("text/html")
        if html:
            found.append(re.sub(r"T_[0-9a-f]{5}\w*", "T_", html if isinstance(html, str) else "".join(html)))
    return found


def probed(nb: nbformat.NotebookNode) -> Any:
    """The literal printed by the probe cell of :func:`run_activity` (``None`` if there is none)."""
    for cell in nb.cells:
        if PROBE_TAG in cell.get("metadata", {}).get("tags", []):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream":
                    for line in out.get("text", "").splitlines():
                        if line.startswith(PROBE_PREFIX):
                            return ast.literal_eval(line[len(PROBE_PREFIX):])
    return None


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:\s*×\s*10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+|[eE][-+]?\d+)?")


def numbers(text: str) -> list[float]:
    """Every number in ``text``, reading ``4.4 × 10⁻¹⁰`` and the minus sign ``−`` as the book prints them."""
    text = str(text).replace("−", "-")
    found = []
    for match in _NUMBER.finditer(text):
        token = match.group(0)
        if "×" in token:
            mantissa, power = token.split("×")
            found.append(float(mantissa) * 10.0 ** int(power.strip()[2:].translate(_SUPERSCRIPTS)))
        else:
            found.append(float(token))
    return found


def number(text: Any) -> float:
    """The first number of a glued value (``'0.43 ± 0.92'`` gives 0.43; a float is returned as is)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    found = numbers(text)
    if not found:
        raise ValueError(f"no number in {text!r}")
    return found[0]


def estimate(text: Any) -> tuple[float, float]:
    """``(value, standard error)`` of a glued ``'0.23 ± 0.04 ...'``."""
    match = re.search(r"([-+−]?\d+(?:\.\d+)?)\s*±\s*(\d+(?:\.\d+)?)", str(text))
    if match is None:
        raise ValueError(f"no 'value ± error' in {text!r}")
    return float(match.group(1).replace("−", "-")), float(match.group(2))
