r"""Finite-width mean-field dynamics with exact population velocity and loss (SPEC §2).

For neurons :math:`W=(w_1..w_m)` on :math:`S^{d-1}` and :math:`\hat\rho=\frac1m\sum_i\delta_{w_i}`:

.. math::
    v_{\hat\rho}(w_i) = P_{w_i}\Big[K_*'(u_i)\,e_1-\frac1m\sum_j K'(G_{ij})\,w_j\Big],\qquad
    L(\hat\rho)=\tfrac12\Big[\frac1{m^2}\sum_{ij}K(G_{ij})-\frac2m\sum_iK_*(u_i)+K_{**}(1)\Big],

with :math:`G=WW^\top` and :math:`u_i=\langle w_i,e_1\rangle`. :math:`v` is :math:`-m` times the
Riemannian gradient of :math:`L`. One evaluation costs two matrix products, :math:`O(m^2d)`; the
rows of :math:`G` are processed in chunks so memory stays :math:`O(\text{chunk}\cdot m)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .problem import Problem
from .sphere import normalize_rows

#: Rows of G whose kernel values are computed together (a block of _SUB_ROWS x m stays in cache).
_SUB_ROWS = 64
#: Rows of the Gram matrix processed at once (memory: chunk * m floats per temporary).
DEFAULT_CHUNK = 1024


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


def evaluate(W, problem: Problem, chunk: int = DEFAULT_CHUNK, with_kernel_mean: bool = True) -> FiniteEvaluation:
    r"""Population velocity of every neuron and the loss, in one chunked pass over :math:`G`.

    Parameters
    ----------
    W : ndarray (m, d)
        Neurons on the sphere (float64, or float32 for the fast option).
    problem : Problem
    chunk : int
        Rows of :math:`G` per block.
    with_kernel_mean : bool
        Also accumulate :math:`\sum_{ij}K(G_{ij})` (needed for the loss; one more Horner pass).
    """
    W = _check_weights(W)
    m = W.shape[0]
    K, dK = problem.kernel, problem.kernel.derivative()
    u = W[:, 0].astype(np.float64)
    g = np.empty_like(W)
    ksum = 0.0
    buf = np.empty((min(chunk, m), m), dtype=W.dtype)
    tmp = np.empty_like(buf)
    small = np.empty((min(_SUB_ROWS, m), m), dtype=W.dtype) if with_kernel_mean else None
    for start in range(0, m, chunk):
        stop = min(start + chunk, m)
        G = np.matmul(W[start:stop], W.T, out=buf[: stop - start])
        # element-wise work on cache-sized row blocks of G (each block is read from memory once,
        # not once per Horner pass); the products stay on the large chunk
        for s0 in range(0, stop - start, _SUB_ROWS):
            s1 = min(s0 + _SUB_ROWS, stop - start)
            Gs = G[s0:s1]
            np.clip(Gs, -1.0, 1.0, out=Gs)  # rounding can leave |G_ii| = 1 + 1e-16
            if with_kernel_mean:
                ksum += float(K(Gs, out=small[: s1 - s0]).sum(dtype=np.float64))
            dK(Gs, out=tmp[s0:s1])
        np.matmul(tmp[: stop - start], W, out=g[start:stop])
    g *= -1.0 / m
    g[:, 0] += problem.cross_kernel.derivative()(np.clip(u, -1.0, 1.0)).astype(W.dtype)
    v = g - np.sum(W * g, axis=1, keepdims=True) * W
    kmean = ksum / m**2 if with_kernel_mean else float("nan")
    loss = 0.5 * (kmean - 2.0 * float(np.mean(problem.cross_kernel(np.clip(u, -1, 1))))
                  + problem.target_norm2)
    return FiniteEvaluation(v, kmean, u, loss)


def velocity(W, problem: Problem, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    r"""Mean-field velocity :math:`v_{\hat\rho}(w_i)` of every neuron, shape ``(m, d)``."""
    return evaluate(W, problem, chunk, with_kernel_mean=False).velocity


def population_loss(W, problem: Problem, chunk: int = DEFAULT_CHUNK) -> float:
    r"""Exact population loss :math:`L(\hat\rho)=\frac12\mathbb E_x(f_{\hat\rho}(x)-f^*(x))^2`."""
    return evaluate(W, problem, chunk).loss


def projected_step(W, V, step: float) -> np.ndarray:
    r"""Projected GD step :math:`w_i\leftarrow (w_i+\eta v_i)/\|w_i+\eta v_i\|` (time advances by :math:`\eta`)."""
    return normalize_rows(W + step * V)
