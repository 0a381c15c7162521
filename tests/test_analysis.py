"""mfcore.analysis: crossing times and scaling-law fits against closed forms."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mfcore.analysis import (  # noqa: E402
    exponential_fit,
    first_crossing_time,
    fit_law,
    linear_fit,
    local_slopes,
    log_law_fit,
    loglog_axes,
    power_law_fit,
    seed_slopes,
)


def test_crossing_exact_for_curve_linear_in_log_time():
    # y = 2 - 0.5 log t is linear in log t, so interpolation in log t is exact: y = 1 at t = e^2.
    t = np.concatenate([[0.0], np.geomspace(1e-2, 1e3, 23)])
    y = 2.0 - 0.5 * np.log(np.maximum(t, 1e-300))
    y[0] = 5.0
    assert first_crossing_time(t, y, 1.0) == pytest.approx(np.exp(2.0), rel=1e-12)


def test_crossing_of_exponential_decay_is_accurate_on_log_grid():
    # y = exp(-t) halves at log 2; the log-time interpolation error is small on a fine grid.
    t = np.concatenate([[0.0], np.geomspace(1e-3, 10.0, 400)])
    y = np.exp(-t)
    assert first_crossing_time(t, y, 0.5) == pytest.approx(np.log(2.0), rel=1e-4)
    # linear interpolation in t is also accurate there
    assert first_crossing_time(t, y, 0.5, log_time=False) == pytest.approx(np.log(2.0), rel=1e-4)


def test_crossing_linear_in_t_and_first_interval_from_zero():
    t = np.array([0.0, 1.0, 2.0])
    y = np.array([1.0, 0.0, -1.0])
    # first interval starts at t = 0: linear interpolation in t
    assert first_crossing_time(t, y, 0.25) == pytest.approx(0.75)
    assert first_crossing_time(t, y, -0.5, log_time=False) == pytest.approx(1.5)
    # level already reached at t0
    assert first_crossing_time(t, y, 2.0) == 0.0


def test_crossing_upward_and_missing():
    t = np.array([1.0, 10.0, 100.0])
    y = np.array([0.0, 1.0, 3.0])
    assert first_crossing_time(t, y, 2.0, direction="up") == pytest.approx(10 ** 1.5)
    assert np.isnan(first_crossing_time(t, y, 5.0, direction="up", on_missing="nan"))
    with pytest.raises(ValueError, match="horizon"):
        first_crossing_time(t, y, 5.0, direction="up")
    with pytest.raises(ValueError, match="direction"):
        first_crossing_time(t, y, 1.0, direction="sideways")
    with pytest.raises(ValueError, match="increasing"):
        first_crossing_time(t[::-1], y, 1.0)


def test_power_law_fit_recovers_exponent_and_stderr():
    x = np.geomspace(16, 1024, 7)
    exact = power_law_fit(x, 3.0 * x**1.5)
    assert exact.slope == pytest.approx(1.5, abs=1e-12)
    assert np.exp(exact.intercept) == pytest.approx(3.0, rel=1e-12)
    assert exact.slope_stderr == pytest.approx(0.0, abs=1e-12)
    assert exact.r_squared == pytest.approx(1.0)
    assert exact(64.0) == pytest.approx(3.0 * 64**1.5)
    # with log-normal noise the standard error matches the textbook formula sigma / sqrt(Sxx)
    rng = np.random.default_rng(0)
    noise = 0.1 * rng.standard_normal(x.size)
    f = power_law_fit(x, 3.0 * x**1.5 * np.exp(noise))
    X = np.log(x)
    resid = np.log(3.0 * x**1.5) + noise - (f.intercept + f.slope * X)
    sigma = np.sqrt(np.sum(resid**2) / (x.size - 2))
    assert f.slope_stderr == pytest.approx(sigma / np.sqrt(np.sum((X - X.mean()) ** 2)), rel=1e-10)
    assert f.rmse == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-10)


def test_other_laws_and_their_comparison():
    d = np.array([8.0, 16.0, 32.0, 64.0, 128.0])
    # log law: T = 0.25 log d + 1
    f = log_law_fit(d, 0.25 * np.log(d) + 1.0)
    assert (f.slope, f.intercept) == pytest.approx((0.25, 1.0))
    assert f(np.e**4) == pytest.approx(2.0)
    # exponential law: y = 2 e^{0.1 x}
    g = exponential_fit(d, 2.0 * np.exp(0.1 * d))
    assert (g.slope, np.exp(g.intercept)) == pytest.approx((0.1, 2.0))
    assert g(10.0) == pytest.approx(2.0 * np.e)
    h = linear_fit(d, 3.0 - 2.0 * d)
    assert (h.slope, h.intercept) == pytest.approx((-2.0, 3.0))
    # a power law is fitted better by "power" than by "exponential" (same response log y)
    y = 5.0 * d**2
    assert power_law_fit(d, y).rmse < 1e-12 < exponential_fit(d, y).rmse
    # two points: exact line, undefined standard error
    two = power_law_fit([1.0, 4.0], [1.0, 16.0])
    assert two.slope == pytest.approx(2.0) and np.isnan(two.slope_stderr)


def test_fit_input_validation():
    with pytest.raises(ValueError, match="law"):
        fit_law([1, 2], [1, 2], "cubic")
    with pytest.raises(ValueError, match="y > 0"):
        power_law_fit([1, 2, 3], [1, -2, 3])
    with pytest.raises(ValueError, match="finite"):
        power_law_fit([1, 2, 3], [1, np.nan, 3])
    with pytest.raises(ValueError, match="at least two"):
        power_law_fit([1], [1])


def test_local_slopes_and_axes():
    x = np.array([1.0, 2.0, 8.0])
    assert local_slopes(x, x**3) == pytest.approx([3.0, 3.0])
    assert local_slopes(x, 1 + x) == pytest.approx([np.log(1.5) / np.log(2), np.log(3) / np.log(4)])
    fig, ax = plt.subplots()
    loglog_axes(ax, "d", "T", base=2, plain="both")
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_xlabel() == "d"
    with pytest.raises(ValueError, match="plain"):
        loglog_axes(ax, plain="z")
    plt.close(fig)


def test_seed_slopes_mean_and_standard_error():
    x = np.array([128.0, 256.0, 512.0, 1024.0])
    rng = np.random.default_rng(0)
    # exact power laws with per-seed prefactors: every slope is -1/2, no spread
    y = rng.uniform(0.5, 2.0, (5, 1)) * x**-0.5
    s = seed_slopes(x, y)
    assert s.slope == pytest.approx(-0.5) and s.stderr == pytest.approx(0.0, abs=1e-12) and s.n_seeds == 5
    # slopes -0.4 and -0.6: mean -0.5, standard error sd/sqrt(2) = 0.1
    y2 = np.stack([x**-0.4, 3 * x**-0.6])
    s2 = seed_slopes(x, y2)
    assert s2.slope == pytest.approx(-0.5) and s2.stderr == pytest.approx(0.1)
    assert s2.per_seed == pytest.approx([-0.4, -0.6])
    # one seed: no standard error; wrong shapes refused
    assert np.isnan(seed_slopes(x, x**-1.0).stderr)
    with pytest.raises(ValueError, match="shape"):
        seed_slopes(x, y[:, :3])
