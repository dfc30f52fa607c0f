"""The phase portrait panel: critical manifold, slow-flow arrows, contacts, folds, trajectories."""

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
