"""The ODE tools the sections compare, and the one work-precision row builder.

A `Tool` solves a list of `problems.Problem`s at a tolerance: fsjax with one jitted
`fsjax.solve` per method (vmapped over the points where there are several); diffrax as a JAX
user would write it (`diffrax_tool`: Kvaerno5 with its defaults, vmapped the same way); the
peers that loop over the points: scipy and CVODE calling a Python right-hand side
(`peer_tool`), and compiled LSODA (`lsoda_tool`: numbalsoda with a numba right-hand side, whose
one-core time also gives a row for all the machine's cores). `ladder` runs every tool at every
tolerance of its ladder on the same problems and measures each one's error against the
references; `matched` then gives each peer setting its speed ratio to the fastest fsjax setting
that is at least as accurate.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

import fsjax
from fsjax._solve.lanes import LaneSolver
from fsjax._solve.settings import SolverSettings
from fsjax._sweep.engine import lane_count, reload_count

from . import _harness as h
from .problems import (
    ATOL_RATIO,
    PEERS,
    REFERENCE_RTOL,
    Problem,
    error,
    lsoda_available,
    lsoda_rhs,
    lsoda_solve,
    peer_solve,
    reference,
)

PYTHON_RHS = "Python RHS"  # the label of the peers that call a Python right-hand side


def stiff_methods() -> tuple[str, ...]:
    """The implicit methods of `fsjax.solvers.SOLVERS` (all but the explicit Runge-Kutta ones), so
    that a method added there is benchmarked without edits here."""
    return tuple(
        name
        for name in fsjax.solvers.SOLVERS
        if not isinstance(fsjax.solvers.make_solver(name, 1e-6, 1e-8), diffrax.AbstractERK)
    )


STIFF = stiff_methods()
# (target, mu, rate_a, rate_w, a0, s0): the per-point arguments of `fsjax_solve`.
FIELDS = ("target", "mu", "rate_a", "rate_w", "a0", "s0")
MAX_STEPS = 1_000_000


@functools.cache
def fsjax_solve(method: str, rtol: float, batched: bool):
    """Jitted (target, mu, rate_a, rate_w, a0, s0, ts) -> (a, s, status, num_steps) through the
    public `fsjax.solve` on a `fsjax.MeanField`, vmapped over all but ts when `batched` (in
    lockstep: every lane until the slowest is done). Every value is an argument, so each
    (method, tolerance) compiles once per shape."""
    atol = rtol * ATOL_RATIO
    solver = fsjax.solvers.make_solver(method, rtol, atol)

    def one(target, mu, rate_a, rate_w, a0, s0, ts):
        model = fsjax.MeanField(target, mu, 0.0, rate_a, rate_w)
        traj = fsjax.solve(
            model, a0, s0, ts, solver=solver, rtol=rtol, atol=atol, max_steps=MAX_STEPS
        )
        return traj.a, traj.s, traj.status, traj.num_steps

    return jax.jit(jax.vmap(one, in_axes=(0,) * len(FIELDS) + (None,)) if batched else one)


@functools.cache
def fsjax_lanes(method: str, rtol: float, sizes: tuple[int, ...], queue: int):
    """Jitted (rows, counts, ts) -> (a, s, status, num_steps, iterations) of many points the
    way `kind: sweep` runs them (`fsjax._sweep.engine.solve_queues`): each local device a lane
    loop over its queue of `queue` rows, the rows the points' (target, mu, rate_a, rate_w, a0,
    s0) of `sizes` laid end to end."""
    atol = rtol * ATOL_RATIO
    solver = fsjax.solvers.make_solver(method, rtol, atol)
    devices = jax.local_devices()
    lanes = lane_count(None, queue, devices[0].platform)
    cuts = np.cumsum(sizes)[:-1]

    def setup(row):
        target, mu, rate_a, rate_w, a0, s0 = jnp.split(row, cuts)
        return fsjax.MeanField(target, mu, 0.0, rate_a[0], rate_w[0]), a0, s0

    def device_queue(ts, rows, count):
        settings = SolverSettings(solver, ts, rtol, atol, MAX_STEPS)
        traj, iterations = LaneSolver(settings, setup)(rows, count[0], lanes, reload_count(lanes))
        return traj.a, traj.s, traj.status, traj.num_steps, iterations[None] * lanes

    points = PartitionSpec("points")
    return jax.jit(
        jax.shard_map(
            device_queue,
            mesh=Mesh(np.asarray(devices), ("points",)),
            in_specs=(PartitionSpec(), points, points),
            out_specs=points,
            check_vma=False,
        )
    )


def lane_args(points: list[Problem]) -> tuple:
    """The arguments of `fsjax_lanes` for `points`, dealt round-robin over the local devices
    (point i to device i mod D), with the sizes and queue length to build it, and the order
    that puts its outputs back in the points' order."""
    n_dev = jax.local_device_count()
    queue = -(-len(points) // n_dev)
    order = np.concatenate([np.arange(d, len(points), n_dev) for d in range(n_dev)])
    rows = [np.concatenate([np.atleast_1d(getattr(p, f)) for f in FIELDS]) for p in points]
    sizes = tuple(np.atleast_1d(getattr(points[0], f)).size for f in FIELDS)
    queues, counts = [], []
    for d in range(n_dev):
        mine = [rows[i] for i in range(d, len(points), n_dev)]
        counts.append(len(mine))
        queues += mine + [mine[-1]] * (queue - len(mine))
    args = (jnp.asarray(points[0].ts), jnp.asarray(np.stack(queues)), jnp.asarray(counts))
    # Row j * queue + k of the output is device j's k-th point.
    slots = np.concatenate([d * queue + np.arange(c) for d, c in enumerate(counts)])
    back = np.empty(len(points), dtype=int)
    back[order] = slots
    return args, sizes, queue, back


def fsjax_args(points: list[Problem]) -> tuple:
    """The arguments of `fsjax_solve` for one point, or stacked over several."""
    if len(points) == 1:
        return (*(jnp.asarray(getattr(points[0], f)) for f in FIELDS), jnp.asarray(points[0].ts))
    stacked = (jnp.asarray(np.stack([getattr(p, f) for p in points])) for f in FIELDS)
    return (*stacked, jnp.asarray(points[0].ts))


def step_matrix(method: str, p: Problem) -> str:
    """The step matrix a Rosenbrock method's `AutoStepMatrix` picks for `p` (its class name:
    `WoodburyStepMatrix` is the structured solve), '' for other methods."""
    solver = fsjax.solvers.make_solver(method, 1e-6, 1e-8)
    chooser = getattr(solver, "step_matrix", None)
    if chooser is None or not hasattr(chooser, "choose"):
        return ""
    model = fsjax.MeanField(jnp.asarray(p.target), jnp.asarray(p.mu), 0.0, p.rate_a, p.rate_w)
    y = (jnp.asarray(p.a0), jnp.asarray(p.s0))
    return type(chooser.choose(y, model)).__name__


@dataclasses.dataclass(frozen=True)
class Ladder:
    """The tolerances and repeats of a work-precision comparison. From `big_m` particles on,
    `trajectory` takes the reference from CVODE, leaves out Radau (a solve takes tens of
    seconds), runs fsjax at `big_rtols` only and each tool once.

    fsjax's rungs are closer than the peers' so that matching by achieved error charges it for
    little more accuracy than the peer reached: its error is 1-3x its rtol, so with rungs a
    decade apart a peer error between them was matched with fsjax ten times more accurate
    (CVODE's rtol 1e-8 error, 1.6e-7 to 3.7e-7, against fsjax's rtol 1e-8, 1.3e-8)."""

    methods: tuple[str, ...] = STIFF
    rtols: tuple[float, ...] = (1e-5, 1e-6, 1e-7, 3e-8, 1e-8, 1e-9, 1e-10, 1e-12)
    peer_rtols: tuple[float, ...] = (1e-6, 1e-8)
    repeats: int = 3
    peer_repeats: int = 2
    big_m: int = 64
    big_rtols: tuple[float, ...] = (1e-5, 1e-6, 1e-7, 3e-8, 1e-8)


@dataclasses.dataclass(frozen=True)
class Tool:
    """`prepare(points, rtol)` returns the zero-argument call that solves them all, returning
    (a, s, extra): a and s of shape (points, T, m) (None for a failed solve), extra measured
    numbers. A `peer` is not fsjax; a `loop` solves point after point on one core, so it runs
    on the peers' subset and compiles nothing per call; a tool `on_subset` runs on that
    subset too (too slow for all the points); a tool `compiled_ahead` compiles in
    `prepare`, so neither times a first call; `all_cores` adds a row of its time divided by
    the machine's cores (the points are independent)."""

    name: str
    rtols: tuple[float, ...]
    prepare: Callable[[list[Problem], float], Callable[[], tuple]]
    peer: bool
    loop: bool = False
    on_subset: bool = False
    compiled_ahead: bool = False
    all_cores: bool = False


def fsjax_tool(method: str, rtols) -> Tool:
    """fsjax as users run it: one point through `fsjax.solve`, several through the lane loop
    of `kind: sweep` (one per local device; run `python -m benchmarks` sets one CPU device per
    core)."""

    def prepare(points, rtol):
        matrix = step_matrix(method, points[0])
        if len(points) == 1:
            fn, args = fsjax_solve(method, rtol, False), fsjax_args(points)
            back = None
        else:
            args, sizes, queue, back = lane_args(points)
            fn = fsjax_lanes(method, rtol, sizes, queue)

        def run():
            out = [np.asarray(x) for x in jax.block_until_ready(fn(*args))]
            a, s, status, steps = out[:4]
            if back is None:
                a, s, status, steps = a[None], s[None], status[None], steps[None]
            else:
                executed = out[4].sum()
                a, s, status, steps = a[back], s[back], status[back], steps[back]
            extra = {"steps": int(steps.max()), "failed": int((status != 0).sum())}
            if matrix:
                extra["step_matrix"] = matrix
            if back is not None:
                extra["useful_step_fraction"] = float(steps.sum() / executed)
            return a, s, extra

        return run

    return Tool(f"fsjax {method}", tuple(rtols), prepare, peer=False)


def peer_tool(name: str, rtols) -> Tool:
    """scipy or CVODE (`problems.PEERS`), calling the NumPy right-hand side and Jacobian."""

    def prepare(points, rtol):
        def run():
            a, s = zip(*(peer_solve(name, p, rtol) for p in points), strict=True)
            return a, s, {"failed": sum(x is None for x in a)}

        return run

    return Tool(f"{name} ({PYTHON_RHS})", tuple(rtols), prepare, peer=True, loop=True)


def python_rhs_peers(rtols, *, exclude=()) -> list[Tool]:
    """`peer_tool` of every peer of `problems.PEERS` but those in `exclude`."""
    return [peer_tool(t, rtols) for t in PEERS if t not in exclude]


def lsoda_tool(rtols) -> list[Tool]:
    """numbalsoda's LSODA with the numba right-hand side, point after point (none where
    numbalsoda is not installed: `problems.lsoda_available` says what to install)."""
    if not lsoda_available():
        return []

    def prepare(points, rtol):
        compile_s = lsoda_rhs()[1]

        def run():
            a, s = zip(*(lsoda_solve(p, rtol) for p in points), strict=True)
            return a, s, {"failed": sum(x is None for x in a), "numba_compile_s": compile_s}

        return run

    return [Tool("numbalsoda", tuple(rtols), prepare, peer=True, loop=True, all_cores=True)]


def diffrax_term(model) -> diffrax.ODETerm:
    """The term a JAX user would write: `fsjax.MeanField.vector_field` in (a, psi)."""
    return diffrax.ODETerm(model.vector_field)


def _diffrax_one(target, mu, rate_a, rate_w, a0, s0, ts, rtol):
    model = fsjax.MeanField(target, mu, 0.0, rate_a, rate_w)
    sol = diffrax.diffeqsolve(
        diffrax_term(model),
        diffrax.Kvaerno5(),
        0.0,
        ts[-1],
        None,
        (a0, jnp.arctanh(s0)),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol * ATOL_RATIO),
        max_steps=1_000_000,
        throw=False,
    )
    a, psi = sol.ys
    return a, jnp.tanh(psi), sol.result == diffrax.RESULTS.successful, sol.stats["num_steps"]


def diffrax_tool(rtols, *, on_subset: bool = False) -> Tool:
    """diffrax as a JAX user would write it: `diffeqsolve` with `diffrax.Kvaerno5()` (its
    default Newton root finder and linear solver), `PIDController(rtol, atol)` and
    `SaveAt(ts=...)`, vmapped over the points and jitted once, the tolerance an argument;
    the compile, ahead of the timed calls, is reported as `compile_s`."""
    compiled = {}

    def prepare(points, rtol):
        args = (*fsjax_args(points), jnp.asarray(rtol))
        key = tuple(x.shape for x in args)
        if key not in compiled:
            batched = len(points) > 1
            axes = (0,) * len(FIELDS) + (None, None)
            fn = jax.jit(jax.vmap(_diffrax_one, in_axes=axes) if batched else _diffrax_one)
            start = time.perf_counter()
            compiled[key] = fn.lower(*args).compile(), time.perf_counter() - start
        fn, compile_s = compiled[key]

        def run():
            a, s, ok, steps = (np.asarray(x) for x in jax.block_until_ready(fn(*args)))
            extra = {"steps": int(steps.max()), "failed": int((~ok).sum()), "compile_s": compile_s}
            if a.ndim == 2:
                return a[None], s[None], extra
            extra["useful_step_fraction"] = float(steps.sum() / (steps.size * steps.max()))
            return a, s, extra

        return run

    name = "diffrax Kvaerno5 as written"
    return Tool(name, tuple(rtols), prepare, peer=True, on_subset=on_subset, compiled_ahead=True)


def all_cores(row: h.Row) -> h.Row:
    """`row` (one core, point after point) for all the machine's cores: its time divided by
    their number, as the independent points would split over them."""
    cores = os.cpu_count() or 1
    t = row.timing
    return dataclasses.replace(
        row,
        setting=row.setting | {"cores": cores},
        timing=h.Timing(t.median / cores, t.low / cores, t.high / cores, t.repeats),
        rate=row.rate * cores,
        extra=dict(row.extra),
        note=f"derived: the one-core time divided by {cores} cores",
    )


def ladder(
    section: str,
    case: str,
    points: list[Problem],
    pick: list[int],
    refs: list,
    tools: list[Tool],
    *,
    repeats: int,
    peer_repeats: int,
    unit: str,
    sizes: dict,
) -> list[h.Row]:
    """Every tool at every tolerance: fsjax solves all `points` at once, peers loop over the
    subset `pick` (a loop's rate per point does not depend on the number of points); errors
    are the worst over `pick` against `refs`."""
    rows = []
    for tool in tools:
        subset = tool.loop or tool.on_subset
        pts = [points[i] for i in pick] if subset else points
        where = range(len(pick)) if subset else pick
        for rtol in tool.rtols:
            h.log(f"{section} {case}: {tool.name} rtol {rtol:g}")
            row, (a, s, extra) = h.timed_row(
                section,
                case,
                tool.name,
                tool.prepare(pts, rtol),
                peer_repeats if tool.loop else repeats,
                count=len(pts),
                unit=unit,
                cold=tool.loop or tool.compiled_ahead,
                setting={"rtol": rtol} | ({"cores": 1} if tool.all_cores else {}),
                peer=tool.peer,
                sizes=sizes | {"points": len(pts)},
            )
            row.extra.update(extra)
            row.error = max(error(a[i], s[i], ref) for i, ref in zip(where, refs, strict=True))
            rows += [row, all_cores(row)] if tool.all_cores else [row]
    matched(rows)
    return rows


def matched(rows: list[h.Row]) -> None:
    """Give each peer row its speed ratio to the fastest fsjax row of the same case that is at
    least as accurate (none, or a failed peer solve: ratio None)."""
    for r in rows:
        if not r.peer or r.timing is None:
            continue
        if math.isinf(r.error):
            r.ratio_of = "the peer's solve failed"
            continue
        same = [
            f
            for f in rows
            if not f.peer
            and (f.section, f.case) == (r.section, r.case)
            and f.timing is not None
            and f.error <= r.error
        ]
        if not same:
            r.ratio_of = "no fsjax setting as accurate"
            continue
        best = max(same, key=lambda f: f.rate)
        r.ratio = best.rate / r.rate
        r.ratio_of = f"{best.tool_setting} (error {best.error:.2g}) over this at matched accuracy"


def trajectory(section: str, case: str, p: Problem, plan: Ladder) -> list[h.Row]:
    """One problem, every fsjax method and every peer at every tolerance of `plan`."""
    big = p.m >= plan.big_m
    ref_tool = "CVODE" if big and "CVODE" in PEERS else "Radau"
    sizes = {
        "m": p.m,
        "rate_a": p.rate_a,
        "rate_w": p.rate_w,
        "t_final": float(p.ts[-1]),
        "n_save": p.ts.size,
        "reference": f"{ref_tool} rtol {REFERENCE_RTOL:g}",
    }
    tools = [fsjax_tool(m, plan.big_rtols if big else plan.rtols) for m in plan.methods]
    tools += lsoda_tool(plan.peer_rtols)
    tools += python_rhs_peers(plan.peer_rtols, exclude=("Radau",) if big else ())
    h.log(f"{section} {case}: {ref_tool} reference")
    rows = ladder(
        section,
        case,
        [p],
        [0],
        [reference(p, ref_tool)],
        tools,
        repeats=1 if big else plan.repeats,
        peer_repeats=1 if big else plan.peer_repeats,
        unit="solves/s",
        sizes=sizes,
    )
    if big:
        why = f"not measured: a solve takes tens of seconds at m = {p.m}"
        radau = f"Radau ({PYTHON_RHS})"
        rows.append(h.Row(section, case, radau, peer=True, sizes=sizes, note=why))
    return rows
