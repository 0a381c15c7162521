r"""Points on the unit sphere :math:`S^{d-1}`: uniform initialisation and projections."""
from __future__ import annotations

import numpy as np

from .problem import check_int


def as_generator(seed) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed (int) or an existing Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("seed must be given (an int or a numpy.random.Generator): results must be reproducible")
    return np.random.default_rng(check_int("seed", seed, 0))


def uniform_sphere(n: int, dim: int, seed) -> np.ndarray:
    r"""``n`` i.i.d. uniform points of :math:`S^{d-1}` (normalised Gaussians), shape ``(n, dim)``."""
    n = check_int("n (number of points)", n, 0)
    dim = check_int("dim", dim, 2)
    g = as_generator(seed).standard_normal((n, dim))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def nested_initialisation(width: int, dim: int, seed) -> np.ndarray:
    r"""Uniform initial neurons of a width-``width`` network, nested across widths.

    The Gaussian stream is consumed row by row, so the width-:math:`m` network built from ``seed``
    is exactly the first :math:`m` rows of every wider network built from the same ``seed``.
    """
    return uniform_sphere(width, dim, seed)


def normalize_rows(W: np.ndarray) -> np.ndarray:
    """Rows of ``W`` divided by their norms (the retraction onto the sphere)."""
    return W / np.linalg.norm(W, axis=-1, keepdims=True)


def tangent_project(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    r""":math:`P_w v = v-\langle w,v\rangle w` row by row."""
    return v - np.sum(w * v, axis=-1, keepdims=True) * w
