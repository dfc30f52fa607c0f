"""Figure pieces, drawn from result datasets only: the panels (`plot_risk`, `plot_particles`,
...), `figure` and `save` to write a figure without pyplot or a chosen backend, `axis_scale`,
and `draw`, which runs a kind's figure functions. Each kind's own figure functions live in
its file under `fsjax/_kinds/`; this package knows no kind."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import xarray as xr

from ._base import axis_scale as axis_scale, figure as figure, plt as plt, save as save
from .portrait import plot_portrait as plot_portrait, plot_slow_first as plot_slow_first
from .reduced import (
    plot_particles as plot_particles,
    plot_risk as plot_risk,
    plot_risk_linear as plot_risk_linear,
    plot_scaling as plot_scaling,
)

FigureFunction = Callable[[xr.Dataset, Path], list[Path]]


def draw(figures: Iterable[FigureFunction], ds: xr.Dataset, out: Path, *, log=print) -> list[Path]:
    """Every figure function on `ds`; one that fails is skipped with one line saying why (the
    results are already written: a figure must never turn a finished run into a crash)."""
    paths = []
    for figure_function in figures:
        try:
            paths.extend(figure_function(ds, Path(out)))
        except Exception as err:
            log(f"fsjax: figure {figure_function.__name__} skipped: {type(err).__name__}: {err}")
    return paths
