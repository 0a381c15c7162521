r"""Finite-width mean-field dynamics with exact population velocity and loss.

See the book's mathematical reference, sections ``math-model`` and ``math-moment-route``.

For neurons :math:`W=(w_1..w_m)` on :math:`S^{d-1}` and :math:`\hat\rho=\frac1m\sum_i\delta_{w_i}`:

.. math::
    v_{\hat\rho}(w_i) = P_{w_i}\Big[K_*'(u_i)\,e_1-\frac1m\sum_j K'(G_{ij})\,w_j\Big],\qquad
    L(\hat\rho)=\tfrac12\Big[\frac1{m^2}\sum_{ij}K(G_{ij})-\frac2m\sum_iK_*(u_i)+K_{**}(1)\Big],

with :math:`G=WW^\top` and :math:`u_i=\langle w_i,e_1\rangle`. :math:`v` is :math:`-m` times the
Riemannian gradient of :math:`L`. Two exact routes compute the interaction
:math:`\sum_jK'(G_{ij})w_j` and the kernel sum :math:`\sum_{ij}K(G_{ij})`:

``"gram"``
    two matrix products, :math:`O(m^2d)`, over row chunks of :math:`G` (memory
    :math:`O(\text{chunk}\cdot m)`); the element-wise work (clip to :math:`[-1,1]`, :math:`K'(G)`
    and the sum of :math:`K(G)`, by a simultaneous Horner scheme) is one fused multi-threaded
    pass compiled by numba (a numpy fallback is used if numba is missing).
``"moments"``
    the exact moment route of :mod:`mfcore.moments`, :math:`O(mD d)` with
    :math:`D=\sum_p\binom{d+p-1}{p}` monomial features: linear in :math:`m`.
``"auto"``
    the cheaper of the two by :func:`choose_evaluation`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import memory as _memory
from . import moments as _moments
from .memory import available_memory_bytes  # noqa: F401  (re-exported)
from .problem import Problem, check_int
from .sphere import normalize_rows

try:  # optional JIT of the fused element-wise pass
    import numba as _numba
except ImportError:  # pragma: no cover - numba is pinned in requirements.txt
    _numba = None

#: Rows of G whose kernel values are computed together (a block of _SUB_ROWS x m stays in cache).
_SUB_ROWS = 64
#: Rows of the Gram matrix processed at once (memory: chunk * m floats per temporary).
DEFAULT_CHUNK = 1024
#: Accepted values of ``evaluation``.
EVALUATIONS = ("auto", "gram", "moments")
#: Cost-model constants of :func:`choose_evaluation` (seconds per unit, see its docstring).
COST_MATMUL = 1.0
COST_GRAM_ELEMENT = 25.0
COST_MOMENT_MATMUL = 2.0
COST_FEATURE = 12.0
COST_GRAM_CALL = 2.0e7
COST_MOMENT_CALL = 4.0e4


@dataclass
class FiniteEvaluation:
    """Velocity and the by-products of the same Gram pass.

    Attributes
    ----------
    velocity : ndarray (m, d)
    kernel_mean : float
        :math:`\\frac1{m^2}\\sum_{ij}K(G_{ij})` (the network's squared norm :math:`\\|f_{\\hat\\rho}\\|^2`).
    overlaps : ndarray (m,)
        :math:`u_i=\\langle w_i,e_1\\rangle`.
    loss : float
        Population loss :math:`L(\\hat\\rho)`.
    """

    velocity: np.ndarray
    kernel_mean: float
    overlaps: np.ndarray
    loss: float


def _check_weights(W) -> np.ndarray:
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] < 2:
        raise ValueError(f"W must be an (m, d) array with m >= 1 and d >= 2, got shape {W.shape}")
    return W


# ---------------------------------------------------------------------------------------------
# memory guard
# ---------------------------------------------------------------------------------------------
def check_memory(estimate: int, what: str, dtype=None) -> None:
    """Raise a ValueError if ``estimate`` bytes cannot fit (see :func:`mfcore.memory.check_memory`)."""
    # the module's own name is looked up at call time (tests may replace it)
    _memory.check_memory(estimate, what, dtype=None if dtype is None else str(np.dtype(dtype)),
                         available=lambda: available_memory_bytes())


def _dtype_size(dtype) -> int:
    return np.dtype(dtype).itemsize


def gram_memory_bytes(m: int, d: int, chunk: int, dtype=np.float64) -> int:
    """Bytes allocated by one Gram-route evaluation: the chunk buffer(s) of :math:`G` and
    a few :math:`m\\times d` arrays (velocity, its projection)."""
    rows = min(chunk, m)
    n_buf = 1 if _numba is not None else 2
    return int(n_buf * rows * m * _dtype_size(dtype) + 4 * m * d * _dtype_size(dtype) + 16 * m)


def evaluation_memory_bytes(m: int, problem: Problem, evaluation: str, chunk: int = DEFAULT_CHUNK,
                            dtype=np.float64) -> int:
    """Bytes allocated by one :func:`evaluate` call with the given (resolved) route."""
    d = problem.dim
    if evaluation == "moments":
        pl = _moments.plan(problem.kernel, d, check=False)
        return _moments.memory_bytes(m, pl, _dtype_size(dtype)) + 4 * m * d * _dtype_size(dtype)
    return gram_memory_bytes(m, d, chunk, dtype)


# ---------------------------------------------------------------------------------------------
# route choice
# ---------------------------------------------------------------------------------------------
def gram_cost(m: int, problem: Problem) -> float:
    r"""Cost-model units of the Gram route: :math:`m^2\,(4d\,c_{mm}+(2\deg K+2)\,c_{el}/4)+c_{call}`."""
    return (float(m) ** 2 * (4 * problem.dim * COST_MATMUL
                             + (2 * problem.kernel.degree + 2) * COST_GRAM_ELEMENT / 4) + COST_GRAM_CALL)


def moments_cost(m: int, problem: Problem) -> float:
    r"""Cost-model units of the moment route: :math:`m\,(4dD\,c'_{mm}+(D_{built}+D)\,c_{feat})+c_{call}\,dP`
    (:math:`D_{built}` counts the intermediate degrees too; the last term is the per-call cost of the
    :math:`dP` vectorised products that build the features)."""
    pl = _moments.plan(problem.kernel, problem.dim, check=False)
    return (float(m) * (4 * problem.dim * pl.n_features * COST_MOMENT_MATMUL + (pl.n_built + pl.n_features) * COST_FEATURE)
            + COST_MOMENT_CALL * problem.dim * max(pl.max_degree, 1))


def choose_evaluation(m: int, problem: Problem, dtype=np.float64) -> str:
    r"""The cheaper exact route, ``"gram"`` or ``"moments"``, for ``m`` neurons.

    The cost model counts floating-point work in units of one multiply-add inside a BLAS matrix
    product (``COST_MATMUL = 1``):

    * Gram: two products, :math:`4m^2d`, plus the fused element-wise pass, about
      :math:`(2\deg K+2)` operations per entry of :math:`G` at ``COST_GRAM_ELEMENT / 4`` each,
      plus a fixed ``COST_GRAM_CALL`` per evaluation (thread start-up of the fused pass and BLAS);
    * moments: two products, :math:`4mDd` at ``COST_MOMENT_MATMUL`` each (tall-skinny products
      of features run at about half the rate of the square-ish Gram products), plus building :math:`D_{built}+D` features per neuron at
      ``COST_FEATURE`` each (memory-bound broadcast writes), plus ``COST_MOMENT_CALL`` per
      vectorised product of the feature construction.

    Calibration: on the 2-core development machine (OpenBLAS, numba 0.68, float32, he4 and
    he4+he6, :math:`d\in\{8,16,32,64\}`, :math:`m\in\{256,\dots,16384\}`), both routes were
    timed (best of 2-3 calls of :func:`evaluate`) and the constants set so that the model's
    time ratio Gram/moments follows the measured one at large :math:`m` within a factor 1.5
    (e.g. he4, :math:`d=32, m=16384`: model 1.9, measured 2.4; :math:`d=64, m=16384`: 0.21 vs
    0.24; :math:`d=16, m=16384`: 16.5 vs 14; he4+he6, :math:`d=16, m=16384`: 0.98 vs 0.70) and small widths
    (:math:`m\lesssim 1000`, where fixed costs dominate) pick moments when :math:`D` is small.
    ``mfcore bench`` re-measures both routes and ``auto`` on the current machine and reports
    auto's slowdown against the better route. Kernels whose feature count exceeds
    :data:`mfcore.moments.MAX_FEATURES` always use Gram.
    """
    try:
        _moments.plan(problem.kernel, problem.dim)
    except ValueError:
        return "gram"
    return "moments" if moments_cost(m, problem) < gram_cost(m, problem) else "gram"


def _check_evaluation(evaluation) -> str:
    if evaluation not in EVALUATIONS:
        raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {evaluation!r}")
    return evaluation


def resolve_evaluation(evaluation: str, m: int, problem: Problem, dtype=np.float64) -> str:
    """``"auto"`` -> :func:`choose_evaluation`; ``"moments"`` is checked (ValueError if D is too large)."""
    evaluation = _check_evaluation(evaluation)
    if evaluation == "auto":
        return choose_evaluation(m, problem, dtype)
    if evaluation == "moments":
        _moments.plan(problem.kernel, problem.dim)
    return evaluation


# ---------------------------------------------------------------------------------------------
# fused element-wise pass of the Gram route
# ---------------------------------------------------------------------------------------------
_TILE = 512
#: Blocks of G with fewer entries run the fused pass on one thread.
_PARALLEL_MIN_ENTRIES = 1 << 20

if _numba is not None:
    @_numba.njit(fastmath=True, cache=True, nogil=True)
    def _fused_row(row, a, with_sum, x, p, dp):  # pragma: no cover - compiled
        """One row in place: row <- K'(clip(row)); returns sum K(clip(row)) if with_sum.

        Simultaneous Horner on cache-sized tiles: dp <- dp*x + p, p <- p*x + a_k, k = deg-1..0,
        gives p = K(x) and dp = K'(x). Each loop runs over a tile (vectorised by LLVM).
        """
        m = row.size
        deg = a.size - 1
        lo = row.dtype.type(-1.0)
        hi = row.dtype.type(1.0)
        zero = row.dtype.type(0.0)
        acc = 0.0
        for j0 in range(0, m, _TILE):
            L = min(_TILE, m - j0)
            xs = x[:L]
            ps = p[:L]
            ds = dp[:L]
            rs = row[j0:j0 + L]
            top = a[deg]
            for t in range(L):
                v = rs[t]
                v = hi if v > hi else v
                v = lo if v < lo else v
                xs[t] = v
                ps[t] = top
                ds[t] = zero
            for k in range(deg - 1, -1, -1):
                ak = a[k]
                for t in range(L):
                    ds[t] = ds[t] * xs[t] + ps[t]
                    ps[t] = ps[t] * xs[t] + ak
            for t in range(L):
                rs[t] = ds[t]
            if with_sum:  # partial sums of one tile in the row's precision, then float64
                tile = zero
                for t in range(L):
                    tile += ps[t]
                acc += tile
        return acc

    @_numba.njit(fastmath=True, cache=True, nogil=True)
    def _derivative_row(row, b, x, p):  # pragma: no cover - compiled
        """One row in place: row <- K'(clip(row)) by Horner on the coefficients ``b`` of K'."""
        m = row.size
        deg = b.size - 1
        lo = row.dtype.type(-1.0)
        hi = row.dtype.type(1.0)
        for j0 in range(0, m, _TILE):
            L = min(_TILE, m - j0)
            xs = x[:L]
            ps = p[:L]
            rs = row[j0:j0 + L]
            top = b[deg]
            for t in range(L):
                v = rs[t]
                v = hi if v > hi else v
                v = lo if v < lo else v
                xs[t] = v
                ps[t] = top
            for k in range(deg - 1, -1, -1):
                bk = b[k]
                for t in range(L):
                    ps[t] = ps[t] * xs[t] + bk
            for t in range(L):
                rs[t] = ps[t]

    @_numba.njit(cache=True, nogil=True)
    def _fused_pass_serial(G, a, with_sum):  # pragma: no cover - compiled
        """Single-threaded :func:`_fused_pass` (small blocks: no thread start-up)."""
        x = np.empty(_TILE, dtype=G.dtype)
        p = np.empty(_TILE, dtype=G.dtype)
        dp = np.empty(_TILE, dtype=G.dtype)
        total = 0.0
        for i in range(G.shape[0]):
            total += _fused_row(G[i], a, with_sum, x, p, dp)
        return total

    @_numba.njit(cache=True, nogil=True)
    def _fused_derivative_serial(G, b):  # pragma: no cover - compiled
        """Single-threaded :func:`_fused_derivative`."""
        x = np.empty(_TILE, dtype=G.dtype)
        p = np.empty(_TILE, dtype=G.dtype)
        for i in range(G.shape[0]):
            _derivative_row(G[i], b, x, p)
        return 0.0

    @_numba.njit(parallel=True, cache=True, nogil=True)
    def _fused_pass(G, a, with_sum):  # pragma: no cover - compiled
        """In place over the rows of G (multi-threaded): G <- K'(clip(G)); returns sum K(clip(G))."""
        n = G.shape[0]
        sums = np.zeros(n, dtype=np.float64)
        for i in _numba.prange(n):
            x = np.empty(_TILE, dtype=G.dtype)
            p = np.empty(_TILE, dtype=G.dtype)
            dp = np.empty(_TILE, dtype=G.dtype)
            sums[i] = _fused_row(G[i], a, with_sum, x, p, dp)
        return sums.sum()

    @_numba.njit(parallel=True, cache=True, nogil=True)
    def _fused_derivative(G, b):  # pragma: no cover - compiled
        """In place over the rows of G (multi-threaded): G <- K'(clip(G))."""
        n = G.shape[0]
        for i in _numba.prange(n):
            x = np.empty(_TILE, dtype=G.dtype)
            p = np.empty(_TILE, dtype=G.dtype)
            _derivative_row(G[i], b, x, p)
        return 0.0


def _gram_interaction(W, problem: Problem, chunk: int, with_kernel_mean: bool, fused: bool | None = None):
    r""":math:`F=K'(G)W` and :math:`\sum_{ij}K(G_{ij})` over row chunks of :math:`G=WW^\top`."""
    m = W.shape[0]
    K, dK = problem.kernel, problem.kernel.derivative()
    use_jit = (_numba is not None) if fused is None else fused
    F = np.empty_like(W)
    ksum = 0.0
    buf = np.empty((min(chunk, m), m), dtype=W.dtype)
    if use_jit:
        a = np.asarray(K.coeffs, dtype=W.dtype)
        b = np.asarray(dK.coeffs, dtype=W.dtype)
        powers = np.flatnonzero(K.coeffs[1:]) + 1
        # single power K = a_0 + a_q s^q: sum_ij G_ij^q = sum_i <w_i, (G^{q-1} W)_i>, so the kernel
        # sum comes from the velocity's second product (no K(G) in the element-wise pass)
        single = powers.size == 1
        for start in range(0, m, chunk):
            stop = min(start + chunk, m)
            G = np.matmul(W[start:stop], W.T, out=buf[: stop - start])
            small = G.size < _PARALLEL_MIN_ENTRIES  # thread start-up would dominate
            if with_kernel_mean and not single:
                ksum += float((_fused_pass_serial if small else _fused_pass)(G, a, True))
            else:
                (_fused_derivative_serial if small else _fused_derivative)(G, b)
            np.matmul(G, W, out=F[start:stop])
        if with_kernel_mean and single:
            q = int(powers[0])
            ksum = float(K.coeffs[0]) * m * m + float(np.einsum("ik,ik->", W, F, dtype=np.float64)) / q
        return F, ksum
    tmp = np.empty_like(buf)
    small = np.empty((min(_SUB_ROWS, m), m), dtype=W.dtype) if with_kernel_mean else None
    for start in range(0, m, chunk):
        stop = min(start + chunk, m)
        G = np.matmul(W[start:stop], W.T, out=buf[: stop - start])
        # element-wise work on cache-sized row blocks of G
        for s0 in range(0, stop - start, _SUB_ROWS):
            s1 = min(s0 + _SUB_ROWS, stop - start)
            Gs = G[s0:s1]
            np.clip(Gs, -1.0, 1.0, out=Gs)  # rounding can leave |G_ii| = 1 + 1e-16
            if with_kernel_mean:
                ksum += float(K(Gs, out=small[: s1 - s0]).sum(dtype=np.float64))
            dK(Gs, out=tmp[s0:s1])
        np.matmul(tmp[: stop - start], W, out=F[start:stop])
    return F, ksum


def evaluate(W, problem: Problem, chunk: int = DEFAULT_CHUNK, with_kernel_mean: bool = True,
             evaluation: str = "auto", memory_check: bool = True) -> FiniteEvaluation:
    r"""Population velocity of every neuron and the loss, in one pass.

    .. math::
        g_i = K_*'(u_i)\,e_1-\frac1m F_i,\quad F_i=\sum_jK'(G_{ij})w_j,\qquad
        v_i = g_i-\langle w_i,g_i\rangle w_i,

    and :math:`L=\frac12[\frac1{m^2}\sum_{ij}K(G_{ij})-\frac2m\sum_iK_*(u_i)+K_{**}(1)]`.

    Parameters
    ----------
    W : ndarray (m, d)
        Neurons on the sphere (float64, or float32 for the fast option).
    problem : Problem
    chunk : int
        Rows of :math:`G` per block (Gram route).
    with_kernel_mean : bool
        Also compute :math:`\sum_{ij}K(G_{ij})` (needed for the loss; free with the moment route).
    evaluation : {"auto", "gram", "moments"}
        Route of the interaction term (module docstring); both are exact and agree to rounding.
    memory_check : bool
        Compare the buffers with the machine's memory first (:func:`check_memory`); a caller that
        has checked a whole run already (:func:`mfcore.simulate`) skips it.

    Raises
    ------
    ValueError
        Bad ``evaluation``; ``"moments"`` for a kernel whose monomial count is too large; buffers
        larger than the available memory.
    """
    W = _check_weights(W)
    chunk = check_int("chunk", chunk, 1)
    m = W.shape[0]
    route = resolve_evaluation(evaluation, m, problem, W.dtype)
    if memory_check:
        check_memory(evaluation_memory_bytes(m, problem, route, chunk, W.dtype),
                     f"one {route}-route evaluation (m={m}, d={W.shape[1]})", W.dtype)
    u = W[:, 0].astype(np.float64)
    if route == "moments":
        F, ksum = _moments.interaction(W, problem.kernel, with_kernel_sum=with_kernel_mean)
    else:
        F, ksum = _gram_interaction(W, problem, chunk, with_kernel_mean)
    g = F
    g *= -1.0 / m
    g[:, 0] += problem.cross_kernel.derivative()(np.clip(u, -1.0, 1.0)).astype(W.dtype)
    v = g - np.sum(W * g, axis=1, keepdims=True) * W
    kmean = ksum / m**2 if with_kernel_mean else float("nan")
    loss = 0.5 * (kmean - 2.0 * float(np.mean(problem.cross_kernel(np.clip(u, -1, 1))))
                  + problem.target_norm2)
    return FiniteEvaluation(v, kmean, u, loss)


def velocity(W, problem: Problem, chunk: int = DEFAULT_CHUNK, evaluation: str = "auto") -> np.ndarray:
    r"""Mean-field velocity :math:`v_{\hat\rho}(w_i)` of every neuron, shape ``(m, d)`` (see :func:`evaluate`)."""
    return evaluate(W, problem, chunk, with_kernel_mean=False, evaluation=evaluation).velocity


def population_loss(W, problem: Problem, chunk: int = DEFAULT_CHUNK, evaluation: str = "auto") -> float:
    r"""Exact population loss :math:`L(\hat\rho)=\frac12\mathbb E_x(f_{\hat\rho}(x)-f^*(x))^2` (see :func:`evaluate`)."""
    return evaluate(W, problem, chunk, evaluation=evaluation).loss


def projected_step(W, V, step: float) -> np.ndarray:
    r"""Projected GD step :math:`w_i\leftarrow (w_i+\eta v_i)/\|w_i+\eta v_i\|` (time advances by :math:`\eta`)."""
    return normalize_rows(W + step * V)
