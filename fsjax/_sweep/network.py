r"""`kind: sweep` with a `network:` section: ensembles of networks over a grid of config values,
each against the reduced flow started at its own initial order parameters.

**Networks.** Every sweep point is trained `sweep.seeds` times, with seeds `network.seed + j`
(a `seed` dimension); network $i = p \cdot \text{seeds} + j$ is point $p$ with seed $j$. Points
that share their sizes (`network.width`, `network.dim`, `network.batch`: shape-changing axes)
form a group; each group runs as chunks of `sweep.chunk` networks (padded with copies of their
last network to one width a group, a multiple of the device count, so one program is compiled
per group) through
`fsjax._train.ensemble`, which vmaps the SGD step over the members' seeds, steps `network.lr`
and model values (target, `init.a`, `dynamics.epsilon` as layer rates, `model.noise`).
Every network is recorded at the same steps, at times $t = \text{step}\cdot\eta$ of its own
point (the coordinate `t`). Chunks that would not fit in memory are refused before anything
runs.

**Against the reduced flow.** For each network, the 2-D reduced system (the `kind: compare`
path with `model.particles` = 1) of its point (`SweepProblem.at`: the config's
`fsjax._model.point.Point` with the row's values, network axes included) is solved from the
network's mean order parameters at step 0 and saved at its record times, vmapped over the
chunk (`PointModels.reduced_model`: the plain flow plus the floor the networks' rows keep
under on the boundary, at the point's `network.lr`, `dim` and `batch`, unless
`boundary_floor: false`; see `fsjax._model.corrections`). Per network:
`max_abs_dev_s`, `max_abs_dev_a` over $t \ge$ `T_MIN` (as `compare`), the diagnostics of the
network's own mean trajectory (`kappa_max`, `t_onset` on the record grid, `kappa_final`,
`unlearning`, `regime`, and `t_exit`, the exit from the boundary s = 0.99 of
`fsjax.exit_time`) and of the reduced flow's (suffix `_mf`).

**Status** (`fsjax.RESULTS`). `status` is 0 on success, 3 when the network diverged (its
records, deviations and diagnostics are NaN; `diverged_at` is the step), else the reduced
solve's failure (1: max_steps, 2: solver failure). A failed network never stops the sweep.

**Runs as reduced sweeps do** (`fsjax._sweep.engine`): every ensemble chunk is split over the
local devices (`points_sharding`: the members' leading axis along a one-axis mesh, its width
rounded up to a multiple of the device count), chunk j runs on process j mod P of a
multi-process run, and finished chunks go into `workdir/results.zarr` (`GridStore`; the
points are the networks, grid dims (axes..., seed), series with a further `time` dim) with
an atomic done-marker each. A resumed sweep skips them and recomputes the rest exactly as an
uninterrupted run would (the chunks depend only on the config); `fsjax.open(workdir)` reads
a finished or unfinished sweep lazily.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float

from .._analysis.compare import T_MIN, deviations
from .._analysis.diagnostics import diagnose, exit_time, resolution_of
from .._config import _ReducedRun
from .._model import axes as _axes
from .._model.base import AbstractReducedModel
from .._model.network import product_format
from .._results import RESULTS
from .._solve.solve import Trajectory
from .._train.ensemble import (
    RECORDED,
    init_ensemble,
    place_members,
    train_ensemble,
)
from .._train.sgd import check_memory, record_steps
from .engine import (
    SweepProblem,
    _grid,
    axis_fields,
    chunk_store,
    points_sharding,
    progress_bar,
    run_chunks,
    sweep_problem,
    sweep_results,
)
from .plan import SweepPlan, sweep_plan

DIAGNOSED = ("kappa_max", "t_onset", "kappa_final", "unlearning", "regime")
_NETWORK_FIELDS = ("lr", *_axes.NETWORK_SIZES)


class PointModels(eqx.Module):
    """Sweep rows -> the reduced model of each point and the network values it implies. The
    model compared with the networks carries the floor their rows keep under on the boundary
    (`fsjax._model.corrections.boundary_floor`, at the point's `network.lr`, `dim`, `batch`)
    unless the config sets `boundary_floor: false`."""

    problem: SweepProblem
    n_target: int = eqx.field(static=True)

    def reduced_model(self, row: Float[Array, " n_axes"]) -> AbstractReducedModel:
        """The flow the point's networks are compared with."""
        return self.problem.at(row).model()

    def network_values(self, rows: Float[Array, "N n_axes"]) -> dict[str, Array]:
        """Target (unpadded, as the teacher takes it), noise, init.a and layer rates."""

        def one(row):
            point = self.problem.at(row)
            model = point.mean_field()
            return dict(
                target=model.target[: self.n_target],
                noise=model.noise,
                a0=point.network_a,
                rate_a=model.rate_a,
                rate_w=model.rate_w,
            )

        return jax.vmap(one)(rows)

    def compare(self, row, ts, s_net, a_net, risk_net, diverged):
        """The reduced flow from the network's step-0 means, its deviations and both
        trajectories' diagnostics."""
        model = self.reduced_model(row)
        traj = self.problem.settings.solve(model, a_net[:1], s_net[:1], ts=ts)
        risk_mf = jax.vmap(model.risk)(traj.a, traj.s)
        net_status = jnp.where(diverged, RESULTS.network_diverged, RESULTS.successful).astype(
            jnp.int32
        )
        net_traj = Trajectory(ts, a_net[:, None], s_net[:, None], net_status, jnp.asarray(0))
        # Step 0 (t = 0) has no place in the log-time fits of `diagnose`.
        later = lambda tr: jax.tree.map(lambda x: x[1:] if x.ndim else x, tr)  # noqa: E731
        # The onset where 1 - s exceeds what the networks' weights resolve, for both.
        resolution = resolution_of(self.problem.point.floor_dtype)
        mine = diagnose(model, later(net_traj), resolution=resolution)
        theirs = diagnose(model, later(traj), resolution=resolution)
        out = {k: mine[k] for k in DIAGNOSED} | {f"{k}_mf": theirs[k] for k in DIAGNOSED}
        out |= {
            "t_exit": exit_time(ts, jnp.where(diverged, jnp.nan, s_net)),
            "t_exit_mf": exit_time(ts, traj.s[:, 0]),
            "s_mean_mf": traj.s[:, 0],
            "a_mean_mf": traj.a[:, 0],
            "risk_mf": risk_mf,
            **dict(
                zip(
                    ("max_abs_dev_s", "max_abs_dev_a"),
                    deviations(ts, s_net, a_net, traj.s[:, 0], traj.a[:, 0], T_MIN),
                    strict=True,
                )
            ),
            "status": jnp.where(diverged, RESULTS.network_diverged, traj.status),
        }
        return out


@eqx.filter_jit
def compare_rows(models: PointModels, rows, ts, s_net, a_net, risk_net, diverged):
    return jax.vmap(models.compare)(rows, ts, s_net, a_net, risk_net, diverged)


@eqx.filter_jit
def network_rows(models: PointModels, rows):
    return models.network_values(rows)


def point_models(config: _ReducedRun) -> PointModels:
    """The sweep problem of the config's point, network values and floor included."""
    return PointModels(sweep_problem(config), len(config.model.target))


def network_settings(config: _ReducedRun, plan: SweepPlan) -> dict[str, np.ndarray]:
    """Per point: `lr` (float) and the sizes (int), from the axes or the network section."""
    out = {f: np.full(plan.size, getattr(config.network, f)) for f in _NETWORK_FIELDS}
    for j, field in enumerate(axis_fields(config)):
        if field.field in out:
            out[field.field] = plan.values[:, j]
    return {f: v.astype(float if f == "lr" else np.int64) for f, v in out.items()}


def size_groups(settings: dict[str, np.ndarray], seeds: int) -> list[tuple[tuple, np.ndarray]]:
    """(width, dim, batch) and the networks (point * seeds + seed) of each group of points."""
    sizes = np.stack([settings[f] for f in _axes.NETWORK_SIZES], axis=-1)
    groups = []
    for key in np.unique(sizes, axis=0):
        points = np.flatnonzero((sizes == key).all(axis=1))
        nets = (points[:, None] * seeds + np.arange(seeds)).ravel()
        groups.append((tuple(int(k) for k in key), nets))
    return groups


def network_grid(config: _ReducedRun, plan: SweepPlan, settings, marks) -> xr.Dataset:
    """The sweep grid's coordinates and attrs, plus `seed`, the record `step`s and each
    point's record times `t = step * lr`."""
    grid = _grid(plan, config)
    lr = settings["lr"].reshape(plan.shape)
    grid = grid.assign_coords(
        seed=config.network.seed + np.arange(config.sweep.seeds),
        step=("time", marks),
        t=((*plan.dims, "time"), lr[..., None] * marks),
    )
    grid.attrs |= {"network_sweep": 1, "t_min": T_MIN}
    return grid


def run_network_sweep(
    config: _ReducedRun, *, workdir=None, resume=False, devices=None, progress=None
) -> xr.Dataset:
    """Train and compare every network of the sweep in chunks sharded over `devices` (default
    `jax.local_devices()`), writing each finished chunk to `workdir/results.zarr` (when given)
    and skipping those already there when `resume` is set; `progress` (None: only on a
    terminal) shows networks per second and the time left."""
    cfg = config.network
    plan = sweep_plan(config)
    seeds, chunk = config.sweep.seeds, config.sweep.chunk
    devices = list(devices) if devices is not None else jax.local_devices()
    # Accelerators each hold their share of a chunk; host devices share one memory.
    shares = 1 if devices[0].platform == "cpu" else len(devices)
    settings = network_settings(config, plan)
    planned, shapes = [], {}
    for g, (sizes, nets) in enumerate(size_groups(settings, seeds)):
        # One compiled ensemble per size: every chunk of a group is padded to one width.
        width = math.ceil(min(chunk, nets.size) / len(devices)) * len(devices)
        check_memory(width, *sizes, cfg.dtype, devices=shares)
        for j in range(math.ceil(nets.size / chunk)):
            name = f"g{g:03d}-{j:06d}"
            planned.append((name, nets[j * chunk : (j + 1) * chunk]))
            shapes[name] = sizes, width
    names = [name for name, _ in planned]
    marks = record_steps(cfg.steps, cfg.record, cfg.record_spacing)
    grid = network_grid(config, plan, settings, marks)
    dims, shape = (*plan.dims, "seed"), (*plan.shape, seeds)
    store = chunk_store(
        config,
        workdir,
        resume=resume,
        grid=grid,
        dims=dims,
        names=names,
        chunk=chunk,
        inner_dims=("time",),
    )
    models = point_models(config)
    sharding = points_sharding(devices)

    def run_chunk(name, index):
        sizes, width = shapes[name]
        padded = np.concatenate([index, np.repeat(index[-1], width - index.size)])
        out = _run_chunk(config, models, plan, settings, marks, sizes, padded, sharding)
        results = {"index": index} | {k: v[: index.size] for k, v in out.items()}
        # Every lane, padding included, trains for network.steps.
        return results, {
            "executed_steps": width * cfg.steps,
            "useful_steps": index.size * cfg.steps,
        }

    with progress_bar(store, planned, plan.size * seeds, "net", "network sweep", progress) as bar:
        run_chunks(store, planned, run_chunk, bar)
    return sweep_results(store, workdir, names, grid, dims, shape, ("time",))


def _run_chunk(config, models, plan, settings, marks, sizes, nets, sharding) -> dict:
    """Train the networks `nets` (point * seeds + seed) of one size as one ensemble laid out by
    `sharding`, and compare each with its reduced flow."""
    cfg, seeds = config.network, config.sweep.seeds
    points = nets // seeds
    rows = jax.device_put(plan.values[points], sharding)
    values = network_rows(models, rows)
    lr = settings["lr"][points]
    width, dim, batch = sizes
    ensemble, state = init_ensemble(
        jax.device_put(cfg.seed + nets % seeds, sharding),
        lr,
        values["target"],
        values["noise"],
        values["a0"],
        values["rate_a"],
        values["rate_w"],
        width=width,
        dim=dim,
        batch=batch,
        activation=config.model.activation,
        hermite_order=config.model.hermite_order,
        dtype=cfg.dtype,
        products=product_format(cfg.dtype, cfg.matmul_precision),
    )
    rec = train_ensemble(*place_members(ensemble, state, sharding), marks)
    net = {f"{k}_net": rec[k] for k in RECORDED} | {"diverged_at": rec["diverged_at"]}
    ts = lr[:, None] * marks[None, :]
    recorded = (ts, rec["s_mean"], rec["a_mean"], rec["risk"], rec["diverged_at"] >= 0)
    mf = compare_rows(models, rows, *jax.device_put(recorded, sharding))
    return net | {k: np.asarray(v) for k, v in mf.items()}
