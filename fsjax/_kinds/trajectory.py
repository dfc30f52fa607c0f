"""`kind: trajectory`: from a config to a solved, labelled dataset of the reduced dynamics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .._analysis.diagnostics import diagnose, onset_time, with_diagnostics
from .._config import TrajectoryConfig
from .._model.base import AbstractReducedModel
from .._model.build import build_model, initial_particles
from .._results import STATUS_MEANINGS
from .._solve.settings import SolverSettings
from .._solve.solve import Trajectory


def trajectory_dataset(model: AbstractReducedModel, traj: Trajectory) -> xr.Dataset:
    """Label a trajectory: a, s per particle; the risk and its Hermite components."""
    a, s = jnp.asarray(traj.a), jnp.asarray(traj.s)
    risk_k = jax.vmap(model.risk_components)(a, s)
    risk = jnp.sum(risk_k, axis=-1) + 0.5 * model.mean_field.noise**2
    status = int(traj.status)
    return xr.Dataset(
        {
            "a": (("time", "particle"), np.asarray(a)),
            "s": (("time", "particle"), np.asarray(s)),
            "risk": (("time",), np.asarray(risk)),
            "risk_k": (("time", "order"), np.asarray(risk_k)),
            "target": (("order",), np.asarray(model.mean_field.target)),
            "mu": (("order",), np.asarray(model.mean_field.mu)),
            "status": ((), status),
            "num_steps": ((), int(traj.num_steps)),
        },
        coords={
            "time": np.asarray(traj.ts),
            "particle": np.arange(a.shape[-1]),
            "order": np.arange(model.orders),
        },
        attrs={"status_meaning": STATUS_MEANINGS[status]},
    )


def run_trajectory(config: TrajectoryConfig, *, workdir=None, resume=False) -> xr.Dataset:
    """One solve and its diagnostics, with `t_onset` located by an event (see
    `fsjax._analysis.diagnostics`); it is short, so `workdir` and `resume` are not used."""
    model = build_model(config)
    a0, s0 = initial_particles(config.model)
    settings = SolverSettings.from_config(config.solver)
    traj = settings.solve(model, a0, s0)
    t_onset = onset_time(model, a0, s0, t_final=settings.t_final, **settings.options)
    return with_diagnostics(trajectory_dataset(model, traj), diagnose(model, traj, t_onset=t_onset))
