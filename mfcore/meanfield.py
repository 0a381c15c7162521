r"""Exact infinite-width limit through the law of the overlap :math:`u=\langle w,e_1\rangle`
(the book's mathematical reference, section ``math-limit``).

:math:`\rho_0=\mathrm{Unif}(S^{d-1})` is invariant under rotations fixing :math:`e_1` and the flow is
equivariant, so :math:`\rho_t` is the law of :math:`w=u\,e_1+r\,z` with :math:`r=\sqrt{1-u^2}`,
:math:`z` uniform on the unit sphere of :math:`e_1^\perp` and independent of :math:`u`. Only :math:`u`
moves:

.. math::
    \dot u = V(u) = (1-u^2)\big(K_*'(u)-A(u)\big)+u\,r\,B(u),\quad
    A(u)=\mathbb E[K'(uu'+rr's)\,u'],\quad B(u)=\mathbb E[K'(uu'+rr's)\,r's],

with :math:`u'\sim\rho_t`, :math:`s` one coordinate of a uniform unit vector of :math:`\mathbb R^{d-1}`.
For a polynomial :math:`K` every expectation is a finite sum over the moments
:math:`M[a,b]=\mathbb E[u'^a r'^b]`:

.. math::
    \mathbb E\big[F(au'+br's)\,u'^{\alpha}r'^{\beta}s^{\gamma}\big]
    =\sum_p f_p\sum_{n\le p}\binom pn a^{p-n}b^n\,\mathbb E[s^{n+\gamma}]\,M[p-n+\alpha,\,n+\beta],

so one evaluation of the field at :math:`N` points costs :math:`O(N\deg^2)`.
Odd moments of :math:`s` vanish, so only even powers of :math:`r` and :math:`r'` survive in the
field: :math:`V` is a polynomial in :math:`u` alone (:math:`r^2=1-u^2`), with coefficients built from
the power moments :math:`\mathbb E[u'^a]` of the law.
The law is carried by :math:`N` equally weighted quantile nodes of the initial law
:math:`(u+1)/2\sim\mathrm{Beta}(\frac{d-1}2,\frac{d-1}2)`; the 1-D flow preserves order, so they stay
quantiles.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy.special import comb
from scipy.stats import beta as beta_dist

from .kernels import Kernel
from .problem import Problem, check_int


def sphere_coordinate_moments(dim: int, nmax: int) -> np.ndarray:
    r""":math:`\mathbb E[s^n]`, :math:`n=0..n_{max}`, for :math:`s` a coordinate of a uniform unit vector of :math:`\mathbb R^{d-1}`.

    :math:`\mathbb E[s^{2j}] = \frac{(2j-1)!!}{(d-1)(d+1)\cdots(d+2j-3)}`, odd moments vanish.
    """
    dim = check_int("dim", dim, 2)
    out = np.zeros(nmax + 1)
    out[0] = 1.0
    for n in range(2, nmax + 1, 2):
        j = n // 2
        out[n] = out[n - 2] * (2 * j - 1) / (dim - 1 + 2 * (j - 1))
    return out


def initial_overlaps(dim: int, n_nodes: int) -> np.ndarray:
    r"""Quantile nodes :math:`u_j=2F^{-1}\big(\frac{j+1/2}N\big)-1` of the overlap law of :math:`\mathrm{Unif}(S^{d-1})`,
    :math:`F` the :math:`\mathrm{Beta}(\frac{d-1}2,\frac{d-1}2)` CDF."""
    dim = check_int("dim", dim, 2)
    n_nodes = check_int("nodes (quantile nodes N)", n_nodes, 2)
    q = (np.arange(n_nodes) + 0.5) / n_nodes
    a = (dim - 1) / 2.0
    return 2.0 * beta_dist.ppf(q, a, a) - 1.0


def perpendicular_norm(u) -> np.ndarray:
    r""":math:`r=\sqrt{1-u^2}` with :math:`u` clipped to :math:`[-1,1]` (rounding can give :math:`|u|=1+10^{-16}`)."""
    u = np.clip(np.asarray(u, dtype=float), -1.0, 1.0)
    return np.sqrt(1.0 - u * u)


def overlap_moments(u, amax: int, bmax: int, weights=None) -> np.ndarray:
    r""":math:`M[a,b]=\sum_j \omega_j u_j^a r_j^b`, :math:`a\le a_{max}`, :math:`b\le b_{max}` (equal weights by default)."""
    u = np.clip(np.asarray(u, dtype=float), -1.0, 1.0)
    r = np.sqrt(1.0 - u * u)
    w = np.full(u.size, 1.0 / u.size) if weights is None else np.asarray(weights, dtype=float)
    M = np.zeros((amax + 1, bmax + 1))
    for start in range(0, u.size, _MOMENT_BLOCK):  # cache-sized blocks of nodes
        block = slice(start, start + _MOMENT_BLOCK)
        up = _power_rows(u[block], amax)
        up *= w[block]
        M += up @ _power_rows(r[block], bmax).T
    return M


#: Nodes per block in :func:`overlap_moments` (the power rows of a block stay in cache).
_MOMENT_BLOCK = 8192


def _power_rows(x: np.ndarray, n: int) -> np.ndarray:
    r"""Rows :math:`x^0, x^1, \dots, x^n` of a 1-D array, by repeated multiplication (shape ``(n+1, size)``).

    Contiguous rows and multiplications instead of ``x ** arange``: about 10x faster for
    :math:`10^5` nodes (the mean-field step's hot spot).
    """
    out = np.empty((n + 1, x.size))
    out[0] = 1.0
    for j in range(1, n + 1):
        np.multiply(out[j - 1], x, out=out[j])
    return out


class OverlapField:
    r"""The mean-field velocity and its companions for the law carried by nodes ``u``
    (the book's mathematical reference, sections ``math-limit`` and ``math-hessian``).

    Parameters
    ----------
    problem : Problem
    nodes : ndarray (N,)
        Overlaps of the equally weighted nodes representing :math:`\rho_t`.
    """

    def __init__(self, problem: Problem, nodes):
        self.problem = problem
        self.nodes = np.clip(np.asarray(nodes, dtype=float), -1.0, 1.0)
        deg = max(problem.kernel.degree, 1)
        self._deg = deg
        self.smom = sphere_coordinate_moments(problem.dim, deg + 3)
        self.M = overlap_moments(self.nodes, deg + 1, deg + 2)

    # -- generic expectation -------------------------------------------------------------
    def expect(self, poly: Kernel, a, b, alpha: int = 0, beta: int = 0, gamma: int = 0) -> np.ndarray:
        r""":math:`\mathbb E[F(au'+br's)\,u'^\alpha r'^\beta s^\gamma]` for :math:`F=` ``poly`` at arrays ``a``, ``b``."""
        f = poly.coeffs
        P = f.size - 1
        if P + alpha > self.M.shape[0] - 1 or P + beta > self.M.shape[1] - 1 or P + gamma > self.smom.size - 1:
            raise ValueError("polynomial degree too high for the stored moments")
        C = np.zeros((P + 1, P + 1))  # C[j, n]: coefficient of a^j b^n
        for p in range(P + 1):
            if f[p] == 0.0:
                continue
            n = np.arange(p + 1)
            C[p - n, n] += f[p] * comb(p, n) * self.smom[n + gamma] * self.M[p - n + alpha, n + beta]
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        shape = np.broadcast_shapes(a.shape, b.shape)
        # sum_n b^n (sum_j C[j,n] a^j), both sums by Horner's rule in place: O((P+1)^2) passes over
        # the points, no (P+1) x size temporaries and no BLAS call (fast and thread-independent)
        out = np.zeros(shape)
        inner = np.empty(shape)
        for n in range(P, -1, -1):
            out *= b
            col = C[:, n]
            nz = np.flatnonzero(col)
            if nz.size == 0:
                continue
            inner[...] = col[nz[-1]]
            for j in range(nz[-1] - 1, -1, -1):
                inner *= a
                if col[j] != 0.0:
                    inner += col[j]
            out += inner
        return out

    # -- velocity -----------------------------------------------------------------------
    @cached_property
    def _dK(self) -> Kernel:
        return self.problem.kernel.derivative()

    def components(self, a, b):
        r""":math:`A(a,b)=\mathbb E[K'(au'+br's)u']` and :math:`B(a,b)=\mathbb E[K'(au'+br's)r's]`.

        With :math:`w=a\,e_1+b\,z` (any :math:`a,b`, not only unit vectors),
        :math:`\int K'(\langle w,w'\rangle)w'\,d\rho(w') = A\,e_1 + B\,z`.
        """
        return self.expect(self._dK, a, b, 1, 0, 0), self.expect(self._dK, a, b, 0, 1, 1)

    def speed(self, u) -> np.ndarray:
        r""":math:`V(u)/r = r\,(K_*'(u)-A(u)) + u\,B(u)`: signed speed along the meridian :math:`\tau=(e_1-uw)/r`.

        Finite at the poles, where :math:`V=r\cdot(V/r)=0`.
        """
        u = np.clip(np.asarray(u, dtype=float), -1.0, 1.0)
        r = np.sqrt(1.0 - u * u)
        A, B = self.components(u, r)
        return r * (self.problem.cross_kernel.derivative()(u) - A) + u * B

    def velocity(self, u) -> np.ndarray:
        r""":math:`V(u)=\dot u = (1-u^2)(K_*'(u)-A(u))+u\,r\,B(u)`."""
        return perpendicular_norm(u) * self.speed(u)

    # -- losses and kernel means ----------------------------------------------------------
    def self_kernel_mean(self) -> float:
        r""":math:`\mathbb E_{\rho\otimes\rho}K=\sum_q K_q\sum_{n\,\mathrm{even}}\binom qn\mathbb E[s^n]M[q-n,n]^2` (:math:`=\|f_\rho\|^2`)."""
        total = 0.0
        for q, kq in enumerate(self.problem.kernel.coeffs):
            if kq == 0.0:
                continue
            n = np.arange(0, q + 1, 2)
            total += kq * np.sum(comb(q, n) * self.smom[n] * self.M[q - n, n] ** 2)
        return float(total)

    def kernel_mean_at(self, u) -> np.ndarray:
        r""":math:`\mathbb E_{w'\sim\rho}K(\langle w,w'\rangle)` for unit :math:`w` with overlap ``u``."""
        u = np.clip(np.asarray(u, dtype=float), -1.0, 1.0)
        return self.expect(self.problem.kernel, u, np.sqrt(1.0 - u * u))

    def loss(self) -> float:
        r""":math:`L(\rho)=\frac12[\mathbb E_{\rho\otimes\rho}K-2\mathbb E_\rho K_*(u)+K_{**}(1)]`."""
        p = self.problem
        return 0.5 * (self.self_kernel_mean() - 2.0 * float(np.mean(p.cross_kernel(self.nodes))) + p.target_norm2)

    def function_gap(self, finite_kernel_mean: float, finite_overlaps) -> float:
        r""":math:`\|f_{\hat\rho}-f_\rho\|^2=\mathbb E_{\hat\rho\otimes\hat\rho}K-2\mathbb E_{\hat\rho\otimes\rho}K+\mathbb E_{\rho\otimes\rho}K`.

        ``finite_kernel_mean`` is :math:`\frac1{m^2}\sum_{ij}K(G_{ij})`, ``finite_overlaps`` the :math:`u_i`.
        """
        cross = float(np.mean(self.kernel_mean_at(finite_overlaps)))
        return finite_kernel_mean - 2.0 * cross + self.self_kernel_mean()


def projected_step_1d(u, speed, step: float) -> np.ndarray:
    r"""The exact 1-D image of the projected GD step :math:`w\leftarrow(w+\eta v)/\|w+\eta v\|`.

    With :math:`v=(V/r)\,\tau` and :math:`\|w+\eta v\|^2=1+\eta^2(V/r)^2`:
    :math:`u\leftarrow (u+\eta V)/\sqrt{1+\eta^2V^2/(1-u^2)}`. Poles stay fixed (:math:`V=0`).
    """
    u = np.clip(np.asarray(u, dtype=float), -1.0, 1.0)
    r = np.sqrt(1.0 - u * u)
    return np.clip((u + step * r * speed) / np.sqrt(1.0 + (step * speed) ** 2), -1.0, 1.0)
