"""`gpu`: on a GPU, in one call of at most 8 minutes compiles included: the 1e6-point 2-D sweep
(Rodas5P, rtol 1e-8; target <= 10 s) with its flops against the roofline (`roofline`), sweeps
of m-particle flows over eps, and the network step at sizes in the thousands against the
matmul rate, each with its first call (compile); elsewhere one row saying it was not measured.

Each measurement has an expected cost (compile and calls, on an H100/H200) in the plan; one
whose cost would overrun the section's budget is not started, and its row says so. The
roofline of the sweep uses XLA's cost analysis of the step compiled for this GPU and the
iteration cost of a bare while loop measured here (`loop_latency`) in place of the assumed
one.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

import fsjax

from . import _harness as h, network, roofline, tools
from .problems import relu_particles


@dataclasses.dataclass(frozen=True)
class Plan:
    budget: float = 480.0  # seconds for the whole section
    method: str = "rodas5p"
    rtol: float = 1e-8
    points: int = 1_000_000  # of the 2-D sweep, all in one vmapped solve
    eps: float = 1e-3  # the sweep section's problem
    t_final: float = 1e7
    n_save: int = 100
    cost_lanes: int = 1024  # of the step whose cost XLA analyses
    loop_iterations: int = 10_000
    particles: tuple[int, ...] = (16, 64, 256)
    particle_points: int = 1024  # spanning eps over `particle_eps`
    particle_eps: tuple[float, float] = (1e-4, 1e-2)
    particle_n_save: int = 50  # as `relu_particles`
    particle_t_final: float = 1e5
    network_sizes: tuple = ((4096, 1024, 16384), (8192, 2048, 32768))
    network_flop: float = 1e13
    repeats: int = 3  # of the network step; the solves run once after their first call
    # Expected seconds, compiles included: a Rodas5P solve compiles in under a minute and the
    # sweep's two calls take at most 10 s each at the target; the network loops run about
    # 1e13 FLOP a call at tens of TFLOP/s.
    loop_s: float = 10.0
    sweep_s: float = 120.0
    particles_s: float = 60.0  # each m
    network_s: float = 30.0  # each size
    cpu: bool = False  # measure without a GPU too: a check of this section's logic

    @property
    def grid(self) -> dict:
        return {"eps": self.eps, "t_final": self.t_final, "n_save": self.n_save}


# An explicit method and tiny sizes: the quick plan checks the logic, and compiles fast.
QUICK = Plan(
    method="tsit5",
    rtol=1e-6,
    points=8,
    eps=1.0,
    t_final=1e3,
    n_save=20,
    cost_lanes=8,
    loop_iterations=100,
    particles=(1,),  # with 8 points and 20 saves, the sweep's compiled solve serves both
    particle_points=8,
    particle_eps=(0.1, 1.0),
    particle_n_save=20,
    particle_t_final=1e3,
    network_sizes=((32, 16, 64),),
    network_flop=1e7,
    repeats=2,
)


def loop_latency(iterations: int) -> h.Row:
    """Seconds per iteration of a while loop whose body is one scalar update: what every
    iteration of the integrator's loop costs besides its step's kernels."""

    @jax.jit
    def loop(x):
        return jax.lax.while_loop(
            lambda c: c[0] < iterations, lambda c: (c[0] + 1, c[1] * 0.5 + 1.0), (0, x)
        )

    x = jnp.asarray(1.0)
    row, _ = h.timed_row(
        "gpu",
        "bare while loop",
        "jax while_loop",
        lambda: jax.block_until_ready(loop(x)),
        3,
        count=iterations,
        unit="iterations/s",
        sizes={"iterations": iterations},
    )
    row.extra["seconds_per_iteration"] = row.timing.median / iterations
    return row


def device() -> roofline.Device | None:
    """The roofline's device this JAX device is (by name), None for any other."""
    kind = jax.devices()[0].device_kind
    return next((d for d in roofline.DEVICES if d.name.split()[0] in kind), None)


def sweep(plan: Plan, loop_s: float) -> list[h.Row]:
    """The `plan.points`-point sweep in one solve, its achieved FLOP rate (XLA's flops per
    lane-step of this backend's compiled step, times the lane-steps the lockstep loop runs)
    and the roofline's time for it."""
    cost_args = roofline.sweep_args(plan.cost_lanes, **plan.grid)
    case = f"2-D sweep point, {plan.cost_lanes} lanes"
    cost_row, cost = roofline.cost_row("gpu", case, plan.method, plan.rtol, cost_args, 3, {})
    args = roofline.sweep_args(plan.points, **plan.grid)
    case = f"2-D sweep N={plan.points}"
    row, steps = roofline.solve_row("gpu", case, plan.method, plan.rtol, args, 1, plan.grid)
    seconds = row.timing.median
    n_iter = roofline.iterations(plan.points, **steps, lanes=plan.points, continuous=False)
    row.extra["GFLOP/s"] = cost["flop_per_step"] * plan.points * n_iter / seconds / 1e9
    row.ratio, row.ratio_of = seconds / 10.0, "seconds over the 10 s target"
    gpu = device()
    if gpu is not None:
        est = roofline.estimate(gpu, cost, plan.points, n_iter, roofline.LAUNCH_S, loop_s)
        row.extra["fp64_fraction"] = row.extra["GFLOP/s"] * 1e9 / gpu.fp64
        row.extra["roofline_s"] = est["seconds"]
        row.extra["roofline_bound"] = est["bound"]
    return [cost_row, row]


def particle_args(m: int, points: int, eps: tuple[float, float], **save) -> tuple:
    """`tools.fsjax_args` of `relu_particles(m, eps=e, **save)` at `points` log-spaced e: the
    points differ only in the layer rates."""
    p = relu_particles(m, **save)
    values = np.geomspace(*eps, points)
    rates = np.array([[float(r) for r in fsjax.layer_rates("first_layer", e)] for e in values])
    stacked = {
        f: np.broadcast_to(getattr(p, f), (points, *np.shape(getattr(p, f)))) for f in tools.FIELDS
    }
    stacked["rate_a"], stacked["rate_w"] = rates[:, 0], rates[:, 1]
    return (*(jnp.asarray(stacked[f]) for f in tools.FIELDS), jnp.asarray(p.ts))


def measure(plan: Plan) -> list[h.Row]:
    """Every measurement of the plan in turn, while the budget lasts."""
    start = time.perf_counter()
    rows = []

    def fits(case: str, tool: str, expected: float) -> bool:
        left = plan.budget - (time.perf_counter() - start)
        if expected <= left:
            return True
        why = f"not measured: expected {expected:g} s, {max(left, 0):.0f} s of the budget left"
        rows.append(h.Row("gpu", case, tool, note=why))
        return False

    loop_s = roofline.LOOP_S
    if fits("bare while loop", "jax while_loop", plan.loop_s):
        rows.append(loop_latency(plan.loop_iterations))
        loop_s = rows[-1].extra["seconds_per_iteration"]
    if fits(f"2-D sweep N={plan.points}", f"fsjax {plan.method}", plan.sweep_s):
        rows += sweep(plan, loop_s)
    for size in plan.network_sizes:
        if fits("n={} d={} B={}".format(*size), "fsjax Trainer", plan.network_s):
            rows += network.size_rows("gpu", [size], plan.network_flop, plan.repeats)
    low, high = plan.particle_eps
    for m in plan.particles:
        case = f"relu m={m}, {plan.particle_points} points eps {low:g}..{high:g}"
        if fits(case, f"fsjax {plan.method}", plan.particles_s):
            save = {"t_final": plan.particle_t_final, "n_save": plan.particle_n_save}
            args = particle_args(m, plan.particle_points, plan.particle_eps, **save)
            sizes = {"m": m, "eps": f"{low:g}..{high:g}"}
            rows.append(roofline.solve_row("gpu", case, plan.method, plan.rtol, args, 1, sizes)[0])
    h.log(f"gpu: {time.perf_counter() - start:.0f} s of the {plan.budget:g} s budget")
    return rows


def run(plan: Plan) -> list[h.Row]:
    if jax.default_backend() != "gpu" and not plan.cpu:
        return [
            h.Row(
                "gpu", "sweeps, network step, compile times", "fsjax", note="not measured: no GPU"
            )
        ]
    return measure(plan)


TARGETS = (
    h.Target(
        "1e6-point 2-D sweep on GPU",
        "seconds over 10 s, Rodas5P rtol 1e-8, compiled ahead",
        lambda r: r.section == "gpu" and r.case == "2-D sweep N=1000000",
        1.0,
        at_least=False,
    ),
    h.Target(
        "network step on GPU",
        "the matmul rate, at large sizes",
        lambda r: r.section == "gpu" and r.tool == "fsjax Trainer",
        0.5,
    ),
)
SECTION = h.Section("gpu", __doc__.split("\n\n")[0], run, Plan(), QUICK, TARGETS)
