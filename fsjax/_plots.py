"""Figures from result datasets (matplotlib, Agg backend; nothing is shown on screen)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from ._portrait import portrait_figures
from ._scaling import scaling_figures
from ._sensitivity import sensitivity_figures
from ._sensitivity_map import sensitivity_map_figures


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


def plot_risk_linear(ds: xr.Dataset, ax=None, orders: int = 4):
    """Risk and its first `orders` Hermite components R_k on a linear scale against log time:
    plateaus and waterfalls as the seed paper draws them."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    t = ds["time"].values
    ax.semilogx(t, ds["risk"].values, color="k", lw=2, label="risk")
    for k in ds["order"].values[:orders]:
        ax.semilogx(t, ds["risk_k"].sel(order=k).values, lw=1, label=f"$R_{{{k}}}$")
    ax.set_ylim(bottom=0)
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
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    plot_risk_linear(ds, axes[0])
    plot_risk(ds, axes[1])
    paths.append(_save(fig, out / "risk.png"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    plot_particles(ds, axes)
    paths.append(_save(fig, out / "particles.png"))
    return paths + scaling_figures(ds, out)


def network_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """Risk (closed form, with the Monte Carlo check as dots), alignments and second layer."""
    out = Path(out)
    t = ds["time"].values[1:]  # t = 0 has no place on a log axis
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].loglog(t, ds["risk"].values[1:], "k", label="risk (closed form)")
    if "risk_mc" in ds:
        axes[0].loglog(t, ds["risk_mc"].values[1:], "k.", ms=3, label="risk (Monte Carlo)")
    axes[0].loglog(t, ds["risk_perp"].values[1:], lw=1, label=r"$R_\perp$")
    for name, ax in zip(("s", "a"), axes[1:], strict=True):
        ax.semilogx(t, ds[name].values[1:], lw=0.5, alpha=0.4)
        ax.semilogx(t, ds[f"{name}_mean"].values[1:], "k", lw=2, label="mean")
        ax.set_ylabel(f"${name}_j$")
    for ax in axes:
        ax.set_xlabel("time t = steps * lr")
        ax.legend(fontsize=8)
    return [_save(fig, out / "network.png")]


def compare_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """Network (dots) over the reduced flow (lines): mean alignment, mean second layer, risk."""
    out = Path(out)
    t = ds["time"].values[1:]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    for ax, name, label in zip(
        axes[:3],
        ("s_mean", "a_mean", "risk"),
        ("mean alignment", "mean second layer", "risk"),
        strict=True,
    ):
        ax.plot(t, ds[f"{name}_mf"].values[1:], "C0", lw=2, label="reduced flow")
        ax.plot(t, ds[f"{name}_net"].values[1:], "C3.", ms=3, label="network")
        ax.set_xscale("log")
        ax.set_xlabel("time t")
        ax.set_ylabel(label)
    axes[2].set_yscale("log")
    axes[0].set_title(
        f"max |dev s| = {float(ds['max_abs_dev_s']):.2g}, "
        f"max |dev a| = {float(ds['max_abs_dev_a']):.2g} (t >= {ds.attrs['t_min']:g})",
        fontsize=9,
    )
    axes[0].legend(fontsize=8)
    # The first three risk components that are not zero, network (dots) over flow (lines), as
    # in seed 002 Fig. 4 (an odd activation and target leave the even ones at rounding level).
    scale = float(np.nanmax(ds["risk_mf"].values))
    shown = [
        k for k in ds["order"].values if np.nanmax(ds["risk_k_mf"].sel(order=k)) > 1e-9 * scale
    ]
    for i, k in enumerate(shown[:3]):
        axes[3].plot(t, ds["risk_k_mf"].sel(order=k).values[1:], f"C{i}", lw=2, label=f"$R_{k}$")
        axes[3].plot(t, ds["risk_k_net"].sel(order=k).values[1:], f"C{i}.", ms=3)
    axes[3].set(xscale="log", yscale="log", xlabel="time t", ylabel="risk components")
    axes[3].legend(fontsize=8)
    return [_save(fig, out / "compare.png")]


HEATMAPS = ("unlearning", "t_onset", "regime", "kappa_final")
LINES = ("kappa_max", "kappa_final", "unlearning", "t_onset", "regime", "exponent_s")


def _axis_scale(values: np.ndarray) -> str:
    """log for positive axes spanning two decades or more (geomspace/logspace axes)."""
    v = np.asarray(values, dtype=float)
    return "log" if v.size > 2 and v.min() > 0 and v.max() / v.min() >= 100 else "linear"


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
            ax.set_xscale(_axis_scale(ds[x].values))
            ax.set_yscale("log" if name == "t_onset" else "linear")
            ax.set_xlabel(x)
            ax.set_ylabel(name)
        return [_save(fig, out / "sweep.png")]
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
        ax.set_xscale(_axis_scale(sub[xdim].values))
        ax.set_yscale(_axis_scale(sub[ydim].values))
        ax.set_xlabel(xdim)
        ax.set_ylabel(ydim)
        fixed = ", ".join(f"{d} = {float(sub[d]):g}" for d in rest)
        ax.set_title(name + (f" ({fixed})" if fixed else ""), fontsize=10)
    return [_save(fig, out / "dichotomy.png")]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


FIGURES = {
    "trajectory": trajectory_figures,
    "network": network_figures,
    "compare": compare_figures,
    "sweep": sweep_figures,
    "sensitivity": sensitivity_figures,
    "phase_portrait": portrait_figures,
    "sensitivity_map": sensitivity_map_figures,
}
