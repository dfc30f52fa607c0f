"""fsjax: a differentiable simulator of feature learning and unlearning in two-layer networks.

The reduced mean-field ODE needs float64 over many decades of time, so importing fsjax enables
JAX's 64-bit mode; network training asks for float32 explicitly where it wants it.
"""

import jax

jax.config.update("jax_enable_x64", True)

from . import hermite
from ._compare import NetworkMeanField, compare_dataset, run_compare
from ._config import (
    CompareConfig,
    Config,
    ConfigError,
    DynamicsConfig,
    FsjaxError,
    InitConfig,
    MapSection,
    ModelConfig,
    NetworkConfig,
    NetworkSectionConfig,
    PhasePortraitConfig,
    PortraitSection,
    SensitivityConfig,
    SensitivityMapConfig,
    SensitivitySection,
    SolverConfig,
    SweepConfig,
    SweepSection,
    TrajectoryConfig,
    config_dict,
    load_config,
)
from ._diagnostics import (
    DIAGNOSTIC_NAMES,
    REGIMES,
    alignment,
    alignment_rate,
    diagnose,
    grid_onset,
    onset_time,
    scaled_alignment_rate,
)
from ._manifold import (
    Branches,
    CriticalPoint,
    SlowTrajectory,
    branches,
    critical_point,
    fast_gradient,
    fast_hessian,
    landing_branch,
    slow_flow,
)
from ._network import (
    Network,
    RiskModel,
    Teacher,
    dual_kernel,
    init_network,
    init_teacher,
    monte_carlo_risk,
    unit_rows,
)
from ._portrait import plot_portrait, run_phase_portrait
from ._reduced import MeanField, layer_rates
from ._run import run
from ._sensitivity import Parameters, Setup, gradients, quantities, run_sensitivity
from ._sensitivity_map import run_sensitivity_map
from ._sgd import Trainer, TrainState, optimizer, record_steps, run_network, train_network
from ._solve import (
    SOLVERS,
    STATUS_MEANINGS,
    Trajectory,
    make_solver,
    save_times,
    solve,
)
from ._store import ChunkStore
from ._sweep import SweepPlan, SweepProblem, run_sweep, sweep_plan, sweep_problem
from ._trajectory import build_mean_field, initial_particles, solve_with

__version__ = "0.1.0"
