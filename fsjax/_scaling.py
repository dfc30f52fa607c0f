r"""The late-time scaling laws the small-alignment analysis predicts (THEORY.md section 5), to set
beside the exponents `fsjax._diagnostics` fits to a solution.

With a slow second layer and the leading nonlinear order $p$ (the first $j \ge 2$ with
$\mu_j \ne 0$), unlearning is complete with

- $a \sim t^{1/(2p)}$, $\kappa \sim t^{-1/(2p)}$ when $c_p = 0$;
- $a \sim t^{1/(p+1)}$, $\kappa \sim t^{-1/(p+1)}$ when $\mu_p c_p < 0$;

and there is no power law when $\mu_p c_p > 0$ (a finite equilibrium). These are predictions,
not inputs: the gallery's scaling figure draws them beside the fitted slopes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

ZERO = 1e-12  # Hermite coefficients below this count as zero (closed forms give exact zeros)


def predicted_exponents(target: ArrayLike, mu: ArrayLike) -> tuple[int | None, float, float]:
    """(p, exponent of a, exponent of the alignment) predicted for a slow second layer; p is
    None when the activation has no nonlinear coefficient, the exponents NaN where no power
    law is predicted."""
    mu = np.asarray(mu, dtype=float)
    c = np.pad(np.asarray(target, dtype=float), (0, max(0, mu.size - len(target))))
    nonlinear = [j for j in range(2, mu.size) if abs(mu[j]) > ZERO]
    if not nonlinear:
        return None, np.nan, np.nan
    p = nonlinear[0]
    if abs(c[p]) <= ZERO:
        return p, 1 / (2 * p), -1 / (2 * p)
    if mu[p] * c[p] < 0:
        return p, 1 / (p + 1), -1 / (p + 1)
    return p, np.nan, np.nan


def plot_scaling(ds, axes=None, fit_decades: float = 1.0):
    """Log-log mean |a| and alignment against time, with the fitted power law over the fit
    window (`exponent_a`, `exponent_s` of the dataset) and the predicted one, both drawn
    through the last saved point."""
    from ._diagnostics import alignment
    from ._plots import plt

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


def scaling_figures(ds, out) -> list:
    """`scaling.png` for a slow-second-layer trajectory run through `fsjax.run` (which records
    the config in `ds.attrs`); nothing for other runs, where no prediction applies."""
    from pathlib import Path

    import yaml

    from ._plots import _save, plt

    config = yaml.safe_load(ds.attrs.get("config", "")) or {}
    if config.get("dynamics", {}).get("slow") != "second_layer":
        return []

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    plot_scaling(ds, axes)
    return [_save(fig, Path(out) / "scaling.png")]
