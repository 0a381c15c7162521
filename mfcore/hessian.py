r"""Local Hessian of the mean-field velocity (the book's mathematical reference, section ``math-hessian``).

The mean-field velocity is minus the spherical gradient of the potential
:math:`\Psi_\rho(w)=\int K(\langle w,w'\rangle)\,d\rho(w')-K_*(\langle w,e_1\rangle)`:

.. math::
    v_\rho(w)=P_w\,g_\rho(w),\qquad g_\rho(w)=K_*'(\langle w,e_1\rangle)\,e_1-\int K'(\langle w,w'\rangle)\,w'\,d\rho(w').

Its derivative on the tangent space (the *local Hessian*, the covariant derivative of :math:`v_\rho`)
is the symmetric map

.. math::
    H_\rho(w)=P_w\Big[K_*''(u)\,e_1e_1^\top-\int K''(\langle w,w'\rangle)\,w'w'^\top d\rho(w')\Big]P_w
    -\langle w,g_\rho(w)\rangle\,P_w .

For a law :math:`\rho` invariant under the rotations fixing :math:`e_1` (the exact limit of
:mod:`mfcore.meanfield`), :math:`H_\rho(w)` has two eigenvalues, which depend on :math:`u=w_1` only:

* along the meridian :math:`\tau=(e_1-uw)/r`, :math:`r=\sqrt{1-u^2}`:
  :math:`\lambda_\parallel(u)=V'(u)+V(u)\,u/(1-u^2)`, with :math:`V=\dot u` the 1-D velocity;
* on the :math:`d-2` directions orthogonal to :math:`w,e_1`:
  :math:`\lambda_\perp(u)=-\langle w,g\rangle-\mathbb E[K''(uu'+rr's)\,r'^2(1-s^2)]/(d-2)`,
  :math:`\langle w,g\rangle=uK_*'(u)-\mathbb E[K'(uu'+rr's)(uu'+rr's)]`.

Every expectation is over :math:`u'\sim\rho`, :math:`r'=\sqrt{1-u'^2}` and :math:`s` one coordinate of a
uniform unit vector of :math:`\mathbb R^{d-1}` (see :class:`mfcore.meanfield.OverlapField`).
The independent check is :func:`riemannian_jacobian_fd`, a finite-difference Jacobian of any
velocity field (symmetric field: :func:`symmetric_velocity`; finite network:
:func:`finite_probe_velocity`) on an orthonormal basis of the tangent space.

Two identities, used and tested here (both follow from the Stein identity of the law of :math:`s`,
:math:`\mathbb E[f'(s)(1-s^2)]=(d-2)\,\mathbb E[s\,f(s)]`, which the moments of :math:`s` satisfy
exactly): :math:`\lambda_\perp(u)=-u\,V(u)/(1-u^2)` and :math:`\lambda_\parallel+\lambda_\perp=V'(u)`.
"""
from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import comb

from .finite import DEFAULT_CHUNK
from .kernels import Kernel
from .meanfield import OverlapField
from .problem import Problem, check_int, check_positive

__all__ = [
    "symmetric_velocity",
    "finite_probe_velocity",
    "tangent_basis",
    "riemannian_jacobian_fd",
    "tangent_eigenvalues",
    "velocity_derivative",
    "local_hessian_eigenvalues",
    "tracer_eigenvalues",
    "hessian_along",
    "HessianIntegralObserver",
    "RecordSchedule",
]


# ---------------------------------------------------------------------------------------------
# velocity fields on the whole space
# ---------------------------------------------------------------------------------------------
def _rows(w) -> tuple[np.ndarray, bool]:
    w = np.asarray(w, dtype=float)
    if w.ndim not in (1, 2) or w.shape[-1] < 2:
        raise ValueError(f"w must be a vector of R^d or an (n, d) array with d >= 2, got shape {w.shape}")
    return np.atleast_2d(w), w.ndim == 1


def _project(w: np.ndarray, g: np.ndarray) -> np.ndarray:
    r""":math:`P_wg=g-\langle w,g\rangle w/\|w\|^2` row by row (the orthogonal projector, any :math:`w\ne0`)."""
    return g - (np.sum(w * g, axis=1) / np.sum(w * w, axis=1))[:, None] * w


def symmetric_velocity(field: OverlapField, w) -> np.ndarray:
    r"""Mean-field velocity :math:`v_\rho(w)` of a rotation-invariant law at any points :math:`w\in\mathbb R^d`.

    With :math:`a=w_1`, :math:`b=\|w_\perp\|` and :math:`z=w_\perp/b` (:math:`w_\perp` the part of
    :math:`w` orthogonal to :math:`e_1`),
    :math:`\int K'(\langle w,w'\rangle)w'\,d\rho=A(a,b)\,e_1+B(a,b)\,z` (:meth:`OverlapField.components`), so

    .. math:: v_\rho(w)=P_w\big[(K_*'(a)-A(a,b))\,e_1-B(a,b)\,z\big],\qquad P_w=I-ww^\top/\|w\|^2 .

    On the sphere this is the velocity of the model (the book's mathematical reference, section ``math-model``); off the sphere it is a smooth extension, so that
    finite differences along tangent directions give the covariant derivative.

    Parameters
    ----------
    field : OverlapField
    w : ndarray (d,) or (n, d)
        Points (rows); the dimension must be ``field.problem.dim``.

    Returns
    -------
    ndarray of the shape of ``w``.
    """
    W, single = _rows(w)
    if W.shape[1] != field.problem.dim:
        raise ValueError(f"w must have d = {field.problem.dim} columns (the problem's dim), got {W.shape[1]}")
    a = W[:, 0]
    perp = W.copy()
    perp[:, 0] = 0.0
    b = np.linalg.norm(perp, axis=1)
    z = np.divide(perp, b[:, None], out=np.zeros_like(perp), where=b[:, None] > 0)  # B(a,0)=0 anyway
    A, B = field.components(a, b)
    g = -B[:, None] * z
    g[:, 0] += field.problem.cross_kernel.derivative()(a) - A
    v = _project(W, g)
    return v[0] if single else v


def finite_probe_velocity(W, problem: Problem, chunk: int = DEFAULT_CHUNK):
    r"""The velocity field of a *fixed* finite network, as a function of a probe point.

    Returns ``f`` with ``f(x)`` = :math:`P_x\big[K_*'(x_1)e_1-\frac1m\sum_jK'(\langle x,w_j\rangle)w_j\big]`
    for rows :math:`x` (any norm; :math:`P_x=I-xx^\top/\|x\|^2`). At :math:`x=w_i` this is
    :func:`mfcore.finite.velocity` (the self-term vanishes under :math:`P_{w_i}`).
    """
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or W.shape[1] != problem.dim:
        raise ValueError(f"W must be an (m, {problem.dim}) array, got shape {W.shape}")
    dK = problem.kernel.derivative()
    dKs = problem.cross_kernel.derivative()
    m = W.shape[0]

    def velocity_fn(x):
        X, single = _rows(x)
        g = np.empty_like(X)
        for start in range(0, X.shape[0], chunk):
            G = X[start:start + chunk] @ W.T
            g[start:start + chunk] = -(dK(G) @ W) / m
        g[:, 0] += dKs(X[:, 0])
        v = _project(X, g)
        return v[0] if single else v

    return velocity_fn


# ---------------------------------------------------------------------------------------------
# finite-difference Jacobian on the tangent space
# ---------------------------------------------------------------------------------------------
def tangent_basis(w, first=None) -> np.ndarray:
    r"""Orthonormal basis of :math:`T_wS^{d-1}=w^\perp`, shape ``(d, d-1)`` (columns).

    ``first`` (optional, a vector not parallel to ``w``): its tangent part, normalised, is the first
    column (e.g. the meridian :math:`\tau`).
    """
    w = np.asarray(w, dtype=float)
    if w.ndim != 1 or w.size < 2:
        raise ValueError(f"w must be a vector of R^d with d >= 2, got shape {w.shape}")
    w = w / np.linalg.norm(w)
    d = w.size
    cols = [w]
    if first is not None:
        f = np.asarray(first, dtype=float)
        f = f - (f @ w) * w
        if np.linalg.norm(f) < 1e-12:
            raise ValueError("first must have a nonzero component orthogonal to w")
        cols.append(f / np.linalg.norm(f))
    Q, _ = np.linalg.qr(np.column_stack([*cols, np.eye(d)]))
    Q = Q[:, 1:d]
    if first is not None:
        Q[:, 0] *= np.sign(Q[:, 0] @ cols[1])
    return Q


def riemannian_jacobian_fd(velocity_fn, w, h: float = 1e-5, basis=None):
    r"""Central finite-difference Jacobian of a tangent velocity field, in a tangent basis.

    For each basis vector :math:`q_j` of :math:`T_wS^{d-1}` the field is evaluated on the great circle
    :math:`c_j(\pm h)=\cos h\,w\pm\sin h\,q_j` and

    .. math:: J_{ij}=q_i^\top\,\frac{v(c_j(h))-v(c_j(-h))}{2\sin h}
       = \big(q_i^\top\,\nabla_{q_j}v\big)(w)+O(h^2),

    i.e. the matrix of :math:`P_w(Dv)P_w` (the covariant derivative, the local Hessian when
    :math:`v=-\mathrm{grad}\,\Psi`) in that basis. Works for any field: the symmetric limit
    (:func:`symmetric_velocity`) or a finite network (:func:`finite_probe_velocity`).

    Parameters
    ----------
    velocity_fn : callable
        Maps an ``(n, d)`` array of points to the ``(n, d)`` velocities.
    w : ndarray (d,)
        Base point (normalised internally).
    h : float
        Angular step.
    basis : ndarray (d, d-1), optional
        Orthonormal tangent basis; default :func:`tangent_basis` of ``w``.

    Returns
    -------
    J : ndarray (d-1, d-1)
    basis : ndarray (d, d-1)
    """
    h = check_positive("h (finite-difference step)", h)
    w = np.asarray(w, dtype=float)
    w = w / np.linalg.norm(w)
    Q = tangent_basis(w) if basis is None else np.asarray(basis, dtype=float)
    if Q.shape != (w.size, w.size - 1):
        raise ValueError(f"basis must have shape {(w.size, w.size - 1)}, got {Q.shape}")
    pts = np.concatenate([np.cos(h) * w + np.sin(h) * Q.T, np.cos(h) * w - np.sin(h) * Q.T])
    vals = np.asarray(velocity_fn(pts), dtype=float)
    n = Q.shape[1]
    D = (vals[:n] - vals[n:]) / (2.0 * np.sin(h))  # row j: derivative along q_j
    return Q.T @ D.T, Q


def tangent_eigenvalues(velocity_fn, w, h: float = 1e-5) -> np.ndarray:
    r"""Ascending eigenvalues of the symmetric part of :func:`riemannian_jacobian_fd` (``d-1`` values)."""
    J, _ = riemannian_jacobian_fd(velocity_fn, w, h)
    return np.linalg.eigvalsh(0.5 * (J + J.T))


# ---------------------------------------------------------------------------------------------
# analytic eigenvalues for the symmetric law
# ---------------------------------------------------------------------------------------------
def _expect_over_b(field: OverlapField, poly: Kernel, a, b, alpha: int, beta: int, gamma: int) -> np.ndarray:
    r""":math:`\mathbb E[F(au'+br's)u'^\alpha r'^\beta s^\gamma]/b` for odd :math:`\gamma`, as an exact polynomial.

    The moment expansion of :meth:`OverlapField.expect` is :math:`\sum_{j,n}C_{jn}a^jb^n` with
    :math:`C_{jn}\propto\mathbb E[s^{n+\gamma}]`, which vanishes for :math:`n=0` when :math:`\gamma` is
    odd; dividing term by term gives the limit at :math:`b=0` (the poles) without any 0/0.
    """
    if gamma % 2 == 0:
        raise ValueError("gamma must be odd for the division by b to be exact")
    f = poly.coeffs
    P = f.size - 1
    M, smom = field.M, field.smom
    if P + alpha > M.shape[0] - 1 or P + beta > M.shape[1] - 1 or P + gamma > smom.size - 1:
        raise ValueError("polynomial degree too high for the stored moments")
    C = np.zeros((P + 1, P + 1))
    for p in range(P + 1):
        if f[p] == 0.0:
            continue
        n = np.arange(p + 1)
        C[p - n, n] += f[p] * comb(p, n) * smom[n + gamma] * M[p - n + alpha, n + beta]
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    powers = np.arange(P + 1)
    apow = a[..., None] ** powers
    bpow = b[..., None] ** powers[:P]  # b^(n-1) for n = 1..P
    return np.einsum("...j,jn,...n->...", apow, C[:, 1:], bpow)


def _clip_u(u) -> np.ndarray:
    u = np.asarray(u, dtype=float)
    if not np.all(np.isfinite(u)):
        raise ValueError("overlaps u must be finite")
    return np.clip(u, -1.0, 1.0)


def _pieces(field: OverlapField, u):
    """Shared quantities at overlaps u (clipped to [-1, 1])."""
    u = _clip_u(u)
    r = np.sqrt(1.0 - u * u)
    p = field.problem
    A, B = field.components(u, r)
    dK = p.kernel.derivative()
    B_over_r = _expect_over_b(field, dK, u, r, 0, 1, 1)
    dKs = p.cross_kernel.derivative()
    return u, r, A, B, B_over_r, dKs(u)


def velocity_derivative(field: OverlapField, u) -> np.ndarray:
    r"""Analytic :math:`V'(u)` of the 1-D velocity :math:`V(u)=r^2(K_*'(u)-A)+u\,r\,B`, :math:`A,B` at :math:`(u,r(u))`.

    Differentiating with :math:`dr/du=-u/r`, :math:`\partial_aA=\mathbb E[K''u'^2]`,
    :math:`\partial_bA=\partial_aB=\mathbb E[K''u'r's]`, :math:`\partial_bB=\mathbb E[K''r'^2s^2]`
    (:math:`K''` at :math:`uu'+rr's`):

    .. math::
        V'(u)=-2u(K_*'-A)+r^2\big(K_*''-\mathbb E[K''u'^2]\big)+2ur\,\mathbb E[K''u'r's]
        -u^2\,\mathbb E[K''r'^2s^2]+rB-u^2\,\frac Br .

    :math:`B/r` is evaluated as an exact polynomial (:math:`B` is odd in :math:`r`), so the formula
    is finite at the poles; ``u`` is clipped to :math:`[-1,1]`. :math:`V` is in fact a polynomial in
    :math:`u` (A is even and B odd in r).
    """
    u, r, A, B, B_over_r, dKs_u = _pieces(field, u)
    p = field.problem
    d2K = p.kernel.derivative(2)
    E_uu = field.expect(d2K, u, r, 2, 0, 0)
    E_urs = field.expect(d2K, u, r, 1, 1, 1)
    E_rrss = field.expect(d2K, u, r, 0, 2, 2)
    d2Ks = p.cross_kernel.derivative(2)(u)
    return (-2.0 * u * (dKs_u - A) + r * r * (d2Ks - E_uu) + 2.0 * u * r * E_urs
            - u * u * E_rrss + r * B - u * u * B_over_r)


def local_hessian_eigenvalues(field: OverlapField, u):
    r"""Eigenvalues :math:`(\lambda_\parallel(u),\lambda_\perp(u))` of the local Hessian of a symmetric law.

    .. math::
        \lambda_\parallel(u)=V'(u)+\frac{u\,V(u)}{1-u^2},\qquad
        \lambda_\perp(u)=-\langle w,g\rangle-\frac{\mathbb E[K''(uu'+rr's)\,r'^2(1-s^2)]}{d-2},

    with :math:`V'` from :func:`velocity_derivative`, :math:`\langle w,g\rangle=uK_*'(u)-uA-rB`
    (:math:`=uK_*'(u)-\mathbb E[K'(x)x]`, :math:`x=uu'+rr's`; :math:`K_*` in the target terms, so
    misspecified problems are covered). :math:`\lambda_\parallel` has multiplicity 1 (direction
    :math:`\tau`), :math:`\lambda_\perp` multiplicity :math:`d-2`.

    Poles: ``u`` is clipped to :math:`[-1,1]`, and :math:`V/(1-u^2)` is evaluated as
    :math:`(K_*'-A)+u\,B/r` with :math:`B/r` an exact polynomial, so both values are finite, and
    equal to their limits, at :math:`|u|=1` (no further clipping needed). For ``d == 2`` there is no
    transverse direction: :math:`\lambda_\perp` is NaN (only then).

    Returns
    -------
    lam_par, lam_perp : ndarrays of the shape of ``u``.
    """
    u, r, A, B, B_over_r, dKs_u = _pieces(field, u)
    V_over_r2 = (dKs_u - A) + u * B_over_r
    lam_par = velocity_derivative(field, u) + u * V_over_r2
    d = field.problem.dim
    if d == 2:
        lam_perp = np.full(u.shape, np.nan)
    else:
        wg = u * dKs_u - u * A - r * B
        E = field.expect(field.problem.kernel.derivative(2), u, r, 0, 2, 0) - field.expect(
            field.problem.kernel.derivative(2), u, r, 0, 2, 2)
        lam_perp = -wg - E / (d - 2)
    return lam_par, lam_perp


def tracer_eigenvalues(state):
    r""":math:`(\lambda_\parallel,\lambda_\perp,\lambda_{max})` at the tracers :math:`\bar u_i` of a simulation state.

    :math:`\lambda_{max}=\max(\lambda_\parallel,\lambda_\perp)` (just :math:`\lambda_\parallel` when ``d == 2``).
    """
    lp, lq = local_hessian_eigenvalues(state.field, state.tracers)
    return lp, lq, np.fmax(lp, lq)


# ---------------------------------------------------------------------------------------------
# along a simulation
# ---------------------------------------------------------------------------------------------
def _self_concordance(lam_par, u, V, floor):
    ratio = np.full(np.shape(u), np.nan)
    ok = np.abs(V) > floor
    np.divide(lam_par * u, V, out=ratio, where=ok)
    return ratio


def hessian_along(problem: Problem, ds: xr.Dataset, velocity_floor: float = 1e-12) -> xr.Dataset:
    r"""Local-Hessian eigenvalues at the quantile nodes (and tracers) of a simulation result.

    ``ds`` must come from ``simulate(..., keep_nodes=True)`` (variable ``nodes(t, node)``). At each
    record time the exact field of the nodes is rebuilt and evaluated at the nodes themselves.

    Returns
    -------
    xarray.Dataset on ``(t, node)`` with ``lam_par`` (:math:`\lambda_\parallel`), ``lam_perp``
    (:math:`\lambda_\perp`, NaN if d = 2), ``lam_max`` (their max), ``velocity`` (:math:`V=\dot u`),
    ``self_concordance`` (:math:`\lambda_\parallel u/V`, NaN where :math:`|V|\le` ``velocity_floor``;
    about :math:`k-1` early in training, section ``math-hessian``; it diverges near the zeros of :math:`V`, e.g. where
    the repulsion of the bulk balances the signal at small :math:`u`, so read it only where :math:`|V|`
    is not small) and ``overlap`` (the nodes). If ``ds`` holds
    ``twin_overlap(t, neuron)`` (``keep_neurons=True``), the same quantities at the tracers are
    added with suffix ``_twin`` on ``(t, neuron)``.
    """
    if "nodes" not in ds:
        raise ValueError("ds has no 'nodes' variable: run simulate(..., keep_nodes=True)")
    nodes = np.asarray(ds["nodes"].transpose("t", "node").values, dtype=float)
    twins = None
    if "twin_overlap" in ds:
        twins = np.asarray(ds["twin_overlap"].transpose("t", "neuron").values, dtype=float)
    names = ("lam_par", "lam_perp", "lam_max", "velocity", "self_concordance")
    out = {k: np.empty(nodes.shape) for k in names}
    out_t = {k: np.empty(twins.shape) for k in names} if twins is not None else None
    for it in range(nodes.shape[0]):
        field = OverlapField(problem, nodes[it])
        targets = [(nodes[it], out)] + ([(twins[it], out_t)] if twins is not None else [])
        for u, dest in targets:
            lp, lq = local_hessian_eigenvalues(field, u)
            V = field.velocity(u)
            dest["lam_par"][it], dest["lam_perp"][it] = lp, lq
            dest["lam_max"][it] = np.fmax(lp, lq)
            dest["velocity"][it] = V
            dest["self_concordance"][it] = _self_concordance(lp, np.clip(u, -1, 1), V, velocity_floor)
    coords = {"t": ds["t"].values}
    data = {k: (("t", "node"), v) for k, v in out.items()}
    data["overlap"] = (("t", "node"), nodes)
    if twins is not None:
        data.update({k + "_twin": (("t", "neuron"), v) for k, v in out_t.items()})
    res = xr.Dataset(data, coords=coords)
    res["lam_par"].attrs["long_name"] = "meridian eigenvalue of the local Hessian"
    res["lam_perp"].attrs["long_name"] = "transverse eigenvalue of the local Hessian (multiplicity d-2)"
    res["self_concordance"].attrs["long_name"] = "lam_par * u / V"
    res.attrs.update(problem.describe())
    res.attrs["velocity_floor"] = velocity_floor
    return res


class RecordSchedule:
    r"""Which PGD steps an observer records: log-spaced in time, at most about ``max_records``.

    The first ``dense`` states (steps 0..dense-1) are all recorded; afterwards a state is recorded
    when :math:`t\ge\rho\,t_{last}`, :math:`t_{last}` the last recorded time. The ratio :math:`\rho` is
    :math:`(T/t_{dense})^{1/(\text{max\_records}-\text{dense}-1)}` when the horizon :math:`T` is known,
    otherwise 1.04 (about 25 records per factor e of time: 380 records for :math:`10^7` steps).
    The last state seen is always kept (see :meth:`finalise`).
    """

    def __init__(self, max_records: int = 400, horizon=None, dense: int = 20):
        self.max_records = check_int("max_records", max_records, 3)
        self.dense = min(check_int("dense", dense, 1), self.max_records - 2)
        self.horizon = None if horizon is None else check_positive("horizon", horizon)
        self.ratio = None
        self.n_seen = 0
        self.t_last = None

    def want(self, t: float, step=None) -> bool:
        """Decide for the state at time ``t`` (called once per state, in order)."""
        self.n_seen += 1
        if self.n_seen <= self.dense:
            take = True
        else:
            if self.ratio is None:
                if self.horizon is not None and self.t_last and self.horizon > self.t_last:
                    self.ratio = max((self.horizon / self.t_last) ** (1.0 / (self.max_records - self.dense - 1)),
                                     1.0 + 1e-9)
                else:
                    self.ratio = 1.04
            take = t >= self.ratio * self.t_last * (1 - 1e-12)
        if take:
            self.t_last = t
        return take


class HessianIntegralObserver:
    r"""Observer accumulating :math:`\int_0^t\lambda_{max}(\bar u_i(s))\,ds` along every tracer (section ``math-hessian``, C4).

    On each PGD step of size :math:`\eta` the integral gets :math:`\eta\,\lambda_{max}` evaluated at the
    state *before* the step (left Riemann sum, the same grid as the dynamics). Also tracked:
    :math:`\int\lambda_\parallel` and the Grönwall constant

    .. math:: L(t)=\max_{s\le t}\ \max_i\ \max\big(|\lambda_\parallel(\bar u_i(s))|,|\lambda_\perp(\bar u_i(s))|\big),

    the running supremum, over the tracked particles and over the steps seen so far, of the operator
    norm :math:`\|H_{\rho_s}(\bar w_i)\|` of the local Hessian. A classical Grönwall argument
    amplifies perturbations by :math:`e^{L t}`, against :math:`e^{\int\lambda_{max}}` along each
    trajectory.

    Parameters
    ----------
    on : {"tracers", "nodes"}
        Particles followed: the tracers :math:`\bar u_i` of the twins (i.i.d. samples of
        :math:`\rho_s`; needs ``width > 0``) or the quantile nodes of the limit (works with
        ``width=0``; the nodes are particles of the same 1-D flow). The dimension of the result is
        ``neuron`` or ``node`` accordingly.
    max_records : int
        Record at most about this many states (log-spaced, :class:`RecordSchedule`).
    horizon : float, optional
        Final time, to spread the records (read from ``state.horizon`` if the state has one).

    Notes
    -----
    Use as ``simulate(..., method="pgd", observers=[obs])``; :meth:`result` returns an
    ``xarray.Dataset`` on ``(t, neuron)`` (or ``(t, node)``): ``int_lam_max``, ``int_lam_par``,
    ``lam_max``, ``overlap`` (:math:`\bar u_i`), and on ``t``: ``lipschitz_sup`` (:math:`L(t)`) and
    ``gronwall_exponent`` (:math:`t\,L(t)`).
    """

    def __init__(self, on: str = "tracers", max_records: int = 400, horizon=None):
        if on not in ("tracers", "nodes"):
            raise ValueError(f"on must be 'tracers' or 'nodes', got {on!r}")
        self.on = on
        self._dim = "neuron" if on == "tracers" else "node"
        self._max_records = max_records
        self._horizon = horizon
        self._records = []

    def _points(self, state) -> np.ndarray:
        return np.asarray(state.tracers if self.on == "tracers" else state.nodes, dtype=float)

    def start(self, state):
        horizon = self._horizon if self._horizon is not None else getattr(state, "horizon", None)
        self.schedule = RecordSchedule(self._max_records, horizon)
        self._records = []
        m = self._points(state).size
        if m == 0:
            raise ValueError("HessianIntegralObserver(on='tracers') needs width > 0; use on='nodes' for width=0")
        self.int_max = np.zeros(m)
        self.int_par = np.zeros(m)
        self.L = 0.0
        self._look(state)

    def _look(self, state):
        u = self._points(state)
        lp, lq = local_hessian_eigenvalues(state.field, u)
        lmax = np.fmax(lp, lq)
        if not (np.all(np.isfinite(lp)) and np.all(np.isfinite(lmax))):
            raise FloatingPointError(f"non-finite local Hessian eigenvalue at the {self.on} at t={state.t:g}")
        self._lp, self._lmax = lp, lmax
        self.L = max(self.L, float(np.max(np.fmax(np.abs(lp), np.abs(np.nan_to_num(lq))))))
        self._last = (float(state.t), self.int_max.copy(), self.int_par.copy(), lmax.copy(), u.copy(), self.L)
        if self.schedule.want(float(state.t)):
            self._records.append(self._last)

    def update(self, state):
        eta = float(state.step)
        self.int_max += eta * self._lmax  # left Riemann sum: value before the step
        self.int_par += eta * self._lp
        self._look(state)

    def result(self) -> xr.Dataset:
        recs = list(self._records)
        if not recs:
            raise RuntimeError("the observer has seen no state (pass it to simulate(..., observers=[...]))")
        if recs[-1][0] != self._last[0]:
            recs.append(self._last)
        t = np.array([r[0] for r in recs])
        L = np.array([r[5] for r in recs])
        dims = ("t", self._dim)
        ds = xr.Dataset(
            {
                "int_lam_max": (dims, np.stack([r[1] for r in recs])),
                "int_lam_par": (dims, np.stack([r[2] for r in recs])),
                "lam_max": (dims, np.stack([r[3] for r in recs])),
                "overlap": (dims, np.stack([r[4] for r in recs])),
                "lipschitz_sup": ("t", L),
                "gronwall_exponent": ("t", t * L),
            },
            coords={"t": t},
        )
        ds["int_lam_max"].attrs["long_name"] = f"left Riemann sum of lam_max along the {self.on}"
        ds["lipschitz_sup"].attrs["long_name"] = (
            f"running sup over {self.on} and steps of max(|lam_par|, |lam_perp|) = ||H||_op")
        ds.attrs["on"] = self.on
        return ds
