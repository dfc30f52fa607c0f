"""`kind: phase_portrait`: the critical manifold of the 2-D slow-second-layer system with full
trajectories for several eps on top (`fsjax._analysis.manifold` has the mathematics), drawn by
`fsjax.plots.plot_portrait`; with a slow first layer, the slow flow of the m alignments on the
manifold a*(s), its fixed point and the predicted learning times against full trajectories in
slow time (`fsjax._analysis.slow_first`), drawn by `fsjax.plots.plot_slow_first`. With a
`network:` section the trajectories are the flow that stands for that network (the boundary
floor on unless `boundary_floor: false`), which leaves the boundary by the floored entry-exit
rule."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from pydantic import Field, model_validator

from .._analysis.diagnostics import diagnose, event_times, resolution_of
from .._analysis.manifold import branches, slow_velocity
from .._analysis.slow_first import (
    degeneracy,
    learning_times,
    predicted_times,
    slow_fixed_point,
)
from .._config import NetworkSizeConfig, _MayStandForNetwork, _Section
from .._model.build import build_mean_field, initial_particles
from .._point import point
from .._solve.settings import SolverSettings
from ..plots import figure, plot_portrait, plot_slow_first, save
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
    fraction: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="Slow first layer: a risk component counts as learned once it falls below "
        "this fraction of its start.",
    )

    @model_validator(mode="after")
    def _ordered(self):
        if len(self.a_range) != 2 or not self.a_range[1] > self.a_range[0]:
            raise ValueError(f"a_range must be two increasing numbers; got {self.a_range}")
        return self


class PhasePortraitConfig(_MayStandForNetwork):
    """`kind: phase_portrait`: the critical manifold of the 2-D slow-second-layer system, or
    the slow flow of a slow first layer's m alignments; with a `network:` section the
    trajectories stand for that network."""

    kind: Literal["phase_portrait"] = Field(
        description="The critical manifold of the 2-D slow-second-layer system, or the slow "
        "flow of a slow first layer, with trajectories for several eps."
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
        if self.dynamics.slow == "second_layer" and self.model.particles != 1:
            raise ValueError(
                f"a phase portrait is of the 2-D system; set model.particles: 1 "
                f"(got {self.model.particles})"
            )
        return self


def run_phase_portrait(config: PhasePortraitConfig, *, workdir=None, resume=False) -> xr.Dataset:
    """Manifold branches on the `a` grid, their slow velocity da/dT, and one trajectory (with
    its diagnostics) per epsilon; short, so `workdir` and `resume` are not used."""
    if config.dynamics.slow == "first_layer":
        return _slow_first_portrait(config)
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
    resolution = resolution_of(base.floor_dtype)
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


def _slow_first_portrait(config: PhasePortraitConfig) -> xr.Dataset:
    """The slow flow of the alignments from the configured particles over the slow times the
    trajectories span, its predicted learning times T_k, the fixed point it ends at (NaN at a
    degenerate one, named in the `degeneracy` attribute), and one full trajectory per eps
    with its measured times eps t_k."""
    sec = config.portrait
    settings = SolverSettings.from_config(config.solver)
    a0, s0 = initial_particles(config.model)
    model = build_mean_field(config.model, "first_layer", config.dynamics.epsilon)
    ts = np.asarray(settings.ts)
    T = np.geomspace(min(sec.epsilons) * ts[0], max(sec.epsilons) * ts[-1], ts.size)
    start = np.asarray(model.risk_components(jnp.asarray(a0), jnp.asarray(s0)))
    T_k, slow = predicted_times(model, a0, s0, T, sec.fraction)
    named = degeneracy(model, slow.s[-1])
    nan = np.full(s0.shape, np.nan)
    fixed = None if named else slow_fixed_point(model, slow.s[-1])
    runs = []
    for eps in sec.epsilons:
        m = build_mean_field(config.model, "first_layer", eps)
        traj = settings.solve(m, a0, s0)
        comp = np.asarray(jax.vmap(m.risk_components)(traj.a, traj.s))
        runs.append((traj, comp, eps * learning_times(ts, comp, sec.fraction, start)))
    data = {
        "slow_a": (("slow_time", "particle"), slow.a[1:]),
        "slow_s": (("slow_time", "particle"), slow.s[1:]),
        "slow_risk_k": (("slow_time", "order"), slow.components[1:]),
        "separation": (("slow_time",), slow.separation[1:]),
        "predicted_T": (("order",), T_k),
        "fixed_s": (("particle",), nan if fixed is None else fixed.s),
        "fixed_eigenvalues": (("particle",), nan if fixed is None else fixed.eigenvalues.real),
        "fixed_converged": ((), fixed is not None and fixed.converged),
        "a": (("epsilon", "time", "particle"), np.stack([np.asarray(t.a) for t, _, _ in runs])),
        "s": (("epsilon", "time", "particle"), np.stack([np.asarray(t.s) for t, _, _ in runs])),
        "risk_k": (("epsilon", "time", "order"), np.stack([c for _, c, _ in runs])),
        "learned_T": (("epsilon", "order"), np.stack([T for _, _, T in runs])),
    }
    coords = {"slow_time": T, "epsilon": list(sec.epsilons), "time": ts}
    attrs = {"degeneracy": named or "none", "start_degeneracy": slow.degeneracy or "none"}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def portrait_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    slow_first = "slow_time" in ds.dims
    fig = figure(figsize=(11, 4.5) if slow_first else (7, 5))
    if slow_first:
        plot_slow_first(ds, fig.subplots(1, 2))
    else:
        plot_portrait(ds, fig.subplots())
    return [save(fig, Path(out) / "phase_portrait.png")]


KIND = Kind(PhasePortraitConfig, run_phase_portrait, (portrait_figures,))
