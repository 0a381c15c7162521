r"""Normalised probabilists' Hermite polynomials and Gauss-Hermite expectations.

The book works with :math:`h_j = \mathrm{He}_j/\sqrt{j!}`, orthonormal under :math:`N(0,1)`:
:math:`\mathbb E[h_i(z)h_j(z)] = \delta_{ij}`.  A function :math:`\sigma` has the expansion
:math:`\sigma = \sum_j c_j h_j` with :math:`c_j = \mathbb E[\sigma(z) h_j(z)]`, computed here by
Gauss-Hermite quadrature (exact for polynomials of degree below ``2 * n_quad``), never by Monte Carlo.
"""
from __future__ import annotations

from math import factorial, sqrt

import numpy as np
from numpy.polynomial import hermite_e as H
from scipy.special import roots_hermitenorm


def hermite_normalized(j: int, z):
    r"""Evaluate :math:`h_j(z) = \mathrm{He}_j(z)/\sqrt{j!}` (three-term recurrence, stable).

    Uses :math:`\mathrm{He}_{n+1}(z) = z\,\mathrm{He}_n(z) - n\,\mathrm{He}_{n-1}(z)` in its
    normalised form :math:`h_{n+1} = (z h_n - \sqrt{n} h_{n-1})/\sqrt{n+1}`.
    """
    if int(j) != j or j < 0:
        raise ValueError(f"Hermite degree j must be a non-negative integer, got {j!r}")
    z = np.asarray(z, dtype=float)
    h_prev, h = np.zeros_like(z), np.ones_like(z)
    for n in range(int(j)):
        h_prev, h = h, (z * h - sqrt(n) * h_prev) / sqrt(n + 1)
    return h


def hermite_derivative_coeffs(coeffs) -> np.ndarray:
    r"""Coefficients of :math:`\sigma'` from those of :math:`\sigma`: :math:`h_j' = \sqrt{j}\,h_{j-1}`."""
    c = np.asarray(coeffs, dtype=float)
    if c.size <= 1:
        return np.zeros(1)
    return c[1:] * np.sqrt(np.arange(1, c.size))


def hermite_series(coeffs, z):
    r"""Evaluate :math:`\sum_j c_j h_j(z)`."""
    c = np.asarray(coeffs, dtype=float)
    scaled = c / np.sqrt([float(factorial(j)) for j in range(c.size)])
    return H.hermeval(np.asarray(z, dtype=float), scaled)


def gauss_hermite_rule(n_quad: int):
    r"""Nodes and weights with :math:`\sum_i w_i g(z_i) \approx \mathbb E_{z\sim N(0,1)} g(z)`.

    Exact for polynomials of degree ``<= 2 * n_quad - 1``.
    """
    if n_quad < 1:
        raise ValueError(f"n_quad must be >= 1, got {n_quad}")
    # scipy's rule stays accurate for large n (numpy's hermegauss overflows beyond ~170 nodes)
    z, w = roots_hermitenorm(int(n_quad))
    return z, w / np.sqrt(2.0 * np.pi)


def hermite_coefficients(func, degree: int, n_quad: int = 200) -> np.ndarray:
    r"""Coefficients :math:`c_j = \mathbb E[\sigma(z)h_j(z)]`, :math:`j = 0..\text{degree}`, by quadrature."""
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    z, w = gauss_hermite_rule(n_quad)
    values = np.asarray(func(z), dtype=float)
    if values.shape != z.shape or not np.all(np.isfinite(values)):
        raise ValueError("the activation must map an array to a finite array of the same shape")
    return np.array([np.sum(w * values * hermite_normalized(j, z)) for j in range(degree + 1)])


def gaussian_second_moment(func, n_quad: int = 200) -> float:
    r""":math:`\mathbb E[\sigma(z)^2]` by Gauss-Hermite quadrature (used for the truncation error)."""
    z, w = gauss_hermite_rule(n_quad)
    return float(np.sum(w * np.asarray(func(z), dtype=float) ** 2))
