"""Figures of sensitivities: automatic derivatives against finite differences, and maps of
the onset's gradients over a plane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.colors import SymLogNorm

from .._analysis.sensitivity import QUANTITIES
from ._base import axis_scale, plt, save


def sensitivity_figures(ds: xr.Dataset, out) -> list:
    """One panel per quantity: automatic derivatives (bars) and finite differences (dots)."""
    names = [q for q in QUANTITIES if f"grad_{q}" in ds]
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.6 * len(names)), squeeze=False)
    x = np.arange(ds.sizes["param"])
    for ax, q in zip(axes[:, 0], names, strict=True):
        ax.bar(x, ds[f"grad_{q}"].values, color="tab:blue", label="automatic")
        if f"fd_{q}" in ds:
            ax.plot(x, ds[f"fd_{q}"].values, "o", color="tab:red", ms=3, label="central FD")
        ax.set_yscale("symlog", linthresh=1e-6)
        ax.set_ylabel(f"d {q} / d param")
        ax.set_xticks(x, ds["param"].values, rotation=90, fontsize=7)
        ax.legend(fontsize=8)
    return [save(fig, Path(out) / "sensitivity.png")]


def sensitivity_map_figures(ds: xr.Dataset, out) -> list[Path]:
    """t_onset and its two derivatives as heatmaps over the plane (the derivatives on a
    symmetric log colour scale: they span decades and change sign)."""
    ydim, xdim = list(ds.dims)[:2]
    names = ["t_onset", f"grad_t_onset_{ydim}", f"grad_t_onset_{xdim}"]
    names = [n for n in names if n in ds]
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        z = ds[name].transpose(ydim, xdim).values
        if name == "t_onset":
            finite = z[np.isfinite(z)]
            norm = "log" if finite.size and finite.min() > 0 else None
            mesh = ax.pcolormesh(ds[xdim], ds[ydim], z, norm=norm, cmap="magma")
        else:
            top = np.nanmax(np.abs(z)) if np.isfinite(z).any() else 1.0
            norm = SymLogNorm(linthresh=top * 1e-3, vmin=-top, vmax=top)
            mesh = ax.pcolormesh(ds[xdim], ds[ydim], z, norm=norm, cmap="RdBu_r")
        fig.colorbar(mesh, ax=ax)
        ax.set_xscale(axis_scale(ds[xdim].values))
        ax.set_yscale(axis_scale(ds[ydim].values))
        title = name if name == "t_onset" else f"d t_onset / d {name.rsplit('t_onset_')[1]}"
        ax.set(xlabel=xdim, ylabel=ydim, title=title)
    return [save(fig, Path(out) / "sensitivity_map.png")]
