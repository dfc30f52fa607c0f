"""Figures of network sweeps: the finite-size phase diagram beside the reduced flow's, the
deviation heatmaps, and seed bands on the trajectories."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ._base import axis_scale, plt, save
from .sweep import sweep_figures


def sweep_kind_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """`kind: sweep`: the network sweep's figures when the dataset has networks, else the
    reduced sweep's (`sweep_figures`)."""
    return network_sweep_figures(ds, out) if "s_mean_net" in ds else sweep_figures(ds, out)


def network_sweep_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """One axis (or zip mode): mean alignment and second layer against time, one band per
    axis value spanning the seeds (network), with the reduced flow's seed mean dashed, and the
    deviations against the axis. Two or more axes: over the first two (further axes at their
    first value), the seed-mean unlearning of the networks beside the reduced flow's on one
    colour scale, and the seed-mean deviations."""
    out = Path(out)
    axes = [d for d in ds["unlearning"].dims if d != "seed"]
    if len(axes) == 1:
        return [_seed_bands(ds, axes[0], out / "network_seeds.png")]
    rest = {d: 0 for d in axes[2:]}
    sub = ds.isel(rest).mean("seed")
    ydim, xdim = axes[:2]
    fixed = ", ".join(f"{d} = {float(ds[d][0]):g}" for d in rest)

    def heatmaps(names, path, shared):
        fig, grid = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.2))
        zs = [sub[name].transpose(ydim, xdim).values for name, _ in names]
        lim = (np.nanmin(zs), np.nanmax(zs)) if shared else (None, None)
        for ax, (_, title), z in zip(grid, names, zs, strict=True):
            mesh = ax.pcolormesh(sub[xdim], sub[ydim], z, cmap="magma", vmin=lim[0], vmax=lim[1])
            fig.colorbar(mesh, ax=ax)
            ax.set_xscale(axis_scale(sub[xdim].values))
            ax.set_yscale(axis_scale(sub[ydim].values))
            ax.set_xlabel(xdim)
            ax.set_ylabel(ydim)
            ax.set_title(title + (f" ({fixed})" if fixed else ""), fontsize=10)
        return save(fig, path)

    phase = (("unlearning", "unlearning, networks"), ("unlearning_mf", "unlearning, reduced"))
    devs = (("max_abs_dev_s", "max |dev mean s|"), ("max_abs_dev_a", "max |dev mean a|"))
    return [
        heatmaps(phase, out / "network_phase.png", shared=True),
        heatmaps(devs, out / "network_deviation.png", shared=False),
    ]


def _seed_bands(ds: xr.Dataset, dim: str, path: Path) -> Path:
    x = dim if dim != "point" else next(c for c in ds.coords if ds[c].dims == ("point",))
    fig, grid = plt.subplots(1, 3, figsize=(16, 4.2))
    # Diverged networks are NaN from their divergence on; a band over none of them is empty.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i in range(ds.sizes[dim]):
            pt = ds.isel({dim: i})
            t = pt["t"].values[1:]  # t = 0 has no place on a log axis
            label = f"{x} = {float(pt[x]):g}"
            for ax, name in zip(grid[:2], ("s_mean", "a_mean"), strict=True):
                net = pt[f"{name}_net"].values[:, 1:]
                ax.fill_between(t, np.nanmin(net, 0), np.nanmax(net, 0), color=f"C{i}", alpha=0.3)
                ax.plot(t, np.nanmean(net, 0), color=f"C{i}", label=label)
                ax.plot(t, pt[f"{name}_mf"].mean("seed").values[1:], "--", color=f"C{i}", lw=1)
    for ax, ylabel in zip(grid[:2], ("mean alignment", "mean second layer"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("time t = steps * lr")
        ax.set_ylabel(ylabel + " (bands: seeds; dashed: reduced)")
    grid[0].legend(fontsize=8)
    for name in ("max_abs_dev_s", "max_abs_dev_a"):
        dev = ds[name]
        grid[2].errorbar(
            ds[x].values,
            dev.mean("seed").values,
            yerr=dev.std("seed").values,
            fmt=".-",
            capsize=3,
            label=name,
        )
    grid[2].set_xscale(axis_scale(ds[x].values))
    grid[2].set_xlabel(x)
    grid[2].set_ylabel(f"deviation over t >= {ds.attrs['t_min']:g} (seed mean, std)")
    grid[2].legend(fontsize=8)
    return save(fig, path)
