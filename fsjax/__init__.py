"""fsjax: a differentiable simulator of feature learning and unlearning in two-layer networks.

Importing fsjax enables JAX's 64-bit mode for the whole process, deliberately: the reduced
ODE spans many decades of time and resolves 1 - |s| down to e^-2800, and every function fsjax
hands out (`solve`, `onset_time`, the models) is meant to be jitted, vmapped and
differentiated inside the user's own transformations, which trace under the user's settings;
a float64 scope limited to fsjax's calls would silently run those in float32. Code that wants
float32 asks for it by dtype, as the network training does (`network.dtype`).
"""

import jax

jax.config.update("jax_enable_x64", True)

from . import hermite as hermite
from . import plots as plots
from ._analysis.diagnostics import (
    DIAGNOSTIC_NAMES as DIAGNOSTIC_NAMES,
)
from ._analysis.diagnostics import (
    REGIMES as REGIMES,
)
from ._analysis.diagnostics import (
    alignment as alignment,
)
from ._analysis.diagnostics import (
    alignment_rate as alignment_rate,
)
from ._analysis.diagnostics import (
    diagnose as diagnose,
)
from ._analysis.diagnostics import (
    grid_onset as grid_onset,
)
from ._analysis.diagnostics import (
    onset_time as onset_time,
)
from ._analysis.diagnostics import (
    scaled_alignment_rate as scaled_alignment_rate,
)
from ._analysis.manifold import (
    Branches as Branches,
)
from ._analysis.manifold import (
    CriticalPoint as CriticalPoint,
)
from ._analysis.manifold import (
    SlowTrajectory as SlowTrajectory,
)
from ._analysis.manifold import (
    branches as branches,
)
from ._analysis.manifold import (
    critical_point as critical_point,
)
from ._analysis.manifold import (
    fast_gradient as fast_gradient,
)
from ._analysis.manifold import (
    fast_hessian as fast_hessian,
)
from ._analysis.manifold import (
    landing_branch as landing_branch,
)
from ._analysis.manifold import (
    slow_flow as slow_flow,
)
from ._analysis.manifold import (
    slow_velocity as slow_velocity,
)
from ._analysis.scaling import predicted_exponents as predicted_exponents
from ._analysis.sensitivity import (
    Parameters as Parameters,
)
from ._analysis.sensitivity import (
    Setup as Setup,
)
from ._analysis.sensitivity import (
    gradients as gradients,
)
from ._analysis.sensitivity import (
    parameters_from as parameters_from,
)
from ._analysis.sensitivity import (
    quantities as quantities,
)
from ._config import (
    CompareConfig as CompareConfig,
)
from ._config import (
    DynamicsConfig as DynamicsConfig,
)
from ._config import (
    InitConfig as InitConfig,
)
from ._config import (
    MapSection as MapSection,
)
from ._config import (
    ModelConfig as ModelConfig,
)
from ._config import (
    NetworkConfig as NetworkConfig,
)
from ._config import (
    NetworkSectionConfig as NetworkSectionConfig,
)
from ._config import (
    PhasePortraitConfig as PhasePortraitConfig,
)
from ._config import (
    PortraitSection as PortraitSection,
)
from ._config import (
    SensitivityConfig as SensitivityConfig,
)
from ._config import (
    SensitivityMapConfig as SensitivityMapConfig,
)
from ._config import (
    SensitivitySection as SensitivitySection,
)
from ._config import (
    SolverConfig as SolverConfig,
)
from ._config import (
    SweepConfig as SweepConfig,
)
from ._config import (
    SweepSection as SweepSection,
)
from ._config import (
    TrajectoryConfig as TrajectoryConfig,
)
from ._config import (
    config_dict as config_dict,
)
from ._errors import ConfigError as ConfigError
from ._errors import FsjaxError as FsjaxError
from ._kinds import KINDS as KINDS
from ._kinds import Config as Config
from ._kinds import Kind as Kind
from ._kinds import load_config as load_config
from ._kinds.compare import compare_dataset as compare_dataset
from ._kinds.compare import run_compare as run_compare
from ._kinds.phase_portrait import run_phase_portrait as run_phase_portrait
from ._kinds.sensitivity import run_sensitivity as run_sensitivity
from ._kinds.sensitivity_map import run_sensitivity_map as run_sensitivity_map
from ._kinds.trajectory import trajectory_dataset as trajectory_dataset
from ._model.base import AbstractReducedModel as AbstractReducedModel
from ._model.build import (
    build_mean_field as build_mean_field,
)
from ._model.build import (
    initial_particles as initial_particles,
)
from ._model.corrections import NetworkMeanField as NetworkMeanField
from ._model.mean_field import MeanField as MeanField
from ._model.mean_field import layer_rates as layer_rates
from ._model.network import (
    Network as Network,
)
from ._model.network import (
    RiskModel as RiskModel,
)
from ._model.network import (
    Teacher as Teacher,
)
from ._model.network import (
    dual_kernel as dual_kernel,
)
from ._model.network import (
    init_network as init_network,
)
from ._model.network import (
    init_teacher as init_teacher,
)
from ._model.network import (
    monte_carlo_risk as monte_carlo_risk,
)
from ._model.network import (
    unit_rows as unit_rows,
)
from ._run import run as run
from ._solve.settings import (
    SOLVERS as SOLVERS,
)
from ._solve.settings import (
    SolverSettings as SolverSettings,
)
from ._solve.settings import (
    make_solver as make_solver,
)
from ._solve.solve import (
    STATUS_MEANINGS as STATUS_MEANINGS,
)
from ._solve.solve import (
    Trajectory as Trajectory,
)
from ._solve.solve import (
    save_times as save_times,
)
from ._solve.solve import (
    solve as solve,
)
from ._sweep.engine import (
    SweepProblem as SweepProblem,
)
from ._sweep.engine import (
    run_sweep as run_sweep,
)
from ._sweep.engine import (
    sweep_problem as sweep_problem,
)
from ._sweep.plan import SweepPlan as SweepPlan
from ._sweep.plan import sweep_plan as sweep_plan
from ._sweep.store import ChunkStore as ChunkStore
from ._train.sgd import (
    Trainer as Trainer,
)
from ._train.sgd import (
    TrainState as TrainState,
)
from ._train.sgd import (
    optimizer as optimizer,
)
from ._train.sgd import (
    record_steps as record_steps,
)
from ._train.sgd import (
    train_network as train_network,
)

__version__ = "0.1.0"
