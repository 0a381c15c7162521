r"""The single-index teacher-student problem on the sphere (the book's mathematical
reference, section ``math-model``).

Network :math:`f_\rho(x)=\int\sigma(\langle w,x\rangle)d\rho(w)`, target
:math:`f^*(x)=\sigma^*(\langle w^*,x\rangle)` with :math:`w^*=e_1`, :math:`x\sim N(0,I_d)`.
Three kernels describe everything: :math:`K=\sum c_j^2 s^j` (network-network),
:math:`K_*=\sum c_jc^*_j s^j` (network-target) and the constant :math:`K_{**}(1)=\sum (c^*_j)^2`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .activations import Activation, get_activation
from .kernels import Kernel


def check_int(name: str, value, minimum: int) -> int:
    """Return ``value`` as int, or raise a ValueError naming the parameter and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        if isinstance(value, float) and value.is_integer() and value >= minimum:
            return int(value)
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(name: str, value) -> float:
    """Return ``value`` as float, or raise if it is not a finite number > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


@dataclass(frozen=True)
class Problem:
    r"""Dimension, activation and target of the single-index model.

    Parameters
    ----------
    dim : int
        Input dimension :math:`d\ge2`.
    activation : str, callable, array_like or Activation
        Student activation :math:`\sigma` (see :func:`mfcore.get_activation`).
    target : same types, optional
        Teacher link :math:`\sigma^*`; defaults to ``activation`` (well-specified).
    """

    dim: int
    activation: Activation
    target: Activation = None
    kernel: Kernel = field(init=False, repr=False)
    cross_kernel: Kernel = field(init=False, repr=False)
    target_norm2: float = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "dim", check_int("dim (the input dimension d)", self.dim, 2))
        act = get_activation(self.activation)
        tgt = act if self.target is None else get_activation(self.target)
        object.__setattr__(self, "activation", act)
        object.__setattr__(self, "target", tgt)
        object.__setattr__(self, "kernel", act.kernel)
        object.__setattr__(self, "cross_kernel", act.kernel_with(tgt))
        object.__setattr__(self, "target_norm2", float(np.sum(tgt.coeffs**2)))
        if not np.any(self.cross_kernel.coeffs[1:]):
            raise ValueError(
                f"activation {act.name!r} and target {tgt.name!r} share no Hermite degree >= 1: "
                "the population gradient toward w* vanishes identically (impossible combination)"
            )

    @property
    def well_specified(self) -> bool:
        return self.target is self.activation or np.array_equal(self.target.coeffs, self.activation.coeffs)

    @property
    def information_exponent(self) -> int:
        r"""Smallest :math:`j\ge1` with :math:`c_jc^*_j\ne0`: the order of the signal at :math:`u\approx0`."""
        return int(np.flatnonzero(self.cross_kernel.coeffs[1:])[0] + 1)

    @property
    def max_stable_step(self) -> float:
        r"""Largest allowed step :math:`\eta` of projected GD: :math:`\eta K'(1) < 1`.

        Near :math:`w^*` the meridian velocity is about :math:`-K'(1)(u-1)`-scaled, so a step with
        :math:`\eta K'(1)\gtrsim 1` overshoots past :math:`w^*` (the book's mathematical
        reference, section ``math-step1d``).
        """
        slope = max(self.kernel.derivative().sup_abs(), self.cross_kernel.derivative().sup_abs())
        return 1.0 / slope

    def check_step(self, step) -> float:
        """Validate a projected-GD step size against :attr:`max_stable_step`."""
        eta = check_positive("step (the learning rate eta)", step)
        if eta >= self.max_stable_step:
            raise ValueError(
                f"step={eta:g} is unstable for activation {self.activation.name!r}: projected GD needs "
                f"eta * K'(1) < 1, i.e. step < {self.max_stable_step:.4g}; near w* a larger step "
                "overshoots past the pole (use a smaller step or method='flow')"
            )
        return eta

    def describe(self) -> dict:
        """Parameters as plain values (for result metadata)."""
        return {
            "dim": self.dim,
            "activation": self.activation.name,
            "target": self.target.name,
            "information_exponent": self.information_exponent,
            "activation_degree": self.activation.degree,
            "activation_truncation_error": self.activation.truncation_error,
        }
