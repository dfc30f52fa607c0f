r"""`kind: sweep`: the reduced dynamics over a grid of config values, as compiled blocks.

**One compile.** `SweepProblem` maps one row to its model and initial particles (`setup`:
it writes the row into the config's parameter point with `fsjax._model.point.Point.set_axes`
(target, noise, epsilon, initial particles) and builds the model as traced values) and a
solved trajectory to the point's results (`results`: the diagnostics, `a_final`, `status`,
`num_steps`). A chunk of the sweep is one call of `solve_queues`, jitted once: every chunk has
the same shape (short ones are padded with points that never run), so nothing recompiles. A
failed point keeps its `status` and NaN diagnostics; it never stops the sweep.

**Continuous batching.** Each device integrates its share of the chunk with its own lane loop
(`fsjax._solve.lanes.LaneSolver`): `lanes` points at once, each lane taking the next point of
the queue when its own ends, so lanes idle only while the last points finish, where a vmapped
solve ran every lane until the slowest point of its batch. `useful_step_fraction` counts the
points' steps over the lane-steps the loops executed. The lane count is `sweep.lanes`, or
`LANES` of the platform (measured: docs/sweeps.md) within `POINTS_PER_LANE` points a lane.

The points and their order are planned by `fsjax._sweep.plan`; the balanced order (dearest
first) now serves as the queue's order, which shortens the tail where lanes idle.

**Scale-out.** The chunk's points are dealt round-robin over `jax.local_devices()`, and each
device runs its own loop over its share (`jax.shard_map` over a one-axis `Mesh`): a loop
sharded over devices would step every device until the slowest one is done. With several
processes (`jax.distributed.initialize()` before `fsjax.run`), process p runs chunks j with
j mod P = p and all of them write into one results store (`fsjax._sweep.store.GridStore`),
which must be on a shared filesystem. Network sweeps (`fsjax._sweep.network`) run through the
same pieces: `points_sharding`, `chunk_store`, `run_chunks` and `sweep_results`.
"""

from __future__ import annotations

import functools
import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
import yaml
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Float, Int
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
from .._solve.lanes import LaneSolver
from .._solve.settings import SolverSettings
from .._solve.solve import Trajectory
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

    def results(self, values: Float[Array, " n_axes"], traj: Trajectory) -> dict[str, Array]:
        """The results of the point with axis values `values` from its solved `traj`."""
        out = diagnose(self.at(values).model(), traj)
        out["a_final"] = jnp.mean(traj.a[-1])
        out["status"] = traj.status
        out["num_steps"] = jnp.asarray(traj.num_steps, dtype=jnp.int64)
        return out

    def __call__(self, values: Float[Array, " n_axes"]) -> dict[str, Array]:
        model, a0, s0 = self.setup(values)
        return self.results(values, self.settings.solve(model, a0, s0))


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


def points_sharding(devices) -> NamedSharding:
    """The leading (points) axis of an array split over `devices` along a one-axis mesh."""
    return NamedSharding(Mesh(np.asarray(devices), ("points",)), PartitionSpec("points"))


# Lanes per device when `sweep.lanes` is not set, by platform (measured: docs/sweeps.md).
LANES = {"cpu": 256, "gpu": 4096}
# The automatic lane count leaves at least this many points of its queue to each lane: lanes
# idle only while the last points finish, about half a lane's points' worth at the end.
POINTS_PER_LANE = 16


def lane_count(lanes: int | None, queue: int, platform: str) -> int:
    """The lanes of a device whose queue holds `queue` points: `lanes` (the config's
    `sweep.lanes`) or the platform's `LANES` within `POINTS_PER_LANE`; at most `queue`."""
    if lanes is None:
        lanes = min(LANES.get(platform, LANES["gpu"]), max(1, queue // POINTS_PER_LANE))
    return min(lanes, queue)


def reload_count(lanes: int) -> int:
    """Lanes retired and loaded at most per iteration: points end a few at a time, and each
    load builds that many models whether or not they are used."""
    return max(1, lanes // 16)


@eqx.filter_jit
def solve_queues(
    problem: SweepProblem,
    rows: Float[Array, "D*Q n_axes"],
    counts: Int[Array, " D"],
    mesh: Mesh,
    lanes: int,
    reload: int,
) -> tuple[dict[str, Array], Int[Array, " D"]]:
    """Each device's queue of `Q` rows (its first `counts[d]` are points) through its own lane
    loop (`LaneSolver`, `lanes` lanes), then each point's results; and each device's
    iterations. One loop per device (`shard_map`): a loop sharded over devices would step
    every device until the slowest is done. Compiled once per problem structure and shape
    (the problem's arrays are arguments, so sweeps that differ only in values share it)."""
    arrays, static = eqx.partition(problem, eqx.is_array)

    def queue(arrays, rows, count):
        problem = eqx.combine(arrays, static)
        solver = LaneSolver(problem.settings, problem.setup)
        traj, iterations = solver(rows, count[0], lanes, reload)
        return jax.vmap(problem.results)(rows, traj), iterations[None]

    points = PartitionSpec("points")
    # No collectives run inside, so the loop's replicated and per-device values need no
    # varying-axis bookkeeping (`check_vma`), which the while loop's carry would fail.
    return jax.shard_map(
        queue,
        mesh=mesh,
        in_specs=(PartitionSpec(), points, points),
        out_specs=(points, points),
        check_vma=False,
    )(arrays, rows, counts)


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
    n_dev = len(devices)
    queue = math.ceil(chunk / n_dev)  # each device's share of a chunk
    lanes = lane_count(config.sweep.lanes, queue, devices[0].platform)
    solve = functools.partial(
        solve_queues,
        sweep_problem(config),
        mesh=Mesh(np.asarray(devices), ("points",)),
        lanes=lanes,
        reload=reload_count(lanes),
    )
    sharding = points_sharding(devices)

    def chunks(prefix, order):
        """(name, point indices) of each chunk of a pass."""
        n = math.ceil(len(order) / chunk)
        return [(f"{prefix}-{j:06d}", order[j * chunk : (j + 1) * chunk]) for j in range(n)]

    def run_chunk(name, index):
        # Point k of the chunk goes to device k mod D, at place k // D of its queue (dearest
        # first in a balanced pass: round-robin shares the cost evenly); the padding of a
        # queue repeats its points and never runs.
        k = np.arange(len(index))
        at = (k % n_dev) * queue + k // n_dev
        shares = [index[d::n_dev] for d in range(n_dev)]
        counts = np.array([len(share) for share in shares])
        rows = np.concatenate(
            [np.resize(share if len(share) else index[-1:], queue) for share in shares]
        )
        out, iterations = solve(jax.device_put(plan.values[rows], sharding), counts)
        results = {"index": index} | {k: np.asarray(v)[at] for k, v in out.items()}
        # Every iteration steps all of a device's lanes, whether or not they hold a point.
        executed = lanes * int(np.sum(iterations))
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
