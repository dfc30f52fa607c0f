"""Config -> parameter point: the one place a whole config is read into the numbers of a run.

`point` gives the `fsjax._model.point.Point` of a config of any kind that solves the reduced
flow, the network it stands for included; `build_model` its reduced model and
`parameters_from` its differentiable parameters (`fsjax._analysis.sensitivity`).
"""

from __future__ import annotations

import dataclasses

from . import hermite
from ._analysis.diagnostics import EXIT_LEVEL
from ._analysis.sensitivity import Parameters, Setup
from ._config import _ReducedRun
from ._errors import FsjaxError
from ._model.base import AbstractReducedModel
from ._model.build import model_point
from ._model.network import product_format
from ._model.point import Point
from ._solve.settings import SolverSettings


def point(config: _ReducedRun) -> Point:
    """The parameter point of a config of any kind that solves the reduced flow (trajectory,
    sweep with or without a network, compare, sensitivity, sensitivity map, phase portrait).
    Where the config names the network the flow stands for (`config.stands_for()`), the point
    carries its values and the corrections it switches on: the boundary floor and `compare`'s
    `finite_width` and `finite_batch`. The overlap flow (`reduced_flow`) takes none of them."""
    if not isinstance(config, _ReducedRun):
        raise FsjaxError(
            f"a parameter point is built from the config of a kind that solves the reduced "
            f"flow; got {type(config).__name__}"
        )
    base = model_point(config.model, config.dynamics.slow, config.dynamics.epsilon)
    if config.reduced_flow() == "overlap":
        # The exact flow of the neurons themselves: no finite-size corrections to add.
        activation = hermite.activation(config.model.activation)
        return dataclasses.replace(base, flow="overlap", activation=activation)
    net = config.stands_for()
    if net is None:
        return base
    sizes = net.network
    return dataclasses.replace(
        base,
        lr=sizes.lr,
        width=sizes.width,
        dim=sizes.dim,
        batch=sizes.batch,
        network_a=net.network_a,
        settings=SolverSettings.from_config(config.solver) if net.floor else None,
        activation=hermite.activation(config.model.activation),
        floor_dtype=sizes.dtype if net.floor else None,
        floor_products=product_format(sizes.dtype, sizes.matmul_precision) if net.floor else None,
        finite_width=net.finite_width,
        finite_batch=net.finite_batch,
    )


def build_model(config) -> AbstractReducedModel:
    """The reduced model a config asks for: the plain `MeanField`, or, where the config names
    the network it stands for, a `NetworkMeanField` with the corrections it switches on."""
    return point(config).model()


def parameters_from(config, exit_level: float = EXIT_LEVEL) -> tuple[Parameters, Setup]:
    """The differentiable parameters and the fixed setup of a config's point, with the
    integrator and save grid of its `solver:` section and the alignment `exit_level` that
    times `t_exit`."""
    p = point(config)
    return Parameters.of(p), Setup(p, SolverSettings.from_config(config.solver), exit_level)
