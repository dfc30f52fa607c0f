"""Figures, drawn from result datasets only (matplotlib, Agg backend; nothing is shown on
screen). Each kind's figure function takes `(ds, out_dir)` and returns the paths it wrote;
`draw` runs them so that a figure that cannot be drawn never fails a finished run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import xarray as xr

from ._base import axis_scale as axis_scale
from ._base import plt as plt
from ._base import save as save
from .network import compare_figures as compare_figures
from .network import network_figures as network_figures
from .portrait import plot_portrait as plot_portrait
from .portrait import portrait_figures as portrait_figures
from .reduced import (
    plot_particles as plot_particles,
)
from .reduced import (
    plot_risk as plot_risk,
)
from .reduced import (
    plot_risk_linear as plot_risk_linear,
)
from .reduced import (
    plot_scaling as plot_scaling,
)
from .reduced import (
    scaling_figures as scaling_figures,
)
from .reduced import (
    trajectory_figures as trajectory_figures,
)
from .sensitivity import (
    sensitivity_figures as sensitivity_figures,
)
from .sensitivity import (
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
