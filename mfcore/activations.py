r"""Activations as Hermite series: named choices, user callables and coefficient vectors.

An activation is stored as its exact function (when known) and its Hermite coefficients
:math:`c_0..c_D` (the book's mathematical reference, section ``math-model``). Polynomials built from ``he{k}`` are exact; any other function is
expanded by Gauss-Hermite quadrature up to a stated truncation degree ``D``, with the truncation
error :math:`\big(\mathbb E\sigma^2-\sum_{j\le D}c_j^2\big)^{1/2}` reported.
The information exponent is :math:`k=\min\{j\ge1: c_j\ne0\}`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .hermite import (
    gaussian_second_moment,
    hermite_coefficients,
    hermite_derivative_coeffs,
    hermite_series,
)
from .kernels import Kernel

#: Coefficients whose magnitude is below this are treated as zero (quadrature round-off).
COEFF_TOL = 1e-12
#: Default truncation degree of non-polynomial activations (kernel tail = truncation_error**2
#: is about 1e-3 for each named function at these degrees).
DEFAULT_DEGREE = 12
_DEFAULT_DEGREE_BY_NAME = {"bump": 24}


def _bump(z):
    # The authors' non-polynomial activation, 5 (exp(-z^2) z^2 - sqrt(3)/9); mean zero under N(0,1).
    return 5.0 * (np.exp(-z * z) * z * z - np.sqrt(3.0) / 9.0)


def _relu(z):
    return np.maximum(z, 0.0)


_NAMED_FUNCTIONS: dict[str, tuple[Callable, str]] = {
    "relu": (_relu, "max(z, 0)"),
    "tanh": (np.tanh, "tanh(z)"),
    "bump": (_bump, "5 (exp(-z^2) z^2 - sqrt(3)/9), the authors' non-polynomial activation"),
}

KNOWN_ACTIVATIONS = ("he{k} for any k >= 1", "sums such as he4+he6", *sorted(_NAMED_FUNCTIONS))


@dataclass(frozen=True)
class Activation:
    r"""An activation :math:`\sigma=\sum_{j\le D} c_j h_j`.

    Parameters
    ----------
    name : str
        Label used in results and figures.
    coeffs : ndarray
        Hermite coefficients :math:`c_0..c_D`.
    func : callable, optional
        The exact function; ``None`` means the Hermite series is exact.
    truncation_error : float
        :math:`L^2(N(0,1))` norm of the discarded tail (0 for polynomials).
    """

    name: str
    coeffs: np.ndarray
    func: Callable | None = field(default=None, compare=False)
    truncation_error: float = 0.0

    def __post_init__(self):
        c = np.atleast_1d(np.asarray(self.coeffs, dtype=float)).copy()
        if c.ndim != 1 or not np.all(np.isfinite(c)):
            raise ValueError("activation coefficients must be a finite 1-D vector")
        c[np.abs(c) < COEFF_TOL] = 0.0
        c.setflags(write=False)
        object.__setattr__(self, "coeffs", c)

    @property
    def degree(self) -> int:
        return self.coeffs.size - 1

    @property
    def information_exponent(self) -> int:
        r""":math:`k=\min\{j\ge1: c_j\ne0\}` (``0`` if :math:`\sigma` is constant)."""
        nz = np.flatnonzero(self.coeffs[1:])
        return int(nz[0] + 1) if nz.size else 0

    def __call__(self, z):
        """Evaluate the exact function if known, else the Hermite series."""
        if self.func is not None:
            return np.asarray(self.func(np.asarray(z, dtype=float)), dtype=float)
        return hermite_series(self.coeffs, z)

    def series(self, z):
        """Evaluate the (truncated) Hermite series."""
        return hermite_series(self.coeffs, z)

    def derivative(self, z):
        r""":math:`\sigma'(z)` of the Hermite series (:math:`h_j'=\sqrt j\,h_{j-1}`)."""
        return hermite_series(hermite_derivative_coeffs(self.coeffs), z)

    def kernel_with(self, other: "Activation") -> Kernel:
        r"""Cross kernel :math:`s\mapsto\sum_j c_j c'_j s^j`."""
        n = min(self.coeffs.size, other.coeffs.size)
        return Kernel(self.coeffs[:n] * other.coeffs[:n])

    @property
    def kernel(self) -> Kernel:
        r"""Self kernel :math:`K(s)=\sum_j c_j^2 s^j`."""
        return self.kernel_with(self)


def _parse_hermite_sum(spec: str):
    """'he4', 'he4+he6', '0.5*he3+he5' -> coefficient vector, or None if not of that form."""
    terms = spec.replace(" ", "").split("+")
    pat = re.compile(r"^(?:([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\*)?he([0-9]+)$")
    coeffs: dict[int, float] = {}
    for term in terms:
        m = pat.match(term)
        if m is None:
            return None
        j = int(m.group(2))
        coeffs[j] = coeffs.get(j, 0.0) + (float(m.group(1)) if m.group(1) else 1.0)
    if any(j < 1 for j in coeffs):
        raise ValueError(f"activation {spec!r}: Hermite degrees must be >= 1 (he1, he2, ...)")
    c = np.zeros(max(coeffs) + 1)
    for j, v in coeffs.items():
        c[j] = v
    return c


def get_activation(spec, degree: int | None = None, n_quad: int = 2000) -> Activation:
    r"""Build an :class:`Activation` from a name, a callable, a coefficient vector or an Activation.

    Parameters
    ----------
    spec : str, callable, array_like or Activation
        ``"he{k}"`` (k >= 1), sums like ``"he4+he6"`` or ``"0.5*he3+he5"``, ``"relu"``, ``"tanh"``,
        ``"bump"`` (:math:`5(e^{-z^2}z^2-\sqrt3/9)`); a vectorised callable; or :math:`c_0..c_D`.
    degree : int, optional
        Truncation degree for non-polynomial activations (default 12; 24 for ``"bump"``).
    n_quad : int
        Gauss-Hermite nodes used for the coefficients.
    """
    if isinstance(spec, Activation):
        return spec
    if degree is not None and (int(degree) != degree or degree < 1):
        raise ValueError(f"degree must be an integer >= 1, got {degree!r}")
    deg = None if degree is None else int(degree)
    if isinstance(spec, str):
        key = spec.strip().lower()
        c = _parse_hermite_sum(key)
        if c is not None:
            return Activation(key, c)
        if key in _NAMED_FUNCTIONS:
            func, _ = _NAMED_FUNCTIONS[key]
            return _from_function(key, func, deg or _DEFAULT_DEGREE_BY_NAME.get(key, DEFAULT_DEGREE), n_quad)
        raise ValueError(
            f"unknown activation {spec!r}; known activations: {', '.join(KNOWN_ACTIVATIONS)}, "
            "a callable, or a vector of Hermite coefficients"
        )
    if callable(spec):
        return _from_function(getattr(spec, "__name__", "custom"), spec, deg or DEFAULT_DEGREE, n_quad)
    try:
        c = np.asarray(spec, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"cannot interpret activation {spec!r}") from None
    if c.ndim != 1 or c.size == 0:
        raise ValueError("an activation given as coefficients must be a non-empty 1-D vector c_0..c_D")
    return Activation("coeffs", c)


def _from_function(name, func, degree, n_quad) -> Activation:
    c = hermite_coefficients(func, degree, n_quad=n_quad)
    tail = gaussian_second_moment(func, n_quad=n_quad) - float(np.sum(c**2))
    return Activation(name, c, func=func, truncation_error=float(np.sqrt(max(tail, 0.0))))
