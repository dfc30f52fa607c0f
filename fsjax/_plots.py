"""Figures from result datasets (matplotlib, Agg backend; nothing is shown on screen)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr


def plot_risk(ds: xr.Dataset, ax=None, max_orders: int = 6):
    """Risk and its Hermite components R_k vs time, log-log (components that stay below 1e-14
    of the initial risk, such as the orders the target and activation both lack, are left out)."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    t = ds["time"].values
    ax.loglog(t, ds["risk"].values, color="k", lw=2, label="risk")
    scale = float(np.nanmax(ds["risk"].values))
    shown = 0
    for k in ds["order"].values:
        rk = ds["risk_k"].sel(order=k).values
        if shown < max_orders and np.nanmax(rk) > 1e-14 * scale:
            ax.loglog(t, rk, lw=1, label=f"$R_{{{k}}}$")
            shown += 1
    ax.set_xlabel("time t")
    ax.set_ylabel("risk")
    ax.legend(fontsize=8)
    return ax


def plot_particles(ds: xr.Dataset, axes=None):
    """Second-layer weights a_i and alignments s_i vs time (log time axis)."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(10, 4))[1]
    t = ds["time"].values
    for name, ax in zip(("a", "s"), axes, strict=True):
        ax.semilogx(t, ds[name].values, lw=1)
        ax.set_xlabel("time t")
        ax.set_ylabel(f"${name}_i$")
    return axes


def trajectory_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    out = Path(out)
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_risk(ds, ax)
    paths.append(_save(fig, out / "risk.png"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    plot_particles(ds, axes)
    paths.append(_save(fig, out / "particles.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


FIGURES = {
    "trajectory": trajectory_figures,
}
