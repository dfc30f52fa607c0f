"""Panels of reduced-flow trajectories: risk and its Hermite components, particles, and the
late-time scaling laws against their predictions."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._analysis.diagnostics import alignment
from .._analysis.scaling import predicted_exponents
from ._base import plt


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


def plot_scaling(ds, axes=None, fit_decades: float = 1.0):
    """Log-log mean |a| and alignment against time, with the fitted power law over the fit
    window (`exponent_a`, `exponent_s` of the dataset) and the predicted one, both drawn
    through the last saved point."""
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(10, 4))[1]
    t = ds["time"].values
    a, s = ds["a"].values, ds["s"].values
    kappa = np.asarray(alignment(a, s))
    _, pred_a, pred_s = predicted_exponents(ds["target"].values, ds["mu"].values)
    window = t >= t[-1] * 10.0**-fit_decades
    for ax, y, fitted, pred, name in (
        (axes[0], np.abs(a).mean(axis=1), float(ds["exponent_a"]), pred_a, "mean |a|"),
        (axes[1], np.abs(kappa), float(ds["exponent_s"]), pred_s, "alignment"),
    ):
        ax.loglog(t, y, "k", lw=2, label=name)
        tw = t[window]
        fit_label = f"fitted: {fitted:+.3f}"
        ax.loglog(tw, y[-1] * (tw / t[-1]) ** fitted, "C3", lw=3, alpha=0.6, label=fit_label)
        if np.isfinite(pred):
            tp = t[t >= t[-1] * 1e-3]
            ax.loglog(tp, y[-1] * (tp / t[-1]) ** pred, "C0--", label=f"predicted: {pred:+.3f}")
        ax.set_xlabel("time t")
        ax.set_ylabel(name)
        ax.legend(fontsize=8)
    return axes
