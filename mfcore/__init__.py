"""mfcore: exact simulators of finite-width and infinite-width mean-field dynamics.

Single-index model on the sphere (see the book's chapter "The model"): Hermite activations and
kernels, exact population dynamics of finite networks, the exact infinite-width limit through the
overlap law, local Hessians, the gap equation, sampled SGD, results as xarray, sweeps, benchmarks.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .hermite import (  # noqa: F401
    gauss_hermite_rule,
    hermite_coefficients,
    hermite_normalized,
    hermite_series,
)
from .kernels import Kernel  # noqa: F401
from .activations import KNOWN_ACTIVATIONS, Activation, get_activation  # noqa: F401
from .problem import Problem  # noqa: F401
from .sphere import nested_initialisation, normalize_rows, tangent_project, uniform_sphere  # noqa: F401
from .finite import FiniteEvaluation, evaluate, population_loss, projected_step, velocity  # noqa: F401
from .finite import EVALUATIONS, available_memory_bytes, choose_evaluation  # noqa: F401
from .moments import MomentPlan, moment_features, n_monomials  # noqa: F401
from .meanfield import (  # noqa: F401
    OverlapField,
    initial_overlaps,
    overlap_moments,
    perpendicular_norm,
    projected_step_1d,
    sphere_coordinate_moments,
)
from .plotting import palette, sequential, set_style  # noqa: F401

# --- drivers and tools built on the simulators ----------------------------------------------
# one run: its specification and memory guard, the driver, results on disk
from .memory import check_memory, total_memory_bytes  # noqa: F401,E402
from .runspec import MAX_STEPS, RunSpec, check_run, memory_estimate  # noqa: F401,E402
from .simulate import GAP_QUANTILES, SimulationState, default_record_times, simulate  # noqa: F401,E402
from .results import IntegrityError, load_dataset, reseal, save_dataset  # noqa: F401,E402
# local Hessians and the gap equation:
from .hessian import (  # noqa: F401,E402
    HessianIntegralObserver,
    RecordSchedule,
    finite_probe_velocity,
    hessian_along,
    local_hessian_eigenvalues,
    riemannian_jacobian_fd,
    symmetric_velocity,
    tangent_basis,
    tangent_eigenvalues,
    tracer_eigenvalues,
    velocity_derivative,
)
from .gap import (  # noqa: F401,E402
    GapEquationObserver,
    default_interaction_constant,
    first_order_linearization_check,
    fluctuation,
    typical_interaction_coefficients,
)
# sampled minibatch SGD (the authors' protocol):
from .sampled import minibatch_gradient, sampled_sgd  # noqa: F401
# sweeps on Dask and the benchmark report:
from .sweep import SweepSpec, load_config, load_sweep_result, run_config, run_sweep  # noqa: F401
from .bench import run_benchmarks, write_benchmarks  # noqa: F401
# fits and crossing times used by the notebooks:
from .analysis import Fit, first_crossing_time, fit_law, local_slopes, loglog_axes, power_law_fit  # noqa: F401

# notebook conventions and the authors' units:
from . import notebook  # noqa: F401,E402
from .authors import authors_horizon, book_horizon, book_loss, book_step, book_time  # noqa: F401,E402

set_style()
