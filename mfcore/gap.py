r"""The gap equation between a finite network and its mean-field twins (the book's mathematical reference, section ``math-gap-equation``).

With :math:`\Delta_i=w_i-\bar w_i` and :math:`\bar\rho=\frac1m\sum_j\delta_{\bar w_j}` (the twins are
i.i.d. samples of :math:`\rho_t`), the velocity difference splits into three brackets:

.. math::
    \dot\Delta_i=\underbrace{v_{\hat\rho}(w_i)-v_{\hat\rho}(\bar w_i)}_{\approx H(\bar w_i)\Delta_i}
    +\underbrace{v_{\hat\rho}(\bar w_i)-v_{\bar\rho}(\bar w_i)}_{\le L_{int}\,\omega_t}
    +\underbrace{v_{\bar\rho}(\bar w_i)-v_\rho(\bar w_i)}_{\xi_i(t)} .

* First bracket: to first order in :math:`\Delta_i` it is the local Hessian (:mod:`mfcore.hessian`)
  applied to :math:`\Delta_i`; since :math:`H` is symmetric,
  :math:`\frac{d}{dt}\|\Delta_i\|\lesssim\lambda_{max}(H(\bar w_i))\,\|\Delta_i\|+\dots`.
* Second bracket (interaction with the other gaps): with
  :math:`a_j=K'(\langle w,w_j\rangle)w_j-K'(\langle w,\bar w_j\rangle)\bar w_j`,

  .. math::
      \|a_j\|\le|K'(\langle w,w_j\rangle)-K'(\langle w,\bar w_j\rangle)|\,\|w_j\|
      +|K'(\langle w,\bar w_j\rangle)|\,\|w_j-\bar w_j\|
      \le\big(\sup_{|s|\le1}|K''|+\sup_{|s|\le1}|K'|\big)\|\Delta_j\|,

  using :math:`|\langle w,w_j-\bar w_j\rangle|\le\|\Delta_j\|` and unit vectors. The projection
  :math:`P_w` is a contraction, so
  :math:`\|v_{\hat\rho}(w)-v_{\bar\rho}(w)\|\le L_{int}\,\frac1m\sum_j\|\Delta_j\|=L_{int}\,\omega_t`
  **rigorously**, with :math:`L_{int}=\sup|K''|+\sup|K'|`, which equals :math:`K''(1)+K'(1)` because
  the coefficients :math:`c_j^2` of :math:`K` are nonnegative (:meth:`Kernel.sup_abs` in general).
* Third bracket: pure Monte-Carlo fluctuation of the i.i.d. sample :math:`\bar\rho` around
  :math:`\rho_t`, of size :math:`O(m^{-1/2})`, computed exactly from the tracers:
  :math:`v_{\bar\rho}(\bar w_i)` by one Gram pass over :math:`\bar W`
  (:func:`mfcore.finite.evaluate`), :math:`v_\rho(\bar w_i)=(V/r)(\bar u_i)\,\bar\tau_i` with the meridian
  :math:`\bar\tau_i=\bar r_ie_1-\bar u_iz_i`.

The **comparison ODE** :math:`b_i'=\lambda_{max}(t,\bar u_i)\,b_i+L_{int}\bar b+\|\xi_i\|`,
:math:`b_i(0)=0`, :math:`\bar b=\frac1m\sum b_i`, is a *first-order (linearised)* bound of
:math:`\|\Delta_i\|`, not a rigorous one (the first bracket is replaced by its linearisation at the
twin, with the Hessian of :math:`\rho_t` instead of :math:`\hat\rho_t`); the **Grönwall** version
:math:`g'=(L+L_{int})\,g+\max_i\|\xi_i\|` replaces each :math:`\lambda_{max}` by a global constant
:math:`L\ge\|H\|` and bounds :math:`\max_ib_i` (hence :math:`\bar b`).

**Closures from the mean-field side only** (:class:`MeanFieldGapObserver`, used by the book's chapter
on the gap equation): the first variation of the coupled system around the twins,
:math:`\dot\delta_i=H_{\rho_t}(\bar w_i)\delta_i+(\mathcal K\delta)_i+\xi_i` with the interaction operator
:math:`\mathcal K` of the twins (:func:`twin_linearisation`), and scalar closures whose interaction
coefficient is the mean-field operator bound :func:`interaction_operator_bound`. Nothing measured on the
finite network enters them. The older :class:`GapEquationObserver` below keeps the closures with the
worst-case constant, the typical-pair heuristic and the *measured* interaction bracket (which feeds the
finite network's interaction into the ODE and therefore cannot test it).

The rigorous :math:`L_{int}` is a worst case over all pairs and ignores the cancellations between
the other neurons' gaps; measured interaction brackets are typically one or two orders of
magnitude below :math:`L_{int}\omega_t`. :class:`GapEquationObserver` therefore also offers a
typical-pair coefficient (:func:`typical_interaction_coefficients`, heuristic) and the measured
bracket (``"measured"``: only the self bracket is linearised).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from .finite import DEFAULT_CHUNK, evaluate
from .hessian import RecordSchedule, finite_probe_velocity, local_hessian_eigenvalues
from .kernels import Kernel
from .problem import Problem, check_int, check_positive

__all__ = [
    "default_interaction_constant",
    "typical_interaction_coefficients",
    "fluctuation",
    "GapEquationObserver",
    "first_order_linearization_check",
]


def default_interaction_constant(problem: Problem) -> float:
    r"""Default :math:`L_{int}=\sup_{|s|\le1}|K''(s)|+\sup_{|s|\le1}|K'(s)|` (:math:`=K''(1)+K'(1)` here).

    It bounds the interaction bracket: :math:`\|v_{\hat\rho}(w)-v_{\bar\rho}(w)\|\le L_{int}\,\omega`,
    :math:`\omega=\frac1m\sum_j\|w_j-\bar w_j\|` (derivation in the module docstring). The suprema are
    bounded by :math:`\sum_q|a_q|` of the derivative polynomials, equal to their value at 1 when the
    coefficients are nonnegative (always true for :math:`K=\sum c_j^2s^j`).
    """
    K = problem.kernel
    return K.derivative(2).sup_abs() + K.derivative(1).sup_abs()


def typical_interaction_coefficients(field, u) -> np.ndarray:
    r"""Typical-pair interaction coefficients :math:`L_i=\mathbb E_{w'\sim\rho}\big[|K''(x)|+|K'(x)|\big]`.

    Here :math:`x=\langle\bar w_i,w'\rangle`.

    The rigorous :math:`L_{int}` takes the supremum of :math:`|K''|+|K'|` over all :math:`|s|\le1`; the
    pairs actually present have :math:`|\langle\bar w_i,\bar w_j\rangle|\approx d^{-1/2}`, where the
    kernel derivatives are far smaller. Replacing :math:`\frac1m\sum_jc_{ij}\|\Delta_j\|` by
    :math:`\mathbb E[c_{ij}]\,\omega` (independence of :math:`c_{ij}` and :math:`\|\Delta_j\|`, :math:`K''`
    at the twin instead of on the segment) is a first-order heuristic, **not** a bound. Computed
    without sampling: with :math:`K=\sum_qa_qs^q`,

    .. math:: L_i\le\sum_q|a_q|\big(q(q-1)\mu_{q-2}+q\,\mu_{q-1}\big),\qquad
       \mu_p=\mathbb E|x|^p\le\big(\mathbb E\,x^{2n}\big)^{p/2n},\ n=\lceil p/2\rceil

    (Lyapunov's inequality; equality for even :math:`p`), each :math:`\mathbb E\,x^{2n}` an exact moment
    expansion (:meth:`OverlapField.expect`). This right-hand side is what is returned.
    """
    u = np.clip(np.asarray(u, dtype=float), -1.0, 1.0)
    r = np.sqrt(1.0 - u * u)
    a = field.problem.kernel.coeffs
    deg = a.size - 1
    even = {}
    for n in range(0, (deg + 1) // 2 + 1):
        if 2 * n > deg:
            break
        e = np.zeros(2 * n + 1)
        e[-1] = 1.0
        even[n] = np.maximum(field.expect(Kernel(e), u, r), 0.0)

    def mu(p):
        n = (p + 1) // 2
        return np.ones_like(u) if p == 0 else even[n] ** (p / (2.0 * n))

    out = np.zeros_like(u)
    for q in range(1, deg + 1):
        if a[q] == 0.0:
            continue
        out += abs(a[q]) * q * mu(q - 1)
        if q >= 2:
            out += abs(a[q]) * q * (q - 1) * mu(q - 2)
    return out


def _meridian(tracers, perp):
    u = np.clip(np.asarray(tracers, dtype=float), -1.0, 1.0)
    r = np.sqrt(1.0 - u * u)
    tau = -u[:, None] * perp
    tau[:, 0] = r
    return u, r, tau


def fluctuation(state, chunk: int = DEFAULT_CHUNK):
    r"""Monte-Carlo fluctuation :math:`\xi_i=v_{\bar\rho}(\bar w_i)-v_\rho(\bar w_i)` at the twins of ``state``.

    Returns
    -------
    xi : ndarray (m, d)
    twins : ndarray (m, d)
        :math:`\bar W`.
    v_bar : ndarray (m, d)
        :math:`v_{\bar\rho}(\bar w_i)` (one Gram pass over :math:`\bar W`, :math:`O(m^2d)`).
    v_limit : ndarray (m, d)
        :math:`v_\rho(\bar w_i)=(V/r)(\bar u_i)\,\bar\tau_i`, :math:`\bar\tau_i=\bar r_ie_1-\bar u_iz_i`.
    """
    Wb = state.twins()
    v_bar = evaluate(Wb, state.problem, chunk, with_kernel_mean=False).velocity
    u, _, tau = _meridian(state.tracers, state.perp)
    v_lim = state.field.speed(u)[:, None] * tau
    return v_bar - v_lim, Wb, v_bar, v_lim


def _phi1(x):
    r""":math:`(e^x-1)/x`, equal to 1 at 0."""
    x = np.asarray(x, dtype=float)
    out = np.ones_like(x)
    nz = np.abs(x) > 1e-12
    out[nz] = np.expm1(x[nz]) / x[nz]
    return out



def _recorded_states(records, last):
    """The observer's records plus its last state (if not recorded), and their times."""
    recs = list(records)
    if not recs:
        raise RuntimeError("the observer has seen no state (pass it to simulate(..., observers=[...]))")
    if recs[-1]["t"] != last["t"]:
        recs.append(last)
    return recs, np.array([r["t"] for r in recs])

class GapEquationObserver:
    r"""Observer measuring the gaps :math:`\|\Delta_i\|` and integrating their comparison ODEs (section ``math-gap-equation``).

    At every projected-GD step (``simulate(..., method="pgd", observers=[obs])``) it computes, at the
    new state: the gaps :math:`\|w_i-\bar w_i\|`, the fluctuations :math:`\|\xi_i\|`
    (:func:`fluctuation`; one extra Gram pass per step) and
    :math:`\lambda_{max}(\bar u_i)=\max(\lambda_\parallel,\lambda_\perp)`
    (:func:`mfcore.hessian.local_hessian_eigenvalues` in the current exact field). Between two
    states the scalar ODEs

    .. math::
        b_i'=\lambda_{max,i}\,b_i+F_i,\qquad g'=(L+L_g)\,g+\max_iG_i,\qquad b_i(0)=g(0)=0,

    are advanced by **exponential Euler** with the coefficients frozen at the state before the step
    (left endpoint, same step :math:`\eta` as the dynamics):
    :math:`b_i\leftarrow e^{\lambda_i\eta}b_i+\eta\,\varphi_1(\lambda_i\eta)\,F_i`,
    :math:`\varphi_1(x)=(e^x-1)/x`. :math:`L(t)` is the running supremum over the tracers and the
    states seen so far of :math:`\max(|\lambda_\parallel|,|\lambda_\perp|)` (the operator norm of the
    local Hessian at the twins), or a user constant. The forcing depends on ``interaction_constant``:

    * a number :math:`L_{int}` (default :func:`default_interaction_constant`, :math:`K''(1)+K'(1)`):
      :math:`F_i=L_{int}\bar b+\|\xi_i\|`, :math:`L_g=L_{int}`, :math:`G_i=\|\xi_i\|`;
    * ``"typical"``: :math:`F_i=L_i\bar b+\|\xi_i\|`, :math:`L_g=` running sup of :math:`L_i`,
      :math:`G_i=\|\xi_i\|`;
    * ``"measured"``: :math:`F_i=\|I_i\|+\|\xi_i\|`, :math:`L_g=0`, :math:`G_i=F_i`;

    with :math:`\bar b=\frac1m\sum_jb_j`, :math:`L_i` from :func:`typical_interaction_coefficients`
    and :math:`I_i=v_{\hat\rho}(\bar w_i)-v_{\bar\rho}(\bar w_i)` the interaction bracket measured on
    the finite network (a second extra Gram pass). In every mode the discrete recursion keeps
    :math:`g\ge\max_ib_i\ge\bar b` exactly (when :math:`L` is the running supremum).

    :math:`b_i` is a **first-order (linearised) bound** of :math:`\|\Delta_i\|`, not a rigorous one:
    the self bracket is replaced by the local Hessian at the twin. With the default (worst-case,
    rigorous) :math:`L_{int}` the term :math:`L_{int}\bar b` makes :math:`\bar b` grow like
    :math:`e^{L_{int}t}`; the actual interaction bracket is much smaller (see
    :func:`first_order_linearization_check`), which ``"measured"`` isolates.

    Parameters
    ----------
    problem : Problem
        Must be the simulated problem.
    interaction_constant : float, "typical" or "measured", optional
        See the table; default :func:`default_interaction_constant`.
    lipschitz : float, optional
        A global constant :math:`L` for the Grönwall bound instead of the running supremum.
    max_records : int
        At most about this many recorded states, log-spaced in time
        (:class:`mfcore.hessian.RecordSchedule`; the last state is always kept).
    horizon : float, optional
        Final time, used only to spread the records.
    neurons : int or array of int, optional
        Neurons whose per-neuron series are stored (``int``: the first ones). Default: all if
        :math:`m\le4096`, else the first 4096 (memory ``3 x records x len(neurons)`` floats).
        Scalars always use every neuron.
    chunk : int
        Rows of the Gram matrix per block.

    Notes
    -----
    :meth:`result` returns an ``xarray.Dataset`` with ``gap``, ``bound`` (:math:`b_i`), ``xi`` on
    ``(t, neuron)`` and on ``t``: ``omega`` (mean gap), ``gap_max``, ``bound_mean``
    (:math:`\bar b`), ``bound_max``, ``gronwall`` (:math:`g`), ``xi_mean``, ``xi_max``,
    ``lipschitz`` (:math:`L`), ``lam_max_mean``, ``interaction_forcing`` (mean over :math:`i` of the
    interaction part of :math:`F_i`); ``attrs`` hold the interaction mode and the scheme.
    """

    def __init__(self, problem: Problem, interaction_constant=None, lipschitz=None, max_records: int = 400,
                 horizon=None, neurons=None, chunk: int = DEFAULT_CHUNK):
        if not isinstance(problem, Problem):
            raise ValueError(f"problem must be a mfcore.Problem, got {type(problem).__name__}")
        self.problem = problem
        if isinstance(interaction_constant, str):
            if interaction_constant not in ("typical", "measured"):
                raise ValueError("interaction_constant must be None, a number >= 0, 'typical' or 'measured', "
                                 f"got {interaction_constant!r}")
            self.mode, self.L_int = interaction_constant, None
        else:
            self.mode = "constant"
            self.L_int = (default_interaction_constant(problem) if interaction_constant is None
                          else _nonnegative("interaction_constant", interaction_constant))
        self.user_L = None if lipschitz is None else _nonnegative("lipschitz", lipschitz)
        self.max_records = check_int("max_records", max_records, 3)
        self.horizon = None if horizon is None else check_positive("horizon", horizon)
        self.neurons_arg = neurons
        self.chunk = check_int("chunk", chunk, 1)
        self._records = []

    # -- observer protocol ---------------------------------------------------------------
    def start(self, state):
        if state.W is None:
            raise ValueError("GapEquationObserver needs a finite network (width > 0)")
        if state.problem.dim != self.problem.dim or not np.array_equal(
                state.problem.kernel.coeffs, self.problem.kernel.coeffs):
            raise ValueError("the observer's problem differs from the simulated one")
        m = state.W.shape[0]
        if self.neurons_arg is None:
            self.idx = np.arange(min(m, 4096))
        elif np.isscalar(self.neurons_arg):
            self.idx = np.arange(min(m, check_int("neurons", self.neurons_arg, 1)))
        else:
            self.idx = np.asarray(self.neurons_arg, dtype=int)
            if self.idx.ndim != 1 or np.any(self.idx < 0) or np.any(self.idx >= m):
                raise ValueError(f"neurons must be indices in [0, {m}), got {self.neurons_arg!r}")
        self.schedule = RecordSchedule(self.max_records, self.horizon)
        self._records = []
        self.b = np.zeros(m)
        self.g = 0.0
        self.L = 0.0 if self.user_L is None else self.user_L
        self.L_g = 0.0 if self.mode != "constant" else self.L_int
        self._look(state)

    def _forcing(self):
        """(F_i, interaction part of F_i, G) at the current state and bounds."""
        if self.mode == "measured":
            inter = self._inter
            F = inter + self._xi
            return F, inter, float(F.max())
        inter = self._coef * float(self.b.mean())
        return inter + self._xi, inter, float(self._xi.max())

    def update(self, state):
        eta = float(state.step)
        lam = self._lam
        F, _, G = self._forcing()
        self.b = np.exp(lam * eta) * self.b + eta * _phi1(lam * eta) * F
        rate = self.L + self.L_g
        self.g = float(np.exp(rate * eta) * self.g + eta * float(_phi1(rate * eta)) * G)
        self._look(state)

    # -- internals ------------------------------------------------------------------------
    def _look(self, state):
        t = float(state.t)
        W = np.asarray(state.W, dtype=float)
        xi_vec, Wb, v_bar, _ = fluctuation(state, self.chunk)
        gap = np.linalg.norm(W - Wb, axis=1)
        xi = np.linalg.norm(xi_vec, axis=1)
        lp, lq = local_hessian_eigenvalues(state.field, state.tracers)
        lam = np.fmax(lp, lq)
        if self.mode == "measured":
            self._inter = np.linalg.norm(finite_probe_velocity(W, self.problem, self.chunk)(Wb) - v_bar, axis=1)
            self._coef = np.nan
        elif self.mode == "typical":
            self._coef = typical_interaction_coefficients(state.field, state.tracers)
            self.L_g = max(self.L_g, float(np.max(self._coef)))
        else:
            self._coef = self.L_int
        for name, arr in (("gap", gap), ("xi", xi), ("lam_max", lam), ("bound", self.b)):
            if not np.all(np.isfinite(arr)):
                raise FloatingPointError(f"non-finite {name} in GapEquationObserver at t={t:.6g}")
        if self.user_L is None:
            self.L = max(self.L, float(np.max(np.fmax(np.abs(lp), np.abs(np.nan_to_num(lq))))))
        self._lam, self._xi = lam, xi
        _, inter, _ = self._forcing()
        i = self.idx
        self._last = {
            "t": t, "gap": gap[i].copy(), "bound": self.b[i].copy(), "xi": xi[i].copy(),
            "omega": float(gap.mean()), "gap_max": float(gap.max()), "bound_mean": float(self.b.mean()),
            "bound_max": float(self.b.max()), "gronwall": self.g, "xi_mean": float(xi.mean()),
            "xi_max": float(xi.max()), "lipschitz": self.L, "lam_max_mean": float(lam.mean()),
            "interaction_forcing": float(np.mean(inter)),
        }
        if self.schedule.want(t):
            self._records.append(self._last)

    def result(self) -> xr.Dataset:
        recs, t = _recorded_states(self._records, getattr(self, "_last", None))
        data = {k: (("t", "neuron"), np.stack([r[k] for r in recs])) for k in ("gap", "bound", "xi")}
        for k in ("omega", "gap_max", "bound_mean", "bound_max", "gronwall", "xi_mean", "xi_max",
                  "lipschitz", "lam_max_mean", "interaction_forcing"):
            data[k] = ("t", np.array([r[k] for r in recs]))
        ds = xr.Dataset(data, coords={"t": t, "neuron": self.idx})
        long = {
            "gap": "||w_i - wbar_i||", "bound": "comparison ODE b_i (first-order bound of the gap)",
            "xi": "||xi_i|| = ||v_rhobar(wbar_i) - v_rho(wbar_i)||", "omega": "mean gap",
            "bound_mean": "mean of b_i (bound of omega)", "gronwall": "Grönwall bound g of max_i gap",
            "lipschitz": "L: Hessian constant of the Grönwall bound",
            "interaction_forcing": "mean over neurons of the interaction forcing of b_i",
        }
        for k, v in long.items():
            ds[k].attrs["long_name"] = v
        ds.attrs.update({
            "interaction_mode": self.mode,
            "interaction_constant": self.L_int if self.mode == "constant" else self.mode,
            "lipschitz": "running sup of ||H|| at the tracers" if self.user_L is None else self.user_L,
            "scheme": "exponential Euler, coefficients frozen at the left endpoint of each step",
            **self.problem.describe(),
        })
        return ds


def _nonnegative(name, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}") from None
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def first_order_linearization_check(state, interaction_constant=None, chunk: int = DEFAULT_CHUNK) -> xr.Dataset:
    r"""Check, at one state, how honest the comparison ODE of :class:`GapEquationObserver` is.

    The comparison ODE is a **first-order (linearised) bound, not a rigorous one**: it replaces the
    self bracket :math:`v_{\hat\rho}(w_i)-v_{\hat\rho}(\bar w_i)` by :math:`H_{\rho}(\bar w_i)\Delta_i`.
    This function measures, per neuron, everything the argument uses (two or three Gram passes):

    * ``rate``: the actual
      :math:`\frac{d}{dt}\|\Delta_i\|=\langle\Delta_i,v_{\hat\rho}(w_i)-v_\rho(\bar w_i)\rangle/\|\Delta_i\|`
      of the gradient flow, against ``rhs`` :math:`=\lambda_{max,i}\|\Delta_i\|+L_{int}\omega+\|\xi_i\|`
      (the ODE's right-hand side evaluated at :math:`b=\|\Delta\|`);
    * the three brackets' norms ``self_term``, ``interaction``, ``xi``;
    * ``linearised`` :math:`=\|H_\rho(\bar w_i)P_{\bar w_i}\Delta_i\|` and ``linearisation_error``
      :math:`=\|P_{\bar w_i}(\text{self bracket})-H_\rho(\bar w_i)P_{\bar w_i}\Delta_i\|`, which is
      :math:`O(\|\Delta_i\|^2+\|\Delta_i\|/\sqrt m)` (the Hessian of :math:`\rho_t` stands in for
      that of :math:`\hat\rho_t`). The normal part of the self bracket,
      :math:`-\langle v(\bar w_i),\Delta_i\rangle\bar w_i` to first order, is the sphere's curvature; it
      changes :math:`\|\Delta_i\|` only at second order because :math:`\Delta_i` is tangent to first order.

    ``attrs``: ``fraction_rate_below_rhs`` (the differential inequality at this instant) and
    ``fraction_interaction_bounded`` (must be 1: that step of the argument is rigorous).
    """
    problem = state.problem
    L_int = default_interaction_constant(problem) if interaction_constant is None else _nonnegative(
        "interaction_constant", interaction_constant)
    W = np.asarray(state.W, dtype=float)
    xi_vec, Wb, v_bar, v_lim = fluctuation(state, chunk)
    fe = getattr(state, "finite", None)
    v_hat = (np.asarray(fe.velocity, dtype=float) if fe is not None
             else evaluate(W, problem, chunk, with_kernel_mean=False).velocity)
    v_hat_at_twins = finite_probe_velocity(W, problem, chunk)(Wb)
    D = W - Wb
    gap = np.linalg.norm(D, axis=1)
    omega = float(gap.mean())
    lp, lq = local_hessian_eigenvalues(state.field, state.tracers)
    lam = np.fmax(lp, lq)
    u, r, tau = _meridian(state.tracers, state.perp)
    PD = D - np.sum(D * Wb, axis=1, keepdims=True) * Wb
    along = np.sum(PD * tau, axis=1, keepdims=True)
    HD = lp[:, None] * along * tau + np.nan_to_num(lq)[:, None] * (PD - along * tau)
    self_term = v_hat - v_hat_at_twins
    self_tan = self_term - np.sum(self_term * Wb, axis=1, keepdims=True) * Wb
    interaction = v_hat_at_twins - v_bar
    xi = np.linalg.norm(xi_vec, axis=1)
    rate = np.divide(np.sum(D * (v_hat - v_lim), axis=1), gap, out=np.zeros_like(gap), where=gap > 0)
    rhs = lam * gap + L_int * omega + xi
    inter_norm = np.linalg.norm(interaction, axis=1)
    ds = xr.Dataset({
        "gap": ("neuron", gap), "rate": ("neuron", rate), "rhs": ("neuron", rhs),
        "self_term": ("neuron", np.linalg.norm(self_term, axis=1)),
        "interaction": ("neuron", inter_norm), "xi": ("neuron", xi),
        "linearised": ("neuron", np.linalg.norm(HD, axis=1)),
        "linearisation_error": ("neuron", np.linalg.norm(self_tan - HD, axis=1)),
        "lam_max": ("neuron", lam),
    })
    ds.attrs.update({
        "t": float(state.t), "omega": omega, "interaction_constant": L_int,
        "fraction_rate_below_rhs": float(np.mean(rate <= rhs)),
        "fraction_interaction_bounded": float(np.mean(inter_norm <= L_int * omega * (1 + 1e-12) + 1e-15)),
    })
    return ds


# =============================================================================================
# closures that take nothing from the finite network (the book's mathematical reference,
# section ``math-gap-equation``)
# =============================================================================================
def _tangent(W, X):
    """Row-wise projection of X on the tangent spaces at the unit rows of W."""
    return X - np.sum(X * W, axis=1, keepdims=True) * W


def apply_local_hessian(field, u, tau, D, eigenvalues=None) -> np.ndarray:
    r""":math:`H_\rho(\bar w_i)D_i` for tangent rows :math:`D_i`, with the two eigenvalues of the symmetric limit.

    :math:`H=\lambda_\parallel\,\tau\tau^\top+\lambda_\perp(P-\tau\tau^\top)` on the tangent space at
    the twin of overlap :math:`u_i` and meridian :math:`\tau_i` (:func:`mfcore.hessian.local_hessian_eigenvalues`;
    pass ``eigenvalues=(lam_par, lam_perp)`` to reuse them).
    """
    lp, lq = local_hessian_eigenvalues(field, u) if eigenvalues is None else eigenvalues
    lq = np.nan_to_num(lq)
    along = np.sum(D * tau, axis=1, keepdims=True)
    return lp[:, None] * along * tau + lq[:, None] * (D - along * tau)


def twin_linearisation(Wb, problem: Problem, D=None, chunk: int = DEFAULT_CHUNK, row_bounds: bool = False):
    r"""Velocity of the twins' empirical measure and the interaction part of the first variation.

    For unit rows :math:`\bar w_i` (the twins) and tangent rows :math:`\delta_i` returns

    * ``v_bar`` :math:`=v_{\bar\rho}(\bar w_i)=P_{\bar w_i}\big[K_*'(\bar u_i)e_1-\frac1m\sum_jK'(x_{ij})\bar w_j\big]`,
      :math:`x_{ij}=\langle\bar w_i,\bar w_j\rangle`;
    * ``inter`` :math:`=-\frac1m\sum_{j\ne i}P_{\bar w_i}\big[K''(x_{ij})\langle\bar w_i,\delta_j\rangle\bar w_j
      +K'(x_{ij})\delta_j\big]`, the derivative of :math:`v_{\bar\rho}(\bar w_i)` when every *other*
      particle :math:`\bar w_j` moves by :math:`\delta_j` (``None`` if ``D`` is ``None``);
    * with ``row_bounds=True``, a third output ``a`` with
      :math:`a_i=\big(\frac1m\sum_{j\ne i}\big[|K''(x_{ij})|(1-x_{ij}^2)+|K'(x_{ij})|\big]^2\big)^{1/2}`.
      The block :math:`M_{ij}\delta_j=-P_{\bar w_i}[K''(x_{ij})\langle\bar w_i,\delta_j\rangle\bar w_j+K'(x_{ij})\delta_j]`
      has operator norm at most :math:`|K''(x_{ij})|(1-x_{ij}^2)+|K'(x_{ij})|` on tangent vectors
      (:math:`|\langle\bar w_i,\delta_j\rangle|\le\|P_{\bar w_j}\bar w_i\|\|\delta_j\|` and
      :math:`\|P_{\bar w_i}\bar w_j\|=(1-x_{ij}^2)^{1/2}`), so by Cauchy-Schwarz
      :math:`\|(\mathcal K\delta)_i\|\le a_i\,\delta_{\rm rms}`, :math:`\delta_{\rm rms}=(\frac1m\sum_j\|\delta_j\|^2)^{1/2}`.

    Only the twins enter (mean-field side): cost :math:`O(m^2d)` by row blocks of ``chunk``.
    """
    Wb = np.asarray(Wb, dtype=float)
    m, d = Wb.shape
    if d != problem.dim:
        raise ValueError(f"twins must have d = {problem.dim} columns, got {d}")
    dK = problem.kernel.derivative()
    d2K = problem.kernel.derivative(2)
    g = np.zeros_like(Wb)
    inter = None if D is None else np.zeros_like(Wb)
    if D is not None:
        D = np.asarray(D, dtype=float)
        if D.shape != Wb.shape:
            raise ValueError(f"D must have the twins' shape {Wb.shape}, got {D.shape}")
    a = np.zeros(m) if row_bounds else None
    for start in range(0, m, chunk):
        rows = slice(start, min(start + chunk, m))
        X = np.clip(Wb[rows] @ Wb.T, -1.0, 1.0)
        Kp = dK(X)
        idx = np.arange(rows.start, rows.stop)
        Kp[idx - start, idx] = 0.0  # j = i: P_w w = 0 in v_bar; excluded from the interaction
        g[rows] = -(Kp @ Wb) / m
        if row_bounds:
            blk = np.abs(d2K(X)) * (1.0 - X * X) + np.abs(Kp)
            blk[idx - start, idx] = 0.0
            a[rows] = np.sqrt(np.sum(blk * blk, axis=1) / m)
        if D is not None:
            Kpp = d2K(X)
            Kpp[idx - start, idx] = 0.0
            Kpp *= Wb[rows] @ D.T
            inter[rows] = -(Kpp @ Wb + Kp @ D) / m
    g[:, 0] += problem.cross_kernel.derivative()(Wb[:, 0])
    v_bar = _tangent(Wb, g)
    if inter is not None:
        inter = _tangent(Wb, inter)
    if row_bounds:
        return v_bar, inter, a
    return v_bar, inter


def pair_expectation(problem: Problem, nodes, coeffs) -> float:
    r""":math:`\mathbb E_{w,w'\sim\rho}F(\langle w,w'\rangle)` for a polynomial :math:`F` (``coeffs``), :math:`w,w'` independent.

    :math:`\rho` is the rotation-invariant law of the overlap nodes. With :math:`x=uu'+rr's`,
    :math:`\mathbb E\,x^q=\sum_{n\ \mathrm{even}}\binom qn\mathbb E[s^n]\,M[q-n,n]^2`, :math:`M[a,b]` the
    moments :math:`\mathbb E[u^ar^b]` of the nodes.
    """
    from scipy.special import comb

    from .meanfield import overlap_moments, sphere_coordinate_moments

    f = np.asarray(coeffs, dtype=float)
    P = f.size - 1
    M = overlap_moments(nodes, P, P)
    smom = sphere_coordinate_moments(problem.dim, P)
    total = 0.0
    for q, fq in enumerate(f):
        if fq == 0.0:
            continue
        n = np.arange(0, q + 1, 2)
        total += fq * np.sum(comb(q, n) * smom[n] * M[q - n, n] ** 2)
    return float(total)


def interaction_operator_bound(problem: Problem, nodes) -> float:
    r"""Mean-field bound of the interaction operator: :math:`L_{\rm MF}(t)=\big(2\mathbb E[K''(x)^2]+2\mathbb E[K'(x)^2]\big)^{1/2}`.

    The first variation of :math:`v_\rho(w)` when the particles move by a tangent field
    :math:`\delta` is :math:`(\mathcal K\delta)(w)=-\int P_w[K''(x)\langle w,\delta(w')\rangle w'+K'(x)\delta(w')]\,d\rho(w')`,
    :math:`x=\langle w,w'\rangle`. Its kernel has operator norm at most :math:`|K''(x)|+|K'(x)|`, so
    the Hilbert-Schmidt inequality gives
    :math:`\|\mathcal K\|_{L^2(\rho)\to L^2(\rho)}\le(\mathbb E_{\rho\otimes\rho}(|K''|+|K'|)^2)^{1/2}\le L_{\rm MF}`,
    an exact moment expansion of the law :math:`\rho_t` (:func:`pair_expectation`). A rigorous bound,
    from mean-field quantities only; it ignores signs (see the book's section ``math-gap-equation``).
    """
    K = problem.kernel
    p1, p2 = K.derivative(1).coeffs, K.derivative(2).coeffs
    sq = 2.0 * np.polynomial.polynomial.polymul(p1, p1)
    sq2 = 2.0 * np.polynomial.polynomial.polymul(p2, p2)
    n = max(sq.size, sq2.size)
    poly = np.zeros(n)
    poly[:sq.size] += sq
    poly[:sq2.size] += sq2
    return float(np.sqrt(max(pair_expectation(problem, nodes, poly), 0.0)))


class MeanFieldGapObserver:
    r"""Closed gap equations driven by the mean-field side only, and the measured gap to judge them.

    Every coefficient comes from the exact limit and the twins :math:`\bar w_i` (i.i.d. samples of
    :math:`\rho_t`): the local Hessian :math:`H_{\rho_t}(\bar w_i)`, the fluctuation
    :math:`\xi_i=v_{\bar\rho}(\bar w_i)-v_\rho(\bar w_i)`, and the interaction either linearised at the
    twins or bounded by :func:`interaction_operator_bound`. The finite network is used **only** to
    measure the gap :math:`\|w_i-\bar w_i\|` that the closures are compared with (nothing from it
    enters any closure). Variants, all with zero initial value:

    ``linearised``
        the first variation of the coupled system around the twins, a vector ODE in :math:`\mathbb R^{m\times d}`:
        :math:`\dot\delta_i=H_{\rho_t}(\bar w_i)\delta_i+(\mathcal K_{\bar\rho}\delta)_i+\xi_i`, with
        :math:`(\mathcal K_{\bar\rho}\delta)_i` from :func:`twin_linearisation` (:math:`O(m^2d)` per step);
    ``linearised_self``
        the same without the interaction term (:math:`O(md)` per step);
    ``scalar``
        :math:`b_i'=\lambda_{max}(\bar w_i)\,b_i+L_{\rm MF}(t)\,b_{\rm rms}+\|\xi_i\|`,
        :math:`b_{\rm rms}=(\frac1m\sum_jb_j^2)^{1/2}` (the operator bound acts in :math:`L^2`);
    ``scalar_self``
        :math:`b_i'=\lambda_{max}(\bar w_i)\,b_i+\|\xi_i\|`;
    ``split_self``
        the comparison ODE per neuron **and per eigen-direction** of the local Hessian, without
        interaction: :math:`p_i'=\lambda_\parallel p_i+|\langle\xi_i,\tau_i\rangle|`,
        :math:`q_i'=\lambda_\perp q_i+\|\xi_i^\perp\|`, :math:`b_i=(p_i^2+q_i^2)^{1/2}`. The meridian
        :math:`\tau_i` turns inside the fixed plane :math:`\mathrm{span}(e_1,z_i)`, so the transverse space
        of a twin is fixed in time and :math:`H` acts on the two parts separately: :math:`b_i` bounds
        :math:`\|\delta_i\|` of ``linearised_self`` rigorously (comparison lemma);
    ``split``
        the same with the interaction: :math:`a_i\,b_{\rm rms}` added to both forcings, :math:`a_i` the
        Cauchy-Schwarz row bound of :func:`twin_linearisation`; :math:`b_i` bounds :math:`\|\delta_i\|` of
        ``linearised`` rigorously (the system is cooperative, so the comparison lemma applies);
    ``gronwall``
        :math:`g'=(\Lambda^++\bar L_{\rm MF})\,g+\max_i\|\xi_i\|`, with :math:`\Lambda^+` the running
        supremum over twins and time of the one-sided rate :math:`\lambda_{max}^+` and
        :math:`\bar L_{\rm MF}` the running supremum of :math:`L_{\rm MF}`.

    Time stepping follows projected GD with the same step :math:`\eta`, coefficients at the left end
    of the step: the vector variants use the linearisation of the PGD map,
    :math:`\delta_i\leftarrow P_{\bar w_i(t+\eta)}\big(\delta_i+\eta\,\dot\delta_i\big)/\sqrt{1+\eta^2\|v_\rho(\bar w_i)\|^2}`;
    the scalar ones exponential Euler.

    Parameters
    ----------
    problem : Problem
    max_records : int
        About this many recorded states (log-spaced, :class:`mfcore.hessian.RecordSchedule`).
    horizon : float, optional
        Final time (spreads the records).
    neurons : int, optional
        Per-neuron series are stored for the first ``neurons`` neurons (default 1024).
    interaction : bool
        Integrate the ``linearised`` variant (:math:`O(m^2d)` per step); default True.
    chunk : int
        Rows per Gram block.

    Notes
    -----
    :meth:`result` returns an ``xarray.Dataset`` on ``t`` with ``omega`` (measured mean gap), for every
    variant ``X`` its mean ``X_mean`` (``gronwall``: :math:`g`; ``inf`` beyond :math:`10^{300}`) and
    ``X_log10`` (its base-10 logarithm, finite however large: the scalar closures are integrated in
    the scaled form :math:`b=e^{s}\beta`), the measured and linearised
    fractions of the squared gap along the meridian ``meridian_fraction`` / ``meridian_fraction_lin``,
    ``xi_mean``, ``L_mf``, ``lam_plus_sup``, ``flipped_fraction``; and on ``(t, neuron)`` ``gap`` and
    ``linearised``.
    """

    VARIANTS = ("linearised", "linearised_self", "scalar", "scalar_self", "split_self", "split", "gronwall")
    #: variants integrated as (meridian, transverse) pairs in scaled form
    SPLIT = ("split", "split_self")

    def __init__(self, problem: Problem, max_records: int = 300, horizon=None, neurons: int = 1024,
                 interaction: bool = True, chunk: int = DEFAULT_CHUNK):
        if not isinstance(problem, Problem):
            raise ValueError(f"problem must be a mfcore.Problem, got {type(problem).__name__}")
        self.problem = problem
        self.max_records = check_int("max_records", max_records, 3)
        self.horizon = None if horizon is None else check_positive("horizon", horizon)
        self.n_keep = check_int("neurons", neurons, 1)
        self.interaction = bool(interaction)
        self.chunk = check_int("chunk", chunk, 1)
        self._records = []

    def start(self, state):
        if state.problem.dim != self.problem.dim or not np.array_equal(
                state.problem.kernel.coeffs, self.problem.kernel.coeffs):
            raise ValueError("the observer's problem differs from the simulated one")
        m = state.tracers.size
        if m == 0:
            raise ValueError("MeanFieldGapObserver needs twins (width > 0)")
        d = self.problem.dim
        self.idx = np.arange(min(m, self.n_keep))
        self.schedule = RecordSchedule(self.max_records, self.horizon)
        self._records = []
        self.delta = np.zeros((m, d))
        self.delta_self = np.zeros((m, d))
        self.b = np.zeros(m)
        self.b_self = np.zeros(m)
        self._log_b = self._log_b_self = 0.0
        self._pairs = {name: [np.zeros(m), np.zeros(m), 0.0] for name in self.SPLIT}
        self.log_g = -np.inf
        self.lam_sup = 0.0
        self.L_sup = 0.0
        self._look(state)

    def update(self, state):
        eta = float(state.step)
        Wb = state.twins()
        shrink = 1.0 / np.sqrt(1.0 + (eta * self._speed) ** 2)[:, None]
        self.delta = _tangent(Wb, self.delta + eta * self._rhs) * shrink
        self.delta_self = _tangent(Wb, self.delta_self + eta * self._rhs_self) * shrink
        lam = self._lam
        e, phi = np.exp(lam * eta), eta * _phi1(lam * eta)
        # scalar closures in scaled form b = exp(log_s) * beta (they may outgrow the float range)
        for name, coupling in (("b", self._L), ("b_self", 0.0)):
            beta, log_s = getattr(self, name), getattr(self, "_log_" + name)
            rms = float(np.sqrt(np.mean(beta ** 2)))
            beta = e * beta + phi * (coupling * rms + self._xi * np.exp(-log_s))
            top = float(beta.max())
            if top > 0:
                beta, log_s = beta / top, log_s + np.log(top)
            setattr(self, name, beta)
            setattr(self, "_log_" + name, log_s)
        # per-direction closures: p (meridian), q (transverse), common scale exp(log_s)
        lp, lq = self._lp, self._lq
        ep, phip = np.exp(lp * eta), eta * _phi1(lp * eta)
        eq, phiq = np.exp(lq * eta), eta * _phi1(lq * eta)
        for name in self.SPLIT:
            P, Q, log_s = self._pairs[name]
            inter = self._a * float(np.sqrt(np.mean(P * P + Q * Q))) if name == "split" else 0.0
            scale = np.exp(-log_s)
            P = ep * P + phip * (self._xi_par * scale + inter)
            Q = eq * Q + phiq * (self._xi_perp * scale + inter)
            top = float(max(P.max(), Q.max()))
            if top > 0:
                P, Q, log_s = P / top, Q / top, log_s + np.log(top)
            self._pairs[name] = [P, Q, log_s]
        rate = self.lam_sup + self.L_sup
        forcing = eta * float(_phi1(rate * eta)) * float(self._xi.max())
        self.log_g = float(np.logaddexp(rate * eta + self.log_g, np.log(forcing)))
        self._look(state)

    def _look(self, state):
        t = float(state.t)
        Wb = state.twins()
        u, _, tau = _meridian(state.tracers, state.perp)
        field = state.field
        v_bar, inter, self._a = twin_linearisation(Wb, self.problem, self.delta if self.interaction else None,
                                                   self.chunk, row_bounds=True)
        speed = field.speed(u)
        xi_vec = v_bar - speed[:, None] * tau
        self._xi = np.linalg.norm(xi_vec, axis=1)
        along_xi = np.sum(xi_vec * tau, axis=1)
        self._xi_par = np.abs(along_xi)
        self._xi_perp = np.linalg.norm(xi_vec - along_xi[:, None] * tau, axis=1)
        self._speed = speed
        lp, lq = local_hessian_eigenvalues(field, u)
        self._lam = np.fmax(lp, np.nan_to_num(lq, nan=-np.inf))
        self._lp, self._lq = lp, np.nan_to_num(lq, nan=0.0)
        self._L = interaction_operator_bound(self.problem, state.nodes)
        self.lam_sup = max(self.lam_sup, float(np.max(self._lam)), 0.0)
        self.L_sup = max(self.L_sup, self._L)
        self._rhs_self = apply_local_hessian(field, u, tau, self.delta_self, (lp, lq)) + xi_vec
        self._rhs = apply_local_hessian(field, u, tau, self.delta, (lp, lq)) + xi_vec
        if inter is not None:
            self._rhs = self._rhs + inter
        lin = np.linalg.norm(self.delta, axis=1)
        lin_self = np.linalg.norm(self.delta_self, axis=1)
        ln10 = np.log(10.0)
        with np.errstate(divide="ignore"):
            logs = {"linearised": np.log10(lin.mean()), "linearised_self": np.log10(lin_self.mean()),
                    "scalar": (self._log_b + np.log(self.b.mean())) / ln10,
                    "scalar_self": (self._log_b_self + np.log(self.b_self.mean())) / ln10,
                    "gronwall": self.log_g / ln10}
        split_b = {}
        for name in self.SPLIT:
            P, Q, log_s = self._pairs[name]
            split_b[name] = np.sqrt(P * P + Q * Q)
            with np.errstate(divide="ignore"):
                logs[name] = (log_s + np.log(split_b[name].mean())) / ln10
        rec = {"t": t, "xi_mean": float(self._xi.mean()), "L_mf": self._L,
               "lam_plus_sup": self.lam_sup, "lam_max_mean": float(self._lam.mean())}
        for name, value in logs.items():
            rec[name + "_log10"] = float(value)
            rec[name + "_mean"] = float(10.0 ** value) if value < 300 else np.inf
        lin_along = np.sum(self.delta * tau, axis=1) ** 2
        rec["meridian_fraction_lin"] = float(lin_along.sum() / max((lin ** 2).sum(), 1e-300))
        if state.W is not None:
            Dm = np.asarray(state.W, dtype=float) - Wb
            gap = np.linalg.norm(Dm, axis=1)
            along = np.sum(Dm * tau, axis=1) ** 2
            rec.update(omega=float(gap.mean()), flipped_fraction=float(np.mean(gap > 1.0)),
                       meridian_fraction=float(along.sum() / max((gap ** 2).sum(), 1e-300)))
        else:
            gap = np.full(u.size, np.nan)
            rec.update(omega=np.nan, flipped_fraction=np.nan, meridian_fraction=np.nan)
        for name, arr in (("linearised", lin), ("scalar", self.b), ("xi", self._xi), ("log", [self._log_b])):
            if not np.all(np.isfinite(arr)):
                raise FloatingPointError(f"non-finite {name} in MeanFieldGapObserver at t={t:.6g}")
        i = self.idx
        rec.update(gap=gap[i].copy(), linearised=lin[i].copy(), a_mean=float(self._a.mean()))
        for name in self.SPLIT:  # per-neuron bounds, as log10 (they may exceed the float range)
            with np.errstate(divide="ignore"):
                rec[name + "_neuron_log10"] = (self._pairs[name][2] + np.log(split_b[name][i])) / ln10
        self._last = rec
        if self.schedule.want(t):
            self._records.append(rec)

    def result(self) -> xr.Dataset:
        recs, t = _recorded_states(self._records, getattr(self, "_last", None))
        data = {k: (("t", "neuron"), np.stack([r[k] for r in recs]))
                for k in ("gap", "linearised", "split_neuron_log10", "split_self_neuron_log10")}
        for k in recs[0]:
            if k not in data and k != "t":
                data[k] = ("t", np.array([r[k] for r in recs], dtype=float))
        ds = xr.Dataset(data, coords={"t": t, "neuron": self.idx})
        ds.attrs.update({"scheme": "linearised PGD map (vectors), exponential Euler (scalars); "
                                   "coefficients at the left end of each step",
                         "interaction": int(self.interaction), **self.problem.describe()})
        return ds
