"""fsjax: a differentiable simulator of feature learning and unlearning in two-layer networks.

Importing fsjax enables JAX's 64-bit mode for the whole process, deliberately: the reduced
ODE spans many decades of time and resolves 1 - |s| down to e^-2800, and every function fsjax
hands out (`solve`, `onset_time`, the models) is meant to be jitted, vmapped and
differentiated inside the user's own transformations, which trace under the user's settings;
a float64 scope limited to fsjax's calls would silently run those in float32. Code that wants
float32 asks for it by dtype, as the network training does (`network.dtype`).

The top level holds the building blocks users call; the config schema is `fsjax.config`, the
integrators and step matrices `fsjax.solvers`, the Hermite algebra `fsjax.hermite`, the
figure pieces `fsjax.plots`. `from fsjax import *` brings the names of `__all__`, which leave
out `open` (it would shadow the built-in).
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import config as config, hermite as hermite, plots as plots, solvers as solvers
from ._analysis.compare import deviations as deviations
from ._analysis.diagnostics import (
    DIAGNOSTIC_NAMES as DIAGNOSTIC_NAMES,
    REGIMES as REGIMES,
    alignment as alignment,
    alignment_rate as alignment_rate,
    diagnose as diagnose,
    event_times as event_times,
    exit_event_time as exit_event_time,
    exit_time as exit_time,
    grid_onset as grid_onset,
    onset_time as onset_time,
    resolution_of as resolution_of,
    scaled_alignment_rate as scaled_alignment_rate,
)
from ._analysis.manifold import (
    Branches as Branches,
    CriticalPoint as CriticalPoint,
    SlowTrajectory as SlowTrajectory,
    branches as branches,
    critical_point as critical_point,
    fast_gradient as fast_gradient,
    fast_hessian as fast_hessian,
    landing_branch as landing_branch,
    slow_flow as slow_flow,
    slow_velocity as slow_velocity,
)
from ._analysis.scaling import predicted_exponents as predicted_exponents
from ._analysis.sensitivity import (
    Parameters as Parameters,
    Setup as Setup,
    gradients as gradients,
    quantities as quantities,
)
from ._analysis.slow_first import (
    SecondLayerFit as SecondLayerFit,
    SlowFirstTrajectory as SlowFirstTrajectory,
    SlowFixedPoint as SlowFixedPoint,
    degeneracy as degeneracy,
    learning_times as learning_times,
    plateau_levels as plateau_levels,
    predicted_times as predicted_times,
    second_layer_fit as second_layer_fit,
    slow_fixed_point as slow_fixed_point,
    slow_flow_first as slow_flow_first,
    slow_velocity_first as slow_velocity_first,
)
from ._config import config_dict as config_dict
from ._errors import ConfigError as ConfigError, FsjaxError as FsjaxError
from ._kinds import load_config as load_config
from ._kinds.compare import compare_dataset as compare_dataset, run_compare as run_compare
from ._kinds.phase_portrait import run_phase_portrait as run_phase_portrait
from ._kinds.sensitivity import run_sensitivity as run_sensitivity
from ._kinds.sensitivity_map import run_sensitivity_map as run_sensitivity_map
from ._kinds.sweep import run_sweep as run_sweep
from ._kinds.trajectory import trajectory_dataset as trajectory_dataset
from ._model.base import AbstractReducedModel as AbstractReducedModel
from ._model.build import (
    build_mean_field as build_mean_field,
    initial_particles as initial_particles,
)
from ._model.corrections import (
    NetworkMeanField as NetworkMeanField,
    boundary_floor as boundary_floor,
    roundoff_rate as roundoff_rate,
    second_layer_spread as second_layer_spread,
)
from ._model.mean_field import MeanField as MeanField, layer_rates as layer_rates
from ._model.network import (
    Network as Network,
    RiskModel as RiskModel,
    Teacher as Teacher,
    dual_kernel as dual_kernel,
    init_network as init_network,
    init_teacher as init_teacher,
    monte_carlo_risk as monte_carlo_risk,
    product_format as product_format,
    unit_rows as unit_rows,
)
from ._model.point import Point as Point
from ._open import open as open
from ._point import (
    build_model as build_model,
    parameters_from as parameters_from,
    point as point,
)
from ._results import RESULTS as RESULTS, STATUS_MEANINGS as STATUS_MEANINGS
from ._run import run as run
from ._solve.solve import (
    Trajectory as Trajectory,
    save_times as save_times,
    solve as solve,
)
from ._sweep.engine import SweepProblem as SweepProblem, sweep_problem as sweep_problem
from ._sweep.network import run_network_sweep as run_network_sweep
from ._sweep.plan import SweepPlan as SweepPlan, sweep_plan as sweep_plan
from ._sweep.store import ChunkStore as ChunkStore

# Named by the studies in experiments/, which use the public API only.
from ._train.ensemble import init_ensemble as init_ensemble
from ._train.sgd import (
    Trainer as Trainer,
    TrainState as TrainState,
    optimizer as optimizer,
    record_steps as record_steps,
    train_network as train_network,
)

__version__ = "0.1.0"

# Every public name but `open`, which a star import would let shadow the built-in.
__all__ = sorted(name for name in dir() if not name.startswith("_") and name != "open")
