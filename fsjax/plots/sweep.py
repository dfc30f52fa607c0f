"""Figures of sweeps: diagnostics against one axis, or the dichotomy heatmaps over two."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ._base import axis_scale, plt, save

HEATMAPS = ("unlearning", "t_onset", "regime", "kappa_final")
LINES = ("kappa_max", "kappa_final", "unlearning", "t_onset", "regime", "exponent_s")


def sweep_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """One axis (or zip mode, against its first axis): each diagnostic vs the axis. Two or more
    axes: heatmaps of unlearning, t_onset, regime and kappa_final over the first two (further
    axes at their first value), the learning/unlearning dichotomy diagram."""
    out = Path(out)
    axes = [d for d in ds[LINES[0]].dims]
    if len(axes) == 1:
        x = axes[0] if axes[0] != "point" else next(c for c in ds.coords if c != "point")
        fig, grid = plt.subplots(2, 3, figsize=(14, 7))
        for name, ax in zip(LINES, grid.ravel(), strict=True):
            ax.plot(ds[x].values, ds[name].values, ".-" if axes[0] != "point" else ".")
            ax.set_xscale(axis_scale(ds[x].values))
            ax.set_yscale("log" if name == "t_onset" else "linear")
            ax.set_xlabel(x)
            ax.set_ylabel(name)
        return [save(fig, out / "sweep.png")]
    rest = {d: 0 for d in axes[2:]}
    sub = ds.isel(rest)
    ydim, xdim = axes[:2]
    fig, grid = plt.subplots(2, 2, figsize=(11, 8))
    for name, ax in zip(HEATMAPS, grid.ravel(), strict=True):
        z = sub[name].transpose(ydim, xdim).values
        if name == "regime":
            mesh = ax.pcolormesh(sub[xdim], sub[ydim], z, cmap="viridis", vmin=-1, vmax=2)
            bar = fig.colorbar(mesh, ax=ax, ticks=[-1, 0, 1, 2])
            bar.ax.set_yticklabels(["undetermined", "none", "partial", "complete"])
        else:
            norm = "log" if name == "t_onset" and np.nanmin(z, initial=np.inf) > 0 else None
            mesh = ax.pcolormesh(sub[xdim], sub[ydim], z, norm=norm, cmap="magma")
            fig.colorbar(mesh, ax=ax)
        ax.set_xscale(axis_scale(sub[xdim].values))
        ax.set_yscale(axis_scale(sub[ydim].values))
        ax.set_xlabel(xdim)
        ax.set_ylabel(ydim)
        fixed = ", ".join(f"{d} = {float(sub[d]):g}" for d in rest)
        ax.set_title(name + (f" ({fixed})" if fixed else ""), fontsize=10)
    return [save(fig, out / "dichotomy.png")]
