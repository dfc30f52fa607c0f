"""`kind: phase_portrait`: the critical manifold of the 2-D slow-second-layer system with full
trajectories for several eps on top (`fsjax._manifold` has the mathematics)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ._config import PhasePortraitConfig
from ._diagnostics import diagnose
from ._manifold import branches
from ._trajectory import build_mean_field, initial_particles, onset_with, solve_with


def run_phase_portrait(config: PhasePortraitConfig, *, workdir=None, resume=False) -> xr.Dataset:
    """Manifold branches on the `a` grid, their slow velocity da/dT, and one trajectory (with
    its diagnostics) per epsilon; short, so `workdir` and `resume` are not used."""
    sec = config.portrait
    model = build_mean_field(config.model, "second_layer", config.dynamics.epsilon)
    b = branches(model, np.linspace(*sec.a_range, sec.n_a))
    eps0 = float(model.rate_a)
    s_ok = jnp.asarray(np.nan_to_num(b.s))
    a_rep = jnp.asarray(np.broadcast_to(b.a[:, None], b.s.shape))
    da = jax.vmap(jax.vmap(lambda a, s: model._drift(a[None], s[None])[0][0] / eps0))
    branch_da = np.where(np.isfinite(b.s), np.asarray(da(a_rep, s_ok)), np.nan)
    a_grid = jnp.asarray(b.a)
    upper_da = np.asarray(da(a_grid[:, None], jnp.ones((b.a.size, 1))))[:, 0]
    a0, s0 = initial_particles(config.model)
    runs = []
    for eps in sec.epsilons:
        m = build_mean_field(config.model, "second_layer", eps)
        traj = solve_with(config.solver, m, a0, s0)
        diag = diagnose(m, traj, t_onset=onset_with(config.solver, m, a0, s0))
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


def plot_portrait(ds: xr.Dataset, ax=None):
    """Branches (attracting solid, repelling dashed), slow-flow arrows on the attracting ones,
    contacts (o) and folds (x), and the trajectories in the (a, s) plane."""
    from ._plots import plt

    ax = ax or plt.subplots(figsize=(7, 5))[1]
    a = ds["a_grid"].values
    for r in ds["root"].values:
        s = ds["branch_s"].sel(root=r).values
        stable = ds["branch_stable"].sel(root=r).values
        ax.plot(a, np.where(stable, s, np.nan), "k-", lw=2)
        ax.plot(a, np.where(~stable & np.isfinite(s), s, np.nan), "k--", lw=1)
        _arrows(ax, a, s, ds["branch_da"].sel(root=r).values, stable)
    for name, level in (("upper_stable", 1.0), ("lower_stable", -1.0)):
        stable = ds[name].values
        ax.plot(a, np.where(stable, level, np.nan), "k-", lw=2)
        ax.plot(a, np.where(~stable, level, np.nan), "k--", lw=1)
    ones = np.ones_like(a)
    _arrows(ax, a, ones, ds["upper_da"].values, ds["upper_stable"].values)
    if ds.sizes["contact"]:
        ax.plot(*ds["contacts"].values.T, "o", color="tab:red", label="contact")
    if ds.sizes["fold"]:
        ax.plot(*ds["folds"].values.T, "x", color="tab:red", ms=9, label="fold")
    for eps in ds["epsilon"].values:
        ax.plot(ds["a"].sel(epsilon=eps), ds["s"].sel(epsilon=eps), lw=1, label=f"eps = {eps:g}")
    ax.set_xlim(a[0], a[-1])
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("second-layer weight a")
    ax.set_ylabel("alignment s")
    ax.legend(fontsize=8, loc="lower left")
    return ax


def _arrows(ax, a, s, da, stable, n=8):
    """Arrows of the slow flow's direction along a branch, at up to n attracting points."""
    idx = np.nonzero(stable & np.isfinite(s) & np.isfinite(da))[0]
    step = max(1, a.size // 40)
    for i in idx[:: max(1, idx.size // n)][:n]:
        j = min(i + step, a.size - 1) if da[i] > 0 else max(i - step, 0)
        if j != i and np.isfinite(s[j]):
            ax.annotate(
                "",
                xy=(a[j], s[j]),
                xytext=(a[i], s[i]),
                arrowprops={"arrowstyle": "->", "color": "tab:blue", "lw": 1.5},
            )


def portrait_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    from ._plots import _save, plt

    fig, ax = plt.subplots(figsize=(7, 5))
    plot_portrait(ds, ax)
    return [_save(fig, Path(out) / "phase_portrait.png")]
