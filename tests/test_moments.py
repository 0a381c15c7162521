"""The exact moment route of the finite interaction against the Gram route."""
from __future__ import annotations

from math import comb

import numpy as np
import pytest

from mfcore import Problem, finite, moments
from mfcore.kernels import Kernel


def _neurons(m, d, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    return W.astype(dtype)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


CASES = [("he2", None), ("he3", None), ("he4", None), ("he5", None), ("he6", None),
         ("he4+he6", None), ("he4+he6", "0.6*he4+0.3*he6"), ("he3+he4", "he3")]


@pytest.mark.parametrize("activation,target", CASES)
@pytest.mark.parametrize("d", [3, 8, 16])
def test_routes_agree_float64(activation, target, d):
    problem = Problem(d, activation, target)
    W = _neurons(300, d, seed=d)
    g = finite.evaluate(W, problem, chunk=64, evaluation="gram")
    mo = finite.evaluate(W, problem, evaluation="moments")
    assert _rel(mo.velocity, g.velocity) < 1e-12
    assert abs(mo.kernel_mean - g.kernel_mean) <= 1e-12 * abs(g.kernel_mean)
    assert abs(mo.loss - g.loss) <= 1e-12 * abs(g.loss)
    np.testing.assert_array_equal(mo.overlaps, g.overlaps)
    # the wrappers pass the route through
    np.testing.assert_allclose(finite.velocity(W, problem, evaluation="moments"), mo.velocity, rtol=0, atol=0)
    assert finite.population_loss(W, problem, evaluation="moments") == pytest.approx(mo.loss, rel=1e-15)


def test_routes_agree_with_a_direct_double_sum():
    """Independent check: the interaction and the kernel sum from an explicit m x m x d sum."""
    problem = Problem(5, "he4+he6", "0.6*he4+0.3*he6")
    W = _neurons(40, 5, seed=3)
    G = np.clip(W @ W.T, -1, 1)
    a = problem.kernel.coeffs
    dK = sum(q * a[q] * G ** (q - 1) for q in range(1, a.size))
    F_direct = np.einsum("ij,jk->ik", dK, W)
    ksum_direct = float(sum(a[q] * (G ** q).sum() for q in range(a.size)))
    F, ksum = moments.interaction(W, problem.kernel)
    assert _rel(F, F_direct) < 1e-13
    assert ksum == pytest.approx(ksum_direct, rel=1e-13)


def test_features_reproduce_powers_of_the_inner_product():
    d = 4
    k = Kernel([0, 0, 0, 0, 0, 0, 1.0])  # degree 6: features of degree 5 only
    pl = moments.plan(k, d)
    assert pl.degrees == (5,)
    assert pl.n_features == comb(d + 4, 5) == moments.n_monomials(d, 5)
    X, Y = _neurons(7, d, 1), _neurons(9, d, 2)
    PX, PY = moments.moment_features(X, pl), moments.moment_features(Y, pl)
    np.testing.assert_allclose(PX @ PY.T, (X @ Y.T) ** 5, rtol=1e-13, atol=1e-15)


def test_float32_within_its_tolerance():
    d = 16
    problem = Problem(d, "he4+he6")
    W64 = _neurons(2048, d, seed=5)
    ref = finite.evaluate(W64, problem, evaluation="gram")
    for route in ("gram", "moments"):
        fe = finite.evaluate(W64.astype(np.float32), problem, evaluation=route)
        assert fe.velocity.dtype == np.float32
        assert _rel(fe.velocity, ref.velocity) < 2e-5
        assert fe.kernel_mean == pytest.approx(ref.kernel_mean, rel=1e-4)


def test_auto_picks_the_cheaper_route():
    assert finite.choose_evaluation(32768, Problem(16, "he4")) == "moments"
    assert finite.choose_evaluation(131072, Problem(16, "he4+he6")) == "moments"
    assert finite.choose_evaluation(2048, Problem(64, "he4")) == "gram"
    assert finite.choose_evaluation(16384, Problem(64, "he4")) == "gram"
    # truncated Hermite series of a non-polynomial activation: D far too large -> gram
    assert finite.choose_evaluation(10**6, Problem(16, "relu")) == "gram"
    W = _neurons(64, 16)
    a = finite.evaluate(W, Problem(16, "relu"), evaluation="auto")
    b = finite.evaluate(W, Problem(16, "relu"), evaluation="gram")
    np.testing.assert_array_equal(a.velocity, b.velocity)


def test_moments_refuses_too_many_monomials():
    problem = Problem(16, "relu")
    with pytest.raises(ValueError, match=r"degree \d+ in dimension d=16 needs D = \d+"):
        finite.evaluate(_neurons(8, 16), problem, evaluation="moments")
    with pytest.raises(ValueError, match="evaluation must be one of"):
        finite.evaluate(_neurons(8, 16), problem, evaluation="fast")


def test_moments_chunks_and_rebuilt_features_agree(monkeypatch):
    problem = Problem(8, "he4+he6")
    W = _neurons(500, 8, seed=9)
    ref = moments.interaction(W, problem.kernel)
    monkeypatch.setattr(moments, "FEATURE_CHUNK_BYTES", 1)        # 16-row chunks
    monkeypatch.setattr(moments, "KEEP_FEATURE_BYTES", 0)         # features rebuilt in pass 2
    F, ksum = moments.interaction(W, problem.kernel)
    assert _rel(F, ref[0]) < 1e-13
    assert ksum == pytest.approx(ref[1], rel=1e-13)


def test_fused_gram_pass_matches_numpy_passes():
    problem = Problem(8, "he4+he6", "0.6*he4+0.3*he6")
    W = _neurons(300, 8, seed=4)
    for dtype, tol in ((np.float64, 1e-13), (np.float32, 1e-5)):
        Wd = W.astype(dtype)
        for with_mean in (True, False):
            F1, k1 = finite._gram_interaction(Wd, problem, 64, with_mean, fused=True)
            F0, k0 = finite._gram_interaction(Wd, problem, 64, with_mean, fused=False)
            assert _rel(F1, F0) < tol
            assert k1 == pytest.approx(k0, rel=tol)


def test_memory_guard_refuses_before_allocating(monkeypatch):
    monkeypatch.setattr(finite, "available_memory_bytes", lambda: 10 * 2**20)
    with pytest.raises(ValueError, match=r"needs about [\d.]+ MiB of memory but only 10.0 MiB is available"):
        finite.evaluate(_neurons(4096, 8), Problem(8, "he4"), evaluation="gram")


def test_available_memory_is_positive():
    assert finite.available_memory_bytes() > 2**20


@pytest.mark.parametrize("activation", ["he4", "he2", "he4+he6"])
def test_single_power_kernel_sum_from_the_second_product(activation):
    """For K = a_q s^q the fused Gram route takes the kernel sum from <w_i, (K'(G) W)_i> / q."""
    problem = Problem(6, activation)
    W = _neurons(200, 6, seed=11)
    G = np.clip(W @ W.T, -1, 1)
    direct = float(problem.kernel(G).sum())
    for fused in (True, False):
        _, ksum = finite._gram_interaction(W, problem, 32, True, fused=fused)
        assert ksum == pytest.approx(direct, rel=1e-13)
