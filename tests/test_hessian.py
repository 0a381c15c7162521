"""Local Hessian (section math-hessian of the book): analytic eigenvalues against finite-difference Jacobians."""
from __future__ import annotations

import numpy as np
import pytest

from mfcore import OverlapField, Problem, initial_overlaps, projected_step_1d, uniform_sphere, velocity
from mfcore.hessian import (
    HessianIntegralObserver,
    RecordSchedule,
    finite_probe_velocity,
    hessian_along,
    local_hessian_eigenvalues,
    riemannian_jacobian_fd,
    symmetric_velocity,
    tangent_basis,
    tangent_eigenvalues,
    velocity_derivative,
)

OVERLAPS = (0.05, 0.3, 0.7, 0.95, -0.4)
PROBLEMS = {
    "he4": ("he4", None),
    "he3": ("he3", None),
    "he4+he6": ("he4+he6", None),
    "tanh": ("tanh", None),
    "mis he4/he4+he6": ("he4", "he4+he6"),
    "mis he4+he6/he4": ("he4+he6", "he4"),
}
DIM = 7
RTOL = 1e-6


def _field(problem: Problem, evolved: bool, n_nodes: int = 1500) -> OverlapField:
    nodes = initial_overlaps(problem.dim, n_nodes)
    loss0 = OverlapField(problem, nodes).loss()
    if evolved:  # 30 projected-GD steps of the exact 1-D dynamics (t = 1.5)
        for _ in range(30):
            f = OverlapField(problem, nodes)
            nodes = projected_step_1d(nodes, f.speed(nodes), 0.05)
    field = OverlapField(problem, nodes)
    if evolved:  # the law really moved away from the uniform one (loss down by 30-70 %)
        assert field.loss() < 0.75 * loss0
    return field


def _point(d: int, u: float):
    r = np.sqrt(1.0 - u * u)
    w = np.zeros(d)
    w[0], w[1] = u, r
    tau = np.zeros(d)
    tau[0], tau[1] = r, -u
    return w, tau


@pytest.mark.parametrize("evolved", [False, True], ids=["uniform", "evolved"])
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_eigenvalues_match_finite_differences(name, evolved):
    act, tgt = PROBLEMS[name]
    problem = Problem(DIM, act, tgt)
    field = _field(problem, evolved)
    vel = lambda x: symmetric_velocity(field, x)  # noqa: E731
    for u in OVERLAPS:
        lam_par, lam_perp = local_hessian_eigenvalues(field, u)
        w, tau = _point(DIM, u)
        # basis with the meridian first: J = diag(lam_par, lam_perp, ..., lam_perp)
        J, Q = riemannian_jacobian_fd(vel, w, basis=tangent_basis(w, first=tau))
        assert np.allclose(Q.T @ Q, np.eye(DIM - 1), atol=1e-12) and np.allclose(Q.T @ w, 0, atol=1e-12)
        scale = max(abs(lam_par), abs(lam_perp))
        assert np.max(np.abs(J - J.T)) <= 1e-7 * scale, "the local Hessian must be symmetric"
        assert abs(J[0, 0] - lam_par) <= RTOL * abs(lam_par) + 1e-12
        assert np.allclose(np.diag(J)[1:], lam_perp, rtol=RTOL, atol=1e-12)
        off = J - np.diag(np.diag(J))
        assert np.max(np.abs(off)) <= 1e-7 * scale
        # generic basis: spectrum = {lam_par once, lam_perp with multiplicity d-2}
        ev = tangent_eigenvalues(vel, w)
        i = np.argmin(np.abs(ev - lam_par))
        rest = np.delete(ev, i)
        assert abs(ev[i] - lam_par) <= RTOL * abs(lam_par) + 1e-12
        assert np.allclose(rest, lam_perp, rtol=RTOL, atol=1e-12)
        assert abs(lam_par - lam_perp) > 1e3 * RTOL * scale  # two distinct eigenvalues


def test_velocity_derivative_and_identities():
    for name, (act, tgt) in PROBLEMS.items():
        for evolved in (False, True):
            field = _field(Problem(DIM, act, tgt), evolved)
            u = np.array([-0.9, -0.4, 0.0, 0.05, 0.3, 0.7, 0.95])
            h = 1e-4  # fourth-order central difference
            V = field.velocity
            fd = (8 * (V(u + h) - V(u - h)) - (V(u + 2 * h) - V(u - 2 * h))) / (12 * h)
            Vp = velocity_derivative(field, u)
            assert np.allclose(Vp, fd, rtol=1e-7, atol=1e-10), name
            lp, lq = local_hessian_eigenvalues(field, u)
            V = field.velocity(u)
            # Stein identity of the law of s: lam_perp = -u V / (1-u^2), lam_par + lam_perp = V'
            assert np.allclose(lq, -u * V / (1 - u * u), rtol=1e-10, atol=1e-14), name
            assert np.allclose(lp + lq, Vp, rtol=1e-10, atol=1e-14), name


def test_poles_are_finite_and_isotropic():
    problem = Problem(DIM, "he4+he6")
    field = _field(problem, evolved=True)
    lp, lq = local_hessian_eigenvalues(field, np.array([1.0, -1.0, 1.0 + 1e-16]))
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(lq))
    assert np.allclose(lp, lq, rtol=1e-12)  # at the pole every tangent direction is alike
    near = local_hessian_eigenvalues(field, 1.0 - 1e-7)
    assert np.allclose(near, (lp[0], lq[0]), rtol=1e-5)
    w = np.zeros(DIM)
    w[0] = 1.0
    J, _ = riemannian_jacobian_fd(lambda x: symmetric_velocity(field, x), w)
    assert np.allclose(J, lp[0] * np.eye(DIM - 1), rtol=1e-6, atol=1e-9 * abs(lp[0]))


def test_dimension_two_has_no_transverse_direction():
    problem = Problem(2, "he4")
    field = _field(problem, evolved=True)
    for u in OVERLAPS:
        lp, lq = local_hessian_eigenvalues(field, u)
        assert np.isnan(lq) and np.isfinite(lp)
        w, _ = _point(2, u)
        J, _ = riemannian_jacobian_fd(lambda x: symmetric_velocity(field, x), w)
        assert J.shape == (1, 1) and abs(J[0, 0] - lp) <= RTOL * abs(lp) + 1e-12


def test_early_self_concordance():
    # uniform law, large d: lam_par * u / V = k - 1 = 3 for small u, lam_perp < 0
    field = OverlapField(Problem(256, "he4"), initial_overlaps(256, 4000))
    u = np.array([0.01, 0.02, 0.05, 0.1])
    lp, lq = local_hessian_eigenvalues(field, u)
    ratio = lp * u / field.velocity(u)
    assert np.all(np.abs(ratio / 3.0 - 1.0) < 0.05), ratio
    assert np.all(lq < 0)
    uu = np.linspace(0.01, 0.99, 50)
    assert np.all(local_hessian_eigenvalues(field, uu)[1] < 0)


def test_finite_network_jacobian_approximates_the_limit():
    d, m = 6, 20000
    problem = Problem(d, "he4")
    W = uniform_sphere(m, d, seed=3)
    probe = finite_probe_velocity(W, problem)
    small = W[:300]  # at its own neurons, the probe field is the network's velocity
    assert np.allclose(finite_probe_velocity(small, problem)(small), velocity(small, problem), atol=1e-13)
    field = OverlapField(problem, initial_overlaps(d, 4000))
    for u in (0.3, 0.7, 0.95):
        lp, lq = local_hessian_eigenvalues(field, u)
        w, tau = _point(d, u)
        J, _ = riemannian_jacobian_fd(probe, w, basis=tangent_basis(w, first=tau))
        assert np.max(np.abs(J - J.T)) < 1e-8  # Hessian of a potential: symmetric for any network
        # Monte Carlo: entries fluctuate like (K''(1)+K'(1)) / sqrt(m) ~ 0.1 at most; measured ~ 0.005
        tol = 4.0 / np.sqrt(m)
        assert abs(J[0, 0] - lp) < tol, (u, J[0, 0], lp)
        assert abs(np.mean(np.diag(J)[1:]) - lq) < tol, (u, np.diag(J), lq)
        assert np.max(np.abs(J[1:, 1:] - lq * np.eye(d - 2))) < 3 * tol


def test_hessian_along_and_integral_observer():
    from mfcore.simulate import simulate

    problem = Problem(16, "he4")
    step, horizon = 0.1, 2.0
    every = np.arange(0, round(horizon / step) + 1) * step
    obs = HessianIntegralObserver()
    ds = simulate(problem, width=32, horizon=horizon, step=step, nodes=512, seed=1, record_times=every,
                  keep_neurons=True, keep_nodes=True, observers=[obs])
    h = hessian_along(problem, ds)
    assert h["lam_par"].dims == ("t", "node") and h["lam_par_twin"].dims == ("t", "neuron")
    it = 7
    field = OverlapField(problem, ds["nodes"].values[it])
    lp, lq = local_hessian_eigenvalues(field, ds["nodes"].values[it])
    assert np.allclose(h["lam_par"].values[it], lp, rtol=1e-13) and np.allclose(h["lam_perp"].values[it], lq)
    # early: self-concordance ratio of positive nodes near k - 1 = 3 (d = 16: moderate u's)
    sc = h["self_concordance"].isel(t=0).values
    small = (ds["nodes"].values[0] > 0.02) & (ds["nodes"].values[0] < 0.1)
    assert np.all(np.abs(sc[small] - 3.0) < 0.15)
    # the observer's left Riemann sum, recomputed from the recorded twins
    res = obs.result()
    lam_max = h["lam_max_twin"].values
    expected = np.concatenate([np.zeros((1, lam_max.shape[1])), np.cumsum(step * lam_max[:-1], axis=0)])
    got = res["int_lam_max"].sel(t=ds.t.values, method="nearest").values
    assert np.allclose(got, expected, rtol=1e-10, atol=1e-13)
    op = np.fmax(np.abs(h["lam_par_twin"].values), np.abs(h["lam_perp_twin"].values)).max(axis=1)
    assert np.allclose(res["lipschitz_sup"].values, np.maximum.accumulate(op), rtol=1e-12)
    assert np.allclose(res["gronwall_exponent"].values, res.t.values * res["lipschitz_sup"].values)
    # along the quantile nodes, with the limit alone (width = 0)
    on_nodes = HessianIntegralObserver(on="nodes")
    simulate(problem, width=0, horizon=horizon, step=step, nodes=512, seed=1, observers=[on_nodes])
    res_n = on_nodes.result()
    expected_n = np.cumsum(step * h["lam_max"].values[:-1], axis=0)[-1]
    assert res_n["int_lam_max"].dims == ("t", "node")
    assert np.allclose(res_n["int_lam_max"].values[-1], expected_n, rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match="on='nodes'"):
        simulate(problem, width=0, horizon=step, step=step, nodes=64, seed=1, observers=[HessianIntegralObserver()])


def test_record_schedule_is_log_spaced_and_bounded():
    s = RecordSchedule(max_records=400)
    taken = [k for k in range(10**6 + 1) if s.want(k * 0.01)]
    assert taken[:20] == list(range(20)) and len(taken) <= 400
    k = np.array(taken[20:], dtype=float)
    assert np.all(k[1:] <= np.ceil(1.04 * k[:-1]) + 1)  # log-spaced: no holes beyond the ratio 1.04
    s = RecordSchedule(max_records=100, horizon=1000.0)
    taken = [k for k in range(100001) if s.want(k * 0.01)]
    assert 80 <= len(taken) <= 100


def test_bad_input():
    field = OverlapField(Problem(5, "he4"), initial_overlaps(5, 100))
    with pytest.raises(ValueError, match="d = 5"):
        symmetric_velocity(field, np.ones(4))
    with pytest.raises(ValueError, match="h"):
        riemannian_jacobian_fd(lambda x: x, np.ones(5), h=0)
    with pytest.raises(ValueError, match="finite"):
        local_hessian_eigenvalues(field, np.nan)
