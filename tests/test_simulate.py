"""The simulation driver: time discretisations, coupling, observers, reproducibility and errors."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import mfcore
from mfcore import OverlapField, Problem, SimulationState, nested_initialisation, simulate, sphere_coordinate_moments

sim_module = importlib.import_module("mfcore.simulate")  # `mfcore.simulate` is the function


@pytest.fixture(scope="module")
def he4():
    return Problem(16, "he4")


class Recorder:
    """A test observer keeping a few things per step."""

    def __init__(self):
        self.states = []

    def start(self, state):
        self.states.append(("start", state.t, state.step, state.W.copy(), state.twins(), state.finite.loss,
                            state.tracers.copy(), state.nodes.copy()))

    def update(self, state):
        self.states.append(("update", state.t, state.step, state.W.copy(), state.twins(), state.finite.loss,
                            state.tracers.copy(), state.nodes.copy()))

    def result(self):
        return None


# ------------------------------------------------------------------------------------------
# discretisations
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flow_vs_pgd(he4):
    rt = [0.0, 1.0, 2.0, 3.0, 4.0]
    kw = dict(width=128, horizon=4.0, nodes=1024, seed=0, record_times=rt, progress=False)
    runs = {eta: simulate(he4, step=eta, **kw) for eta in (0.02, 0.01)}
    for rtol in (1e-6, 1e-9):
        runs[f"flow{rtol:g}"] = simulate(he4, method="flow", rtol=rtol, atol=rtol * 1e-2, **kw)
    return runs


def test_pgd_converges_to_flow_at_order_one(flow_vs_pgd):
    ref = flow_vs_pgd["flow1e-09"]
    assert np.allclose(ref.t, [0, 1, 2, 3, 4])
    for var in ("mf_loss", "loss", "gap_mean"):
        e2 = float(np.abs(flow_vs_pgd[0.02][var] - ref[var]).max())
        e1 = float(np.abs(flow_vs_pgd[0.01][var] - ref[var]).max())
        assert 1.7 < e2 / e1 < 2.3, (var, e2, e1)  # first order in the step
    # the loss moved by ~0.3 while the step-0.01 error is ~1e-3 = O(step)
    e1 = float(np.abs(flow_vs_pgd[0.01].mf_loss - ref.mf_loss).max())
    assert e1 < 0.2 * 0.01 and float(ref.mf_loss[0] - ref.mf_loss[-1]) > 0.25


def test_flow_is_cheaper_at_matched_accuracy(flow_vs_pgd):
    ref = flow_vs_pgd["flow1e-09"]
    pgd, flow = flow_vs_pgd[0.01], flow_vs_pgd["flow1e-06"]
    err_pgd = float(np.abs(pgd.mf_loss - ref.mf_loss).max())
    err_flow = float(np.abs(flow.mf_loss - ref.mf_loss).max())
    assert err_flow < err_pgd / 100
    assert pgd.attrs["velocity_evaluations"] == 400
    assert flow.attrs["velocity_evaluations"] < pgd.attrs["velocity_evaluations"]


def test_record_grids(he4):
    ds = simulate(he4, width=8, horizon=3.0, step=0.05, n_records=30, nodes=64, progress=False)
    t = ds.t.values
    assert t[0] == 0.0 and t[-1] == pytest.approx(3.0) and np.all(np.diff(t) > 0)
    assert np.allclose(t / 0.05, np.rint(t / 0.05), atol=1e-9)  # pgd records at step times
    assert len(t) <= 30
    flow = simulate(he4, width=8, horizon=3.0, step=0.05, n_records=30, nodes=64, method="flow", progress=False)
    assert np.array_equal(flow.t.values, mfcore.default_record_times(3.0, 0.05, 30))
    assert len(flow.t) == 30
    # a horizon that is not a multiple of the step ends at the nearest step
    odd = simulate(he4, width=0, horizon=1.0, step=0.15, nodes=64, progress=False)
    assert odd.t.values[-1] == pytest.approx(1.05)


# ------------------------------------------------------------------------------------------
# coupling and recorded quantities
# ------------------------------------------------------------------------------------------
def test_observer_state_and_recorded_gaps(he4):
    obs = Recorder()
    ds = simulate(he4, width=40, horizon=1.0, step=0.1, nodes=512, seed=3, observers=[obs],
                  keep_neurons=True, keep_nodes=True, record_times=[0.0, 0.5, 1.0], progress=False)
    assert [s[0] for s in obs.states] == ["start"] + ["update"] * 10
    assert np.allclose([s[1] for s in obs.states], np.arange(11) * 0.1)
    assert obs.states[0][2] is None and obs.states[1][2] == 0.1
    W0 = obs.states[0][3]
    assert np.array_equal(W0, nested_initialisation(40, 16, 3))
    assert np.abs(obs.states[0][4] - W0).max() < 1e-15  # twins start on the neurons
    assert float(ds.gap_mean[0]) < 1e-15
    for k, t in ((5, 0.5), (10, 1.0)):
        _, t_obs, _, W, Wbar, loss, tracers, nodes = obs.states[k]
        rec = ds.sel(t=t, method="nearest")
        assert abs(t_obs - float(rec.t)) < 1e-12
        assert np.allclose(np.linalg.norm(Wbar, axis=1), 1.0, atol=1e-14)
        assert np.allclose(Wbar[:, 0], tracers)
        gaps = np.linalg.norm(W - Wbar, axis=1)  # direct formula
        assert np.abs(gaps - rec.gap.values).max() < 1e-14
        assert float(rec.gap_mean) == pytest.approx(gaps.mean(), rel=1e-13)
        assert np.allclose(rec.gap_quantile.values, np.quantile(gaps, [0.5, 0.9, 0.99, 1.0]), rtol=1e-13)
        assert float(rec.flipped_fraction) == np.mean(gaps > 1)
        # sign-blind overlap gap, from the observer's own neurons and twins (not the recorder's arrays)
        assert float(rec.overlap_gap) == pytest.approx(np.mean(np.abs(np.abs(W[:, 0]) - np.abs(Wbar[:, 0]))),
                                                       rel=1e-12)
        assert float(rec.loss) == loss
        assert np.allclose(rec.overlap.values, W[:, 0]) and np.allclose(rec.nodes.values, nodes)
        assert float(rec.mf_loss) == pytest.approx(OverlapField(he4, nodes).loss(), rel=1e-14)
    assert gaps.mean() > 1e-3  # the gap opened


def test_tracers_follow_the_node_flow(he4):
    """The 1-D flow preserves order: tracer(t) = nodes(t) interpolated at its initial overlap."""
    ds = simulate(he4, width=200, horizon=3.0, step=0.05, nodes=8192, seed=1, keep_neurons=True,
                  keep_nodes=True, record_times=[0.0, 3.0], progress=False)
    n0, nT = ds.nodes.values
    u0, uT = ds.twin_overlap.values
    inside = (u0 > n0[0]) & (u0 < n0[-1])
    assert np.abs(np.interp(u0[inside], n0, nT) - uT[inside]).max() < 1e-3
    assert np.mean(np.abs(uT) > 0.9) > 0.1 and np.mean(np.abs(u0) > 0.9) == 0  # many neurons moved far


def test_function_gap_at_zero_matches_closed_form(he4):
    """At t=0, E_{rho_hat x rho} K = E_{rho x rho} K (rho uniform), so the function gap is mean K(G) - E K."""
    ds = simulate(he4, width=300, horizon=0.1, step=0.05, nodes=8192, seed=2, record_times=[0.0], progress=False)
    W = nested_initialisation(300, 16, 2)
    kmean = np.mean(he4.kernel(W @ W.T))
    t = sphere_coordinate_moments(17, 4)
    ek = he4.kernel.coeffs @ t[: he4.kernel.coeffs.size]
    assert float(ds.function_gap[0]) == pytest.approx(kmean - ek, abs=1e-7)  # node quadrature ~1e-8


def test_width_zero_runs_the_limit_alone(he4):
    ds = simulate(he4, width=0, horizon=1.0, step=0.05, nodes=256, progress=False)
    assert set(ds.data_vars) == {"mf_loss"}
    full = simulate(he4, width=16, horizon=1.0, step=0.05, nodes=256, progress=False)
    assert np.array_equal(ds.mf_loss.values, full.mf_loss.values)


# ------------------------------------------------------------------------------------------
# reproducibility, precision, attributes
# ------------------------------------------------------------------------------------------
def test_same_seed_same_results_and_nested_widths(he4):
    kw = dict(horizon=0.5, step=0.05, nodes=256, keep_neurons=True, progress=False)
    a = simulate(he4, width=64, seed=7, **kw)
    b = simulate(he4, width=64, seed=7, **kw)
    c = simulate(he4, width=64, seed=8, **kw)
    wide = simulate(he4, width=256, seed=7, **kw)
    for var in a.data_vars:
        assert np.array_equal(a[var].values, b[var].values), var
    assert not np.array_equal(a.loss.values, c.loss.values)
    assert np.array_equal(a.overlap.values[0], wide.overlap.values[0, :64])
    obs_small, obs_wide = Recorder(), Recorder()
    simulate(he4, width=64, seed=7, horizon=0.1, step=0.05, nodes=64, observers=[obs_small], progress=False)
    simulate(he4, width=256, seed=7, horizon=0.1, step=0.05, nodes=64, observers=[obs_wide], progress=False)
    assert np.array_equal(obs_small.states[0][3], obs_wide.states[0][3][:64])


def test_float32_option(he4):
    obs = Recorder()
    kw = dict(width=128, horizon=2.0, step=0.05, nodes=512, seed=0, progress=False)
    d64 = simulate(he4, **kw)
    d32 = simulate(he4, dtype="float32", observers=[obs], **kw)
    assert obs.states[-1][3].dtype == np.float32
    assert d32.loss.dtype == np.float64 and d32.attrs["dtype"] == "float32"
    assert np.array_equal(d32.mf_loss.values, d64.mf_loss.values)  # the limit stays float64
    assert float(np.abs(d32.loss - d64.loss).max()) < 1e-5
    assert float(np.abs(d32.gap_mean - d64.gap_mean).max()) < 1e-5


def test_attrs_record_every_parameter(he4):
    ds = simulate(he4, width=8, horizon=0.2, step=0.05, nodes=64, seed=1, progress=False)
    a = ds.attrs
    for key, val in dict(method="pgd", width=8, horizon=0.2, step=0.05, nodes=64, seed=1, dtype="float64",
                         dim=16, activation="he4", target="he4", information_exponent=4,
                         velocity_evaluations=4, mfcore_version=mfcore.__version__).items():
        assert a[key] == val, key
    assert a["wall_time_s"] > 0
    assert list(ds["quantile"].values) == [0.5, 0.9, 0.99, 1.0]


def test_progress_bar_goes_to_stderr(he4, capsys):
    simulate(he4, width=4, horizon=0.2, step=0.05, nodes=64, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "simulate (pgd)" in err
    simulate(he4, width=4, horizon=0.2, step=0.05, nodes=64, progress=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(width=-1), "width"),
    (dict(width=2.5), "width"),
    (dict(horizon=0.0), "horizon"),
    (dict(horizon=-1.0), "horizon"),
    (dict(step=0.3), r"K'\(1\)"),
    (dict(step=0.0), "step"),
    (dict(nodes=1), "nodes"),
    (dict(n_records=1), "n_records"),
    (dict(method="euler"), "method"),
    (dict(dtype="float16"), "dtype"),
    (dict(record_times=[0.0, 5.0]), "record_times"),
    (dict(method="flow", rtol=0.0), "rtol"),
    (dict(method="flow", integrator="Radau"), "integrator"),
    (dict(method="flow", observers=[Recorder()]), "observers"),
    (dict(observers=[object()]), "observer"),
    (dict(seed=-3), "seed"),
])
def test_invalid_arguments(he4, kwargs, match):
    base = dict(width=4, horizon=1.0, step=0.05, nodes=64, progress=False)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(he4, **base)


def test_invalid_problem():
    with pytest.raises(ValueError, match="dim"):
        Problem(1, "he4")
    with pytest.raises(ValueError, match="unknown activation"):
        Problem(8, "he4x")
    with pytest.raises(ValueError, match="Problem"):
        simulate("he4", width=4)


def _nan_on_call(original, n_bad):
    calls = [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        out = original(*args, **kwargs)
        if calls[0] == n_bad:
            out.velocity = np.full_like(out.velocity, np.nan)
        return out

    return wrapped


def test_nan_in_finite_network_is_reported_with_time(he4, monkeypatch):
    # evaluation 3 is at t = 0.1; the step it drives lands at t = 0.15
    monkeypatch.setattr(sim_module._finite, "evaluate", _nan_on_call(sim_module._finite.evaluate, 3))
    with pytest.raises(FloatingPointError, match=r"finite neurons.*t=0\.15.*smaller step"):
        simulate(he4, width=8, horizon=1.0, step=0.05, nodes=64, progress=False)


def test_nan_in_limit_is_reported_with_time(he4, monkeypatch):
    original = OverlapField.speed
    calls = [0]

    def speed(self, u):
        calls[0] += 1
        out = original(self, u)
        return out * np.nan if calls[0] == 2 else out

    monkeypatch.setattr(OverlapField, "speed", speed)
    with pytest.raises(FloatingPointError, match=r"quantile nodes at t=0\.1\b"):
        simulate(he4, width=0, horizon=1.0, step=0.05, nodes=64, progress=False)


def test_nan_in_flow_is_reported_with_time(he4, monkeypatch):
    monkeypatch.setattr(sim_module._finite, "evaluate", _nan_on_call(sim_module._finite.evaluate, 9))
    with pytest.raises(FloatingPointError, match=r"finite neurons W \(velocity\) at t=\d"):
        simulate(he4, width=8, horizon=1.0, nodes=64, method="flow", progress=False)


def test_simulation_state_is_exported():
    assert mfcore.SimulationState is SimulationState


# ------------------------------------------------------------------------------------------
# evaluation routes and the memory guard
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["pgd", "flow"])
def test_gram_and_moment_routes_give_the_same_run(method):
    problem = Problem(8, "he4+he6", "0.6*he4+0.3*he6")
    kw = dict(width=64, horizon=0.5, step=0.05, nodes=128, seed=2, method=method, progress=False,
              keep_neurons=True)
    runs = {e: simulate(problem, evaluation=e, **kw) for e in ("gram", "moments")}
    assert runs["gram"].attrs["evaluation_route"] == "gram"
    assert runs["moments"].attrs["evaluation_route"] == "moments"
    assert runs["moments"].attrs["evaluation"] == "moments"
    for var in ("loss", "gap_mean", "function_gap", "overlap"):
        np.testing.assert_allclose(runs["moments"][var], runs["gram"][var], rtol=1e-9, atol=1e-14)


def test_auto_route_is_recorded(he4):
    ds = simulate(he4, width=4096, horizon=0.1, step=0.05, nodes=64, progress=False, dtype="float32")
    assert ds.attrs["evaluation"] == "auto" and ds.attrs["evaluation_route"] == "moments"
    relu = simulate(Problem(16, "relu"), width=16, horizon=0.1, step=0.05, nodes=64, progress=False)
    assert relu.attrs["evaluation_route"] == "gram"
    lim = simulate(he4, width=0, horizon=0.1, step=0.05, nodes=64, progress=False)
    assert lim.attrs["evaluation_route"] == "none"


def test_invalid_evaluation(he4):
    with pytest.raises(ValueError, match="evaluation must be one of"):
        simulate(he4, width=4, horizon=0.1, nodes=64, evaluation="fast", progress=False)
    with pytest.raises(ValueError, match=r"degree \d+ in dimension d=16 needs D ="):
        simulate(Problem(16, "relu"), width=4, horizon=0.1, nodes=64, evaluation="moments", progress=False)


def test_run_too_large_for_memory_is_refused_before_allocating(monkeypatch):
    import mfcore.memory as memory

    problem = Problem(3_000_000, "he4")
    est = sim_module.memory_estimate(problem, 100_000, 64, 80)
    assert est > 100_000 * 3_000_000 * 8  # at least the float64 neurons
    with pytest.raises(ValueError, match=r"needs about [\d.,]+ TiB of memory but only [\d.,]+ [MG]iB is "
                                         r"installed on this machine \(total memory\)"):
        simulate(problem, width=100_000, horizon=0.1, step=0.05, nodes=64, progress=False)
    # the same check with a fake small machine on a small run: a distinct message for each limit
    monkeypatch.setattr(memory, "SAMPLE_PAUSE", 0.0)
    monkeypatch.setattr(memory, "total_memory_bytes", lambda: 2**20)
    with pytest.raises(ValueError, match="width m=4096.*installed on this machine.*or use dtype float32"):
        simulate(Problem(8, "he4"), width=4096, horizon=0.1, step=0.05, nodes=64, progress=False)
    monkeypatch.setattr(memory, "total_memory_bytes", lambda: 2**40)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2**20)
    with pytest.raises(ValueError, match="width m=4096.*only 1.0 MiB is available .*other processes") as exc:
        simulate(Problem(8, "he4"), width=4096, horizon=0.1, step=0.05, nodes=64, progress=False, dtype="float32")
    assert "float32" not in str(exc.value).split("; ")[-1]  # not suggested when already set


def test_memory_margin_and_brief_shortage(monkeypatch):
    """The estimate gets a margin; a shortage that lasts a moment does not refuse the run."""
    import mfcore.memory as memory

    est = sim_module.memory_estimate(Problem(8, "he4"), 4096, 64, 80)
    monkeypatch.setattr(memory, "SAMPLE_PAUSE", 0.0)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: int(est * 1.1))
    with pytest.raises(ValueError, match="is available"):
        memory.check_memory(est, "x")  # within 10%: refused, the margin is 25%
    samples = iter([est // 2, est // 2, 2 * est, 0])
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: next(samples))
    assert memory.check_memory(est, "x") == int(est * memory.MEMORY_MARGIN)


@pytest.mark.parametrize("kwargs, match", [
    (dict(activation="he100000", method="flow"), "installed on this machine"),  # (deg+2)^2 tables
    (dict(n_records=10**9), "installed on this machine"),  # the record grid
    (dict(keep_neurons=True, width=10**6, n_records=10**4, horizon=1e3, step=1e-3, max_steps=None),
     "installed on this machine"),  # kept neurons
    (dict(nodes=10**11), "installed on this machine"),
    (dict(horizon=1e300), "more than the cap max_steps"),
    (dict(step=1e-300), "more than the cap max_steps"),
    (dict(horizon=1e300, method="flow"), "more than the cap max_steps"),
    (dict(horizon=0.01, step=0.05), "larger than the horizon"),
    (dict(max_steps=0), "max_steps"),
])
def test_hostile_runs_are_refused_before_allocating(kwargs, match):
    kwargs = {"width": 4, "nodes": 64, **kwargs}
    problem = Problem(8, kwargs.pop("activation", "he4"))
    with pytest.raises(ValueError, match=match):
        simulate(problem, progress=False, **kwargs)


def test_step_cap_can_be_lifted(he4):
    with pytest.raises(ValueError, match="max_steps=10"):
        simulate(he4, width=4, horizon=1.0, step=0.05, nodes=64, max_steps=10, progress=False)
    ds = simulate(he4, width=4, horizon=1.0, step=0.05, nodes=64, max_steps=None, progress=False)
    assert ds.attrs["velocity_evaluations"] == 20 and float(ds.t[-1]) == pytest.approx(1.0)


def test_run_specification_matches_simulate():
    """One set of defaults: the run specification's are those of simulate()."""
    import inspect

    from mfcore.runspec import PARAMETERS, RunSpec

    sig = inspect.signature(simulate).parameters
    for name, (_, default, _) in PARAMETERS.items():
        if name in sig:
            assert sig[name].default == default, name
    spec = RunSpec.from_mapping({"dim": 8, "width": 4.0, "horizon": 1})
    assert spec.width == 4 and isinstance(spec.width, int) and spec.horizon == 1.0
    assert list(spec.as_dict()) == sorted(PARAMETERS)
    for bad, match in (({"dim": 8, "width": "4"}, "width must be an integer"), ({"width": 4}, "needs dim"),
                       ({"dim": 8, "dtype": "float16"}, "dtype must be one of"),
                       ({"dim": 8, "record_times": [1, -1]}, "record_times"), ({"dim": 8, "sped": 1}, "unknown")):
        with pytest.raises(ValueError, match=match):
            RunSpec.from_mapping(bad)
