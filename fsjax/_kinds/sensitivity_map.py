"""`kind: sensitivity_map`: the onset of unlearning and its gradients over a plane of two
parameters (`fsjax._analysis.sensitivity_map` has the point function)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._analysis.sensitivity import QUANTITIES, parameters_from
from .._analysis.sensitivity_map import axis_field, point
from .._sweep import axes as _axes


def run_sensitivity_map(config, *, workdir=None, resume=False) -> xr.Dataset:
    """Quantities and gradients on the grid of `config.map.axes`; one compile, a loop over the
    points (each costs a forward and a reverse solve); `workdir` and `resume` are not used."""
    params, setup = parameters_from(config)
    paths = list(config.map.axes)
    fields = tuple(axis_field(p, len(config.model.target)) for p in paths)
    grids = [np.asarray(config.map.axes[p]) for p in paths]
    dims = [_axes.axis_name(p) for p in paths]
    shape = tuple(len(g) for g in grids)
    values = np.full((3, *shape), np.nan)
    grads = np.full((3, 2, *shape), np.nan)
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
