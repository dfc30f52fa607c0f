"""Config -> parameter point: the one place a whole config is read into the numbers of a run.

`point` gives the `fsjax._model.point.Point` of a config of any kind that solves the reduced
flow, the network it stands for included; `build_model` its reduced model and
`parameters_from` its differentiable parameters (`fsjax._analysis.sensitivity`).
"""

from __future__ import annotations

import numpy as np

from . import hermite
from ._analysis.sensitivity import Parameters, Setup
from ._config import (
    CompareConfig,
    NetworkSizeConfig,
    PhasePortraitConfig,
    SensitivityConfig,
    SensitivityMapConfig,
    SweepConfig,
    TrajectoryConfig,
)
from ._errors import FsjaxError
from ._model.base import AbstractReducedModel
from ._model.build import init_values, model_point
from ._model.point import Point
from ._solve.settings import SolverSettings

POINT_CONFIGS = (
    TrajectoryConfig,
    SweepConfig,
    CompareConfig,
    SensitivityConfig,
    SensitivityMapConfig,
    PhasePortraitConfig,
)


def point(config) -> Point:
    """The parameter point of `config` (trajectory, sweep with or without a network, compare,
    sensitivity, sensitivity map, phase portrait). Where the config names a network, the
    point carries its values and the corrections it switches on: the boundary floor
    (`boundary_floor`, by default on whenever there is a network) and `compare`'s
    `finite_width` and `finite_batch`."""
    if not isinstance(config, POINT_CONFIGS):
        names = ", ".join(kind.__name__ for kind in POINT_CONFIGS)
        raise FsjaxError(f"a parameter point is built from one of {names}; got {type(config)}")
    base = model_point(config.model, config.dynamics.slow, config.dynamics.epsilon)
    if not isinstance(config, TrajectoryConfig | SweepConfig | CompareConfig):
        return base
    network = config.network
    if network is None:
        return base
    if isinstance(config, CompareConfig):
        floor = config.boundary_floor
        corrections = dict(finite_width=config.finite_width, finite_batch=config.finite_batch)
    else:
        floor = True if config.boundary_floor is None else config.boundary_floor
        corrections = {}
    return Point(
        **{f: getattr(base, f) for f in ("target", "mu", "noise", "epsilon", "a", "s")},
        slow=base.slow,
        particles=base.particles,
        lr=network.lr,
        width=network.width,
        dim=network.dim,
        batch=network.batch,
        network_a=_network_a(config, network),
        settings=SolverSettings.from_config(config.solver) if floor else None,
        activation=hermite.activation(config.model.activation),
        floor_dtype=network.dtype if floor else None,
        **corrections,
    )


def _network_a(config, network: NetworkSizeConfig) -> float:
    """The mean of the network's initial second layer: its `width` initial values as the
    training draws them, or, in a sweep, whose networks start every neuron at `init.a` (one
    number), that number."""
    if isinstance(config, SweepConfig):
        return config.model.init.a[0]
    return np.mean(init_values(config.model.init, "a", network.width))


def build_model(config) -> AbstractReducedModel:
    """The reduced model a config asks for: the plain `MeanField`, or, where the config names
    the network it stands for, a `NetworkMeanField` with the corrections it switches on."""
    return point(config).model()


def parameters_from(config) -> tuple[Parameters, Setup]:
    """The differentiable parameters and the fixed setup of a config's point, with the
    integrator and save grid of its `solver:` section."""
    p = point(config)
    return Parameters.of(p), Setup(p, SolverSettings.from_config(config.solver))
