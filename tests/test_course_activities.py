"""Every in-class activity of the course page (``book/course.md``) shows what its *Observe* says.

The commands are parsed from the page itself (:mod:`tools.course_activities`), so the page and the
test cannot drift apart: each is run as printed, at the ``quick`` profile, with papermill's Python API
(kernel ``python3``, working directory ``notebooks/``, executed copy under pytest's ``tmp_path``),
and the executed notebook is read back: glued values by key, printed text, tables. Each check below
restates one claim of the Observe and fails with the Observe quoted.

Where an Observe compares with the student's own quick run of the chapter (units 1 and 6), the test
also runs the command without the changed parameter (:data:`BASELINE_DROPS`). Where the notebook
shows a result only in a figure (the overlap law of unit 2), a read-only cell appended after the
chapter's last cell prints the numbers behind it (:data:`PROBES`); it changes nothing the chapter
computes.

Three to four minutes on two cores (ten notebook runs: two each for units 1 and 6, the largest
part); run with ``pytest tests/test_course_activities.py``.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import nbformat
import pytest

from mfcore.notebook import HOLDS, NOT_CHECKED
from tools.course_activities import (
    PROBE_PREFIX,
    Activity,
    estimate,
    glued,
    glued_html,
    html_outputs,
    number,
    numbers,
    parse_course,
    printed,
    probed,
    run_activity,
)

ACTIVITIES = parse_course()


# ------------------------------------------------------------------------------------------------
# running the activities (once each per session)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Iterator[Callable[..., nbformat.NotebookNode]]:
    """``run(activity, parameters=None, output=None)``: the executed notebook, computed once."""
    out_dir = tmp_path_factory.mktemp("course")
    cache: dict[tuple, nbformat.NotebookNode] = {}
    # the kernel "python3" of this interpreter (as `make test` sets it), before any user-level spec
    share = str(Path(sys.prefix, "share", "jupyter"))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([share] + ([old] if old else []))

    def execute(activity: Activity, parameters: dict | None = None, output: str | None = None):
        used = activity.parameters if parameters is None else parameters
        key = (activity.name, repr(sorted(used.items())))
        if key not in cache:
            cache[key] = run_activity(activity, out_dir, parameters=parameters, output=output,
                                      probe=PROBES.get(activity.stem))
        return cache[key]

    yield execute
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old


class Observed:
    """The executed notebook of one activity (and of its comparison run), read for the checks."""

    def __init__(self, activity: Activity, nb, baseline=None):
        self.activity = activity
        self.nb, self.glue, self.text = nb, glued(nb), printed(nb)
        self.probe = probed(nb)
        self.base = baseline
        self.base_glue = glued(baseline) if baseline is not None else {}

    def check(self, ok: bool, detail: str) -> None:
        assert ok, (f"Unit {self.activity.unit}, `{self.activity.command}`: the Observe of book/course.md "
                    f"does not hold at the quick profile.\nObserve: \"{self.activity.observe}\"\nFound: {detail}")

    def value(self, key: str) -> Any:
        self.check(key in self.glue, f"no value glued under {key!r} (glued: {sorted(self.glue)[:40]} ...)")
        return self.glue[key]

    def num(self, key: str) -> float:
        return number(self.value(key))

    def search(self, pattern: str, what: str) -> re.Match:
        match = re.search(pattern, self.text, re.S)
        self.check(match is not None, f"the executed notebook does not print {what} (pattern {pattern!r})")
        return match


# ------------------------------------------------------------------------------------------------
# one check per chapter whose notebook a unit runs in class
# ------------------------------------------------------------------------------------------------
#: Parameters that the comparison run leaves out: the student's own quick run of the chapter.
BASELINE_DROPS = {"01_model": {"seed"}, "07_width": {"epsilon"}}

#: Read-only cells appended after the chapter's last cell, for results that only a figure shows.
PROBES = {
    # unit 2: the overlap law of the limit (nodes are its quantiles: node j is one particle)
    "02_limit": f"""
_u, _t, _L = limit.nodes.values, limit.t.values, limit.mf_loss.values
_below = _u[0] < 0
print({PROBE_PREFIX!r} + repr(dict(
    t_end=float(_t[-1]), upper=float((_u[-1] > 0.9).mean()), lowest=float(_u[-1].min()),
    below_start=float(_below.mean()), below_stalled=float((abs(_u[-1][_below]) < 0.1).mean()),
    loss_end=float(_L[-1] / _L[0]), loss_half=float(np.interp(_t[-1] / 2, _t, _L) / _L[0]))))
""",
}


def check_01_model(o: Observed) -> None:
    o.check("seed=1" in o.text, "the run did not use seed 1")
    tables = [h for h in html_outputs(o.nb) if "kernel form" in h and "quadrature" in h]
    base_tables = [h for h in html_outputs(o.base) if "kernel form" in h and "quadrature" in h]
    o.check(len(tables) == 1 and len(base_tables) == 1, "no population-loss table (quadrature, kernel form)")
    o.check(tables != base_tables, "the population-loss table is the same at seed 1 as at seed 0")
    rows = [re.search(r"\bhe4\s+([\d.]+)", _cells_text(t)) for t in (base_tables[0], tables[0])]
    o.check(all(rows), "no h4 row in the population-loss table")
    he4 = [float(r.group(1)) for r in rows]
    o.check([round(x, 4) for x in he4] == [0.6026, 0.6342], f"h4 loss of the test network at seeds 0, 1: {he4}")
    loss_err = o.num("model_loss_rel_err")
    o.check(loss_err < 1e-12, f"largest relative loss difference {loss_err:g} (check allows 1e-12)")
    vel, vel0 = o.num("model_velocity_rel_err"), number(o.base_glue["model_velocity_rel_err"])
    o.check(vel != vel0, f"the velocity error did not change with the seed ({vel:g})")
    o.check((o.base_glue["model_velocity_rel_err"], o.value("model_velocity_rel_err")) == ("9.0 × 10⁻¹¹", "4.4 × 10⁻¹⁰"),
            f"velocity errors {o.base_glue['model_velocity_rel_err']!r} and {o.value('model_velocity_rel_err')!r}, "
            "not the values quoted")
    o.check(vel < 1e-6, f"velocity error {vel:g} not below the tolerance 1e-6")
    o.check(o.value("model_checks_verdict") == HOLDS == o.base_glue.get("model_checks_verdict"),
            f"verdict {o.value('model_checks_verdict')!r}")
    for key in ("model_kernel_poly_err", "model_kernel_smooth_ratio", "model_bump_c4", "model_bump_trunc"):
        o.check(o.value(key) == o.base_glue.get(key), f"{key} moved: {o.base_glue.get(key)!r} -> {o.value(key)!r}")
    for key in ("model_coeff_table", "model_activation_table"):
        o.check(glued_html(o.nb, key) == glued_html(o.base, key), f"the table {key} moved with the seed")


def check_02_limit(o: Observed) -> None:
    p = o.probe
    o.check(isinstance(p, dict), "the probe of the overlap law printed nothing")
    o.check(abs(p["t_end"] - 50) < 1e-9, f"the run ends at t = {p['t_end']}, not 50")
    o.check(p["lowest"] > -0.1, f"some mass moved towards -1: lowest overlap {p['lowest']:.3f}")
    o.check(0.4 <= p["upper"] <= 0.6, f"fraction of nodes with u > 0.9 at t = 50: {p['upper']:.3f}, not about half")
    o.check(abs(p["below_start"] - 0.5) < 0.01 and p["below_stalled"] >= 0.99,
            f"of the nodes that started with u < 0 ({p['below_start']:.3f}), {p['below_stalled']:.3f} "
            "are within 0.1 of the equator")
    drop = o.num("limit_drop")
    o.check(round(drop) == 75, f"loss drop {drop} %, not about three quarters")
    o.check((round(p["loss_half"], 2), round(p["loss_end"], 2)) == (0.28, 0.25),
            f"L/L0 = {p['loss_half']:.3f} at t = 25 and {p['loss_end']:.3f} at t = 50")


def check_03_timescales(o: Observed) -> None:
    quoted = {2: 0.24, 3: 0.54, 4: 0.96, 6: 1.93}
    for k, (expected, tol) in {2: (0.25, 0.025), 3: (0.5, 0.1), 4: (1.0, 0.1), 6: (2.0, 0.1)}.items():
        slope = o.num(f"c1_slope_k{k}")
        o.check(o.value(f"c1_ok_k{k}") == "yes" and abs(slope - expected) <= tol and round(slope, 2) == quoted[k],
                f"k = {k}: slope {slope} against {expected} ± {tol} ({o.value(f'c1_ok_k{k}')}; quoted {quoted[k]})")
    o.check(o.value("C1_verdict") == NOT_CHECKED, f"C1 verdict {o.value('C1_verdict')!r}")
    o.check(o.value("c1_stall_d") == 32 and o.num("c1_stall_stalled") >= 99.9,
            f"at d = {o.value('c1_stall_d')}, {o.num('c1_stall_stalled')} % of the lower nodes near the equator")


def check_04_hessian(o: Observed) -> None:
    o.check(o.value("c4_dmin") == 8 and o.value("c4_dmax") == 16, "the dimensions are not 8 to 16")
    lo, hi = o.num("c4_T_scaled_min"), o.num("c4_T_scaled_max")
    o.check((round(lo, 2), round(hi, 2)) == (0.97, 1.19), f"T95 / d^2 between {lo:.2f} and {hi:.2f}")
    b = o.num("c4_b_q90")
    o.check(round(b, 1) == 2.9 and b > 2.5, f"b = {b:.2f}, not near 2.9 (and above the derivation's 2.5)")
    g = o.num("c4_g_slope")
    o.check(round(g, 1) == 2.3, f"L·T grows like d^{g:.2f}, not about d^2.3")
    digits_i, digits_lt = o.num("c4_digits_I"), o.num("c4_digits_LT")
    o.check(round(digits_i) == 3 and round(digits_lt, -2) == 400,
            f"digits at d = 16: e^I {digits_i:.1f}, e^LT {digits_lt:.0f} (about 3 and 400 expected)")


def check_05_chaos(o: Observed) -> None:
    o.check(o.num("c5_horizon") == 55 and o.num("c5_mf_loss_drop") >= 94,
            f"horizon {o.value('c5_horizon')}, loss drop {o.value('c5_mf_loss_drop')} %")
    o.check(o.value("c5_mbig") == 256 and o.value("c5_n_big") == 6,
            f"{o.value('c5_n_big')} neurons with a gap above one at m = {o.value('c5_mbig')}")
    sentence = o.value("c5_big_sentence")
    reach = re.search(r"≤\s*([\d.]+)", sentence)
    o.check(reach is not None and float(reach.group(1)) <= 0.41 and "out of step" in sentence,
            f"where the order-one gaps come from: {sentence!r}")
    o.check(o.value("c5_n_flip") == 0, f"{o.value('c5_n_flip')} sign flips")
    median = o.num("c5_median_gap_T")
    o.check(7e-4 <= median <= 1.5e-3, f"median gap at the horizon {median:g}, not about 1e-3")
    b, se = estimate(o.value("c5_b_gap"))
    o.check((b, se) == (0.23, 0.04) and b + 2 * se < 0.5 and b - 2 * se > 0,
            f"fitted exponent of S_omega {b} ± {se}")
    stored = re.search(r"d = 16: b_ω = ([-\d.]+)", str(o.value("C5_paper")))
    o.check(stored is not None and abs(float(stored.group(1)) - 0.03) <= 0.015,
            f"stored sweeps: {str(o.value('C5_paper'))[:80]!r}")
    o.check(o.value("C5_verdict") == NOT_CHECKED, f"C5 verdict {o.value('C5_verdict')!r}")


def check_07_width(o: Observed) -> None:
    o.check(o.value("c7_eps") == "0.1" and o.base_glue.get("c7_eps") == "0.2", "the tolerances are not 0.1 and 0.2")
    for act in ("he4", "he6"):
        for key in (f"c7_{act}_mmin_lo", f"c7_{act}_mmin_hi", f"c7_{act}_m_pow"):
            now, before = o.num(key), number(o.base_glue[key])
            o.check(abs(now / before - 4) <= 0.1, f"{key}: {before:g} at ε = 0.2, {now:g} at ε = 0.1")
        o.check(o.value(f"c7_{act}_p") == o.base_glue.get(f"c7_{act}_p"),
                f"fitted degree of {act}: {o.base_glue.get(f'c7_{act}_p')!r} -> {o.value(f'c7_{act}_p')!r}")
        meas, meas0 = o.num(f"c7_{act}_m_meas"), number(o.base_glue[f"c7_{act}_m_meas"])
        o.check(meas > 2 * meas0 and abs(meas / meas0 - 4) > 0.1, f"held-out measurement of {act}: {meas0:g} -> {meas:g}")
    quoted = {"c7_he4_mmin_lo": (70, 282), "c7_he4_mmin_hi": (84, 335), "c7_he4_m_pow": (95, 378),
              "c7_he4_m_meas": (194, 852)}
    found = {key: (number(o.base_glue[key]), o.num(key)) for key in quoted}
    o.check(found == quoted, f"the values quoted on the page changed: {found}")
    o.check((o.value("c7_he4_p"), o.value("c7_he6_p")) == ("0.43 ± 0.92", "2.78 ± 0.85"),
            f"fitted degrees {o.value('c7_he4_p')!r}, {o.value('c7_he6_p')!r}")


def check_08_beyond(o: Observed) -> None:
    verdicts = {k: v for k, v in o.glue.items() if k.startswith("beyond_") and k.endswith("_verdict")}
    o.check(len(verdicts) >= 5 and set(verdicts.values()) == {NOT_CHECKED}, f"verdicts {verdicts}")
    o.check((o.num("beyond_misspec_T"), o.num("beyond_misspec_T95"), o.num("beyond_bump_T95")) == (2, 8, 520),
            f"horizon {o.value('beyond_misspec_T')}, T95 {o.value('beyond_misspec_T95')} and "
            f"{o.value('beyond_bump_T95')}")
    per_seed = numbers(o.search(r"misspecified: b_omega = [^\n]*?\(per seed \[([^\]]*)\]\)",
                                "the per-seed exponents of the misspecified pair").group(1))
    o.check(len(per_seed) == 3 and abs(min(per_seed) - 0.05) <= 0.01 and abs(max(per_seed) - 0.64) <= 0.01,
            f"per-seed b_omega {per_seed}")
    plateau = o.num("beyond_he3_plateau")
    o.check(f"{plateau:.3f}" == "0.250", f"h3 stall at L/L0 = {plateau:.4f}")
    slope = o.num("beyond_step_slope")
    o.check(round(slope, 2) == 1.01, f"step slope {o.value('beyond_step_slope')}")


def check_09_uniform(o: Observed) -> None:
    match = o.search(r"exponent at the end of the long runs is ([\d., ]+) \(d = ([\d, ]+);",
                     "the decay exponents of the long h4 runs")
    cs, dims = numbers(match.group(1)), [int(x) for x in numbers(match.group(2))]
    o.check(dims == [8, 16, 32] and cs == sorted(cs, reverse=True) and len(set(cs)) == 3
            and all(2 / 3 < c < 2 for c in cs), f"c = {cs} at d = {dims}")
    o.check([round(c, 2) for c in cs] == [1.75, 1.59, 1.36], f"c = {cs}, not the values quoted")
    preds = [float(x) for x in re.findall(r"\| h4 \(well-specified\) \| \d+ \| [^|]+\| [^|]+\| [^|]+\| ([\d.]+) \|",
                                          o.text)]
    o.check([round(x, 2) for x in preds] == [0.29, 0.27, 0.23], f"predicted min(1, c/6): {preds}")
    stored = re.findall(r"(?:h4|misspecified), d = (\d+): β = ([\d.]+) ± [\d.]+ \(n = 3\)", str(o.value("U1_measured")))
    o.check(len(stored) == 3 and all(0.9 <= float(b) <= 1.2 for _, b in stored),
            f"stored sweeps: {o.value('U1_measured')!r}")
    o.check(len(re.findall(r"\.nc\): β = [^\n]*passes the one-sided test", o.text)) == 3,
            "the three stored sweeps do not all pass the one-sided test")
    o.check(o.value("U1_verdict") == NOT_CHECKED, f"U1 verdict {o.value('U1_verdict')!r}")
    ratios = [float(x) for x in re.findall(r"d²/\(12√2\) = [\d.]+, ratio ([\d.]+)\)", o.text)]
    o.check(len(ratios) == 3 and all(0.5 <= r <= 2 for r in ratios),
            f"growth of the running integral against d²/(12√2): ratios {ratios}")


def _cells_text(html: str) -> str:
    """The text of an HTML table (tags and styles removed)."""
    html = re.sub(r"<style.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


CHECKS: dict[str, Callable[[Observed], None]] = {
    "01_model": check_01_model,
    "02_limit": check_02_limit,
    "03_timescales": check_03_timescales,
    "04_hessian": check_04_hessian,
    "05_chaos": check_05_chaos,
    "07_width": check_07_width,
    "08_beyond": check_08_beyond,
    "09_uniform": check_09_uniform,
}


# ------------------------------------------------------------------------------------------------
# the tests
# ------------------------------------------------------------------------------------------------
def test_every_unit_has_an_activity_with_a_check():
    """Each unit of the page has an in-class command with its Observe, and each command a check here."""
    units = sorted({a.unit for a in ACTIVITIES})
    assert units == list(range(1, len(units) + 1)) and len(units) >= 4, f"units with an activity: {units}"
    for a in ACTIVITIES:
        assert a.observe, f"Unit {a.unit}: `{a.command}` has an empty Observe"
        assert a.parameters.get("profile") == "quick", f"Unit {a.unit}: `{a.command}` does not run at quick"
        assert a.stem in CHECKS, (f"Unit {a.unit}: no check of `{a.command}` in {__file__}; run it, read "
                                  f"the executed notebook and add one for its Observe: \"{a.observe}\"")
        assert not Path(a.output).is_absolute() and a.output != a.notebook


def test_parse_papermill_reads_parameters_as_papermill_does():
    from tools.course_activities import CourseError, parse_papermill

    nb, out, params = parse_papermill('papermill a.ipynb b.ipynb -p profile quick -p seed 1 -p step 0.5 '
                                      '-p flag True -y "seeds: [3, 4]" -y "dims: {4: [8, 16]}"')
    assert (nb, out) == ("a.ipynb", "b.ipynb")
    assert params == {"profile": "quick", "seed": 1, "step": 0.5, "flag": True, "seeds": [3, 4],
                      "dims": {4: [8, 16]}}
    with pytest.raises(CourseError):
        parse_papermill("papermill a.ipynb b.ipynb -k python3")


@pytest.mark.notebooks
@pytest.mark.parametrize("activity", ACTIVITIES, ids=[a.name for a in ACTIVITIES])
def test_observe_holds_at_quick(activity: Activity, run):
    nb = run(activity)
    baseline = None
    if activity.stem in BASELINE_DROPS:
        kept = {k: v for k, v in activity.parameters.items() if k not in BASELINE_DROPS[activity.stem]}
        baseline = run(activity, parameters=kept, output=f"{Path(activity.output).stem}_baseline.ipynb")
    CHECKS[activity.stem](Observed(activity, nb, baseline))
