"""Sampled minibatch SGD (the authors' protocol) against the exact population dynamics."""
from __future__ import annotations

import numpy as np
import pytest

from mfcore import Problem, nested_initialisation, simulate, velocity
from mfcore.hermite import hermite_series
from mfcore.authors import book_step
from mfcore.sampled import _Pointwise, activation_derivative, authors_sgd, minibatch_gradient, sampled_sgd
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
    # E over fresh samples of the tangential part of -g_i is the exact velocity v_i (the book's mathematical reference, section math-model).
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


# ------------------------------------------------------------------------------------------
# the authors' protocol and units (their code: glasgow2025code)
# ------------------------------------------------------------------------------------------
def test_one_authors_step_is_the_books_step_with_twice_the_lr():
    """Their step: w - (lr m) grad R with R = mean (f-y)^2 (torch MSELoss, no 1/2), renormalised.
    It equals the book's step w - eta g with eta = 2 lr (g = m grad of the 1/2-loss)."""
    from mfcore.sphere import normalize_rows

    problem = Problem(5, "he4")
    m, lr = 4, 0.01
    W = nested_initialisation(m, 5, seed=1)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5))
    y = problem.target(X[:, 0])

    def risk(W):  # torch.nn.MSELoss of f(x) = (1/m) sum_i sigma(<w_i, x>)
        return np.mean((problem.activation(X @ W.T).mean(axis=1) - y) ** 2)

    h, grad = 1e-6, np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        grad[idx] = (risk(W + E) - risk(W - E)) / (2 * h)
    theirs = normalize_rows(W - lr * m * grad)
    g, half_loss = minibatch_gradient(W, X, y, problem)
    ours = normalize_rows(W - book_step(lr) * g)
    np.testing.assert_allclose(theirs, ours, atol=1e-9)
    assert risk(W) == pytest.approx(2 * half_loss, rel=1e-12)  # their risk = 2 x the book's loss


def test_authors_protocol_follows_the_population_dynamics_in_book_time():
    """Large batches: their SGD at lr, read at book time t = 2 T_auth, follows the exact projected GD
    with step 2 lr; read at t = T_auth (no factor 2) it does not."""
    problem = Problem(8, "he4")
    m, T_auth = 64, 0.5  # the loss falls fast here (d = 8): 0.46 -> 0.32 (t = 0.5) -> 0.22 (t = 1)
    ds = authors_sgd(problem, m, authors_time=T_auth, lr=0.01, samples=1 << 16, batch=1 << 16,
                     test_samples=1 << 12, seed=2, record_times=[0.0, 0.5, 1.0])
    assert ds.attrs["step"] == 0.02 and ds.attrs["n_steps"] == 50
    np.testing.assert_allclose(ds.t_authors.values, ds.t.values / 2)
    exact = simulate(problem, width=m, horizon=1.0, step=0.02, seed=2, record_times=[0.0, 0.5, 1.0],
                     nodes=64, progress=False)
    drop_sgd = ds.loss.values[0] - ds.loss.values[-1]
    drop_exact = exact.loss.values[0] - exact.loss.values[-1]
    assert ds.loss.values[0] == pytest.approx(exact.loss.values[0], rel=1e-12)  # same initial neurons
    assert drop_sgd == pytest.approx(drop_exact, rel=0.15), (drop_sgd, drop_exact)
    # without the factor 2 the comparison would read the exact curve at t = T_auth = 0.5: clearly different
    drop_wrong = exact.loss.values[0] - exact.loss.values[1]
    assert abs(drop_sgd - drop_wrong) > 0.3 * drop_exact
    np.testing.assert_allclose(ds.authors_population_risk.values, 2 * ds.loss.values)


def test_fixed_batch_order_reproducible_from_the_seed(monkeypatch):
    import mfcore.sampled as sampled

    seen = []
    real = sampled.minibatch_gradient

    def spy(W, X, y, problem, pointwise=None, chunk=None):
        seen.append(X[:, :2].copy())
        return real(W, X, y, problem, pointwise, chunk)

    monkeypatch.setattr(sampled, "minibatch_gradient", spy)
    problem = Problem(6, "he4")
    kw = dict(width=8, horizon=0.2, step=0.02, batch=32, samples=128, n_records=3, order="fixed")
    a = sampled.sampled_sgd(problem, seed=3, **kw)  # 10 steps, 4 batches per epoch
    first, seen[:] = list(seen), []
    b = sampled.sampled_sgd(problem, seed=3, **kw)
    second, seen[:] = list(seen), []
    sampled.sampled_sgd(problem, seed=4, **kw)
    other = list(seen)
    assert len(first) == 10 and a.attrs["epochs"] == 3
    for k in range(10):  # batch k is slice k mod 4 of the training set, every epoch in the same order
        np.testing.assert_array_equal(first[k], first[k % 4])
        np.testing.assert_array_equal(first[k], second[k])
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], other[0])  # another seed, another training set
    xr_equal = all(np.array_equal(a[v].values, b[v].values) for v in ("loss", "train_loss"))
    assert xr_equal
    train = np.random.default_rng([3, 1]).standard_normal((128, 6))  # the training set, from the seed
    np.testing.assert_array_equal(first[1], train[32:64, :2])


def test_test_set_risk_is_twice_the_book_loss_within_mc_error():
    problem = Problem(8, "he4")
    risks, pops = [], []
    for seed in range(6):
        ds = authors_sgd(problem, 16, authors_time=0.01, samples=256, batch=256, test_samples=1 << 15,
                         seed=seed, record_times=[0.0])
        risks.append(float(ds.authors_risk[0]))
        pops.append(float(ds.authors_population_risk[0]))
    risks, pops = np.array(risks), np.array(pops)
    rel = risks / pops - 1.0  # one fixed test set per seed: a Monte Carlo error of several %
    assert abs(rel.mean()) < 4 * rel.std(ddof=1) / np.sqrt(rel.size) + 1e-3, rel
    assert 0.005 < rel.std(ddof=1) < 0.3, rel  # heavy-tailed labels: the error is not negligible
    np.testing.assert_allclose(pops, 2 * np.array([0.5 * p for p in pops]))


def test_authors_data_sizes_follow_their_code():
    """Their main_nn.py at commit 9b8eb66 (-n 0): n = 131072, batch = 8192, n_test = max(int(n/2), 2048),
    epoch = int(T*batch/(lr*n)); the expressions are re-evaluated here literally, as in their code."""
    from mfcore.authors import AUTHORS_COMMIT, authors_data_sizes, authors_epochs

    assert AUTHORS_COMMIT == "9b8eb668c27b9313527f724ef1b2fab870f6d656"
    n, batch = 131072, 8192
    for d in (16, 32, 64, 128):
        assert authors_data_sizes(d) == {"samples": n, "batch": batch, "test_samples": max(int(n / 2), 2048)}
        T = max(np.log(d), 0.5 * d ** (4 / 2 - 1))  # their default horizon for He4 (k_GT = 4)
        assert authors_epochs(T, 0.01) == int(T * batch / (0.01 * n))
    assert authors_data_sizes(64)["test_samples"] == 65536
    # job.sh: -t 64 at lr 0.01 (h4, widths 128-512), lr 0.02 (width 32768), -t 32 at lr 0.005 (misspecified)
    assert [authors_epochs(T, lr) for T, lr in ((64, 0.01), (64, 0.02), (32, 0.005))] == [400, 200, 400]
    with pytest.raises(ValueError, match="dim"):
        authors_data_sizes(1)


def test_authors_sgd_matches_an_independent_transcription_of_their_loop():
    """Their training loop (prop_chaos.train at 9b8eb66), transcribed directly in numpy: normalise the
    rows, then per epoch the slices range(B*i, B*(i+1)) in order, loss MSELoss (no 1/2), SGD with
    lr*m on the first layer, renormalise. The same training set, initial neurons and test set as
    authors_sgd (from the seed); the number of steps and the recorded test risk must agree."""
    from mfcore.sphere import nested_initialisation as init

    problem = Problem(6, "he4")
    m, lr, n, B, n_test, T, seed = 8, 0.01, 96, 32, 512, 0.13, 5
    ds = authors_sgd(problem, m, authors_time=T, lr=lr, samples=n, batch=B, test_samples=n_test, seed=seed,
                     record_times=[0.0, 2 * lr * 3])  # t = 0 and after their first epoch (3 steps)
    epochs = int(T * B / (lr * n))  # main_nn.py
    assert epochs == 4 and ds.attrs["n_steps"] == epochs * int(np.ceil(n / B)) == 12
    assert ds.attrs["authors_time_reached"] == pytest.approx(12 * lr)

    rng = np.random.default_rng([seed, 1])  # the training set of the seed (sampled_sgd's stream)
    X = rng.standard_normal((n, 6))
    y = problem.target(X[:, 0])
    trng = np.random.default_rng([seed, 2])
    Xt = trng.standard_normal((n_test, 6))
    yt = problem.target(Xt[:, 0])
    W = init(m, 6, seed)
    W = W / np.linalg.norm(W, axis=1, keepdims=True)

    def risk_and_grad(W, Xb, yb):  # MSELoss of f = (1/m) sum sigma(<w_i, x>), analytic gradient
        Z = Xb @ W.T
        r = problem.activation(Z).mean(axis=1) - yb
        dsig = problem.activation.derivative(Z)
        grad = (2.0 / len(yb)) * ((r[:, None] * dsig / m).T @ Xb)
        return float(np.mean(r**2)), grad

    risks = []
    for t in range(epochs):
        if t == 1:
            risks.append(risk_and_grad(W, Xt, yt)[0])
        for i in range(int(np.ceil(n / B))):
            S = slice(B * i, B * (i + 1))
            _, grad = risk_and_grad(W, X[S], y[S])
            W = W - lr * m * grad
            W = W / np.linalg.norm(W, axis=1, keepdims=True)
    assert float(ds.authors_risk[1]) == pytest.approx(risks[0], rel=1e-10)
    final = risk_and_grad(W, Xt, yt)[0]
    end = authors_sgd(problem, m, authors_time=T, lr=lr, samples=n, batch=B, test_samples=n_test, seed=seed,
                      record_times=[0.0, 2 * lr * 12])
    assert float(end.authors_risk[-1]) == pytest.approx(final, rel=1e-10)


def test_authors_record_times_are_the_epoch_starts():
    from mfcore.sampled import authors_record_times

    t = authors_record_times(64.0, lr=0.01)  # job.sh: -t 64, lr 0.01
    assert t.size == 400 and t[0] == 0.0
    np.testing.assert_allclose(np.diff(t), 2 * 0.01 * 16)  # 16 steps of book step 0.02 per epoch
    assert t[-1] == pytest.approx(2 * 64 - 2 * 0.01 * 16)  # the last epoch's end is not recorded
