r"""`kind: sweep`: the reduced dynamics over a grid of config values, as one compiled batch.

**One compile.** `SweepProblem` maps one row to the diagnostics of its solve: it writes the
row into the config's parameter point (`fsjax._model.point.Point.set_axes`: target, noise,
epsilon, initial particles), builds the model from it as traced values and calls
`fsjax.solve`. The per-chunk function is that map vmapped over the chunk, its rows sharded
over the local devices (`NamedSharding`), jitted once: every chunk has the same shape (the
last is padded with copies of its last point), so nothing recompiles. A failed point keeps its
`status` and NaN diagnostics; it never stops the sweep.

The points and their order (load balance) are planned by `fsjax._sweep.plan`.

**Scale-out.** Each chunk is sharded over `jax.local_devices()` along a one-axis `Mesh`
(`NamedSharding`; XLA partitions the batched solve, whose loop runs until the slowest lane of
the whole chunk is done, so balancing matters as much as on one device). With several processes
(`jax.distributed.initialize()` before `fsjax.run`), process p runs chunks j with
j mod P = p and all of them write into one results store (`fsjax._sweep.store.GridStore`),
which must be on a shared filesystem. Network sweeps (`fsjax._sweep.network`) run through the
same pieces: `points_sharding`, `chunk_store`, `run_chunks` and `sweep_results`.
"""

from __future__ import annotations

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
import yaml
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Float
from tqdm.auto import tqdm

from .._analysis.diagnostics import REGIMES, diagnose
from .._config import _ReducedRun, config_dict
from .._errors import FsjaxError
from .._io import fingerprint
from .._model import axes as _axes
from .._model.base import AbstractReducedModel
from .._model.point import Point
from .._point import point
from .._results import STATUS_MEANINGS
from .._solve.settings import SolverSettings
from .plan import SweepPlan, first_pass, second_pass, sweep_plan
from .store import STORE, ChunkStore, GridStore, open_grid


class SweepProblem(eqx.Module):
    """One sweep point -> a dict of scalar results: the config's `point`, the axes' `fields`
    its rows set, and the integrator. Pure: vmap, jit and shard it."""

    point: Point
    settings: SolverSettings
    fields: tuple[_axes.AxisField, ...] = eqx.field(static=True)

    def at(self, values: Float[Array, " n_axes"]) -> Point:
        """The point with axis values `values`."""
        return self.point.set_axes(self.fields, values)

    def setup(self, values: Float[Array, " n_axes"]) -> tuple[AbstractReducedModel, Array, Array]:
        """The model and initial particles of the point with axis values `values`."""
        point = self.at(values)
        return point.model(), *point.initial()

    def __call__(self, values: Float[Array, " n_axes"]) -> dict[str, Array]:
        model, a0, s0 = self.setup(values)
        traj = self.settings.solve(model, a0, s0)
        out = diagnose(model, traj)
        out["a_final"] = jnp.mean(traj.a[-1])
        out["status"] = traj.status
        out["num_steps"] = jnp.asarray(traj.num_steps, dtype=jnp.int64)
        return out


def axis_fields(config: _ReducedRun) -> tuple[_axes.AxisField, ...]:
    """The field each axis of the sweep sets, in the order of a row's values."""
    model, network = config.model, config.network is not None
    return tuple(
        _axes.resolve(p, n_target=len(model.target), particles=model.particles, network=network)
        for p in config.sweep.axes
    )


def sweep_problem(config: _ReducedRun) -> SweepProblem:
    return SweepProblem(
        point(config), SolverSettings.from_config(config.solver), axis_fields(config)
    )


@eqx.filter_jit
def solve_rows(problem: SweepProblem, rows: Float[Array, "B n_axes"]) -> dict[str, Array]:
    """`problem` at every row: compiled once per problem structure and chunk shape (the
    problem's arrays are arguments, so sweeps that differ only in values share the compile)."""
    return jax.vmap(problem)(rows)


def points_sharding(devices) -> NamedSharding:
    """The leading (points) axis of an array split over `devices` along a one-axis mesh."""
    return NamedSharding(Mesh(np.asarray(devices), ("points",)), PartitionSpec("points"))


def chunk_function(problem: SweepProblem, devices):
    """The chunk map with its rows sharded over `devices` (`points_sharding`); XLA partitions
    the batched solve accordingly."""
    sharding = points_sharding(devices)
    return lambda rows: solve_rows(problem, jax.device_put(rows, sharding))


def chunk_store(config, workdir, *, resume, grid, dims, names, chunk, inner_dims=()):
    """Where a sweep's finished chunks go: `workdir/results.zarr` (a `GridStore` shared by the
    processes), or memory without a `workdir` (one process only). `names` lists the chunks
    in run order, each of at most `chunk` points."""
    if workdir is None:
        if jax.process_count() > 1:
            raise FsjaxError(
                "a multi-process sweep needs an output directory on a shared filesystem"
            )
        return ChunkStore()
    return GridStore(
        workdir / STORE,
        fingerprint(config_dict(config)),
        resume=resume,
        process=jax.process_index(),
        grid=grid,
        dims=dims,
        names=names,
        chunk=chunk,
        inner_dims=inner_dims,
    )


def progress_bar(store, chunks, total: int, unit: str, desc: str, progress):
    """A bar over `total` points starting at those of the finished `chunks` (name, indices);
    `progress` None shows it only on a terminal."""
    done = sum(len(index) for name, index in chunks if store.has(name))
    disable = None if progress is None else not progress
    return tqdm(total=total, initial=done, unit=unit, desc=desc, disable=disable)


def run_chunks(store, chunks, run, bar) -> None:
    """This process's share of `chunks` ((name, point indices) in run order; chunk j runs on
    process j mod P) through `run(name, index) -> (results, attrs)`, skipping finished ones
    and writing each into `store`; with several processes, return once all are written."""
    proc, n_proc = jax.process_index(), jax.process_count()
    for j, (name, index) in enumerate(chunks):
        if j % n_proc != proc or store.has(name):
            continue
        results, attrs = run(name, index)
        store.write(name, results, attrs)
        bar.update(len(index))
    if n_proc > 1:
        store.wait_for([name for name, _ in chunks])


def run_sweep(
    config: _ReducedRun, *, workdir=None, resume=False, devices=None, progress=None
) -> xr.Dataset:
    """Run every point of the sweep in chunks, writing each finished chunk to
    `workdir/results.zarr` (when given) and skipping those already there when `resume` is set.
    With a `workdir` the dataset reads that store lazily (`open_sweep`); without one the
    chunks are kept and assembled in memory.

    `devices` defaults to `jax.local_devices()`; `progress` (None: only on a terminal) shows a
    bar with points per second and the time left."""
    plan = sweep_plan(config)
    devices = list(devices) if devices is not None else jax.local_devices()
    chunk = config.sweep.chunk
    width = math.ceil(chunk / len(devices)) * len(devices)
    run_rows = chunk_function(sweep_problem(config), devices)

    def chunks(prefix, order):
        """(name, point indices) of each chunk of a pass."""
        n = math.ceil(len(order) / chunk)
        return [(f"{prefix}-{j:06d}", order[j * chunk : (j + 1) * chunk]) for j in range(n)]

    def run_chunk(name, index):
        rows = plan.values[np.concatenate([index, np.repeat(index[-1], width - len(index))])]
        out = {k: np.asarray(v) for k, v in run_rows(rows).items()}
        results = {"index": index} | {k: v[: len(index)] for k, v in out.items()}
        # The batched while loop runs every lane, padding included, as long as the slowest.
        executed = width * int(np.max(out["num_steps"]))
        useful = int(results["num_steps"].sum())
        return results, {"executed_steps": executed, "useful_steps": useful}

    first = first_pass(plan.size, chunk, config.sweep.balance)
    rest = np.arange(plan.size - first.size)  # stands in for the second pass's order here
    # Run order; the first pass is a whole number of chunks whenever a second pass follows.
    planned = chunks("a", first) + chunks("b", rest)
    names = [name for name, _ in planned]
    grid = _grid(plan, config)
    store = chunk_store(
        config, workdir, resume=resume, grid=grid, dims=plan.dims, names=names, chunk=chunk
    )
    with progress_bar(store, planned, plan.size, "pt", "sweep", progress) as bar:
        run_chunks(store, chunks("a", first), run_chunk, bar)
        if rest.size:
            # `_gather` sorts by point index and `first` is sorted, so the costs line up.
            names_a = [name for name, _ in chunks("a", first)]
            cost = _gather(store, names_a, ("index", "num_steps"))["num_steps"]
            run_chunks(store, chunks("b", second_pass(plan, first, cost)), run_chunk, bar)
    return sweep_results(store, workdir, names, grid, plan.dims, plan.shape)


def _grid(plan: SweepPlan, config: _ReducedRun) -> xr.Dataset:
    """The sweep's coordinates and attrs, before any results."""
    if plan.mode == "grid":
        coords = {d: plan.coords[d] for d in plan.dims}
    else:
        coords = {d: ("point", v) for d, v in plan.coords.items()}
    attrs = {
        "sweep_mode": plan.mode,
        "regimes": json.dumps({str(k): v for k, v in REGIMES.items()}),
        "status_meanings": json.dumps({str(k): v for k, v in STATUS_MEANINGS.items()}),
        "config": yaml.safe_dump(config_dict(config), sort_keys=False),
    }
    return xr.Dataset(coords=coords, attrs=attrs)


def _useful_fraction(chunk_attrs: list[dict]) -> float:
    """Steps the points needed over steps the batches executed (padding included)."""
    executed = sum(a["executed_steps"] for a in chunk_attrs)
    return sum(a["useful_steps"] for a in chunk_attrs) / executed if executed else math.nan


def _gather(
    store: ChunkStore | GridStore, names: list[str], fields: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """The named chunks' results (`fields` of them, default all), concatenated and sorted by
    point index."""
    parts = []
    for name in names:
        results = store.read(name)[0]
        parts.append({k: results[k] for k in fields or results})
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(out["index"])
    return {k: v[order] for k, v in out.items()}


def sweep_results(store, workdir, names, grid, dims, shape, inner_dims=()) -> xr.Dataset:
    """The finished sweep: its store read lazily (`open_sweep`), or, without a `workdir`, the
    chunks assembled in memory (`sweep_dataset`)."""
    if workdir is None:
        return sweep_dataset(store, names, grid, dims, shape, inner_dims)
    return open_sweep(workdir / STORE)


def sweep_dataset(
    store: ChunkStore,
    names: list[str],
    grid: xr.Dataset,
    dims: tuple[str, ...],
    shape: tuple[int, ...],
    inner_dims: tuple[str, ...] = (),
) -> xr.Dataset:
    """Assemble the finished chunks, in memory, into one dataset on the sweep's grid
    (`grid`: its coordinates and attrs; `dims` and `shape` those of the points, `inner_dims`
    the further dims of results with more than one value a point)."""
    results = _gather(store, names)
    index = results.pop("index")
    if not np.array_equal(index, np.arange(math.prod(shape))):
        raise FsjaxError("the chunk store does not cover every sweep point; resume the sweep")
    ds = grid.assign(
        {
            k: ((*dims, *inner_dims[: v.ndim - 1]), v.reshape(*shape, *v.shape[1:]))
            for k, v in results.items()
        }
    )
    ds.attrs["useful_step_fraction"] = _useful_fraction([store.read(n)[1] for n in names])
    return ds


def open_sweep(root) -> xr.Dataset:
    """A sweep's `results.zarr` on its grid, lazily (see `fsjax._sweep.store.open_grid`);
    points of chunks not finished yet have `status` -1 and NaN results."""
    ds, chunk_attrs = open_grid(root)
    ds.attrs["useful_step_fraction"] = _useful_fraction(chunk_attrs)
    return ds
