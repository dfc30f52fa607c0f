"""`kind: trajectory`: from a config to a solved, labelled dataset of the reduced dynamics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from . import hermite
from ._config import ModelConfig, SolverConfig, TrajectoryConfig
from ._diagnostics import diagnose, onset_time, with_diagnostics
from ._reduced import MeanField, layer_rates
from ._solve import STATUS_MEANINGS, Trajectory, make_solver, save_times, solve


def build_mean_field(model: ModelConfig, slow: str, epsilon) -> MeanField:
    """The reduced system for a model section; `epsilon` may be a traced array."""
    order = max(model.hermite_order, len(model.target) - 1)
    mu = hermite.coefficients(model.activation, order)
    rate_a, rate_w = layer_rates(slow, epsilon)
    return MeanField(model.target, mu, model.noise, rate_a, rate_w)


def initial_particles(model: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """(a0, s0), each of length `particles` (a single value is repeated)."""
    m = model.particles
    a0 = np.broadcast_to(np.asarray(model.init.a, dtype=float), (m,)).copy()
    s0 = np.broadcast_to(np.asarray(model.init.s, dtype=float), (m,)).copy()
    return a0, s0


def solve_with(solver_cfg: SolverConfig, model: MeanField, a0, s0, ts=None) -> Trajectory:
    """Solve on the config's log-spaced grid (or on `ts`) with the config's integrator."""
    if ts is None:
        ts = save_times(solver_cfg.t_first, solver_cfg.t_final, solver_cfg.n_save)
    return solve(
        model,
        a0,
        s0,
        ts,
        solver=make_solver(solver_cfg.method, solver_cfg.rtol, solver_cfg.atol),
        rtol=solver_cfg.rtol,
        atol=solver_cfg.atol,
        max_steps=solver_cfg.max_steps,
    )


def trajectory_dataset(model: MeanField, traj: Trajectory) -> xr.Dataset:
    """Label a trajectory: a, s per particle; the risk and its Hermite components."""
    a, s = jnp.asarray(traj.a), jnp.asarray(traj.s)
    risk_k = jax.vmap(model.risk_components)(a, s)
    risk = jnp.sum(risk_k, axis=-1) + 0.5 * model.noise**2
    status = int(traj.status)
    return xr.Dataset(
        {
            "a": (("time", "particle"), np.asarray(a)),
            "s": (("time", "particle"), np.asarray(s)),
            "risk": (("time",), np.asarray(risk)),
            "risk_k": (("time", "order"), np.asarray(risk_k)),
            "target": (("order",), np.asarray(model.target)),
            "mu": (("order",), np.asarray(model.mu)),
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
    """One solve and its diagnostics (`fsjax._diagnostics`); it is short, so `workdir` and
    `resume` are not used."""
    model = build_mean_field(config.model, config.dynamics.slow, config.dynamics.epsilon)
    a0, s0 = initial_particles(config.model)
    traj = solve_with(config.solver, model, a0, s0)
    t_onset = onset_with(config.solver, model, a0, s0)
    return with_diagnostics(trajectory_dataset(model, traj), diagnose(model, traj, t_onset=t_onset))


def onset_with(solver_cfg: SolverConfig, model: MeanField, a0, s0):
    """`t_onset` located by an event with the config's integrator, up to `t_final`."""
    return onset_time(
        model,
        a0,
        s0,
        t_final=solver_cfg.t_final,
        solver=make_solver(solver_cfg.method, solver_cfg.rtol, solver_cfg.atol),
        rtol=solver_cfg.rtol,
        atol=solver_cfg.atol,
        max_steps=solver_cfg.max_steps,
    )
