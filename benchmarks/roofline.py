r"""`roofline`: the GPU on paper. XLA's cost analysis of one solver step (flops and bytes per
step, per lane where the step is vmapped over a sweep's points) on the problems of the sweep,
particles and ode sections, and a roofline estimate of the 1e6-point 2-D sweep
(`problems.sweep_grid`, Rodas5P, rtol 1e-8) on an H100 and an H200 beside this machine's
measured time of the same sweep, for lanes running in lockstep and continuously batched.

One step is what the integrator's while loop repeats: the solver's `step` and the
step-size controller's `adapt_step_size` (diffrax's public pieces, on `fsjax.MeanField` as
`fsjax.solve` integrates it); the saves, the dense output and the loop's own bookkeeping are
left out. Cost analysis counts a loop inside the step (the Newton iterations of the
Kvaerno methods) once. Flops and bytes come from XLA:CPU's compiled step: a GPU fuses
differently, so the bytes are a guide, not a measurement; `kernels` counts the compiled step's
top-level operations, a proxy for the kernels a GPU launches per step.

A while-loop iteration over L lanes takes, on the roofline,

$$t_\text{iter}(L) = \max\Big(\frac{L F}{P},\ \frac{L B}{W}\Big) + K\,\tau_\text{launch}
  + \tau_\text{loop}$$

with F flops and B bytes per lane-step, P the FP64 rate, W the memory bandwidth, K kernels a
step, $\tau_\text{launch}$ per kernel and $\tau_\text{loop}$ per iteration (the loop's
predicate back to the host). N points of mean and largest step counts $\bar s$ and
$s_\text{max}$ take $\lceil N/L\rceil s_\text{max}$ iterations in lockstep (every chunk of L
runs until its slowest point ends) and about $\max(N\bar s/L,\ s_\text{max})$ continuously
batched (a lane takes the next point when its own ends; the last points add at most
$s_\text{max}$ more). The step counts are this machine's, on an evenly spread subset of the
grid.
"""

from __future__ import annotations

import dataclasses
import math
import re

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import fsjax

from . import _harness as h, tools
from .problems import ATOL_RATIO, relu_particles, sweep_values, tanh_particles


@dataclasses.dataclass(frozen=True)
class Device:
    """A GPU's datasheet rates: FP64 without tensor cores (the step is elementwise over lanes)
    and memory bandwidth."""

    name: str
    fp64: float  # FLOP/s
    bandwidth: float  # bytes/s


# NVIDIA's H100 and H200 Tensor Core GPU datasheets, SXM boards: FP64 34 TFLOPS (67 with
# tensor cores, which only matrix products use), memory bandwidth 3.35 TB/s (H100, HBM3) and
# 4.8 TB/s (H200, HBM3e).
DEVICES = (Device("H100 SXM", 34e12, 3.35e12), Device("H200 SXM", 34e12, 4.8e12))
# Not datasheet numbers: a CUDA kernel launch costs a few microseconds, and an XLA while loop
# copies its predicate to the host every iteration. The gpu section measures the iteration
# cost of a bare loop (`gpu.loop_latency`) where a device is lent.
LAUNCH_S = 3e-6
LOOP_S = 10e-6


@dataclasses.dataclass(frozen=True)
class Plan:
    methods: tuple[str, ...] = tools.STIFF
    lanes: int = 1024  # of the vmapped 2-D sweep step
    particles: tuple[int, ...] = (16, 64, 256)  # the particles section's m
    trajectories: tuple[int, ...] = (1, 16, 64)  # the ode section's m (eps = 1e-2)
    dense_max_m: int = 64  # as the particles section: dense Newton steps only up to here
    repeats: int = 20  # calls of one compiled step
    method: str = "rodas5p"  # of the 1e6-point sweep
    rtol: float = 1e-8
    points: int = 1_000_000
    cpu_points: int = 1024  # measured here, and the subset the step counts come from
    gpu_lanes: tuple[int, ...] = (100_000, 1_000_000)
    eps: float = 1e-3  # the sweep section's problem
    t_final: float = 1e7
    n_save: int = 100

    @property
    def grid(self) -> dict:
        return {"eps": self.eps, "t_final": self.t_final, "n_save": self.n_save}


# The sweep section's quick problem and method: its compiled solve serves both.
QUICK = Plan(
    methods=("kvaerno5",),
    lanes=8,
    particles=(),
    trajectories=(1,),
    repeats=2,
    method="kvaerno5",
    rtol=1e-6,
    cpu_points=8,
    eps=1.0,
    t_final=1e3,
    n_save=20,
)


def _vector_field(t, y, model):
    return model.vector_field(t, y, None)


TERM = diffrax.ODETerm(_vector_field)


def sweep_args(n: int, *, eps: float, t_final: float, n_save: int) -> tuple:
    """`tools.fsjax_args(sweep_grid(n, ...))`, built from arrays: the points differ only in c3
    and a0, and a million `Problem`s take the host far longer than their solve."""
    c3, a0 = sweep_values(n)
    p = tanh_particles(1, eps, t_final=t_final, n_save=n_save)
    values = {f: np.asarray(getattr(p, f)) for f in tools.FIELDS}
    values["a0"] = a0[:, None]
    values["target"] = np.tile(values["target"], (n, 1))
    values["target"][:, 3] = c3
    stacked = (np.broadcast_to(values[f], (n, *np.shape(getattr(p, f)))) for f in tools.FIELDS)
    return (*map(jnp.asarray, stacked), jnp.asarray(p.ts))


def step_program(method: str, rtol: float, args: tuple):
    """(step, state): one step of `method` and its step-size controller as `fsjax.solve` runs
    it, from the initial state of each point (the first step size the controller picks), as a
    function of that state; vmapped over the points where `args` (as `tools.fsjax_args`)
    holds several."""
    atol = rtol * ATOL_RATIO
    solver = fsjax.solvers.make_solver(method, rtol, atol)
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    order = solver.error_order(TERM)

    def start(target, mu, rate_a, rate_w, a0, s0, ts):
        model = fsjax.MeanField(target, mu, 0.0, rate_a, rate_w)
        y0, t0 = (a0, jnp.arctanh(s0)), jnp.zeros_like(ts[0])
        t1, c_state = controller.init(TERM, t0, ts[-1], y0, None, model, solver.func, order)
        return model, y0, t1, solver.init(TERM, t0, t1, y0, model), c_state

    def step(model, y0, t1, s_state, c_state):
        # Times are arrays, as `diffeqsolve` passes them (an implicit stage traces t).
        t0 = jnp.zeros_like(t1)
        y1, err, _, s_state, _ = solver.step(TERM, t0, t1, y0, model, s_state, False)
        keep, _, t_next, _, c_state, _ = controller.adapt_step_size(
            t0, t1, y0, y1, model, err, order, c_state
        )
        return jnp.where(keep, t_next, t1), y1, s_state, c_state

    if args[0].ndim == 1:
        return jax.jit(step), jax.jit(start)(*args)
    axes = (0,) * len(tools.FIELDS) + (None,)
    return jax.jit(jax.vmap(step)), jax.jit(jax.vmap(start, in_axes=axes))(*args)


def kernels(compiled) -> int:
    """Top-level operations of a compiled program's entry computation (fusions, calls, loops;
    not parameters, constants, tuples or bitcasts)."""
    text = compiled.as_text()
    entry = text[text.index("\nENTRY ") :].split("\n}\n")[0].splitlines()[1:]
    trivial = re.compile(r"= \S+ (parameter|constant|tuple|get-tuple-element|bitcast)\(")
    return sum(1 for ln in entry if " = " in ln and not trivial.search(ln))


def step_cost(method: str, rtol: float, args: tuple) -> tuple[dict, object]:
    """XLA's cost of one step on the points of `args` (per lane) and the zero-argument call
    of it."""
    step, state = step_program(method, rtol, args)
    compiled = step.lower(*state).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    lanes = lanes_of(args)
    out = {
        "flop_per_step": cost.get("flops", 0.0) / lanes,
        "bytes_per_step": cost.get("bytes accessed", 0.0) / lanes,
        "transcendentals_per_step": cost.get("transcendentals", 0.0) / lanes,
        "kernels": kernels(compiled),
    }
    out["flop_per_byte"] = out["flop_per_step"] / max(out["bytes_per_step"], 1.0)
    return out, lambda: jax.block_until_ready(compiled(*state))


def lanes_of(args: tuple) -> int:
    """The points `args` (as `tools.fsjax_args`) holds."""
    return 1 if args[0].ndim == 1 else args[0].shape[0]


def iterations(points: int, mean_steps: float, max_steps: int, lanes: int, continuous: bool):
    """While-loop iterations for `points` points on `lanes` lanes (module docstring)."""
    if continuous:
        return max(math.ceil(points * mean_steps / lanes), max_steps)
    return math.ceil(points / lanes) * max_steps


def estimate(device: Device, cost: dict, lanes: int, n_iter: int, launch_s, loop_s) -> dict:
    """Seconds of `n_iter` iterations over `lanes` lanes on the roofline, and what bounds an
    iteration: flops, bytes or the launches."""
    flop = lanes * cost["flop_per_step"] / device.fp64
    byte = lanes * cost["bytes_per_step"] / device.bandwidth
    launch = cost["kernels"] * launch_s + loop_s
    parts = {"flops": flop, "bytes": byte, "launches": launch}
    per_iter = max(flop, byte) + launch
    bound = max(parts, key=parts.get)
    return {"seconds": n_iter * per_iter, "iteration_s": per_iter, "bound": bound}


def cost_row(section: str, case: str, method: str, rtol: float, args, repeats: int, sizes):
    """One step's cost on the points of `args`, and the wall time of one call of the compiled
    step."""
    h.log(f"{section} {case}: {method} step")
    cost, call = step_cost(method, rtol, args)
    lanes = lanes_of(args)
    row, _ = h.timed_row(
        section,
        case,
        f"fsjax {method} step",
        call,
        repeats,
        count=lanes,
        unit="lane-steps/s",
        sizes=sizes | {"lanes": lanes},
        note="time: one call of the compiled step, dispatch included",
    )
    row.extra.update(cost)
    row.extra["GFLOP/s"] = row.rate * cost["flop_per_step"] / 1e9
    return row, cost


def solve_row(section: str, case: str, method: str, rtol: float, args, repeats: int, sizes):
    """The points of `args` (as `tools.fsjax_args`) in one vmapped solve
    (`tools.fsjax_solve`), results copied to the host, and their step counts (`mean_steps`,
    `max_steps`)."""
    fn = tools.fsjax_solve(method, rtol, True)
    n = lanes_of(args)
    h.log(f"{section} {case}: {method} rtol {rtol:g}")
    row, (_, _, status, steps) = h.timed_row(
        section,
        case,
        f"fsjax {method}",
        lambda: [np.asarray(x) for x in jax.block_until_ready(fn(*args))],
        repeats,
        count=n,
        unit="points/s",
        setting={"rtol": rtol},
        sizes=sizes | {"points": n, "lanes": n},
    )
    counts = {"mean_steps": float(steps.mean()), "max_steps": int(steps.max())}
    row.extra.update(counts, failed=int((status != 0).sum()))
    row.extra["useful_step_fraction"] = counts["mean_steps"] / counts["max_steps"]
    return row, counts


def sweep_estimates(plan: Plan, cost: dict, cpu: h.Row, steps: dict) -> list[h.Row]:
    """The `plan.points`-point sweep: this machine's time scaled from `cpu` (the same chunk
    repeated), and each device's roofline in lockstep and continuously batched."""
    case = f"2-D sweep N={plan.points}"
    sizes = plan.grid | {"points": plan.points}
    measured = cpu.sizes["points"]
    seconds = cpu.timing.median * plan.points / measured
    rows = [
        h.Row(
            "roofline",
            case,
            f"fsjax {plan.method} on this CPU",
            {"rtol": plan.rtol},
            sizes=sizes | {"lanes": measured},
            extra={"seconds": seconds},
            note=f"not measured: the N={measured} row's time times {plan.points / measured:g}",
        )
    ]
    for device in DEVICES:
        for lanes in plan.gpu_lanes:
            for continuous in (False, True):
                n_iter = iterations(plan.points, **steps, lanes=lanes, continuous=continuous)
                est = estimate(device, cost, lanes, n_iter, LAUNCH_S, LOOP_S)
                rows.append(
                    h.Row(
                        "roofline",
                        case,
                        f"roofline {device.name}",
                        {"lanes": lanes, "schedule": "continuous" if continuous else "lockstep"},
                        sizes=sizes | {"lanes": lanes},
                        extra=est
                        | {"iterations": n_iter, "cpu_over_this": seconds / est["seconds"]},
                        note=f"not measured: roofline estimate, FP64 {device.fp64 / 1e12:g} "
                        f"TFLOP/s and {device.bandwidth / 1e12:g} TB/s (datasheet), launches "
                        "assumed (benchmarks/roofline.py)",
                    )
                )
    return rows


def run(plan: Plan) -> list[h.Row]:
    rows = []
    sweep = sweep_args(plan.lanes, **plan.grid)
    for method in dict.fromkeys((plan.method, *plan.methods)):
        case = f"2-D sweep point, {plan.lanes} lanes"
        row, cost = cost_row("roofline", case, method, plan.rtol, sweep, plan.repeats, plan.grid)
        rows.append(row)
        if method == plan.method:
            sweep_cost = cost
        dense = not method.startswith("rodas")
        problems = [
            (f"relu m={m}", relu_particles(m))
            for m in plan.particles
            if not (dense and m > plan.dense_max_m)
        ]
        problems += [(f"m={m} eps=0.01", tanh_particles(m, 1e-2)) for m in plan.trajectories]
        for case, p in problems:
            args = tools.fsjax_args([p])
            sizes = {"m": p.m}
            rows.append(cost_row("roofline", case, method, plan.rtol, args, plan.repeats, sizes)[0])
    args = sweep_args(plan.cpu_points, **plan.grid)
    case = f"2-D sweep N={plan.cpu_points}"
    cpu, steps = solve_row("roofline", case, plan.method, plan.rtol, args, 1, plan.grid)
    return [*rows, cpu, *sweep_estimates(plan, sweep_cost, cpu, steps)]


SECTION = h.Section("roofline", __doc__.split("\n\n")[0], run, Plan(), QUICK)
