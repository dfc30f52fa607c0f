r"""`kind: sensitivity_map`: the onset of unlearning and its gradients over a plane of parameters.

At every point of a grid over two axes (each a target coefficient `target[k]` or `init.a`),
the quantities of `fsjax._sensitivity.quantities` ($t_\text{on}$, `kappa_final`,
`unlearning`) and their derivatives with respect to both axis parameters, by reverse-mode
automatic differentiation through the solve and the event time. Typical plane: the primary
nonlinear coefficient $c_p$ against the initial second-layer scale $a_0$, where the map shows
how strongly, and in which direction, each moves the onset, and where the onset disappears
(NaN: no alignment peak before `t_final`, the "none" side of the dichotomy).
"""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from . import _axes
from ._config import SENSITIVITY_QUANTITIES
from ._sensitivity import Parameters, Setup, parameters_from, quantities

MAP_PARAMS = ("target[k]", "init.a")


def _field(path: str, n_target: int) -> tuple[str, int | None]:
    """The `Parameters` field and index an axis path names."""
    field = _axes.resolve(path, n_target=n_target, particles=1)
    if field.field == "target" and field.index is not None:
        return "target", field.index
    if field.field == "a" and field.index is None:
        return "init_a", None
    raise ValueError(f"axis {path!r}: a sensitivity map takes {' or '.join(MAP_PARAMS)}")


def _set(params: Parameters, field: str, index: int | None, value) -> Parameters:
    x = getattr(params, field)
    new = jnp.full_like(x, value) if index is None else x.at[index].set(value)
    return eqx.tree_at(lambda p: getattr(p, field), params, new)


@eqx.filter_jit
def point(params: Parameters, setup: Setup, fields, values):
    """Quantities (3,) and their derivatives (3, 2) with respect to the two axis parameters
    at the point with axis values `values` (`init.a` moves every particle together)."""

    def q(v):
        p = params
        for (field, index), x in zip(fields, v, strict=True):
            p = _set(p, field, index, x)
        return quantities(p, setup)

    values = jnp.asarray(values, dtype=float)
    return q(values), jax.jacrev(q)(values)


def run_sensitivity_map(config, *, workdir=None, resume=False) -> xr.Dataset:
    """Quantities and gradients on the grid of `config.map.axes`; one compile, a loop over the
    points (each costs a forward and a reverse solve); `workdir` and `resume` are not used."""
    params, setup = parameters_from(config)
    paths = list(config.map.axes)
    fields = tuple(_field(p, len(config.model.target)) for p in paths)
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
    for k, q in enumerate(SENSITIVITY_QUANTITIES):
        if q not in config.map.quantities:
            continue
        data[q] = (dims, values[k])
        for a, dim in enumerate(dims):
            data[f"grad_{q}_{dim}"] = (dims, grads[k, a])
    return xr.Dataset(data, coords=dict(zip(dims, grids, strict=True)))


def sensitivity_map_figures(ds: xr.Dataset, out) -> list[Path]:
    """t_onset and its two derivatives as heatmaps over the plane (the derivatives on a
    symmetric log colour scale: they span decades and change sign)."""
    from matplotlib.colors import SymLogNorm

    from ._plots import _axis_scale, _save, plt

    ydim, xdim = list(ds.dims)[:2]
    names = ["t_onset", f"grad_t_onset_{ydim}", f"grad_t_onset_{xdim}"]
    names = [n for n in names if n in ds]
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        z = ds[name].transpose(ydim, xdim).values
        if name == "t_onset":
            finite = z[np.isfinite(z)]
            norm = "log" if finite.size and finite.min() > 0 else None
            mesh = ax.pcolormesh(ds[xdim], ds[ydim], z, norm=norm, cmap="magma")
        else:
            top = np.nanmax(np.abs(z)) if np.isfinite(z).any() else 1.0
            norm = SymLogNorm(linthresh=top * 1e-3, vmin=-top, vmax=top)
            mesh = ax.pcolormesh(ds[xdim], ds[ydim], z, norm=norm, cmap="RdBu_r")
        fig.colorbar(mesh, ax=ax)
        ax.set_xscale(_axis_scale(ds[xdim].values))
        ax.set_yscale(_axis_scale(ds[ydim].values))
        title = name if name == "t_onset" else f"d t_onset / d {name.rsplit('t_onset_')[1]}"
        ax.set(xlabel=xdim, ylabel=ydim, title=title)
    return [_save(fig, Path(out) / "sensitivity_map.png")]
