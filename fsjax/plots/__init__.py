"""Figures, drawn from result datasets only (matplotlib, Agg backend; nothing is shown on
screen). Each kind's figure function takes `(ds, out_dir)` and returns the paths it wrote;
`draw` runs them so that a figure that cannot be drawn never fails a finished run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import xarray as xr

from ._base import axis_scale as axis_scale, plt as plt, save as save
from .network import compare_figures as compare_figures, network_figures as network_figures
from .network_sweep import (
    network_sweep_figures as network_sweep_figures,
    sweep_kind_figures as sweep_kind_figures,
)
from .portrait import plot_portrait as plot_portrait, portrait_figures as portrait_figures
from .reduced import (
    plot_particles as plot_particles,
    plot_risk as plot_risk,
    plot_risk_linear as plot_risk_linear,
    plot_scaling as plot_scaling,
    scaling_figures as scaling_figures,
    trajectory_figures as trajectory_figures,
)
from .sensitivity import (
    sensitivity_figures as sensitivity_figures,
    sensitivity_map_figures as sensitivity_map_figures,
)
from .sweep import sweep_figures as sweep_figures

FigureFunction = Callable[[xr.Dataset, Path], list[Path]]


def draw(figures: Iterable[FigureFunction], ds: xr.Dataset, out: Path, *, log=print) -> list[Path]:
    """Every figure function on `ds`; one that fails is skipped with one line saying why (the
    results are already written: a figure must never turn a finished run into a crash)."""
    paths = []
    for figure in figures:
        try:
            paths.extend(figure(ds, Path(out)))
        except Exception as err:
            plt.close("all")
            log(f"fsjax: figure {figure.__name__} skipped: {type(err).__name__}: {err}")
    return paths
