"""The benchmark report: `mfcore bench --quick` writes the expected keys with positive finite numbers.

Timings themselves are machine-dependent and not asserted.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mfcore import cli
from mfcore.bench import _products, page_fault_cost, summary, tune_malloc


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "quick.json"
    assert cli.main(["bench", "--out", str(path), "--quick"]) == 0
    return json.loads(path.read_text())


def _positive(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_report_sections_and_machine(report):
    assert set(report) == {"meta", "finite_step", "routes", "meanfield_step", "flow_vs_pgd",
                           "sampled_vs_population"}
    meta = report["meta"]
    assert meta["quick"] is True and _positive(meta["total_wall_time_s"])
    assert meta["machine"]["cpu_count"] >= 1 and meta["machine"]["numpy"] == np.__version__
    assert _positive(meta["machine"]["page_fault_cost_before_tuning"]["fresh_us_per_page"])
    load = meta["machine"]["load_average"]
    assert len(load) == 3 and all(x >= 0 for x in load)


def test_finite_step_rows(report):
    fs = report["finite_step"]
    assert [(r["m"], r["d"]) for r in fs["rows"]] == [(512, 32), (1024, 32), (512, 16)]
    for r in fs["rows"]:
        for key in ("t_products_chunked_s", "t_products_full_s", "t_velocity_s", "t_velocity_and_loss_s",
                    "ratio_velocity", "ratio_velocity_and_loss", "t_velocity_float32_s", "speedup_float32",
                    "float32_velocity_max_rel_error"):
            assert _positive(r[key]), key
        lo, hi = r["ratio_velocity_spread"]
        assert 0 < lo <= r["ratio_velocity"] <= hi  # median of the per-repeat ratios
        assert r["float32_velocity_max_rel_error"] < 1e-4  # single precision, not garbage
    assert fs["max_ratio_velocity"] == max(r["ratio_velocity"] for r in fs["rows"])
    assert isinstance(fs["velocity_within_2x"], bool)
    assert [c["chunk"] for c in fs["chunk_scan"]["rows"]] == [128, 512]


def test_meanfield_and_flow_sections(report):
    for r in report["meanfield_step"]["rows"]:
        assert all(_positive(r[k]) for k in ("t_build_field_ms", "t_speed_ms", "t_step_ms"))
    fp = report["flow_vs_pgd"]
    assert fp["tolerances"] == [1e-2, 1e-3] and "L_ref" in fp["accuracy"]
    row = fp["rows"][0]
    assert row["k"] == 4 and row["horizon"] == 8.0  # T = d^((k-2)/2)
    assert all(_positive(r["evaluations"]) and _positive(r["error"]) for r in row["flow_runs"] + row["pgd_runs"])
    # projected GD is first order: halving the step halves the error
    assert all(1.6 < q < 2.4 for q in row["pgd_error_halving_ratios"])
    first = row["at_tolerance"][0]
    assert first["flow"]["error"] <= 1e-2 and first["pgd"]["error"] <= 1e-2
    assert _positive(first["evaluation_ratio"]) and _positive(first["wall_time_ratio"])


def test_sampled_section(report):
    sp = report["sampled_vs_population"]
    assert [r["batch"] for r in sp["rows"]] == [1024, 4096, 16384]
    errs = [r["rel_error_median"] for r in sp["rows"]]
    # Monte Carlo error falls with the batch like 1/sqrt(B) (x4 over x16 in B; heavy tails: loose)
    assert 2.0 < errs[0] / errs[-1] < 8.0
    for e in sp["at_accuracy"]:
        assert _positive(e["batch_needed"]) and _positive(e["time_ratio_sampled_over_exact"])
    assert "flow vs pgd" in summary(report)


def test_reference_products_are_the_products():
    W = np.random.default_rng(0).standard_normal((300, 7))
    np.testing.assert_allclose(_products(W, 64), (W @ W.T) @ W, rtol=1e-12, atol=1e-9)


def test_helpers_and_errors(tmp_path):
    assert set(page_fault_cost(1)) == {"fresh_us_per_page", "reuse_us_per_page"}
    assert "applied" in tune_malloc()
    assert cli.main(["bench", "--out", str(tmp_path / "x.txt"), "--quick"]) == 2
    assert cli.main(["bench", "--out", str(tmp_path / "missing" / "x.json"), "--quick"]) == 2


def test_routes_section(report):
    rt = report["routes"]
    assert rt["activation"] == "he4" and rt["dtype"] == "float32"
    assert [(r["d"], r["m"]) for r in rt["rows"]] == [(8, 512), (8, 1024), (16, 512), (16, 1024)]
    assert len(rt["load_average_start"]) == 3 and len(rt["load_average_end"]) == 3
    for r in rt["rows"]:
        for key in ("t_gram_s", "t_moments_s", "t_auto_s", "t_gram_numpy_s", "auto_over_best",
                    "speedup_moments_over_gram"):
            assert _positive(r[key]), key
        assert r["auto_route"] in ("gram", "moments")
        assert r["n_features"] == {8: 120, 16: 816}[r["d"]]  # C(d+2, 3) monomials of degree 3
        assert r["speedup_moments_over_gram"] == pytest.approx(r["t_gram_s"] / r["t_moments_s"])
    assert rt["targets"]["max_auto_over_best"] == max(r["auto_over_best"] for r in rt["rows"])
    assert "routes d=16 m=1024" in summary(report)


def test_routes_extrapolate_beyond_the_budget():
    from mfcore.bench import bench_routes

    out = bench_routes(dims=(8,), widths=(256, 512), repeats=1, budget_s=1e-9, baseline_max_width=256)
    first, second = out["rows"]
    assert first["gram_extrapolated"] is False and second["gram_extrapolated"] is True
    assert second["t_gram_s"] == pytest.approx(first["t_gram_s"] * 4)
    assert second["t_moments_s"] == pytest.approx(first["t_moments_s"] * 2)
    assert "t_gram_numpy_s" not in second
