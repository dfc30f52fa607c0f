"""`kind: phase_portrait`: the critical manifold of the 2-D slow-second-layer system with full
trajectories for several eps on top (`fsjax._analysis.manifold` has the mathematics), drawn by
`fsjax.plots.plot_portrait`. With a `network:` section the trajectories are the flow that
stands for that network (the boundary floor on unless `boundary_floor: false`), which leaves
the boundary by the floored entry-exit rule."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from pydantic import Field, model_validator

from .._analysis.diagnostics import diagnose, event_times, unit_roundoff
from .._analysis.manifold import branches, slow_velocity
from .._config import NetworkSizeConfig, _MayStandForNetwork, _Section
from .._model.build import build_mean_field, initial_particles
from .._point import point
from .._solve.settings import SolverSettings
from ..plots import figure, plot_portrait, save
from .base import Kind


class PortraitSection(_Section):
    """Full trajectories for each of `epsilons` over the critical manifold, traced on `n_a`
    values of the second-layer weight in `a_range`."""

    epsilons: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        [1e-1, 1e-2, 1e-3], description="One full trajectory per eps, each in (0, 1)."
    )
    a_range: list[float] = Field(
        [0.05, 4.0],
        description="Interval [a_min, a_max] of second-layer weights over which the manifold "
        "is traced.",
    )
    n_a: int = Field(
        200, ge=3, le=2000, description="Number of a values on which the manifold is traced."
    )

    @model_validator(mode="after")
    def _ordered(self):
        if len(self.a_range) != 2 or not self.a_range[1] > self.a_range[0]:
            raise ValueError(f"a_range must be two increasing numbers; got {self.a_range}")
        return self


class PhasePortraitConfig(_MayStandForNetwork):
    """`kind: phase_portrait`: the critical manifold of the 2-D slow-second-layer system; with
    a `network:` section the trajectories stand for that network."""

    kind: Literal["phase_portrait"] = Field(
        description="The critical manifold of the 2-D slow-second-layer system with "
        "trajectories for several eps."
    )
    network: NetworkSizeConfig | None = Field(
        None,
        description="Optional: the network the trajectories stand for (sizes, step, "
        "precision); with it the boundary floor is on by default.",
    )
    portrait: PortraitSection = Field(
        PortraitSection(), description="The trajectories and the manifold's grid."
    )

    @model_validator(mode="after")
    def _two_dimensional(self):
        if self.dynamics.slow != "second_layer":
            raise ValueError(
                "a phase portrait needs a slow second layer; set dynamics.slow: second_layer"
            )
        if self.model.particles != 1:
            raise ValueError(
                f"a phase portrait is of the 2-D system; set model.particles: 1 "
                f"(got {self.model.particles})"
            )
        return self


def run_phase_portrait(config: PhasePortraitConfig, *, workdir=None, resume=False) -> xr.Dataset:
    """Manifold branches on the `a` grid, their slow velocity da/dT, and one trajectory (with
    its diagnostics) per epsilon; short, so `workdir` and `resume` are not used."""
    sec = config.portrait
    model = build_mean_field(config.model, "second_layer", config.dynamics.epsilon)
    b = branches(model, np.linspace(*sec.a_range, sec.n_a))
    s_ok = jnp.asarray(np.nan_to_num(b.s))
    a_rep = jnp.asarray(np.broadcast_to(b.a[:, None], b.s.shape))
    da = jax.vmap(jax.vmap(lambda a, s: slow_velocity(model, a, s)))
    branch_da = np.where(np.isfinite(b.s), np.asarray(da(a_rep, s_ok)), np.nan)
    a_grid = jnp.asarray(b.a)
    upper_da = np.asarray(da(a_grid[:, None], jnp.ones((b.a.size, 1))))[:, 0]
    a0, s0 = initial_particles(config.model)
    settings = SolverSettings.from_config(config.solver)
    runs = []
    base = point(config)
    resolution = unit_roundoff(base.floor_dtype)
    for eps in sec.epsilons:
        m = eqx.tree_at(lambda p: p.epsilon, base, jnp.asarray(eps, dtype=float)).model()
        traj = settings.solve(m, a0, s0)
        t_onset, t_exit = event_times(m, a0, s0, settings, resolution=resolution)
        diag = diagnose(m, traj, t_onset=t_onset, t_exit=t_exit)
        runs.append((traj, diag))
    data = {
        "branch_s": (("a_grid", "root"), b.s),
        "branch_stable": (("a_grid", "root"), b.stable),
        "branch_da": (("a_grid", "root"), branch_da),
        "upper_stable": (("a_grid",), b.upper_stable),
        "lower_stable": (("a_grid",), b.lower_stable),
        "upper_da": (("a_grid",), upper_da),
        "contacts": (("contact", "xy"), b.contacts),
        "folds": (("fold", "xy"), b.folds),
        "a": (("epsilon", "time"), np.stack([np.asarray(t.a[:, 0]) for t, _ in runs])),
        "s": (("epsilon", "time"), np.stack([np.asarray(t.s[:, 0]) for t, _ in runs])),
    }
    for name in runs[0][1]:
        data[name] = (("epsilon",), np.asarray([float(d[name]) for _, d in runs]))
    coords = {
        "a_grid": b.a,
        "root": np.arange(b.s.shape[1]),
        "xy": ["a", "s"],
        "epsilon": list(sec.epsilons),
        "time": np.asarray(runs[0][0].ts),
    }
    return xr.Dataset(data, coords=coords)


def portrait_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    fig = figure(figsize=(7, 5))
    plot_portrait(ds, fig.subplots())
    return [save(fig, Path(out) / "phase_portrait.png")]


KIND = Kind(PhasePortraitConfig, run_phase_portrait, (portrait_figures,))
