r"""Polynomial dot-product kernels :math:`K(s) = \sum_q a_q s^q` on :math:`[-1, 1]`.

For unit :math:`u, v` and :math:`x\sim N(0, I_d)`,
:math:`\mathbb E[\sigma(\langle u,x\rangle)\sigma^*(\langle v,x\rangle)] = \sum_j c_j c^*_j \langle u,v\rangle^j`
(the book's mathematical reference, section ``math-model``), so every kernel of the book is a polynomial with coefficients :math:`a_q = c_q c^*_q`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Kernel:
    r"""Polynomial kernel :math:`K(s)=\sum_{q=0}^{D} a_q s^q`.

    Parameters
    ----------
    coeffs : array_like
        :math:`a_0, \dots, a_D`.
    """

    coeffs: np.ndarray

    def __post_init__(self):
        a = np.atleast_1d(np.asarray(self.coeffs, dtype=float)).copy()
        # trailing zeros only cost time
        nz = np.flatnonzero(a)
        a = a[: (nz[-1] + 1 if nz.size else 1)]
        a.setflags(write=False)
        object.__setattr__(self, "coeffs", a)

    @property
    def degree(self) -> int:
        return self.coeffs.size - 1

    def derivative(self, order: int = 1) -> "Kernel":
        r"""The kernel :math:`K^{(n)}` as a polynomial."""
        a = self.coeffs
        for _ in range(order):
            a = a[1:] * np.arange(1, a.size) if a.size > 1 else np.zeros(1)
        return Kernel(a)

    def __call__(self, s, out=None):
        r"""Evaluate :math:`K(s)` by Horner's rule; ``out`` (same shape as ``s``) avoids temporaries."""
        s = np.asarray(s)
        a = self.coeffs
        if out is None:
            out = np.empty(s.shape, dtype=np.result_type(s.dtype, np.float32))
        out[...] = a[-1]
        for coef in a[-2::-1]:
            np.multiply(out, s, out=out)
            if coef != 0.0:
                out += coef
        return out

    def value_at_one(self) -> float:
        r""":math:`K(1)=\sum_q a_q`."""
        return float(self.coeffs.sum())

    def sup_abs(self) -> float:
        r"""An upper bound of :math:`\sup_{|s|\le1}|K(s)|`: :math:`\sum_q |a_q|` (equality if all :math:`a_q\ge0`)."""
        return float(np.abs(self.coeffs).sum())
