"""Notebook parameters are range-checked where they are resolved (``mfcore.notebook.check_parameters``).

Each notebook's ``PROFILES`` are read in this process by running its imports cell, its parameters
cell and the cell that resolves them up to the call of ``resolve_parameters`` (which is replaced
by a stub that records its arguments and stops the cell), so that the checks are exercised with the
notebooks' own profiles in milliseconds. One papermill run (marked ``notebooks``) shows the refusal
as a reader sees it.

Also: the quick run times measured by the notebook tests go to ``_build/`` and reach
``book/quick_times.json`` only through ``python -m tools.quick_times --commit``.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import nbformat
import pytest

import mfcore.notebook as mnb
from mfcore.notebook import ParameterError

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
STEMS = [p.stem for p in NOTEBOOKS]


# ------------------------------------------------------------------------------------------------
# each notebook's PROFILES, read in process
# ------------------------------------------------------------------------------------------------
class _Captured(Exception):
    def __init__(self, namespace, profiles, kwargs):
        super().__init__("resolve_parameters reached")
        self.namespace, self.profiles, self.kwargs = dict(namespace), profiles, kwargs


@functools.lru_cache(maxsize=None)
def notebook_setup(stem: str):
    """(namespace after the parameters cell, PROFILES, keyword arguments of resolve_parameters)."""
    import matplotlib

    from test_parameters import parameters_cell, resolve_cell_index

    nb = nbformat.read(REPO_ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    index, _ = parameters_cell(nb)
    stop = resolve_cell_index(nb)
    cells = [c for i, c in enumerate(nb.cells) if c.cell_type == "code" and i <= stop]
    real = mnb.resolve_parameters

    def stub(namespace, profiles, **kwargs):
        raise _Captured(namespace, profiles, kwargs)

    namespace: dict = {"__name__": f"notebook_{stem}"}
    mnb.resolve_parameters = stub
    try:
        with matplotlib.rc_context():  # an imports cell may set the book's style
            for cell in cells:
                exec(compile(cell.source, f"{stem}.ipynb", "exec"), namespace)
    except _Captured as captured:
        return captured.namespace, captured.profiles, captured.kwargs
    finally:
        mnb.resolve_parameters = real
    raise AssertionError(f"{stem}: resolve_parameters was not called")


def resolve(stem: str, profile: str = "quick", **overrides):
    namespace, profiles, kwargs = notebook_setup(stem)
    namespace = dict(namespace, profile=profile, **overrides)
    return mnb.resolve_parameters(namespace, profiles, quiet=True, **kwargs)


def declared_names(stem: str) -> set[str]:
    _, profiles, kwargs = notebook_setup(stem)
    names = set(kwargs.get("extra") or {})
    for p in profiles.values():
        names |= set(p)
    return names


# ------------------------------------------------------------------------------------------------
# every profile passes; every parameter has a rule; every chapter is recognised
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("profile", ["quick", "book", "paper"])
def test_every_profile_passes_the_range_checks(stem: str, profile: str):
    settings = resolve(stem, profile)
    assert settings["profile"] == profile


@pytest.mark.parametrize("stem", STEMS)
def test_every_parameter_has_a_range_check(stem: str):
    missing = sorted(declared_names(stem) - set(mnb.PARAMETER_RULES))
    assert not missing, f"{stem}: parameters without a rule in mfcore.notebook.PARAMETER_RULES: {missing}"


def test_no_rule_for_a_parameter_no_notebook_has():
    every = set().union(*(declared_names(s) for s in STEMS))
    dead = sorted(set(mnb.PARAMETER_RULES) - every)
    assert not dead, f"rules for parameters that no notebook declares: {dead}"
    for stem, rules in mnb.NOTEBOOK_RULES.items():
        assert stem in STEMS, f"NOTEBOOK_RULES names {stem!r}, which is not a notebook"
        assert set(rules) <= declared_names(stem), f"{stem}: rules for parameters it does not declare"


@pytest.mark.parametrize("stem", STEMS)
def test_each_chapter_is_recognised_from_its_parameters(stem: str):
    expected = stem if stem in mnb.NOTEBOOK_MARKERS else None
    assert mnb.identify_notebook(declared_names(stem)) == expected


# ------------------------------------------------------------------------------------------------
# bad values: one line naming the parameter, the value and the allowed range
# ------------------------------------------------------------------------------------------------
BAD = [
    # stem, parameter, value, words of the allowed range
    ("01_model", "quad_width", -1, "from 1 to 8"),
    ("01_model", "quad_width", 40, "from 1 to 8"),
    ("01_model", "quad_width", 0, "from 1 to"),
    ("01_model", "quad_nodes", 0, ">= 1"),
    ("01_model", "fd_dim", 1, ">= 2"),
    ("01_model", "fd_width", 0, ">= 1"),
    ("01_model", "seed", -1, ">= 0"),
    ("02_limit", "widths", [], "at least 2"),
    ("02_limit", "widths", [64], "at least 2"),
    ("02_limit", "widths", [64, 64], "distinct"),
    ("02_limit", "widths", [0, 64], ">= 1"),
    ("02_limit", "seeds", 0, ">= 1"),
    ("02_limit", "seeds", -3, ">= 1"),
    ("02_limit", "first_seed", -1, ">= 0"),
    ("02_limit", "step", 0.0, "> 0"),
    ("02_limit", "step", -0.1, "> 0"),
    ("02_limit", "step", math.nan, "finite"),
    ("02_limit", "horizon", 0.0, "or None"),
    ("02_limit", "horizon", math.inf, "finite"),
    ("02_limit", "nodes", 1, ">= 2"),
    ("02_limit", "n_records", 1, ">= 2"),
    ("02_limit", "dtype", "float16", "'float32', 'float64'"),
    ("02_limit", "tolerance", 0.0, "> 0"),
    ("02_limit", "max_stderr", -1.0, "> 0"),
    ("02_limit", "activation", "he0", "an activation"),
    ("02_limit", "activation", "sigmoid", "an activation"),
    ("02_limit", "sweep_file", "/nonexistent/c5.nc", "an existing file"),
    ("02_limit", "sweep_file", "", "an existing file"),
    ("03_timescales", "dims", {}, "non-empty dict"),
    ("03_timescales", "dims", {5: [16, 32]}, "k in 2, 3, 4, 6"),
    ("03_timescales", "dims", {4: [16]}, "at least 2"),
    ("03_timescales", "dims", {4: [1, 16]}, ">= 2"),
    ("03_timescales", "stall_dims", [], "non-empty"),
    ("03_timescales", "check_dim", 1, ">= 2"),
    ("03_timescales", "safety", 0.0, "> 0"),
    ("03_timescales", "tolerance_log", -0.1, "> 0"),
    ("03_timescales", "sweep_file", "/nonexistent/c1.nc", "an existing file"),
    ("04_hessian", "dims", [], "at least 2"),
    ("04_hessian", "dims", [16], "at least 2"),
    ("04_hessian", "loss_fraction", 1.5, "between 0 and 1"),
    ("04_hessian", "fd_step", 0.0, "between 0 and 1"),
    ("04_hessian", "fd_steps", [1e-2], "at least 2"),
    ("04_hessian", "rtol", 0.0, "between 0 and 1"),
    ("04_hessian", "record_dt", 0.0, "> 0"),
    ("04_hessian", "fd_times", 1, ">= 2"),
    ("04_hessian", "fd_points", 0, ">= 1"),
    ("04_hessian", "fd_width", 0, ">= 1"),
    ("04_hessian", "activation", "bogus", "an activation"),
    ("05_chaos", "widths", [64, 100], "powers of two"),
    ("05_chaos", "widths", [128], "at least 2"),
    ("05_chaos", "seeds", [], "non-empty"),
    ("05_chaos", "seeds", [0, 0], "distinct"),
    ("05_chaos", "seeds", [-1, 0], ">= 0"),
    ("05_chaos", "nodes_per_neuron", 0, ">= 1"),
    ("05_chaos", "max_nodes", 1, ">= 2"),
    ("05_chaos", "check_width", 0, ">= 1"),
    ("05_chaos", "sweep_file", "/nonexistent/c5.nc", "an existing file"),
    ("06_gap_equation", "widths", [], "non-empty"),
    ("06_gap_equation", "seeds", [], "non-empty"),
    ("06_gap_equation", "records", 1, ">= 2"),
    ("06_gap_equation", "horizon", -1.0, "> 0"),
    ("07_width", "widths", [64], "exactly 2"),
    ("07_width", "widths", [64, 128, 256], "exactly 2"),
    ("07_width", "dims", {}, "non-empty dict"),
    ("07_width", "dims", {"he4": [8, 12]}, "missing 'he6'"),
    ("07_width", "test_dims", {"he4": 1, "he6": 10}, "dimensions >= 2"),
    ("07_width", "step", {"he4": -0.2, "he6": 0.15}, "steps > 0"),
    ("07_width", "activations", [], "non-empty list"),
    ("07_width", "verify_seeds", [], "non-empty"),
    ("07_width", "epsilon", 0.0, "> 0"),
    ("07_width", "loss_level", 1.0, "between 0 and 1"),
    ("07_width", "max_test_width", 0, ">= 1"),
    ("07_width", "sweep_file", "/nonexistent/c7_he4.nc", "an existing file"),
    ("08_beyond", "widths", [32], "at least 2"),
    ("08_beyond", "widths_bump", [32], "at least 2"),
    ("08_beyond", "seeds", [], "non-empty"),
    ("08_beyond", "steps", [], "non-empty"),
    ("08_beyond", "lr", 0.0, "> 0"),
    ("08_beyond", "odd_horizon", 0.0, "> 0"),
    ("08_beyond", "step_time", -1.0, "> 0"),
    ("08_beyond", "sgd_width", 0, ">= 1"),
    ("08_beyond", "step_dim", 1, ">= 2"),
    ("08_beyond", "odd_dim", 1, ">= 2"),
]


@pytest.mark.parametrize("stem, name, value, allowed", BAD,
                         ids=[f"{s}-{n}={v!r}" for s, n, v, _ in BAD])
def test_out_of_range_value_is_refused_with_one_line(stem, name, value, allowed):
    with pytest.raises(ParameterError) as info:
        resolve(stem, **{name: value})
    message = str(info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    assert f"parameter {name!r}" in message, message
    assert f"got {value!r}" in message, message
    assert allowed in message, f"the allowed range ({allowed!r}) is not stated: {message}"
    assert isinstance(info.value, ValueError)


def test_quad_width_is_bounded_by_the_finite_difference_width():
    with pytest.raises(ParameterError, match=r"'quad_width' must be an integer from 1 to 4 .*got 5"):
        resolve("01_model", fd_width=4, quad_width=5)
    assert resolve("01_model", fd_width=4, quad_width=4)["quad_width"] == 4


def test_valid_overrides_are_accepted(tmp_path: Path):
    stored = tmp_path / "c5.nc"
    stored.write_bytes(b"")
    assert resolve("02_limit", sweep_file=str(stored))["sweep_file"] == str(stored)
    assert resolve("02_limit", seeds=1, widths=[64, 128])["seeds"] == 1
    assert resolve("05_chaos", seeds=0)["seeds"] == [0]          # a single seed for a list
    assert resolve("05_chaos", sweep_file=None)["sweep_file"] is None
    assert resolve("06_gap_equation", widths=64)["widths"] == [64]
    assert resolve("03_timescales", dims={"4": [16, 32]})["dims"] == {"4": [16, 32]}  # keys from JSON
    assert resolve("07_width", activations=["he4"], dims={"he4": [8, 12]}, test_dims={"he4": 16},
                   step={"he4": 0.2})["activations"] == ["he4"]
    assert resolve("08_beyond", "book")["horizon"] is None       # None: each part's full horizon
    assert resolve("02_limit", horizon=5)["horizon"] == 5.0


def test_an_unrecognised_notebook_gets_the_general_rules():
    profiles = {"quick": {"widths": [64, 128]}, "book": {"widths": [64, 128]}, "paper": {"widths": [64, 128]}}
    ns = {"profile": "quick", "widths": [100]}
    assert mnb.resolve_parameters(ns, profiles, before=set(), quiet=True)["widths"] == [100]
    with pytest.raises(ParameterError, match="powers of two"):
        mnb.resolve_parameters(ns, profiles, before=set(), quiet=True, notebook="05_chaos")
    with pytest.raises(ParameterError, match="non-empty list"):
        mnb.resolve_parameters(dict(ns, widths=[]), profiles, before=set(), quiet=True)


@pytest.mark.notebooks
def test_papermill_quad_width_out_of_range_fails_before_any_work(tmp_path: Path, monkeypatch):
    """As a reader runs it: ``papermill 01_model.ipynb out.ipynb -p quad_width -1``."""
    from test_parameters import _expect_failure

    monkeypatch.setenv("MFBOOK_PROFILE", "quick")
    message = _expect_failure(REPO_ROOT / "notebooks" / "01_model.ipynb", tmp_path, {"quad_width": -1})
    assert "ParameterError" in message, message
    assert "parameter 'quad_width' must be an integer from 1 to 8" in message and "got -1" in message, message


# ------------------------------------------------------------------------------------------------
# quick run times: measured under _build/, committed by an explicit command
# ------------------------------------------------------------------------------------------------
def test_quick_times_are_recorded_then_committed_explicitly(tmp_path: Path, capsys):
    from tools.quick_times import main

    measured, stored = tmp_path / "_build" / "quick_times.json", tmp_path / "book" / "quick_times.json"
    stored.parent.mkdir()
    stored.write_text(json.dumps({"seconds": {"01_model": 30.0, "10_benchmarks": 50.0}, "date": "2020-01-01"}))
    args = ["--measured", str(measured), "--stored", str(stored)]

    assert main(args) == 2 and "no measured quick run times" in capsys.readouterr().err

    mnb.record_quick_time("01_model", 33.3, measured)    # within 25 %: no churn
    mnb.record_quick_time("10_benchmarks", 80.0, measured)
    mnb.record_quick_time("02_limit", 41.04, measured)
    before = stored.read_text()
    assert main(args) == 0                               # shows, does not write
    shown = capsys.readouterr().out
    assert "02_limit: not stored -> 41 s" in shown and "10_benchmarks: 50 s -> 80 s" in shown
    assert "01_model" not in shown and stored.read_text() == before

    assert main(args + ["--commit"]) == 0
    data = json.loads(stored.read_text())
    assert data["seconds"] == {"01_model": 30.0, "02_limit": 41.0, "10_benchmarks": 80.0}
    assert data["date"] != "2020-01-01" and "cores" in data["machine"]
    assert main(args + ["--commit"]) == 0 and "up to date" in capsys.readouterr().out


def test_course_page_reads_the_committed_file():
    course = (REPO_ROOT / "book" / "course.md").read_text(encoding="utf-8")
    assert 'repo_path("book", "quick_times.json")' in course
    assert tuple(mnb.STORED_QUICK_TIMES) == ("book", "quick_times.json")
    assert tuple(mnb.MEASURED_QUICK_TIMES)[0] == "_build"
