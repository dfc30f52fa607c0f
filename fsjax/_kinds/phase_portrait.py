"""`kind: phase_portrait`: the critical manifold of the 2-D slow-second-layer system with full
trajectories for several eps on top (`fsjax._analysis.manifold` has the mathematics)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .._analysis.diagnostics import diagnose, onset_time
from .._analysis.manifold import branches, slow_velocity
from .._config import PhasePortraitConfig
from .._model.build import build_mean_field, initial_particles
from .._solve.settings import SolverSettings


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
    for eps in sec.epsilons:
        m = build_mean_field(config.model, "second_layer", eps)
        traj = settings.solve(m, a0, s0)
        t_onset = onset_time(m, a0, s0, t_final=settings.t_final, **settings.options)
        diag = diagnose(m, traj, t_onset=t_onset)
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
