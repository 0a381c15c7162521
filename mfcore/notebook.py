r"""Functions shared by the book's notebooks: checked parameters, verdicts, numbers, figures, paths.

Convention of every chapter (see the README, "Rerunning a chapter"):

1. the imports cell ends with ``_before_parameters = set(globals())``;
2. the cell tagged ``parameters`` holds one line per parameter, ``name = default  # comment`` (no
   ``=`` in comments, so that ``papermill --help-notebook`` lists them). ``profile = None`` means
   the environment variable ``MFBOOK_PROFILE`` if set (the test suite sets ``quick``), else
   ``"book"``; every other parameter left at ``None`` takes its profile's value;
3. the next cell defines ``PROFILES`` and calls
   ``P = mfcore.notebook.resolve_parameters(globals(), PROFILES, before=_before_parameters)``,
   which refuses unknown names (e.g. papermill's ``-p dimm 24``), unknown profiles, values of
   the wrong type and values out of range (:data:`PARAMETER_RULES`, e.g. ``quad_width=-1``,
   ``widths=[]`` or a ``sweep_file`` that does not exist) with a one-line :class:`ParameterError`,
   and prints the settings in force.

Quick run times: the test suite measures each chapter's run at the ``quick`` profile into
``_build/quick_times.json`` (never a tracked file); ``python -m tools.quick_times`` shows how they
differ from ``book/quick_times.json`` (read by the course page) and
``python -m tools.quick_times --commit`` stores them there (:func:`commit_quick_times`).

Figures: :func:`show_figure` displays a figure as its cell's output; the cell (tagged ``hide-input``)
holds the label and caption in its metadata and is followed by a JupyterLab-only caption cell.
Results that the prose states are written by code cells as Markdown (:func:`say` fills ``{{name}}``
placeholders from the values glued by :func:`glue`), so a chapter reads the same in JupyterLab and in
the book; ``glue`` remains for the values other pages read (the claims table).
"""
from __future__ import annotations

import ast
import datetime
import json
import math
import numbers
import os
import platform
import re
import types
from pathlib import Path
from typing import Any, Callable, Mapping

#: Environment variable that chooses the profile when the notebook's ``profile`` is ``None``.
PROFILE_ENV = "MFBOOK_PROFILE"
#: Profile used when neither the notebook nor the environment chooses one.
DEFAULT_PROFILE = "book"

# Verdict strings glued by every claim check (the intro's claims table shows them).
HOLDS = "✓ holds"
FAILS = "✗ does not hold"
NOT_CHECKED = "– not checked at this size"
NOT_REPRODUCED = "✗ not reproduced"


class ParameterError(ValueError):
    """A notebook parameter is unknown, of the wrong type, or out of range (one-line message)."""


# ------------------------------------------------------------------------------------------------
# parameters
# ------------------------------------------------------------------------------------------------
def _type_name(example: Any) -> str:
    if isinstance(example, bool):
        return "bool"
    if isinstance(example, int):
        return "int"
    if isinstance(example, float):
        return "float"
    if isinstance(example, str):
        return "str"
    if isinstance(example, (list, tuple)):
        inner = {_type_name(e) for e in example}
        inner_name = inner.pop() if len(inner) == 1 else "value"
        return f"list of {inner_name}"
    if isinstance(example, dict):
        return "dict"
    return type(example).__name__


def _coerce(name: str, value: Any, example: Any) -> Any:
    """Return ``value`` converted to the type of ``example`` or raise :class:`ParameterError`."""
    want = _type_name(example)
    if example is None:
        return value
    if isinstance(example, (list, tuple, dict)) and isinstance(value, str):
        # papermill -p passes "[1, 2]" as a string; accept a Python literal
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ParameterError(
                f"parameter {name!r} must be a {want} (e.g. papermill -y \"{name}: [0, 1]\"), got {value!r}"
            ) from None
    if isinstance(example, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(example, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(example, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(example, str):
        if isinstance(value, str):
            return value
    elif isinstance(example, (list, tuple)):
        if isinstance(value, (list, tuple)) and not isinstance(value, str):
            if example:
                return [_coerce(f"{name}[{i}]", v, example[0]) for i, v in enumerate(value)]
            return list(value)
        if isinstance(value, (int, float)) and example and not isinstance(value, bool):
            return [_coerce(f"{name}[0]", value, example[0])]  # a single value for a list
    elif isinstance(example, dict):
        if isinstance(value, dict):
            return dict(value)
    else:
        return value
    article = "an" if want[0] in "aeiou" else "a"
    raise ParameterError(f"parameter {name!r} must be {article} {want}, got {value!r} ({type(value).__name__})")


def _is_parameter_like(value: Any) -> bool:
    return not isinstance(value, (types.ModuleType, types.FunctionType, type))


def resolve_profile(profile: str | None, profiles: Mapping[str, Any]) -> str:
    """The profile in force: ``profile``, else ``$MFBOOK_PROFILE``, else ``"book"``; checked."""
    if profile is None:
        profile = os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if not isinstance(profile, str) or profile not in profiles:
        raise ParameterError(f"profile must be one of {', '.join(map(repr, profiles))}; got {profile!r}")
    return profile


# ------------------------------------------------------------------------------------------------
# range checks of the parameters (one registry for every chapter)
# ------------------------------------------------------------------------------------------------
class _OutOfRange(Exception):
    """Raised by a rule with the allowed range as text; :func:`check_parameters` words the message."""


#: A rule: ``rule(value, settings)`` raises :class:`_OutOfRange` with the allowed range as text.
Rule = Callable[[Any, Mapping[str, Any]], None]


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _integer(lo: int, hi: int | Callable[[Mapping[str, Any]], int] | None = None,
             hi_text: str | Callable[[Mapping[str, Any]], str] | None = None, what: str = "an integer") -> Rule:
    """An integer in ``[lo, hi]``; ``hi`` may depend on the other settings (``hi_text`` says how)."""
    def rule(value, settings):
        top = hi(settings) if callable(hi) else hi
        if not _is_int(value) or value < lo or (top is not None and value > top):
            if top is None:
                raise _OutOfRange(f"{what} >= {lo}")
            why = hi_text(settings) if callable(hi_text) else hi_text
            raise _OutOfRange(f"{what} from {lo} to {top}" + (f" ({why})" if why else ""))
    return rule


def _real(lo: float = 0.0, hi: float | None = None, *, lo_open: bool = True, hi_open: bool = True) -> Rule:
    """A finite number in the interval from ``lo`` to ``hi`` (open or closed ends)."""
    left = f"> {lo:g}" if lo_open else f">= {lo:g}"
    text = (f"a finite number {left}" if hi is None
            else f"a number {'strictly ' if lo_open and hi_open else ''}between {lo:g} and {hi:g}")

    def rule(value, settings):
        if not _is_real(value) or not math.isfinite(value):
            raise _OutOfRange(text)
        if (value <= lo if lo_open else value < lo) or (hi is not None and (value >= hi if hi_open else value > hi)):
            raise _OutOfRange(text)
    return rule


def _optional(inner: Rule, meaning: str) -> Rule:
    """``None`` (with ``meaning``) or a value accepted by ``inner``."""
    def rule(value, settings):
        if value is None:
            return
        try:
            inner(value, settings)
        except _OutOfRange as exc:
            raise _OutOfRange(f"{exc} or None ({meaning})") from None
    return rule


def _int_list(lo: int, *, min_len: int = 1, exact_len: int | None = None, powers_of_two: bool = False,
              what: str = "integers") -> Rule:
    """A list of distinct integers >= ``lo`` (at least ``min_len``, or exactly ``exact_len``)."""
    count = (f"exactly {exact_len}" if exact_len is not None
             else "a non-empty list" if min_len <= 1 else f"at least {min_len}")
    kind = "powers of two" if powers_of_two else what
    text = (f"{count} distinct {kind} >= {lo}" if count.startswith(("exactly", "at least"))
            else f"a non-empty list of distinct {kind} >= {lo}")

    def rule(value, settings):
        if not isinstance(value, (list, tuple)):
            raise _OutOfRange(text)
        n = len(value)
        if (exact_len is not None and n != exact_len) or n < min_len or n == 0:
            raise _OutOfRange(text)
        if any(not _is_int(v) or v < lo or (powers_of_two and v & (v - 1)) for v in value):
            raise _OutOfRange(text)
        if len(set(value)) != n:
            raise _OutOfRange(text)
    return rule


def _real_list(lo: float = 0.0, *, min_len: int = 1) -> Rule:
    """A list of distinct finite numbers > ``lo`` (at least ``min_len``)."""
    text = (f"a non-empty list of distinct finite numbers > {lo:g}" if min_len <= 1
            else f"at least {min_len} distinct finite numbers > {lo:g}")

    def rule(value, settings):
        if (not isinstance(value, (list, tuple)) or len(value) < max(min_len, 1) or len(set(value)) != len(value)
                or any(not _is_real(v) or not math.isfinite(v) or v <= lo for v in value)):
            raise _OutOfRange(text)
    return rule


def _mapping(inner: Rule, inner_text: str, *, keys: set | None = None, key_text: str = "") -> Rule:
    """A non-empty dict whose values are accepted by ``inner`` (keys among ``keys`` if given)."""
    text = f"a non-empty dict {key_text}to {inner_text}".replace("  ", " ")

    def rule(value, settings):
        if not isinstance(value, Mapping) or not value:
            raise _OutOfRange(text)
        for key, item in value.items():
            if keys is not None:
                try:
                    ok = int(key) in keys and not isinstance(key, (bool, float))
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    raise _OutOfRange(text)
            try:
                inner(item, settings)
            except _OutOfRange:
                raise _OutOfRange(text) from None
    return rule


def _by_type(**rules: Rule) -> Rule:
    """Dispatch on the (already type-checked) value: ``int=``, ``float=``, ``list=``, ``dict=``."""
    def rule(value, settings):
        kind = ("dict" if isinstance(value, Mapping) else "list" if isinstance(value, (list, tuple))
                else "int" if _is_int(value) else "float" if _is_real(value) else None)
        chosen = rules.get(kind) or (rules.get("float") if kind == "int" else None)
        if chosen is None:
            raise _OutOfRange(" or ".join(sorted(rules)))
        chosen(value, settings)
    return rule


def _choice(*options: str) -> Rule:
    def rule(value, settings):
        if value not in options:
            raise _OutOfRange("one of " + ", ".join(map(repr, options)))
    return rule


def _activation_ok(value) -> bool:
    if not isinstance(value, str) or not value.strip():
        return False
    if max((int(d) for d in re.findall(r"he(\d+)", value.lower())), default=0) > 100_000:
        return True  # not built here (a vector that long); the run's memory estimate judges it
    try:
        from .activations import get_activation

        get_activation(value)
    except (ValueError, TypeError, OverflowError, MemoryError):
        return False
    return True


_ACTIVATION_TEXT = "an activation such as 'he4', 'he4+he6', '0.5*he3+he5', 'relu', 'tanh' or 'bump'"


def _activation(value, settings):
    if not _activation_ok(value):
        raise _OutOfRange(_ACTIVATION_TEXT)


def _activation_list(value, settings):
    text = "a non-empty list of distinct activations such as ['he4', 'he6']"
    if (not isinstance(value, (list, tuple)) or not value or len(set(map(str, value))) != len(value)
            or not all(_activation_ok(v) for v in value)):
        raise _OutOfRange(text)


def _existing_file(value, settings):
    """``None`` (the chapter's default) or the path of an existing file (relative to the notebook)."""
    if value is None:
        return
    text = (f"an existing file (relative paths are read from {os.getcwd()}), or None for the chapter's "
            "default")
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip() or not Path(value).is_file():
        raise _OutOfRange(text)


def _quad_width_top(settings) -> int:
    fd = settings.get("fd_width")
    return min(QUAD_WIDTH_MAX, fd) if _is_int(fd) and fd >= 1 else QUAD_WIDTH_MAX


def _quad_width_why(settings) -> str:
    return (f"the first neurons of the fd_width = {settings.get('fd_width')!r} drawn, at most {QUAD_WIDTH_MAX}: "
            "the exact loss check costs 5 to the power quad_width + 1 points")


#: Largest ``quad_width`` of chapter 1: its exact loss check uses ``5 ** (quad_width + 1)`` points
#: (8: about 2 million points, 1.2 GB and 15 s; each further neuron costs five times more).
QUAD_WIDTH_MAX = 8

_POSITIVE = _real(0.0)
_FRACTION = _real(0.0, 1.0)

#: Range checks of the chapters' parameters, by name: the same name means the same thing in every
#: chapter (where the forms differ, e.g. ``seeds`` a count in chapter 2 and a list elsewhere, the
#: profile's type chooses the rule). Chapter-specific rules are in :data:`NOTEBOOK_RULES`.
PARAMETER_RULES: dict[str, Rule] = {
    # seeds
    "seed": _integer(0, what="an integer seed"),
    "first_seed": _integer(0, what="an integer seed"),
    "seeds": _by_type(int=_integer(1, what="a number of seeds"), list=_int_list(0, what="integer seeds")),
    "verify_seeds": _int_list(0, what="integer seeds"),
    # widths (numbers of neurons)
    "widths": _int_list(1, what="widths"),
    "widths_bump": _int_list(1, min_len=2, what="widths"),
    "fd_width": _integer(1, what="a width"),
    "quad_width": _integer(1, _quad_width_top, _quad_width_why, what="an integer"),
    "check_width": _integer(1, what="a width"),
    "max_test_width": _integer(1, what="a width"),
    "sgd_width": _integer(1, what="a width"),
    # dimensions
    "dim": _integer(2, what="a dimension"),
    "fd_dim": _integer(2, what="a dimension"),
    "check_dim": _integer(2, what="a dimension"),
    "odd_dim": _integer(2, what="a dimension"),
    "step_dim": _integer(2, what="a dimension"),
    "dims": _by_type(list=_int_list(2, min_len=2, what="dimensions"),
                     dict=_mapping(_int_list(2, min_len=2), "lists of at least 2 distinct dimensions >= 2")),
    "stall_dims": _int_list(2, what="dimensions"),
    "test_dims": _mapping(_integer(2), "dimensions >= 2"),
    # steps, times, tolerances
    "step": _by_type(float=_POSITIVE, dict=_mapping(_POSITIVE, "steps > 0")),
    "step_bump": _POSITIVE,
    "steps": _real_list(0.0),
    "fd_step": _real(0.0, 1.0),
    "fd_steps": _real_list(0.0, min_len=2),
    "lr": _POSITIVE,
    "horizon": _optional(_POSITIVE, "the chapter's default horizon"),
    "odd_horizon": _POSITIVE,
    "step_time": _POSITIVE,
    "record_dt": _POSITIVE,
    "safety": _POSITIVE,
    "tolerance": _POSITIVE,
    "tolerance_log": _POSITIVE,
    "max_stderr": _POSITIVE,
    "epsilon": _POSITIVE,
    "rtol": _FRACTION,
    "loss_fraction": _FRACTION,
    "loss_level": _FRACTION,
    # discretisation
    "nodes": _integer(2, what="a number of nodes"),
    "quad_nodes": _integer(1, what="a number of nodes"),
    "nodes_per_neuron": _integer(1, what="a number of nodes"),
    "max_nodes": _integer(2, what="a number of nodes"),
    "n_records": _integer(2, what="a number of recorded times"),
    "records": _integer(2, what="a number of recorded times"),
    "fd_times": _integer(2, what="a number of recorded times"),
    "fd_points": _integer(1, what="a number of points"),
    "dtype": _choice("float32", "float64"),
    # models and data
    "activation": _activation,
    "activations": _activation_list,
    "sweep_file": _existing_file,
    "c2_sweep_file": _existing_file,
    # chapter 09_uniform
    "horizon_factor": _POSITIVE,
    "slow_widths": _int_list(1, min_len=2, what="widths"),
    "slow_horizon": _POSITIVE,
    "long_factor": _POSITIVE,
    "long_dims": _int_list(2, what="dimensions"),
    "integral_dims": _mapping(_int_list(2), "lists of distinct dimensions >= 2"),
    "integral_nodes": _integer(2, what="a number of nodes"),
}


def _per_activation() -> Rule:
    """Chapter 7: ``dims``, ``test_dims`` and ``step`` need an entry for every activation."""
    def rule(value, settings):
        acts = settings.get("activations") or []
        missing = [a for a in acts if not isinstance(value, Mapping) or a not in value]
        if missing:
            raise _OutOfRange(f"a dict with an entry for every activation ({', '.join(map(repr, acts))}); "
                              f"missing {', '.join(map(repr, missing))}")
    return rule


def _all(*rules: Rule) -> Rule:
    def rule(value, settings):
        for r in rules:
            r(value, settings)
    return rule


#: Rules of one chapter (by the notebook's file name without ``.ipynb``) replacing the general ones.
NOTEBOOK_RULES: dict[str, dict[str, Rule]] = {
    # the rate is a slope over widths: two at least
    "02_limit": {"widths": _int_list(1, min_len=2, what="widths")},
    # the activations h_k of the chapter
    "03_timescales": {"dims": _mapping(_int_list(2, min_len=2), "lists of at least 2 distinct dimensions >= 2",
                                       keys={2, 3, 4, 6}, key_text="from k in 2, 3, 4, 6 ")},
    # the authors' widths are powers of two; the slope needs two of them
    "05_chaos": {"widths": _int_list(1, min_len=2, powers_of_two=True)},
    # the fit of m_min(d) uses exactly two widths; one entry per activation
    "07_width": {
        "widths": _int_list(1, exact_len=2, what="widths"),
        "dims": _all(_mapping(_int_list(2, min_len=2), "lists of at least 2 distinct dimensions >= 2",
                              key_text="from activation "), _per_activation()),
        "test_dims": _all(_mapping(_integer(2), "dimensions >= 2", key_text="from activation "),
                          _per_activation()),
        "step": _all(_mapping(_POSITIVE, "steps > 0", key_text="from activation "), _per_activation()),
    },
    # the slopes of part (b) need two widths
    "08_beyond": {"widths": _int_list(1, min_len=2, what="widths")},
}

#: Parameter names that identify a chapter among the book's notebooks (papermill and myst-nb do not
#: tell the kernel which notebook it runs): a notebook declaring all of them is that chapter.
NOTEBOOK_MARKERS: dict[str, frozenset[str]] = {
    "01_model": frozenset({"quad_width", "quad_nodes"}),
    "02_limit": frozenset({"first_seed", "max_stderr"}),
    "03_timescales": frozenset({"stall_dims", "tolerance_log"}),
    "04_hessian": frozenset({"fd_step", "loss_fraction"}),
    "05_chaos": frozenset({"nodes_per_neuron", "check_width"}),
    "06_gap_equation": frozenset({"records", "activation", "widths"}),
    "07_width": frozenset({"verify_seeds", "test_dims"}),
    "08_beyond": frozenset({"widths_bump", "step_bump"}),
}


def identify_notebook(declared) -> str | None:
    """The chapter whose marker names (:data:`NOTEBOOK_MARKERS`) are all in ``declared``, else None."""
    names = set(declared)
    found = [stem for stem, marks in NOTEBOOK_MARKERS.items() if marks <= names]
    return found[0] if len(found) == 1 else None


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_parameters(settings: Mapping[str, Any], notebook: str | None = None) -> None:
    """Range-check every setting that has a rule; raise :class:`ParameterError` (one line) otherwise.

    ``notebook`` (a chapter's file name without ``.ipynb``) selects the chapter's own rules of
    :data:`NOTEBOOK_RULES` in place of the general ones of :data:`PARAMETER_RULES`.
    """
    rules = dict(PARAMETER_RULES)
    rules.update(NOTEBOOK_RULES.get(notebook or "", {}))
    for name in sorted(settings):
        if name == "profile" or name not in rules:
            continue
        value = settings[name]
        try:
            rules[name](value, settings)
        except _OutOfRange as exc:
            raise ParameterError(f"parameter {name!r} must be {exc}, got {_short(value)}") from None


def resolve_parameters(
    namespace: Mapping[str, Any],
    profiles: Mapping[str, Mapping[str, Any]],
    *,
    before: set[str] | frozenset[str],
    extra: Mapping[str, Any] | None = None,
    quiet: bool = False,
    notebook: str | None = None,
) -> dict[str, Any]:
    """Merge a notebook's parameters with its profile, refusing anything unknown or mistyped.

    Parameters
    ----------
    namespace : mapping
        The notebook's ``globals()`` right after the parameters cell (and papermill's injected one).
    profiles : mapping of str to mapping
        ``{"quick": {...}, "book": {...}, "paper": {...}}``: each profile's default values. A
        parameter of the parameters cell with the same name overrides the profile's value unless it
        is ``None``. The type of the profile's value is the parameter's type (``int``, ``float``,
        ``str``, ``bool``, list of those; a string like ``"[1, 2]"`` is read as a list).
    before : set of str
        Names defined before the parameters cell (``set(globals())`` at the end of the imports cell).
    extra : mapping, optional
        Parameters that are not in the profiles, with an example value giving their type (``None``:
        any type); they are returned as they are.
    quiet : bool
        Do not print the settings.
    notebook : str, optional
        The chapter's file name without ``.ipynb`` (e.g. ``"05_chaos"``), choosing its own range
        checks (:data:`NOTEBOOK_RULES`); by default recognised from the parameter names
        (:func:`identify_notebook`).

    Returns
    -------
    dict
        The profile's values with the overrides applied, plus ``profile`` and the ``extra`` names.

    Raises
    ------
    ParameterError
        Unknown parameter, unknown profile, value of the wrong type, or value out of range
        (:func:`check_parameters`; e.g. ``quad_width=-1``, ``widths=[]``, a missing ``sweep_file``).
    """
    extra = dict(extra or {})
    profile = resolve_profile(namespace.get("profile"), profiles)
    declared = {"profile"} | set(extra)
    for p in profiles.values():
        declared |= set(p)
    new = {
        n for n, v in namespace.items()
        if not n.startswith("_") and n not in before and _is_parameter_like(v) and v is not profiles
        and n not in {"In", "Out", "exit", "quit", "get_ipython"}
    }
    unknown = sorted(new - declared)
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))}; this notebook's parameters are: "
            + ", ".join(sorted(declared))
        )
    settings = dict(profiles[profile])
    overridden = []
    for name in sorted(declared - {"profile"}):
        if name not in namespace:
            continue
        value = namespace[name]
        if name in extra:
            settings[name] = value if value is None else _coerce(name, value, extra[name])
            continue
        if value is None:
            continue
        example = next((p[name] for p in profiles.values() if name in p and p[name] is not None), None)
        settings[name] = _coerce(name, value, example)
        overridden.append(name)
    settings["profile"] = profile
    check_parameters(settings, notebook if notebook is not None else identify_notebook(declared))
    if not quiet:
        shown = ", ".join(f"{k}={settings[k]!r}" for k in sorted(settings) if k != "profile")
        marks = f" (set by the reader: {', '.join(overridden)})" if overridden else ""
        print(f"profile {profile!r}{marks}: {shown}")
    return settings


# ------------------------------------------------------------------------------------------------
# verdicts and numbers
# ------------------------------------------------------------------------------------------------
def verdict(holds: bool | None, meaningful: bool = True) -> str:
    """The glued verdict string: ``✓ holds``, ``✗ does not hold`` or ``– not checked at this size``.

    ``meaningful=False`` (e.g. the ``quick`` profile, too small for the check) or ``holds=None``
    give the last one, never a verdict the experiment cannot support.
    """
    if not meaningful or holds is None:
        return NOT_CHECKED
    return HOLDS if bool(holds) else FAILS


def estimate(value: float, stderr: float | None = None, digits: int = 2) -> str:
    """``"0.98 ± 0.01"`` (or ``"0.98"`` without a finite standard error); never ``± nan``.

    A nonzero standard error that would round to zero at ``digits`` decimals gets one significant
    figure, and the value as many decimals (``-0.524 ± 0.002``, never ``-0.52 ± 0.00``).
    """
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    has_se = stderr is not None and math.isfinite(float(stderr))
    if has_se and 0 < abs(float(stderr)) < 0.5 * 10.0 ** -digits:
        digits = -int(math.floor(math.log10(abs(float(stderr)))))
    text = f"{float(value):.{digits}f}"
    if has_se:
        text += f" ± {float(stderr):.{digits}f}"
    return text


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci(x: float, digits: int = 2) -> str:
    """A number as text typeset for reading: ``1.8 × 10⁷⁷``, ``0.031``, ``4.2e-05`` → ``4.2 × 10⁻⁵``."""
    x = float(x)
    if not math.isfinite(x):
        return "∞" if x > 0 else ("−∞" if x < 0 else "n/a")
    if x == 0:
        return "0"
    e = int(math.floor(math.log10(abs(x))))
    if -2 <= e <= 3:
        return f"{x:.{max(digits - 1 - e, 0)}f}" if e < digits else f"{x:.0f}"
    mant = x / 10**e
    if round(abs(mant), digits - 1) >= 10:
        mant, e = mant / 10, e + 1
    return f"{mant:.{digits - 1}f} × 10{str(e).translate(_SUPERSCRIPT)}"


def pow10(log10_value: float, digits: int = 2) -> str:
    """``10^x`` typeset from its base-10 logarithm (for numbers too large for a float): ``10⁵⁶``."""
    x = float(log10_value)
    if not math.isfinite(x):
        return "∞" if x > 0 else "n/a"
    e = int(math.floor(x))
    mant = 10 ** (x - e)
    return f"{mant:.{digits - 1}f} × 10{str(e).translate(_SUPERSCRIPT)}"


# ------------------------------------------------------------------------------------------------
# figures and paths
# ------------------------------------------------------------------------------------------------
def show_figure(fig) -> None:
    """Display ``fig`` as the output of its cell, then close it.

    The cell carries the figure's label and caption in its metadata (``mystnb.figure``: ``name``,
    ``caption``), which the book renders as a numbered figure; the markdown cell that follows it,
    tagged ``remove-cell`` (so the book skips it), shows the same caption in JupyterLab.
    ``tests/test_notebook_reading.py`` checks that the two agree.
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# results written into the prose (readable in JupyterLab and in the book)
# ------------------------------------------------------------------------------------------------
#: Every value glued by :func:`glue` in this kernel, by name (read by :func:`fill` and :func:`say`).
GLUED: dict[str, Any] = {}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*(?::([^{}]*))?\}\}")


def glue(name: str, value: Any, display: bool = False) -> None:
    """Glue ``value`` under ``name`` (``myst_nb.glue``, read by other pages such as the claims table)
    and remember it for :func:`say`."""
    from myst_nb import glue as _myst_glue

    GLUED[name] = value
    _myst_glue(name, value, display=display)


def _as_text(value: Any, spec: str | None) -> str:
    if spec:
        return format(value, spec)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # a numpy scalar prints as 0.44, not np.float64(0.44)
    return str(value)


def fill(text: str, values: Mapping[str, Any] | None = None) -> str:
    """Replace every ``{{name}}`` or ``{{name:spec}}`` in ``text`` by the glued value.

    ``spec`` is a format specification (``{{c5_slope:.2f}}``); without one a string is inserted as
    is and a number as ``str`` of its Python value. A name that was not glued raises ``KeyError``
    naming it (glue it in a cell above).
    """
    values = GLUED if values is None else values

    def one(match: re.Match) -> str:
        name, spec = match.group(1), match.group(2)
        if name not in values:
            raise KeyError(f"no value glued under {name!r}: glue it in a cell above the text that reads it")
        return _as_text(values[name], spec)

    return _PLACEHOLDER.sub(one, text)


def say(text: str, values: Mapping[str, Any] | None = None) -> None:
    """Display ``text`` as Markdown with its ``{{name}}`` placeholders filled (:func:`fill`).

    The book parses Markdown outputs as MyST (``nb_render_markdown_format: myst``), so maths and
    cross-references work there; JupyterLab renders the same output with the numbers in place.
    """
    from IPython.display import Markdown, display

    display(Markdown(fill(text, values)))


def repo_root() -> Path:
    """The repository's root folder (holding ``_toc.yml``), independent of the working directory.

    Found from the installed package (``pip install -e .``), else by walking up from the current
    directory; raises ``FileNotFoundError`` with the places searched otherwise.
    """
    here = Path(__file__).resolve().parent.parent
    candidates = [here, *Path.cwd().resolve().parents, Path.cwd().resolve()]
    for c in candidates:
        if (c / "_toc.yml").is_file() and (c / "mfcore").is_dir():
            return c
    raise FileNotFoundError(
        f"cannot find the book's repository (a folder with _toc.yml and mfcore/) from {here} or {Path.cwd()}"
    )


def repo_path(*parts: str) -> Path:
    """A path inside the repository, e.g. ``repo_path("benchmarks", "results.json")``."""
    return repo_root().joinpath(*parts)


# ------------------------------------------------------------------------------------------------
# quick run times (measured by the test suite, stored for the course page by an explicit command)
# ------------------------------------------------------------------------------------------------
#: Where the test suite writes the measured quick run times (under ``_build/``, never tracked).
MEASURED_QUICK_TIMES = ("_build", "quick_times.json")
#: The stored times read by the course page (``book/course.md``); written only by :func:`commit_quick_times`.
STORED_QUICK_TIMES = ("book", "quick_times.json")
#: A stored time is replaced only when the new one differs from it by more than this fraction.
QUICK_TIME_CHURN = 0.25


def _read_times(path: Path) -> dict:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("seconds", {}), dict):
        raise ValueError(f"{path}: not a quick-times file (a JSON object with a 'seconds' object)")
    return data


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def record_quick_time(stem: str, seconds: float, path: Path | None = None,
                      measured_by: str = "the test suite (MFBOOK_PROFILE=quick)") -> Path:
    """Store one chapter's measured quick run time in ``_build/quick_times.json`` (or ``path``).

    The test suite calls this; the tracked ``book/quick_times.json`` is changed only by
    :func:`commit_quick_times` (``python -m tools.quick_times --commit``).
    """
    path = Path(path) if path is not None else repo_path(*MEASURED_QUICK_TIMES)
    data = _read_times(path)
    times = dict(data.get("seconds", {}))
    times[stem] = round(float(seconds), 1)
    data.update(
        seconds=dict(sorted(times.items())),
        date=datetime.date.today().isoformat(),
        machine=f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}",
        measured_by=measured_by,
    )
    _write_json(path, data)
    return path


def commit_quick_times(measured: Path | None = None, stored: Path | None = None, *, write: bool = True,
                       churn: float = QUICK_TIME_CHURN) -> dict[str, tuple[float | None, float]]:
    """Copy the measured quick run times into the stored file read by the course page.

    A chapter's stored time is replaced when it is missing or differs from the measured one by more
    than ``churn`` (25 %), so that reruns on the same machine do not rewrite the file. Returns the
    changes ``{stem: (old, new)}``; with ``write=False`` only reports them.

    Raises ``FileNotFoundError`` when nothing was measured (run the notebook tests first).
    """
    measured = Path(measured) if measured is not None else repo_path(*MEASURED_QUICK_TIMES)
    stored = Path(stored) if stored is not None else repo_path(*STORED_QUICK_TIMES)
    new = _read_times(measured)
    if not new.get("seconds"):
        raise FileNotFoundError(
            f"no measured quick run times in {measured}: run the notebook tests first "
            "(make test, or pytest tests/test_notebooks.py -k quick_profile)"
        )
    old = _read_times(stored)
    times = dict(old.get("seconds", {}))
    changes = {}
    for stem, seconds in new["seconds"].items():
        before = times.get(stem)
        if before is None or abs(seconds - before) > churn * before:
            changes[stem] = (before, seconds)
            times[stem] = seconds
    if changes and write:
        data = dict(old)
        data.update(seconds=dict(sorted(times.items())),
                    **{k: new[k] for k in ("date", "machine", "measured_by") if k in new})
        _write_json(stored, data)
    return changes
