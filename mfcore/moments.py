r"""Exact interaction of a finite network through polynomial moments (linear in the width).

For a polynomial kernel :math:`K(s)=\sum_q a_q s^q` the interaction term of the finite velocity
(see the book's mathematical reference, section ``math-moment-route``) is, exactly,

.. math::
    \sum_j K'(\langle w_i,w_j\rangle)\,w_j
      = \sum_{p\ge0}(p+1)\,a_{p+1}\,\Phi_p(w_i)^\top S_p,\qquad
    S_p=\sum_j \Phi_p(w_j)\,w_j^\top\in\mathbb R^{D_p\times d},

where :math:`\Phi_p(x)_\alpha=\sqrt{c_\alpha}\,x^\alpha` runs over the
:math:`D_p=\binom{d+p-1}{p}` monomials of degree :math:`p` with the multinomial weights
:math:`c_\alpha=p!/\alpha!`, so that :math:`\langle\Phi_p(x),\Phi_p(y)\rangle=\langle x,y\rangle^p`.
Per degree this is two matrix products of shape :math:`m\times D_p\times d` (linear in :math:`m`)
instead of :math:`m\times m\times d`. The kernel sum comes free from the same moments:

.. math::
    \sum_{ij}\langle w_i,w_j\rangle^{q}
      = \sum_{ij}\langle\Phi_{q-1}(w_i),\Phi_{q-1}(w_j)\rangle\langle w_i,w_j\rangle
      = \|S_{q-1}\|_F^2 ,\qquad
    \sum_{ij}K(G_{ij}) = a_0m^2+\sum_{q\ge1}a_q\|S_{q-1}\|_F^2 .

Features are built degree by degree with broadcasting only: monomials are ordered by their last
index, so the degree-:math:`p` block whose last index is :math:`c` is a *prefix* of the degree
:math:`p-1` features times the column :math:`x_c` (no gathers), followed by one multiplication by
the weight ratios :math:`\sqrt{c_\alpha/c_\beta}=\sqrt{p/\alpha_c}` for :math:`\alpha=\beta+e_c`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import comb

import numpy as np

from .kernels import Kernel
from .memory import available_memory_bytes

#: Largest number of monomial features (summed over the degrees used) the moment route accepts.
MAX_FEATURES = 250_000
#: Bytes of monomial features a chunk may hold (sets the row chunk of the moment route).
FEATURE_CHUNK_BYTES = 64 * 2**20
#: Bytes of features that may be kept from the first pass to the second (else rebuilt); also at
#: most a quarter of the available memory.
KEEP_FEATURE_BYTES = 1024 * 2**20


def _keep_limit() -> int:
    return min(KEEP_FEATURE_BYTES, available_memory_bytes() // 4)


def n_monomials(dim: int, degree: int) -> int:
    r"""Number :math:`D_p=\binom{d+p-1}{p}` of monomials of degree :math:`p` in :math:`d` variables."""
    return comb(dim + degree - 1, degree)


@lru_cache(maxsize=64)
def _layout(dim: int, max_degree: int):
    """Per degree p = 1..P: prefix lengths per last index and the sqrt weight ratios (float64).

    Degree-p monomials are ordered by last index c; block c is the first ``n_{p-1}(c)`` degree
    p-1 monomials (those with last index <= c) times x_c. ``mult`` tracks the multiplicity of the
    last index, giving the ratio sqrt(p / alpha_c).
    """
    layout = []
    last_prev = np.zeros(1, dtype=np.int64)   # degree 0: one monomial, "last index" -1 -> use 0 prefix rule
    mult_prev = np.zeros(1, dtype=np.int64)    # multiplicity of the last index
    for p in range(1, max_degree + 1):
        lens, ratios, last, mult = [], [], [], []
        for c in range(dim):
            if p == 1:
                n = 1
                mc = np.ones(1, dtype=np.int64)
            else:
                n = int(np.searchsorted(last_prev, c, side="right"))
                mc = np.where(last_prev[:n] == c, mult_prev[:n] + 1, 1)
            lens.append(n)
            ratios.append(np.sqrt(p / mc))
            last.append(np.full(n, c, dtype=np.int64))
            mult.append(mc)
        last_prev, mult_prev = np.concatenate(last), np.concatenate(mult)
        layout.append((tuple(lens), np.concatenate(ratios)))
    return tuple(layout)


@dataclass(frozen=True)
class MomentPlan:
    r"""What the moment route of one kernel needs in dimension :math:`d`.

    Attributes
    ----------
    dim : int
    degrees : tuple of int
        Feature degrees :math:`p` with :math:`a_{p+1}\ne0` (the products done).
    scales : tuple of float
        :math:`(p+1)a_{p+1}` for each degree (velocity) ...
    kernel_coeffs : tuple of float
        ... and :math:`a_{p+1}` (kernel sum).
    a0 : float
        Constant term :math:`a_0`.
    max_degree : int
        Highest degree built, :math:`P=\deg K-1`.
    n_features : int
        :math:`\sum_{p\in\text{degrees}}D_p` (columns of the products).
    n_built : int
        :math:`\sum_{p\le P}D_p` (features built, including intermediate degrees).
    """

    dim: int
    degrees: tuple
    scales: tuple
    kernel_coeffs: tuple
    a0: float
    max_degree: int
    n_features: int
    n_built: int


def plan(kernel: Kernel, dim: int, max_features: int = MAX_FEATURES, check: bool = True) -> MomentPlan:
    r"""Moment plan of ``kernel`` in dimension ``dim``.

    Raises
    ------
    ValueError
        If ``check`` and the features exceed ``max_features`` (the kernel degree is too high for
        the dimension: e.g. truncated Hermite series of non-polynomial activations).
    """
    a = np.asarray(kernel.coeffs, dtype=np.float64)
    P = max(kernel.degree - 1, 0)
    degrees = tuple(p for p in range(P + 1) if p + 1 < a.size and a[p + 1] != 0.0)
    n_feat = sum(n_monomials(dim, p) for p in degrees)
    n_built = sum(n_monomials(dim, p) for p in range(P + 1))
    if check and max(n_feat, n_built) > max_features:
        raise ValueError(
            f"evaluation='moments' is too large for this kernel: degree {kernel.degree} in dimension "
            f"d={dim} needs D = {max(n_feat, n_built)} monomial features (D_p = C(d+p-1, p) up to "
            f"p = {P}), more than the limit {max_features}; use evaluation='gram' or 'auto'"
        )
    return MomentPlan(dim, degrees, tuple((p + 1) * float(a[p + 1]) for p in degrees),
                      tuple(float(a[p + 1]) for p in degrees), float(a[0]), P, n_feat, n_built)


def moment_features(X: np.ndarray, pl: MomentPlan) -> np.ndarray:
    r"""Weighted monomial features :math:`[\Phi_p(x_i)]_{p\in\text{degrees}}`, shape ``(n, n_features)``.

    :math:`\Phi_p(x)_\alpha=\sqrt{p!/\alpha!}\,x^\alpha`, so :math:`\langle\Phi_p(x),\Phi_p(y)\rangle=\langle x,y\rangle^p`.
    Vectorised over rows; the only Python loops are over degrees and coordinates.
    """
    n, d = X.shape
    out = np.empty((n, pl.n_features), dtype=X.dtype)
    layout = _layout(d, pl.max_degree) if pl.max_degree > 0 else ()
    col = 0
    prev = np.ones((n, 1), dtype=X.dtype)
    wanted = set(pl.degrees)
    for p in range(pl.max_degree + 1):
        if p == 0:
            cur = prev
        else:
            lens, ratios = layout[p - 1]
            Dp = len(ratios)
            if p in wanted:
                cur = out[:, col:col + Dp]
            else:
                cur = np.empty((n, Dp), dtype=X.dtype)
            pos = 0
            for c, ln in enumerate(lens):
                np.multiply(prev[:, :ln], X[:, c:c + 1], out=cur[:, pos:pos + ln])
                pos += ln
            cur *= ratios.astype(X.dtype, copy=False)
        if p in wanted:
            if p == 0:
                out[:, col:col + 1] = 1.0
            col += cur.shape[1]
        prev = cur
    return out


def _feature_scales(pl: MomentPlan, which: str) -> np.ndarray:
    vals = pl.scales if which == "velocity" else pl.kernel_coeffs
    return np.concatenate([np.full(n_monomials(pl.dim, p), v) for p, v in zip(pl.degrees, vals)]) \
        if pl.degrees else np.zeros(0)


def chunk_rows(pl: MomentPlan, itemsize: int, budget: int = FEATURE_CHUNK_BYTES) -> int:
    """Rows per chunk so that the features of a chunk (and its intermediate degrees) fit ``budget``."""
    per_row = max(1, (pl.n_features + pl.n_built) * itemsize)
    return int(max(16, budget // per_row))


def memory_bytes(m: int, pl: MomentPlan, itemsize: int) -> int:
    """Peak extra memory of :func:`interaction` for ``m`` neurons (features kept or one chunk)."""
    rows = min(m, chunk_rows(pl, itemsize))
    keep = m * pl.n_features * itemsize
    chunk = rows * (pl.n_features + pl.n_built) * itemsize
    feats = keep if keep <= _keep_limit() else chunk
    return int(feats + chunk + 2 * pl.n_features * pl.dim * 8 + m * pl.dim * itemsize)


def interaction(W: np.ndarray, kernel: Kernel, with_kernel_sum: bool = True, pl: MomentPlan | None = None):
    r"""Interaction :math:`F_i=\sum_jK'(\langle w_i,w_j\rangle)w_j` and :math:`\sum_{ij}K(G_{ij})` by moments.

    Parameters
    ----------
    W : ndarray (m, d)
        Unit rows (float64 or float32; the moments :math:`S_p` are accumulated in float64).
    kernel : Kernel
        Polynomial kernel :math:`K`.
    with_kernel_sum : bool
        Also return :math:`\sum_{ij}K(G_{ij})=a_0m^2+\sum_q a_q\|S_{q-1}\|_F^2` (free).
    pl : MomentPlan, optional
        Precomputed :func:`plan`.

    Returns
    -------
    F : ndarray (m, d), dtype of ``W``
    ksum : float (NaN if not requested)

    Two passes over row chunks: the first accumulates :math:`S=\sum_j\Phi(w_j)w_j^\top`, the second
    forms :math:`F=\Phi\,(\text{scale}\odot S)`. Features of the first pass are kept for the second
    when they fit :data:`KEEP_FEATURE_BYTES` (and a quarter of the available memory); memory is otherwise
    :math:`O(\text{chunk}\cdot D+D\cdot d)`.
    """
    W = np.asarray(W)
    m, d = W.shape
    if pl is None:
        pl = plan(kernel, d)
    if not pl.degrees:  # constant kernel: no interaction
        return np.zeros_like(W), (pl.a0 * m * m if with_kernel_sum else float("nan"))
    rows = chunk_rows(pl, W.itemsize)
    keep = m * pl.n_features * W.itemsize <= _keep_limit()
    kept = []
    S = np.zeros((pl.n_features, d), dtype=np.float64)
    for start in range(0, m, rows):
        Wc = W[start:start + rows]
        Phi = moment_features(Wc, pl)
        S += Phi.T @ Wc
        if keep:
            kept.append(Phi)
    ksum = float("nan")
    if with_kernel_sum:
        ksum = pl.a0 * m * m + float(_feature_scales(pl, "kernel") @ np.einsum("ak,ak->a", S, S))
    Sv = (S * _feature_scales(pl, "velocity")[:, None]).astype(W.dtype)
    F = np.empty_like(W)
    for k, start in enumerate(range(0, m, rows)):
        Phi = kept[k] if keep else moment_features(W[start:start + rows], pl)
        np.matmul(Phi, Sv, out=F[start:start + rows])
    return F, ksum
