"""Figures of network runs and of the network against the reduced flow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ._base import plt, save


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
    return [save(fig, out / "network.png")]


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
    return [save(fig, out / "compare.png")]
