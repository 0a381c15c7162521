r"""Small analysis helpers shared by the notebooks: crossing times and scaling-law fits.

* :func:`first_crossing_time` — the first time a recorded curve reaches a level, interpolated
  linearly in :math:`\log t` (the simulations record on log-spaced time grids);
* :func:`fit_law` and its wrappers :func:`power_law_fit`, :func:`log_law_fit`,
  :func:`exponential_fit`, :func:`linear_fit` — least squares on transformed data with the standard
  errors of :func:`scipy.stats.linregress`;
* :func:`local_slopes` — successive log-log slopes, to see whether an asymptotic exponent is approached;
* :func:`seed_slopes` — one fitted slope per independent seed, averaged, with the standard error over
  seeds (for curves measured on nested subsets of one initialisation, whose points are correlated);
* :func:`loglog_axes` — log-log axes with plain-number tick labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Laws fitted by :func:`fit_law`: name -> (transform of x, transform of y).
LAWS = {
    "linear": ("x", "y"),  # y = a + b x
    "power": ("log x", "log y"),  # log y = a + b log x  (y = e^a x^b)
    "log": ("log x", "y"),  # y = a + b log x
    "exponential": ("x", "log y"),  # log y = a + b x    (y = e^a e^{b x})
}


def first_crossing_time(t, y, level: float, direction: str = "down", log_time: bool = True,
                        on_missing: str = "raise") -> float:
    r"""First time at which the sampled curve :math:`y(t)` reaches ``level``.

    With :math:`j` the first index where :math:`y_j\le\ell` (``direction="down"``; :math:`\ge` for
    ``"up"``), the crossing is located between :math:`t_{j-1}` and :math:`t_j` by linear interpolation of
    :math:`y` in :math:`\log t`:

    .. math::
        \log t^\star=\log t_{j-1}+\frac{\ell-y_{j-1}}{y_j-y_{j-1}}\,(\log t_j-\log t_{j-1}),

    (linear in :math:`t` when ``log_time=False`` or :math:`t_{j-1}=0`). If :math:`y_0` is already
    past the level, :math:`t_0` is returned.

    Parameters
    ----------
    t : array_like (n,)
        Strictly increasing, non-negative times.
    y : array_like (n,)
        Values at those times.
    level : float
    direction : {"down", "up"}
    log_time : bool
        Interpolate in :math:`\log t` (default) or in :math:`t`.
    on_missing : {"raise", "nan"}
        If the level is never reached: raise ``ValueError`` (default) or return ``nan``.
    """
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if t.ndim != 1 or t.shape != y.shape or t.size < 1:
        raise ValueError(f"t and y must be 1-D arrays of equal length, got shapes {t.shape} and {y.shape}")
    if np.any(np.diff(t) <= 0) or t[0] < 0:
        raise ValueError("t must be non-negative and strictly increasing")
    if direction not in ("down", "up"):
        raise ValueError(f"direction must be 'down' or 'up', got {direction!r}")
    if on_missing not in ("raise", "nan"):
        raise ValueError(f"on_missing must be 'raise' or 'nan', got {on_missing!r}")
    past = y <= level if direction == "down" else y >= level
    hits = np.flatnonzero(past)
    if hits.size == 0:
        if on_missing == "nan":
            return float("nan")
        raise ValueError(
            f"the curve never goes {direction} to level {level:g} on [{t[0]:g}, {t[-1]:g}] "
            f"(its {'minimum' if direction == 'down' else 'maximum'} is "
            f"{(y.min() if direction == 'down' else y.max()):g}): lengthen the horizon"
        )
    j = int(hits[0])
    if j == 0:
        return float(t[0])
    frac = (level - y[j - 1]) / (y[j] - y[j - 1])
    if log_time and t[j - 1] > 0:
        return float(np.exp(np.log(t[j - 1]) + frac * (np.log(t[j]) - np.log(t[j - 1]))))
    return float(t[j - 1] + frac * (t[j] - t[j - 1]))


@dataclass(frozen=True)
class Fit:
    r"""Least-squares line :math:`Y=a+bX` through transformed data (see :data:`LAWS`).

    Attributes
    ----------
    law : str
        One of ``"linear"``, ``"power"``, ``"log"``, ``"exponential"``.
    slope, intercept : float
        :math:`b` and :math:`a` (natural logarithms).
    slope_stderr, intercept_stderr : float
        Their standard errors (``scipy.stats.linregress``; ``nan`` with two points).
    r_squared : float
        Coefficient of determination in the transformed coordinates.
    rmse : float
        Root-mean-square residual in the transformed coordinates; for two laws with the same
        transformed response (``"power"`` and ``"exponential"`` both fit :math:`\log y`) it compares
        their quality directly.
    n : int
        Number of points.
    """

    law: str
    slope: float
    intercept: float
    slope_stderr: float
    intercept_stderr: float
    r_squared: float
    rmse: float
    n: int

    def __call__(self, x):
        """The fitted law evaluated at ``x``, in the original coordinates."""
        x = np.asarray(x, dtype=float)
        X = np.log(x) if self.law in ("power", "log") else x
        Y = self.intercept + self.slope * X
        return np.exp(Y) if self.law in ("power", "exponential") else Y


def fit_law(x, y, law: str = "power") -> Fit:
    r"""Fit ``law`` to the points :math:`(x_i,y_i)` by least squares on transformed data.

    ``"power"``: :math:`\log y=a+b\log x`; ``"log"``: :math:`y=a+b\log x`; ``"exponential"``:
    :math:`\log y=a+bx`; ``"linear"``: :math:`y=a+bx`. Uses :func:`scipy.stats.linregress`.
    """
    if law not in LAWS:
        raise ValueError(f"law must be one of {sorted(LAWS)}, got {law!r}")
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"need at least two (x, y) points of equal count, got {x.size} and {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite (a missing measurement? check for nan)")
    if law in ("power", "log") and np.any(x <= 0):
        raise ValueError(f"law {law!r} needs x > 0")
    if law in ("power", "exponential") and np.any(y <= 0):
        raise ValueError(f"law {law!r} needs y > 0")
    X = np.log(x) if law in ("power", "log") else x
    Y = np.log(y) if law in ("power", "exponential") else y
    if np.ptp(X) == 0:
        raise ValueError("all x are equal: no slope can be fitted")
    res = stats.linregress(X, Y)
    resid = Y - (res.intercept + res.slope * X)
    two = x.size == 2
    return Fit(
        law=law,
        slope=float(res.slope),
        intercept=float(res.intercept),
        slope_stderr=float("nan") if two else float(res.stderr),
        intercept_stderr=float("nan") if two else float(res.intercept_stderr),
        r_squared=float(res.rvalue**2),
        rmse=float(np.sqrt(np.mean(resid**2))),
        n=int(x.size),
    )


def power_law_fit(x, y) -> Fit:
    r"""Fit :math:`y=e^a x^b` (least squares of :math:`\log y` on :math:`\log x`); ``slope`` is the exponent :math:`b`."""
    return fit_law(x, y, "power")


def log_law_fit(x, y) -> Fit:
    r"""Fit :math:`y=a+b\log x`."""
    return fit_law(x, y, "log")


def exponential_fit(x, y) -> Fit:
    r"""Fit :math:`y=e^{a+bx}` (least squares of :math:`\log y` on :math:`x`)."""
    return fit_law(x, y, "exponential")


def linear_fit(x, y) -> Fit:
    r"""Fit :math:`y=a+bx`."""
    return fit_law(x, y, "linear")


def local_slopes(x, y) -> np.ndarray:
    r"""Successive log-log slopes :math:`\frac{\log y_{i+1}-\log y_i}{\log x_{i+1}-\log x_i}`, length ``n-1``."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2 or np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be 1-D, positive, of equal length >= 2")
    return np.diff(np.log(y)) / np.diff(np.log(x))


@dataclass(frozen=True)
class SeedSlopes:
    r"""Slopes fitted seed by seed, averaged over the seeds.

    Attributes
    ----------
    law : str
        The law fitted to each seed's curve (see :data:`LAWS`).
    slope : float
        Mean over seeds of the per-seed slopes.
    stderr : float
        Standard error of that mean, :math:`\mathrm{sd}/\sqrt{n}` over seeds (``nan`` with one seed).
    per_seed : numpy.ndarray
        The per-seed slopes, shape ``(n_seeds,)``.
    n_seeds : int
        Number of seeds.
    """

    law: str
    slope: float
    stderr: float
    per_seed: np.ndarray
    n_seeds: int

    def half_width(self, level: float = 0.95) -> float:
        r"""Half-width :math:`t_{(1+\text{level})/2,\,n-1}\,\mathrm{SE}` of the confidence interval of the mean slope.

        Student's :math:`t` quantile for :math:`n-1` degrees of freedom (the per-seed slopes are
        i.i.d.); ``nan`` with fewer than two seeds.
        """
        from scipy import stats

        if self.n_seeds < 2 or not np.isfinite(self.stderr):
            return float("nan")
        return float(stats.t.ppf(0.5 + level / 2.0, self.n_seeds - 1) * self.stderr)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The confidence interval ``(slope - half_width, slope + half_width)``."""
        h = self.half_width(level)
        return (self.slope - h, self.slope + h)

    def text(self, digits: int = 2, level: float = 0.95) -> str:
        """``"-0.49 ± 0.03 (SE, 48 seeds; 95% interval -0.54 to -0.44)"``: the ± is the standard error."""
        from .notebook import estimate

        lo, hi = self.interval(level)
        base = f"{estimate(self.slope, self.stderr, digits)} (SE, {self.n_seeds} seeds"
        if np.isfinite(lo):
            nd = max(digits, len(estimate(self.slope, self.stderr, digits).split(" ± ")[0].split(".")[-1]))
            base += f"; {100 * level:.0f}% interval {lo:.{nd}f} to {hi:.{nd}f}"
        return base + ")"


def seed_slopes(x, y, law: str = "power") -> SeedSlopes:
    r"""Fit ``law`` to each row of ``y`` against ``x``; mean slope and its standard error over rows.

    ``y`` has shape ``(n_seeds, n_x)``: one curve per independent seed. The points of one curve may
    be correlated (e.g. networks of several widths taken as nested subsets of one initialisation),
    so the standard error of a single least-squares fit would be wrong; the seeds are independent,
    so the spread of the per-seed slopes gives an honest standard error.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.atleast_2d(np.asarray(y, dtype=float))
    if y.shape[1] != x.size:
        raise ValueError(f"y must have shape (n_seeds, {x.size}), got {y.shape}")
    slopes = np.array([fit_law(x, row, law).slope for row in y])
    n = slopes.size
    se = float(slopes.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return SeedSlopes(law=law, slope=float(slopes.mean()), stderr=se, per_seed=slopes, n_seeds=int(n))


def loglog_axes(ax, xlabel: str | None = None, ylabel: str | None = None, base: float = 10,
                plain: str = "x"):
    """Put ``ax`` on log-log scales (base ``base``); returns ``ax``.

    ``plain`` (``"x"``, ``"y"``, ``"both"`` or ``"none"``) selects the axes whose tick labels are
    plain numbers (e.g. dimensions 16, 64, 256) instead of powers of ``base``.
    """
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    if plain not in ("x", "y", "both", "none"):
        raise ValueError(f"plain must be 'x', 'y', 'both' or 'none', got {plain!r}")
    ax.set_xscale("log", base=base)
    ax.set_yscale("log", base=base)
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        if plain in (name, "both"):
            fmt = ScalarFormatter()
            fmt.set_scientific(False)
            axis.set_major_locator(LogLocator(base=base))
            axis.set_major_formatter(fmt)
            # an axis spanning less than a decade would otherwise label every minor tick
            axis.set_minor_formatter(NullFormatter())
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    return ax
