"""`kind: trajectory`: from a config to a solved, labelled dataset of the reduced dynamics, and
its risk, particle and scaling figures."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
import yaml
from pydantic import Field

from .._analysis.diagnostics import diagnose, event_times, resolution_of, with_diagnostics
from .._config import NetworkSizeConfig, _MayStandForNetwork
from .._model.base import AbstractReducedModel
from .._model.build import initial_particles
from .._point import point
from .._results import STATUS_MEANINGS
from .._solve.settings import SolverSettings
from .._solve.solve import Trajectory
from ..plots import figure, plot_particles, plot_risk, plot_risk_linear, plot_scaling, save
from .base import Kind


class TrajectoryConfig(_MayStandForNetwork):
    """`kind: trajectory`: one solve of the reduced dynamics; with a `network:` section it
    stands for that network, and `boundary_floor` (default: on with a network) adds the floor
    that the network's rows keep under on the boundary s = 1 (`fsjax._model.corrections`)."""

    kind: Literal["trajectory"] = Field(
        description="One solve of the reduced mean-field ODE, with its diagnostics."
    )
    network: NetworkSizeConfig | None = Field(
        None,
        description="Optional: the network this flow stands for (sizes, step, precision); with "
        "it the boundary floor is on by default.",
    )


def trajectory_dataset(model: AbstractReducedModel, traj: Trajectory) -> xr.Dataset:
    """Label a trajectory: a, s per particle; the risk and its Hermite components, and where
    the model carries more than the particles (the overlap flow), the rest of the risk,
    `risk_perp`: the output off the teacher's direction."""
    a, s = jnp.asarray(traj.a), jnp.asarray(traj.s)
    risk_k = jax.vmap(model.risk_components)(a, s)
    risk = jax.vmap(model.risk)(a, s, *traj.more)
    status = int(traj.status)
    more = {}
    if traj.more:
        perp = risk - jnp.sum(risk_k, axis=-1) - 0.5 * model.mean_field.noise**2
        more["risk_perp"] = (("time",), np.asarray(perp))
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
            **more,
        },
        coords={
            "time": np.asarray(traj.ts),
            "particle": np.arange(a.shape[-1]),
            "order": np.arange(model.orders),
        },
        attrs={"status_meaning": STATUS_MEANINGS[status]},
    )


def run_trajectory(config: TrajectoryConfig, *, workdir=None, resume=False) -> xr.Dataset:
    """One solve and its diagnostics, with `t_onset` (at the resolution of the network the flow
    stands for) and `t_exit` located by events (see `fsjax._analysis.diagnostics`); it is
    short, so `workdir` and `resume` are not used."""
    p = point(config)
    model = p.model()
    a0, s0 = initial_particles(config.model)
    settings = SolverSettings.from_config(config.solver)
    traj = settings.solve(model, a0, s0)
    resolution = resolution_of(p.floor_dtype)
    t_onset, t_exit = event_times(model, a0, s0, settings, resolution=resolution)
    diag = diagnose(model, traj, t_onset=t_onset, t_exit=t_exit)
    return with_diagnostics(trajectory_dataset(model, traj), diag)


def trajectory_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """`risk.png` (linear and log-log), `particles.png` and, for a slow second layer,
    `scaling.png`."""
    out = Path(out)
    fig = figure(figsize=(12, 4))
    axes = fig.subplots(1, 2)
    plot_risk_linear(ds, axes[0])
    plot_risk(ds, axes[1])
    paths = [save(fig, out / "risk.png")]
    fig = figure(figsize=(10, 4))
    plot_particles(ds, fig.subplots(1, 2))
    paths.append(save(fig, out / "particles.png"))
    return paths + scaling_figures(ds, out)


def scaling_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """`scaling.png` for a slow-second-layer trajectory run through `fsjax.run` (which records
    the config in `ds.attrs`); nothing for other runs, where no prediction applies."""
    config = yaml.safe_load(ds.attrs.get("config", "")) or {}
    if config.get("dynamics", {}).get("slow") != "second_layer":
        return []
    fig = figure(figsize=(10, 4))
    plot_scaling(ds, fig.subplots(1, 2))
    return [save(fig, Path(out) / "scaling.png")]


KIND = Kind(TrajectoryConfig, run_trajectory, (trajectory_figures,))
