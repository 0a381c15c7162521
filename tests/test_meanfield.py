"""Activations, the exact finite-width dynamics and the exact infinite-width limit, each against an
independent computation (closed forms, Monte Carlo, finite differences, direct quadrature)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from mfcore import (
    OverlapField,
    Problem,
    evaluate,
    get_activation,
    hermite_normalized,
    initial_overlaps,
    nested_initialisation,
    population_loss,
    projected_step,
    projected_step_1d,
    simulate,
    sphere_coordinate_moments,
    uniform_sphere,
)
from mfcore.hermite import gauss_hermite_rule

# Hermite polynomials written out by hand (independent of mfcore.hermite)
HE = {
    1: lambda z: z,
    3: lambda z: (z**3 - 3 * z) / np.sqrt(6.0),
    4: lambda z: (z**4 - 6 * z**2 + 3) / np.sqrt(24.0),
    5: lambda z: (z**5 - 10 * z**3 + 15 * z) / np.sqrt(120.0),
    6: lambda z: (z**6 - 15 * z**4 + 45 * z**2 - 15) / np.sqrt(720.0),
}


def _bump(z):
    return 5.0 * (np.exp(-z * z) * z * z - np.sqrt(3.0) / 9.0)


def _gauss_expect(g):
    """E g(z), z ~ N(0,1), by adaptive quadrature (independent of Gauss-Hermite)."""
    val, _ = integrate.quad(lambda z: g(z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), -np.inf, np.inf,
                            epsabs=1e-13, epsrel=1e-12, limit=200)
    return val


# ------------------------------------------------------------------------------------------
# Hermite series and activations
# ------------------------------------------------------------------------------------------
def test_hermite_orthonormal_and_explicit():
    z, w = gauss_hermite_rule(60)
    H = np.array([hermite_normalized(j, z) for j in range(12)])
    gram = (H * w) @ H.T
    assert np.abs(gram - np.eye(12)).max() < 1e-12
    pts = np.linspace(-3, 3, 7)
    for j, f in HE.items():
        assert np.allclose(hermite_normalized(j, pts), f(pts), atol=1e-12)


@pytest.mark.parametrize("spec, func", [
    ("he3", HE[3]),
    ("he4+he6", lambda z: HE[4](z) + HE[6](z)),
    ("tanh", np.tanh),
])
def test_kernel_matches_monte_carlo(spec, func):
    """K(<u,v>) = E[sigma(<u,x>) sigma(<v,x>)], Monte Carlo with n = 10^6, within 4 standard errors."""
    rng = np.random.default_rng(123)
    act = get_activation(spec)
    for s in (0.3, 0.8):
        g1, g2 = rng.standard_normal((2, 10**6))
        a, b = g1, s * g1 + np.sqrt(1 - s * s) * g2  # (<u,x>, <v,x>) for unit u, v with <u,v> = s
        prod = func(a) * func(b)
        est, se = prod.mean(), prod.std() / np.sqrt(prod.size)
        assert abs(float(act.kernel(s)) - est) < 4 * se, (spec, s, float(act.kernel(s)), est, se)


def test_quadrature_recovers_polynomial_coefficients():
    def poly(z):
        return 0.3 + 2.0 * HE[3](z) - 0.5 * HE[5](z) + 0.25 * HE[6](z)

    act = get_activation(poly, degree=9)
    expected = np.zeros(10)
    expected[[0, 3, 5, 6]] = [0.3, 2.0, -0.5, 0.25]
    assert np.abs(act.coeffs - expected).max() < 1e-10
    assert act.truncation_error < 1e-6
    assert act.information_exponent == 3


@pytest.mark.parametrize("k", range(1, 7))
def test_information_exponent_hermite(k):
    assert get_activation(f"he{k}").information_exponent == k
    assert Problem(8, f"he{k}").information_exponent == k


def test_information_exponent_named_functions():
    assert get_activation("relu").information_exponent == 1
    assert get_activation("tanh").information_exponent == 1
    bump = get_activation("bump")
    assert bump.information_exponent == 4
    # direct adaptive quadrature of the authors' function: c_0 = c_1 = c_2 = c_3 = 0, c_4 != 0
    direct = [_gauss_expect(lambda z, j=j: _bump(z) * hermite_normalized(j, z)) for j in range(7)]
    assert np.abs(direct[:4]).max() < 1e-10
    assert abs(direct[4]) > 0.1
    assert np.allclose(bump.coeffs[:7], direct, atol=1e-9)


def test_unknown_activation_lists_known_ones():
    with pytest.raises(ValueError, match="unknown activation 'swish'") as err:
        get_activation("swish")
    for name in ("he{k}", "relu", "tanh", "bump"):
        assert name in str(err.value)


# ------------------------------------------------------------------------------------------
# finite network
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def misspecified():
    return Problem(6, "he4+he6", "he4+0.5*he3")


def test_velocity_is_minus_m_riemannian_gradient(misspecified):
    """<v_i, xi> = -m dL/d eps along w_i(eps) = (w_i + eps xi)/|w_i + eps xi|, xi tangent (central FD)."""
    m = 20
    W = nested_initialisation(m, 6, 3)
    V = evaluate(W, misspecified).velocity
    rng = np.random.default_rng(0)
    for i in (0, 7, 19):
        xi = rng.standard_normal(6)
        xi -= (xi @ W[i]) * W[i]
        xi /= np.linalg.norm(xi)
        eps = 1e-5
        Wp, Wm = W.copy(), W.copy()
        Wp[i] = (W[i] + eps * xi) / np.linalg.norm(W[i] + eps * xi)
        Wm[i] = (W[i] - eps * xi) / np.linalg.norm(W[i] - eps * xi)
        dL = (population_loss(Wp, misspecified) - population_loss(Wm, misspecified)) / (2 * eps)
        assert abs(V[i] @ xi + m * dL) < 1e-7 * max(1.0, abs(V[i] @ xi))
        assert abs(V[i] @ W[i]) < 1e-14  # tangent


def test_finite_loss_matches_sampled_estimate():
    """L = 1/2 E (f(x) - f*(x))^2 with f = (1/m) sum sigma(<w_i,x>): Monte Carlo within 4 s.e."""
    problem = Problem(8, "he4+he6", "he4")
    W = nested_initialisation(20, 8, 5)
    W[0] = np.eye(8)[0]  # one neuron on w*, so the loss is not tiny relative to its noise
    rng = np.random.default_rng(9)
    X = rng.standard_normal((250_000, 8))
    P = X @ W.T
    P2 = P * P
    # he4 + he6 written out (Horner in z^2)
    f = np.mean((P2 * P2 - 6 * P2 + 3) / np.sqrt(24.0) + (P2 * (P2 * (P2 - 15) + 45) - 15) / np.sqrt(720.0), axis=1)
    r = 0.5 * (f - HE[4](X[:, 0])) ** 2
    est, se = r.mean(), r.std() / np.sqrt(r.size)
    assert abs(population_loss(W, problem) - est) < 4 * se


def test_rows_stay_on_sphere_and_chunks_do_not_matter(misspecified):
    W = nested_initialisation(50, 6, 1)
    for _ in range(100):
        W = projected_step(W, evaluate(W, misspecified).velocity, 0.02)
    assert np.abs(np.linalg.norm(W, axis=1) - 1).max() < 1e-12
    ref = evaluate(W, misspecified, chunk=512)
    for chunk in (1, 7, 16):
        other = evaluate(W, misspecified, chunk=chunk)
        assert np.abs(other.velocity - ref.velocity).max() < 1e-12
        assert abs(other.loss - ref.loss) < 1e-12
        assert abs(other.kernel_mean - ref.kernel_mean) < 1e-12


# ------------------------------------------------------------------------------------------
# exact infinite-width limit
# ------------------------------------------------------------------------------------------
def test_sphere_coordinate_moments_vs_monte_carlo():
    dim = 7  # s = one coordinate of a uniform unit vector of R^{d-1} = R^6
    s = uniform_sphere(10**6, dim - 1, 4)[:, 0]
    mom = sphere_coordinate_moments(dim, 8)
    assert mom[2] == pytest.approx(1 / (dim - 1), rel=1e-14)
    for n in range(9):
        x = s**n
        assert abs(mom[n] - x.mean()) <= 4 * x.std() / np.sqrt(x.size) + 1e-15, n


def test_overlap_field_matches_probe_in_large_uniform_sample():
    """V/r tau (limit) vs the finite velocity of a probe among m = 4e5 uniform particles (4 s.e.)."""
    problem = Problem(8, "he4+he6", "he4")
    field = OverlapField(problem, initial_overlaps(8, 8192))
    sample = uniform_sphere(400_000, 8, 11)
    dK = problem.kernel.derivative()
    rng = np.random.default_rng(2)
    e1 = np.eye(8)[0]
    for u in (-0.6, 0.2, 0.7):
        z = rng.standard_normal(8)
        z[0] = 0.0
        z /= np.linalg.norm(z)
        w = u * e1 + np.sqrt(1 - u * u) * z
        P = np.eye(8) - np.outer(w, w)
        terms = (dK(sample @ w)[:, None] * sample) @ P  # P_w K'(<w,w'>) w' per particle
        v_mc = P @ (problem.cross_kernel.derivative()(u) * e1) - terms.mean(axis=0)
        se = terms.std(axis=0) / np.sqrt(sample.shape[0])
        tau = (e1 - u * w) / np.sqrt(1 - u * u)
        v_limit = float(field.speed(u)) * tau
        assert np.all(np.abs(v_mc - v_limit) <= 4.5 * se + 1e-12), (u, v_mc - v_limit, se)
        assert float(field.velocity(u)) == pytest.approx(float(field.speed(u)) * np.sqrt(1 - u * u), rel=1e-14)


def test_1d_step_is_the_full_space_projected_step():
    """projected_step_1d(u, speed) = first coordinate of normalize(w + eta v) with v built from components()."""
    problem = Problem(10, "he4+he6", "he4")
    field = OverlapField(problem, initial_overlaps(10, 512) * 0.3 + 0.5)  # a non-uniform law
    rng = np.random.default_rng(0)
    e1 = np.eye(10)[0]
    for u in (-0.95, -0.3, 0.0, 0.4, 0.999):
        z = rng.standard_normal(10)
        z[0] = 0.0
        z /= np.linalg.norm(z)
        r = np.sqrt(1 - u * u)
        w = u * e1 + r * z
        A, B = field.components(u, r)
        g = problem.cross_kernel.derivative()(u) * e1 - (A * e1 + B * z)
        v = g - (g @ w) * w
        assert float(field.speed(u)) == pytest.approx(v @ (e1 - u * w) / r, abs=1e-13)
        for eta in (0.01, 0.1):
            w_new = projected_step(w[None, :], v[None, :], eta)[0]
            assert abs(float(projected_step_1d(u, field.speed(u), eta)) - w_new[0]) < 1e-12
            # the moved particle stays on its meridian: the perpendicular direction is z
            perp = w_new - w_new[0] * e1
            assert np.allclose(perp / np.linalg.norm(perp), z, atol=1e-12)
    # the symmetric field vanishes at the poles, so they are fixed points of the 1-D step
    assert float(field.speed(1.0)) == 0.0 and float(field.speed(-1.0)) == 0.0
    assert float(projected_step_1d(1.0, field.speed(1.0), 0.1)) == 1.0


def test_limit_loss_at_zero_vs_closed_form_and_wide_sample():
    problem = Problem(16, "he4+he6", "he4")
    # closed form: for rho_0 uniform, <w,w'> and u are both a coordinate of a uniform vector of R^16
    t = sphere_coordinate_moments(17, 12)
    K, Ks = problem.kernel.coeffs, problem.cross_kernel.coeffs
    exact = 0.5 * (K @ t[: K.size] - 2 * Ks @ t[: Ks.size] + problem.target_norm2)
    errors = []
    for N in (256, 1024, 4096, 16384):
        field = OverlapField(problem, initial_overlaps(16, N))
        errors.append(abs(field.loss() - exact))
        assert errors[-1] < 0.06 / N  # measured ~0.04/N: endpoint singularity of the quantile map
    assert all(b < a / 3 for a, b in zip(errors, errors[1:]))
    # a wide finite network: E L(rho_hat) = L(rho) + K(1)/(2m) (diagonal of the Gram matrix) + noise
    m = 6000
    W = nested_initialisation(m, 16, 8)
    fe = evaluate(W, problem)
    u = W[:, 0]
    se = problem.cross_kernel(u).std() / np.sqrt(m)  # noise of the cross term
    assert abs(fe.loss - problem.kernel.value_at_one() / (2 * m) - exact) < 4 * se + 2e-4


def test_limit_quadrature_converges():
    """The limit loss along the run changes less and less as the number of quantile nodes grows."""
    problem = Problem(16, "he4")
    losses = [simulate(problem, width=0, horizon=4.0, step=0.1, nodes=N, record_times=[2.0, 4.0],
                       progress=False).mf_loss.values for N in (256, 1024, 4096, 16384)]
    diffs = [np.abs(b - a).max() for a, b in zip(losses, losses[1:])]
    assert diffs[0] > diffs[1] > diffs[2]
    assert diffs[2] < 1e-4


# ------------------------------------------------------------------------------------------
# limit vs wide networks (math reference, section math-limit: agreement up to O(1/sqrt(m)))
# ------------------------------------------------------------------------------------------
def test_wide_networks_converge_to_the_limit():
    problem = Problem(16, "he4")
    diffs = {}
    for m in (256, 4096):
        ds = simulate(problem, width=m, horizon=6.0, step=0.1, nodes=4096, seed=0, n_records=12,
                      progress=False, dtype="float32" if m > 1000 else "float64")
        assert float(ds.mf_loss[-1]) < 0.6 * float(ds.mf_loss[0])  # the dynamics moved
        diffs[m] = float(np.abs(ds.loss - ds.mf_loss).max())
        # measured (seeds 0-2): max |L_m - L| * sqrt(m) / L(0) between 0.35 and 1.13
        assert diffs[m] <= 2.5 / np.sqrt(m) * float(ds.mf_loss[0]), (m, diffs[m])
    assert diffs[256] / diffs[4096] > 2.0, diffs  # sqrt(16) = 4; measured 4.5-5.0


def test_function_gap_terms_vs_monte_carlo():
    """Cross and self kernel means of a non-uniform law (the terms of the function gap) by sampling it."""
    problem = Problem(8, "he4+he6", "he4")
    nodes = np.tanh(3 * initial_overlaps(8, 1000) + 0.4)  # some non-uniform overlap law
    field = OverlapField(problem, nodes)
    rng = np.random.default_rng(5)

    def sample(n):  # w' = u' e1 + r' z', u' drawn from the nodes, z' uniform on e1-perp
        u = rng.choice(nodes, n)
        z = uniform_sphere(n, 7, rng)
        return np.column_stack([u, np.sqrt(1 - u * u)[:, None] * z])

    S1, S2 = sample(10**6), sample(10**6)
    k = problem.kernel(np.einsum("ij,ij->i", S1, S2))
    assert abs(field.self_kernel_mean() - k.mean()) < 4 * k.std() / np.sqrt(k.size)
    for u in (-0.5, 0.1, 0.9):
        w = np.zeros(8)
        w[0], w[1] = u, np.sqrt(1 - u * u)
        k = problem.kernel(S1 @ w)
        assert abs(float(field.kernel_mean_at(u)) - k.mean()) < 4 * k.std() / np.sqrt(k.size)
    # the gap formula assembles these terms
    W = nested_initialisation(30, 8, 0)
    fe = evaluate(W, problem)
    expected = fe.kernel_mean - 2 * np.mean(field.kernel_mean_at(W[:, 0])) + field.self_kernel_mean()
    assert field.function_gap(fe.kernel_mean, fe.overlaps) == pytest.approx(expected, rel=1e-12)
    assert expected > 0
