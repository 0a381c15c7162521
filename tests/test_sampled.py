"""Sampled minibatch SGD (the authors' protocol) against the exact population dynamics."""
from __future__ import annotations

import numpy as np
import pytest

from mfcore import Problem, nested_initialisation, simulate, velocity
from mfcore.hermite import hermite_series
from mfcore.sampled import _Pointwise, activation_derivative, minibatch_gradient, sampled_sgd
from mfcore.sphere import tangent_project


def _mean_sampled_velocity(W, problem, n_batches, batch, seed):
    """Mean and standard error of -P_w g over independent fresh minibatches."""
    rng = np.random.default_rng(seed)
    vs = []
    for _ in range(n_batches):
        X = rng.standard_normal((batch, problem.dim))
        g, _ = minibatch_gradient(W, X, problem.target(X[:, 0]), problem)
        vs.append(-tangent_project(W, g))
    vs = np.array(vs)
    return vs.mean(0), vs.std(0, ddof=1) / np.sqrt(n_batches)


@pytest.mark.parametrize("activation,target,n_batches",
                         [("he4", None, 48), ("he4+he6", "he4", 96), ("tanh", None, 48)])
def test_expected_minibatch_gradient_is_the_population_velocity(activation, target, n_batches):
    # E over fresh samples of the tangential part of -g_i is the exact velocity v_i (SPEC §2).
    problem = Problem(8, activation, target)
    W = nested_initialisation(16, 8, seed=3)
    v = velocity(W, problem)
    mean, se = _mean_sampled_velocity(W, problem, n_batches=n_batches, batch=16384, seed=11)
    z = np.abs(mean - v) / se
    assert z.max() < 5.0, z.max()  # 128 components, all within 5 standard errors
    # the total error is the Monte Carlo error: rms z-score ~ 1 (components are correlated through
    # the shared residual f - y, so its spread is wider than chi^2_128 would give)
    chi = np.linalg.norm((mean - v) / se) / np.sqrt(v.size)
    assert chi < 1.6, chi
    # ... and the comparison has power: a velocity off by a factor 2 is rejected
    assert np.linalg.norm((mean - 2.0 * v) / se) / np.sqrt(v.size) > 2.5


def test_pointwise_evaluation_matches_series_and_derivatives():
    z = np.linspace(-4, 4, 101)[:, None] * np.ones((1, 3))
    for name in ("he4", "he4+he6", "he3"):
        act = Problem(8, name).activation
        pw = _Pointwise(act)
        np.testing.assert_allclose(pw.value(z, out=np.empty_like(z)), hermite_series(act.coeffs, z),
                                   rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(pw.derivative(z, out=np.empty_like(z)), act.derivative(z),
                                   rtol=1e-12, atol=1e-10)
    # function activations: central difference of the exact function vs closed forms
    tanh = Problem(8, "tanh").activation
    np.testing.assert_allclose(activation_derivative(tanh)(z), 1 - np.tanh(z) ** 2, atol=1e-9)
    relu = Problem(8, "relu").activation
    zz = np.array([-2.0, -0.3, 0.4, 3.0])
    np.testing.assert_allclose(activation_derivative(relu)(zz), [0, 0, 1, 1], atol=1e-9)
    bump = Problem(8, "bump").activation
    exact = 5 * np.exp(-z * z) * (2 * z - 2 * z**3)
    np.testing.assert_allclose(activation_derivative(bump)(z), exact, atol=1e-8)


def test_minibatch_gradient_against_autograd_free_finite_difference():
    # g_i = m * d/dw_i of the minibatch loss: check one row by central differences of the loss.
    problem = Problem(6, "he4")
    W = nested_initialisation(5, 6, seed=0)
    X = np.random.default_rng(1).standard_normal((300, 6))
    y = problem.target(X[:, 0])
    g, loss = minibatch_gradient(W, X, y, problem, chunk=64)

    def batch_loss(W):
        f = problem.activation(X @ W.T).mean(axis=1)
        return 0.5 * np.mean((f - y) ** 2)

    assert loss == pytest.approx(batch_loss(W), rel=1e-12)
    h = 1e-6
    fd = np.zeros(6)
    for a in range(6):
        E = np.zeros_like(W)
        E[2, a] = h
        fd[a] = (batch_loss(W + E) - batch_loss(W - E)) / (2 * h)
    np.testing.assert_allclose(g[2], 5 * fd, rtol=1e-6, atol=1e-9)


def test_huge_batch_tracks_population_projected_gd():
    problem = Problem(16, "he4")
    sgd = sampled_sgd(problem, width=128, horizon=3.0, step=0.05, batch=32768, seed=0, n_records=10)
    ref = simulate(problem, width=128, horizon=3.0, step=0.05, method="pgd", nodes=64, seed=0, n_records=10)
    np.testing.assert_allclose(sgd.t, ref.t)
    assert float(sgd.loss[0]) == float(ref.loss[0])  # the same W(0) as simulate
    rel = np.abs(sgd.loss.values / ref.loss.values - 1)
    assert rel.max() < 0.03, rel
    assert float(ref.loss[-1]) < 0.6 * float(ref.loss[0])  # the loss really moved over the window
    # a small batch is visibly noisier: its curve is further away
    small = sampled_sgd(problem, width=128, horizon=3.0, step=0.05, batch=64, seed=0, n_records=10)
    assert np.abs(small.loss.values / ref.loss.values - 1).max() > 2 * rel.max()


def test_fixed_training_set_epochs_and_reproducibility():
    problem = Problem(8, "he4")
    kw = dict(width=16, horizon=2.0, step=0.05, batch=256, samples=1024, n_records=8)
    a = sampled_sgd(problem, seed=4, **kw)
    b = sampled_sgd(problem, seed=4, **kw)
    c = sampled_sgd(problem, seed=5, **kw)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    assert not np.allclose(a.loss[1:], c.loss[1:])
    assert a.attrs["n_steps"] == 40 and a.attrs["epochs"] == 10 and a.attrs["samples_seen"] == 40 * 256
    assert np.all(np.isfinite(a.train_loss)) and np.all(a.loss > 0)
    online = sampled_sgd(problem, seed=4, **{**kw, "samples": None})
    assert online.attrs["epochs"] == 0 and not np.allclose(online.loss[1:], a.loss[1:])


def test_small_training_set_overfits():
    # with n = B = 32 reused samples the training loss falls below the population loss
    problem = Problem(8, "he4")
    ds = sampled_sgd(problem, width=64, horizon=20.0, step=0.1, batch=32, samples=32, seed=0, n_records=6)
    assert float(ds.train_loss[-1]) < 0.5 * float(ds.loss[-1])


@pytest.mark.parametrize("kwargs,match", [
    (dict(batch=0), "batch"),
    (dict(batch=64, samples=32), "samples"),
    (dict(step=10.0), "step"),
    (dict(width=0), "width"),
    (dict(horizon=-1.0), "horizon"),
    (dict(seed=-1), "seed"),
])
def test_bad_parameters(kwargs, match):
    base = dict(width=8, horizon=1.0, step=0.05, batch=16)
    with pytest.raises(ValueError, match=match):
        sampled_sgd(Problem(8, "he4"), **{**base, **kwargs})
