"""The phase portrait panels: critical manifold, slow-flow arrows, contacts, folds, trajectories;
and, for a slow first layer, the alignments and risk components in slow time."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._base import plt


def plot_portrait(ds: xr.Dataset, ax=None):
    """Branches (attracting solid, repelling dashed), slow-flow arrows on the attracting ones,
    contacts (o) and folds (x), and the trajectories in the (a, s) plane."""
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


def plot_slow_first(ds: xr.Dataset, axes=None):
    """Slow first layer: the alignments s_i (left) and risk components R_k (right) against
    slow time T = eps t, the slow flow in black and the full trajectories in colour, with the
    predicted learning times T_k (dotted verticals)."""
    axes = plt.subplots(1, 2, figsize=(11, 4.5))[1] if axes is None else axes
    T = ds["slow_time"].values
    axes[0].plot(T, ds["slow_s"].values, "k-", lw=1.5)
    orders = [k for k in range(ds.sizes["order"]) if np.nanmax(ds["slow_risk_k"][:, k]) > 0]
    for k in orders:
        axes[1].plot(T, ds["slow_risk_k"][:, k], "k-", lw=1.5)
    for i, eps in enumerate(ds["epsilon"].values):
        colour = f"C{i}"
        t_slow = eps * ds["time"].values
        axes[0].plot(t_slow, ds["s"].sel(epsilon=eps).values, "--", color=colour, lw=1)
        axes[0].plot([], [], "--", color=colour, label=f"eps = {eps:g}")
        for k in orders:
            axes[1].plot(t_slow, ds["risk_k"].sel(epsilon=eps)[:, k], "--", color=colour, lw=1)
    for k in orders:
        T_k = float(ds["predicted_T"][k])
        if np.isfinite(T_k) and T_k > 0:
            axes[1].axvline(T_k, color="grey", ls=":", lw=1)
            axes[1].text(T_k, 1.02, f"T_{k}", transform=axes[1].get_xaxis_transform(), fontsize=8)
    axes[0].plot([], [], "k-", label="slow flow")
    axes[0].set_ylabel("alignments s_i")
    axes[1].set_ylabel("risk components R_k")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlim(T[0], T[-1])
        ax.set_xlabel("slow time T = eps t")
    axes[0].legend(fontsize=8)
    return axes
