"""`kind: sweep`: the reduced dynamics over a grid of config values (`fsjax._sweep.engine`)
or, with a `network:` section, ensembles of networks against it (`fsjax._sweep.network`).

The two are the engines of one kind, each with its figures (`ENGINES`). `engine_name` picks
one from a config, and both the runner (`run_sweep`, on the config) and the figures
(`sweep_kind_figures`, on the config every sweep's dataset records in `attrs["config"]`)
dispatch through it, so that they cannot disagree.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import xarray as xr
import yaml
from pydantic import Field, field_validator, model_validator

from .._config import NetworkSectionConfig, _MayStandForNetwork, _Section, config_dict
from .._model import axes as _axes
from .._sizes import check_fits, trajectory_bytes
from .._sweep.engine import run_sweep as run_reduced_sweep
from .._sweep.network import run_network_sweep
from ..plots import axis_scale, figure, save
from .base import Kind


class SweepSection(_Section):
    """The `sweep:` section: `axes` maps a field path to its values (a list or
    `{linspace|logspace|geomspace: [start, stop, num]}`); `mode: grid` runs every combination,
    `zip` pairs the axes' values in order; `chunk` points go through each compiled batch;
    `balance: neighbours` orders the points by the measured cost of their nearest neighbour in
    a first pass (see `fsjax._sweep`), `none` keeps grid order. With a `network:` section,
    `seeds` networks (seeds `network.seed`, `network.seed + 1`, ...) are trained per point and
    `chunk` counts networks (see `fsjax._sweep.network`)."""

    axes: dict[str, Any] = Field(
        description="Map from a field path to its values: a list, or `{SPACING: [start, stop, "
        "num]}` with SPACING one of `linspace`, `logspace`, `geomspace`. Sweepable paths: "
        + ", ".join(f"`{p}`" for p in _axes.SWEEPABLE)
        + "."
    )
    mode: Literal["grid", "zip"] = Field(
        "grid",
        description="`grid`: every combination of the axes; `zip`: values paired in order "
        "(equal lengths).",
    )
    chunk: int = Field(
        2048,
        ge=1,
        description="Points per compiled batch, the unit of the results store and of resume; "
        "with a `network:` section, networks per compiled ensemble (default there: 256).",
    )
    lanes: int | None = Field(
        None,
        ge=1,
        description="Points integrated at once on each device, each lane taking the next "
        "point of its chunk when its own ends (see docs/sweeps.md); default: chosen per "
        "backend. Not used by network sweeps.",
    )
    balance: Literal["neighbours", "none"] = Field(
        "neighbours",
        description="`neighbours`: order points by the measured cost of their nearest "
        "first-pass samples (see docs/sweeps.md); `none`: grid order. A network sweep trains "
        "every network for `network.steps`, so it has nothing to balance: there it must be "
        "`none` (its default).",
    )
    seeds: int = Field(
        1,
        ge=1,
        description="Networks per point in a network sweep, seeded `network.seed`, "
        "`network.seed + 1`, ... (a `seed` coordinate); 1 without a `network:` section.",
    )

    @field_validator("axes", mode="before")
    @classmethod
    def _axes(cls, v):
        if not isinstance(v, Mapping) or not v:
            raise ValueError(
                "give at least one axis as `path: values`, e.g. `target[3]: [0.1, 0.2]`"
            )
        out = {}
        for path, spec in v.items():
            try:
                out[str(path)] = _axes.axis_values(spec)
            except ValueError as err:
                raise ValueError(f"axis {path!r}: {err}") from None
        return out

    @model_validator(mode="after")
    def _zip_lengths(self):
        lengths = {path: len(values) for path, values in self.axes.items()}
        if self.mode == "zip" and len(set(lengths.values())) > 1:
            raise ValueError(f"zip axes must have equal lengths; got {lengths}")
        _axes.check_size(self.axes, self.mode)
        return self


class SweepConfig(_MayStandForNetwork):
    """`kind: sweep`: the reduced dynamics over a grid (or zip) of config values; with a
    `network:` section (the `network` engine, see `engine_name`), ensembles of networks
    trained by SGD at every point, each against the reduced flow from its initial order
    parameters (`model.particles` = 1: the means), with the floor the networks' rows keep
    under on the boundary unless `boundary_floor: false`."""

    kind: Literal["sweep"] = Field(
        description="The reduced ODE over a grid (or zip) of config values, one compiled batch "
        "per chunk; with a `network:` section, ensembles of networks against it at every point."
    )
    network: NetworkSectionConfig | None = Field(
        None,
        description="Optional: train a network of these sizes at every point and seed and "
        "compare it with the reduced flow from its initial order parameters (axes may then "
        "include `network.lr` and the shape-changing `network.width`, `network.dim`, "
        "`network.batch`; see docs/network.md).",
    )
    sweep: SweepSection = Field(description="The axes and how their points are run.")

    @model_validator(mode="after")
    def _chunk_fits(self):
        """A chunk of the reduced engine holds the results of `chunk` points and the state of
        `lanes` (a network sweep's chunk is checked when it runs, at each size it trains)."""
        if self.network is None:
            one = trajectory_bytes(self.model.particles, self.solver.n_save)
            given = f" at model.particles = {self.model.particles}, n_save = {self.solver.n_save}"
            check_fits("sweep.chunk", self.sweep.chunk, lambda c: c * one, given)
            if self.sweep.lanes is not None:
                # Each lane holds a point's state and saves beside the chunk's results.
                chunk = self.sweep.chunk
                given += f", sweep.chunk = {chunk}"
                check_fits("sweep.lanes", self.sweep.lanes, lambda n: (chunk + n) * one, given)
        return self

    def network_a(self) -> float:
        # A network sweep starts every neuron at init.a (one number, checked below).
        return self.model.init.a[0]

    @field_validator("sweep")
    @classmethod
    def _sweepable(cls, sweep, info):
        model = info.data.get("model")
        network = info.data.get("network")
        if model is not None:  # otherwise the model's own error is reported
            names = {}
            for path, values in sweep.axes.items():
                field = _axes.resolve(
                    path,
                    n_target=len(model.target),
                    particles=model.particles,
                    network=network is not None,
                )
                _axes.check_values(path, field, values)
                for other, name in names.items():
                    same = other.field == field.field
                    if (same and None in (other.index, field.index)) or other == field:
                        raise ValueError(f"axes {name!r} and {path!r} set the same field")
                names[field] = path
            dims = [_axes.axis_name(p) for p in sweep.axes]
            if len(set(dims)) < len(dims):
                raise ValueError(f"axis names must differ; got {dims}")
        if network is None and sweep.seeds != 1:
            raise ValueError(
                f"seeds = {sweep.seeds} needs a network: section (the reduced flow has no seed)"
            )
        return sweep

    @model_validator(mode="before")
    @classmethod
    def _network_defaults(cls, data):
        """With a `network:` section the defaults are `sweep.balance: none` (every network
        trains for `network.steps`: there is no cost to balance), `sweep.chunk: 256` (an
        ensemble's memory grows with its networks, a lane loop's hardly with its points) and
        `network.mc_samples: 0` (the sweep records the closed-form risk only)."""
        if isinstance(data, Mapping) and isinstance(data.get("network"), Mapping):
            data = dict(data, network={"mc_samples": 0, **data["network"]})
            if isinstance(data.get("sweep"), Mapping):
                data["sweep"] = {"balance": "none", "chunk": 256, **data["sweep"]}
        return data

    @model_validator(mode="after")
    def _network_sweep_flow(self):
        if self.network is not None and self.model.flow == "overlap":
            raise ValueError(
                "model.flow: overlap is not compared in a network sweep, whose networks are "
                "compared through their order parameters alone; allowed: independent (the "
                "default), or kind: compare to follow one network with the overlap flow"
            )
        return self

    @model_validator(mode="after")
    def _network_particles(self):
        if self.network is not None and self.sweep.balance != "none":
            raise ValueError(
                f"sweep.balance = {self.sweep.balance!r}: every network of a sweep trains for "
                "network.steps, so there is no cost to balance; allowed: none (the default)"
            )
        if self.network is not None and self.network.mc_samples:
            raise ValueError(
                f"network.mc_samples = {self.network.mc_samples}: a network sweep records the "
                "closed-form risk only; allowed: 0 (the default)"
            )
        if self.network is not None and self.network.samples is not None:
            raise ValueError(
                f"network.samples = {self.network.samples}: a network sweep trains online "
                "(its records hold no training risk); allowed: none (the default)"
            )
        if self.network is not None and self.model.particles != 1:
            raise ValueError(
                f"model.particles = {self.model.particles}: a network sweep compares the means, "
                "set model.particles: 1"
            )
        if self.network is not None and isinstance(self.model.init.a, Mapping):
            raise ValueError(
                "model.init.a: a network sweep starts every neuron at one value; give a number"
            )
        return self


def engine_name(config: Mapping) -> Literal["reduced", "network"]:
    """The engine of a sweep config given as plain data (`config_dict`, or the `attrs["config"]`
    a sweep's dataset records): `network` with a `network:` section, else `reduced`."""
    return "reduced" if config.get("network") is None else "network"


def run_sweep(
    config: SweepConfig, *, workdir=None, resume=False, devices=None, progress=None
) -> xr.Dataset:
    """What `kind: sweep` runs: the engine the config names (`engine_name`), with its chunks
    sharded over `devices` (default `jax.local_devices()`) and written to
    `workdir/results.zarr` (when given), continuing from there when `resume` is set;
    `progress` shows a bar (default: on a terminal)."""
    engine = ENGINES[engine_name(config_dict(config))].run
    return engine(config, workdir=workdir, resume=resume, devices=devices, progress=progress)


HEATMAPS = ("unlearning", "t_onset", "regime", "kappa_final")
LINES = ("kappa_max", "kappa_final", "unlearning", "t_onset", "regime", "exponent_s")


def sweep_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """The `reduced` engine's. One axis (or zip mode, against its first axis): each diagnostic vs
    the axis. Two or more axes: heatmaps of unlearning, t_onset, regime and kappa_final over
    the first two (further axes at their first value), the learning/unlearning dichotomy
    diagram."""
    out = Path(out)
    axes = [d for d in ds[LINES[0]].dims]
    if len(axes) == 1:
        x = axes[0] if axes[0] != "point" else next(c for c in ds.coords if c != "point")
        fig = figure(figsize=(14, 7))
        grid = fig.subplots(2, 3)
        for name, ax in zip(LINES, grid.ravel(), strict=True):
            ax.plot(ds[x].values, ds[name].values, ".-" if axes[0] != "point" else ".")
            ax.set_xscale(axis_scale(ds[x].values))
            ax.set_yscale("log" if name == "t_onset" else "linear")
            ax.set_xlabel(x)
            ax.set_ylabel(name)
        return [save(fig, out / "sweep.png")]
    rest = {d: 0 for d in axes[2:]}
    sub = ds.isel(rest)
    ydim, xdim = axes[:2]
    fig = figure(figsize=(11, 8))
    grid = fig.subplots(2, 2)
    for name, ax in zip(HEATMAPS, grid.ravel(), strict=True):
        z = sub[name].transpose(ydim, xdim).values
        if name == "regime":
            mesh = ax.pcolormesh(sub[xdim], sub[ydim], z, cmap="viridis", vmin=-1, vmax=2)
            bar = fig.colorbar(mesh, ax=ax, ticks=[-1, 0, 1, 2])
            bar.ax.set_yticklabels(["undetermined", "none", "partial", "complete"])
        else:
            norm = "log" if name == "t_onset" and np.nanmin(z, initial=np.inf) > 0 else None
            mesh = ax.pcolormesh(sub[xdim], sub[ydim], z, norm=norm, cmap="magma")
            fig.colorbar(mesh, ax=ax)
        ax.set_xscale(axis_scale(sub[xdim].values))
        ax.set_yscale(axis_scale(sub[ydim].values))
        ax.set_xlabel(xdim)
        ax.set_ylabel(ydim)
        fixed = ", ".join(f"{d} = {float(sub[d]):g}" for d in rest)
        ax.set_title(name + (f" ({fixed})" if fixed else ""), fontsize=10)
    return [save(fig, out / "dichotomy.png")]


def network_sweep_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """The `network` engine's. One axis (or zip mode): mean alignment and second layer against
    time, one band per axis value spanning the seeds (network), with the reduced flow's seed
    mean dashed, and the deviations against the axis. Two or more axes: over the first two
    (further axes at their first value), the seed-mean unlearning of the networks beside the
    reduced flow's on one colour scale, and the seed-mean deviations."""
    out = Path(out)
    axes = [d for d in ds["unlearning"].dims if d != "seed"]
    if len(axes) == 1:
        return [_seed_bands(ds, axes[0], out / "network_seeds.png")]
    rest = {d: 0 for d in axes[2:]}
    sub = ds.isel(rest).mean("seed")
    ydim, xdim = axes[:2]
    fixed = ", ".join(f"{d} = {float(ds[d][0]):g}" for d in rest)

    def heatmaps(names, path, shared):
        fig = figure(figsize=(5.5 * len(names), 4.2))
        grid = fig.subplots(1, len(names))
        zs = [sub[name].transpose(ydim, xdim).values for name, _ in names]
        lim = (np.nanmin(zs), np.nanmax(zs)) if shared else (None, None)
        for ax, (_, title), z in zip(grid, names, zs, strict=True):
            mesh = ax.pcolormesh(sub[xdim], sub[ydim], z, cmap="magma", vmin=lim[0], vmax=lim[1])
            fig.colorbar(mesh, ax=ax)
            ax.set_xscale(axis_scale(sub[xdim].values))
            ax.set_yscale(axis_scale(sub[ydim].values))
            ax.set_xlabel(xdim)
            ax.set_ylabel(ydim)
            ax.set_title(title + (f" ({fixed})" if fixed else ""), fontsize=10)
        return save(fig, path)

    phase = (("unlearning", "unlearning, networks"), ("unlearning_mf", "unlearning, reduced"))
    devs = (("max_abs_dev_s", "max |dev mean s|"), ("max_abs_dev_a", "max |dev mean a|"))
    return [
        heatmaps(phase, out / "network_phase.png", shared=True),
        heatmaps(devs, out / "network_deviation.png", shared=False),
    ]


def _seed_bands(ds: xr.Dataset, dim: str, path: Path) -> Path:
    x = dim if dim != "point" else next(c for c in ds.coords if ds[c].dims == ("point",))
    fig = figure(figsize=(16, 4.2))
    grid = fig.subplots(1, 3)
    # Diverged networks are NaN from their divergence on; a band over none of them is empty.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i in range(ds.sizes[dim]):
            pt = ds.isel({dim: i})
            t = pt["t"].values[1:]  # t = 0 has no place on a log axis
            label = f"{x} = {float(pt[x]):g}"
            for ax, name in zip(grid[:2], ("s_mean", "a_mean"), strict=True):
                net = pt[f"{name}_net"].values[:, 1:]
                ax.fill_between(t, np.nanmin(net, 0), np.nanmax(net, 0), color=f"C{i}", alpha=0.3)
                ax.plot(t, np.nanmean(net, 0), color=f"C{i}", label=label)
                ax.plot(t, pt[f"{name}_mf"].mean("seed").values[1:], "--", color=f"C{i}", lw=1)
    for ax, ylabel in zip(grid[:2], ("mean alignment", "mean second layer"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("time t = steps * lr")
        ax.set_ylabel(ylabel + " (bands: seeds; dashed: reduced)")
    grid[0].legend(fontsize=8)
    for name in ("max_abs_dev_s", "max_abs_dev_a"):
        dev = ds[name]
        grid[2].errorbar(
            ds[x].values,
            dev.mean("seed").values,
            yerr=dev.std("seed").values,
            fmt=".-",
            capsize=3,
            label=name,
        )
    grid[2].set_xscale(axis_scale(ds[x].values))
    grid[2].set_xlabel(x)
    grid[2].set_ylabel(f"deviation over t >= {ds.attrs['t_min']:g} (seed mean, std)")
    grid[2].legend(fontsize=8)
    return save(fig, path)


class _Engine(NamedTuple):
    run: Callable
    figures: Callable


ENGINES = {
    "reduced": _Engine(run_reduced_sweep, sweep_figures),
    "network": _Engine(run_network_sweep, network_sweep_figures),
}


def sweep_kind_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """The figures of the engine that made the sweep dataset `ds` (from its `attrs["config"]`)."""
    return ENGINES[engine_name(yaml.safe_load(ds.attrs["config"]))].figures(ds, out)


KIND = Kind(SweepConfig, run_sweep, (sweep_kind_figures,))
