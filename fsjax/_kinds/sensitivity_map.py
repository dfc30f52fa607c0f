"""`kind: sensitivity_map`: the onset and exit of unlearning and their gradients over a plane of
two parameters (`fsjax._analysis.sensitivity_map` has the point function), drawn as heatmaps;
with a `network:` section the flow stands for that network (boundary floor on by default)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
from matplotlib.colors import SymLogNorm
from pydantic import Field, field_validator, model_validator

from .._analysis.diagnostics import EXIT_LEVEL
from .._analysis.sensitivity import QUANTITIES
from .._analysis.sensitivity_map import MAP_PARAMS, axis_field, point
from .._config import NetworkSizeConfig, _MayStandForNetwork, _Section
from .._model import axes as _axes
from .._point import parameters_from
from ..plots import axis_scale, figure, save
from .base import Kind


class MapSection(_Section):
    """The `map:` section of `kind: sensitivity_map`: two axes, each `target[k]` or `init.a`,
    given like sweep axes (a list or `{linspace|logspace|geomspace: [start, stop, num]}`), and
    the quantities to map."""

    axes: dict[str, Any] = Field(
        description="Exactly two axes, each `target[k]` or `init.a`, with values given like "
        "sweep axes (a list or `{SPACING: [start, stop, num]}`)."
    )
    quantities: list[Literal[QUANTITIES]] = Field(  # type: ignore[valid-type]
        list(QUANTITIES),
        description="Quantities to map with their derivatives along both axes.",
    )
    exit_level: float = Field(
        EXIT_LEVEL,
        gt=0,
        lt=1,
        description="The alignment below which the flow has left the boundary (`t_exit`).",
    )

    @field_validator("axes", mode="before")
    @classmethod
    def _two_axes(cls, v):
        if not isinstance(v, Mapping) or len(v) != 2:
            raise ValueError("give exactly two axes, e.g. `target[3]: [...]` and `init.a: [...]`")
        out = {}
        for path, spec in v.items():
            try:
                axis_field(str(path))  # the one grammar of axis paths
            except ValueError:
                raise ValueError(
                    f"axis {path!r}: a sensitivity map takes {' or '.join(MAP_PARAMS)}"
                ) from None
            try:
                out[str(path)] = _axes.axis_values(spec)
            except ValueError as err:
                raise ValueError(f"axis {path!r}: {err}") from None
        return out


class SensitivityMapConfig(_MayStandForNetwork):
    """`kind: sensitivity_map`: onset and exit of unlearning and their gradients over a plane;
    with a `network:` section the flow stands for that network (the boundary floor on unless
    `boundary_floor: false`)."""

    kind: Literal["sensitivity_map"] = Field(
        description="The onset and exit of unlearning and their gradients over a plane of two "
        "parameters (`target[k]`, `init.a`)."
    )
    network: NetworkSizeConfig | None = Field(
        None,
        description="Optional: the network this flow stands for (sizes, step, precision); with "
        "it the boundary floor is on by default.",
    )
    map: MapSection = Field(description="The plane and what to map over it.")

    @model_validator(mode="after")
    def _in_range(self):
        for path in self.map.axes:
            _axes.resolve(path, n_target=len(self.model.target), particles=self.model.particles)
        return self


def run_sensitivity_map(config, *, workdir=None, resume=False) -> xr.Dataset:
    """Quantities and gradients on the grid of `config.map.axes`; one compile, a loop over the
    points (each costs a forward and a reverse solve); `workdir` and `resume` are not used."""
    params, setup = parameters_from(config, config.map.exit_level)
    paths = list(config.map.axes)
    fields = tuple(axis_field(p, len(config.model.target)) for p in paths)
    grids = [np.asarray(config.map.axes[p]) for p in paths]
    dims = [_axes.axis_name(p) for p in paths]
    shape = tuple(len(g) for g in grids)
    values = np.full((len(QUANTITIES), *shape), np.nan)
    grads = np.full((len(QUANTITIES), 2, *shape), np.nan)
    for i, x in enumerate(grids[0]):
        for j, y in enumerate(grids[1]):
            v, g = point(params, setup, fields, np.array([x, y]))
            values[:, i, j] = np.asarray(v)
            grads[:, :, i, j] = np.asarray(g)
    grads[~np.isfinite(np.broadcast_to(values[:, None], grads.shape))] = np.nan
    data = {}
    for k, q in enumerate(QUANTITIES):
        if q not in config.map.quantities:
            continue
        data[q] = (dims, values[k])
        for a, dim in enumerate(dims):
            data[f"grad_{q}_{dim}"] = (dims, grads[k, a])
    return xr.Dataset(data, coords=dict(zip(dims, grids, strict=True)))


def sensitivity_map_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """t_onset and t_exit (those mapped), each with its two derivatives, as heatmaps over the
    plane (the derivatives on a symmetric log colour scale: they span decades and change
    sign); one row per time."""
    ydim, xdim = list(ds.dims)[:2]
    times = [q for q in ("t_onset", "t_exit") if q in ds]
    fig = figure(figsize=(16.5, 4.5 * max(len(times), 1)))
    axes = fig.subplots(max(len(times), 1), 3, squeeze=False)
    for row, q in zip(axes, times, strict=False):
        for ax, name in zip(row, [q, f"grad_{q}_{ydim}", f"grad_{q}_{xdim}"], strict=True):
            z = ds[name].transpose(ydim, xdim).values
            if name == q:
                finite = z[np.isfinite(z)]
                norm = "log" if finite.size and finite.min() > 0 else None
                mesh = ax.pcolormesh(ds[xdim], ds[ydim], z, norm=norm, cmap="magma")
            else:
                top = np.nanmax(np.abs(z)) if np.isfinite(z).any() else 1.0
                norm = SymLogNorm(linthresh=top * 1e-3, vmin=-top, vmax=top)
                mesh = ax.pcolormesh(ds[xdim], ds[ydim], z, norm=norm, cmap="RdBu_r")
            fig.colorbar(mesh, ax=ax)
            ax.set_xscale(axis_scale(ds[xdim].values))
            ax.set_yscale(axis_scale(ds[ydim].values))
            title = name if name == q else f"d {q} / d {name.rsplit(q + '_')[1]}"
            ax.set(xlabel=xdim, ylabel=ydim, title=title)
    return [save(fig, Path(out) / "sensitivity_map.png")]


KIND = Kind(SensitivityMapConfig, run_sensitivity_map, (sensitivity_map_figures,))
