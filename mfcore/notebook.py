r"""Helpers shared by the book's notebooks: checked parameters, verdicts, numbers, figures, paths.

Convention of every chapter (see the README, "Rerunning a chapter"):

1. the imports cell ends with ``_before_parameters = set(globals())``;
2. the cell tagged ``parameters`` holds one line per parameter, ``name = default  # comment`` (no
   ``=`` in comments, so that ``papermill --help-notebook`` lists them). ``profile = None`` means
   the environment variable ``MFBOOK_PROFILE`` if set (the test suite sets ``quick``), else
   ``"book"``; every other parameter left at ``None`` takes its profile's value;
3. the next cell defines ``PROFILES`` and calls
   ``P = mfcore.notebook.resolve_parameters(globals(), PROFILES, before=_before_parameters)``,
   which refuses unknown names (e.g. papermill's ``-p dimm 24``), unknown profiles and values of
   the wrong type with a one-line :class:`ParameterError`, and prints the settings in force.

Figures are glued with :func:`show_figure` in cells tagged ``hide-input`` and ``remove-output``:
an executed notebook shows the figure in place, the built book shows it once, where the text
glues it, with the plotting code folded.
"""
from __future__ import annotations

import ast
import math
import os
import types
from pathlib import Path
from typing import Any, Mapping

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


def resolve_parameters(
    namespace: Mapping[str, Any],
    profiles: Mapping[str, Mapping[str, Any]],
    *,
    before: set[str] | frozenset[str],
    extra: Mapping[str, Any] | None = None,
    quiet: bool = False,
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

    Returns
    -------
    dict
        The profile's values with the overrides applied, plus ``profile`` and the ``extra`` names.

    Raises
    ------
    ParameterError
        Unknown parameter, unknown profile, or value of the wrong type.
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
def show_figure(name: str, fig) -> None:
    """Glue ``fig`` under ``name`` **and** display it, then close it.

    Use in a cell tagged ``hide-input`` and ``remove-output``: the executed notebook shows the
    figure in place; the book shows it once, where a ``{glue:figure}`` directive places it.
    """
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(name, fig, display=True)
    plt.close(fig)


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
