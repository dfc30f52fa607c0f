r"""`structured_linalg`: the Woodbury step matrix against the dense one, in one process.

Factor and solve: $M = I - cJ$ (c = 5) factorised and solved once, for a `fsjax.MeanField`
with tanh (L = 16) at random states of m particles, by `WoodburyStepMatrix` and, up to
`dense_max`, by `DenseStepMatrix` (LU of the formed 2m x 2m matrix): the time of both, of the
solve alone (a Rosenbrock step solves once per stage, `extra` solve_s), XLA's memory for the
compiled call (temporaries, arguments and outputs, `extra` xla_mib and its bytes per particle,
flat in m for an O(m L) solve), and, where the dense solve runs, the Woodbury solution's
relative difference to it (`error`) and the dense time over the Woodbury time (`ratio`).

Euler loop: a fixed-step linearly implicit Euler loop, y <- y + (I - hJ(y))^-1 h f(y), under
`jax.lax.fori_loop` on m = `euler_m` particles of the `particles` section's ReLU problem
(`problems.relu_particles`), with the Woodbury solve: its time per step, and that over the
time of one vector-field evaluation (`ratio`), measured by the same loop with an explicit
update.

Step cost: `Rodas5P.step` (`AutoStepMatrix`) in a `jax.lax.fori_loop` of `steps` fixed steps,
vmapped over L lanes of the 2-D sweep (`problems.sweep_grid`: one tanh particle, eps 1e-3,
17 orders; h = 10) and on single trajectories of m particles of the ReLU problem (h = 1): the
time per lane-step, and per step XLA's cost analysis of the compiled step (`extra` flops and
bytes accessed per lane-step) and the number of operations in its entry computation
(`extra` kernels: at tens of particles their launches, not the arithmetic, set the cost).
"""

from __future__ import annotations

import dataclasses
import re

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import fsjax
from fsjax import hermite
from fsjax._solve.step_matrix import DenseStepMatrix
from fsjax._solve.structured import WoodburyStepMatrix

from . import _harness as h
from .problems import relu_particles, sweep_grid

SECTION_NAME = "structured_linalg"
C = 5.0


@dataclasses.dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...] = (64, 256, 1024, 4096, 16384)
    dense_max: int = 1024
    euler_m: int = 4096
    euler_h: float = 1.0
    steps: int = 200
    repeats: int = 5
    step_lanes: tuple[int, ...] = (256, 1024, 4096)
    step_particles: tuple[int, ...] = (16, 64)


QUICK = Plan(
    sizes=(16,), dense_max=16, euler_m=16, steps=5, repeats=2, step_lanes=(8,), step_particles=()
)


def vector_field(t, y, args):
    return args.vector_field(t, y, None)


def xla_mib(fn, *args) -> float:
    """XLA's accounting of the compiled call: temporaries + arguments + outputs."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    if stats is None:
        return float("nan")
    total = stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes
    return total / 2**20


def timed_step_matrix(step, case: str, model, y, c, b, repeats: int):
    """A row timing factor+solve by `step`, with its solve alone and XLA's memory, and the
    solution."""
    name = type(step).__name__

    def both(model, y, c, b):
        return step.solve(step.factor(vector_field, 0.0, y, model, c), b)

    both_jit, solve_jit = jax.jit(both), jax.jit(step.solve)
    state = jax.jit(lambda model, y, c: step.factor(vector_field, 0.0, y, model, c))(model, y, c)
    h.log(f"{SECTION_NAME} {case}: {name}")
    m = y[0].size
    row, x = h.timed_row(
        SECTION_NAME,
        case,
        name,
        lambda: jax.block_until_ready(both_jit(model, y, c, b)),
        repeats,
        sizes={"m": m, "L": 16, "c": C},
    )
    jax.block_until_ready(solve_jit(state, b))
    solve, _ = h.measure(lambda: jax.block_until_ready(solve_jit(state, b)), repeats)
    mib = xla_mib(both, model, y, c, b)
    row.extra.update(solve_s=solve.median, xla_mib=mib, xla_bytes_per_particle=mib * 2**20 / m)
    return row, np.concatenate([np.asarray(v) for v in x])


def factor_and_solve(m: int, plan: Plan) -> list[h.Row]:
    """Rows of each step matrix on one random state and right-hand side of m particles."""
    model = fsjax.MeanField(
        [0.2, 0.6, 0.5, 0.3],
        hermite.coefficients("tanh", 16),
        0.0,
        *fsjax.layer_rates("first_layer", 1e-3),
    )
    rng = np.random.default_rng(m)
    y = (jnp.asarray(0.1 + 0.3 * rng.normal(size=m)), jnp.asarray(rng.normal(size=m)))
    b = (jnp.asarray(rng.normal(size=m)), jnp.asarray(rng.normal(size=m)))
    case = f"factor+solve m={m} L=16"
    problem = (model, y, jnp.asarray(C), b, plan.repeats)
    woodbury, x = timed_step_matrix(WoodburyStepMatrix(), case, *problem)
    if m > plan.dense_max:
        return [woodbury]
    dense, x_dense = timed_step_matrix(DenseStepMatrix(), case, *problem)
    woodbury.error = float(np.linalg.norm(x - x_dense) / np.linalg.norm(x_dense))
    woodbury.ratio = dense.timing.median / woodbury.timing.median
    woodbury.ratio_of = "the dense step matrix's time over this"
    woodbury.note = "error: relative difference to the dense solve"
    return [woodbury, dense]


def euler_loop(plan: Plan) -> h.Row:
    """Linearly implicit Euler on the `particles` problem; cost per step."""
    p = relu_particles(plan.euler_m)
    model = fsjax.MeanField(p.target, p.mu, 0.0, p.rate_a, p.rate_w)
    y0 = (jnp.asarray(p.a0), jnp.asarray(np.arctanh(p.s0)))
    step_matrix, dt, steps = WoodburyStepMatrix(), plan.euler_h, plan.steps

    @jax.jit
    def implicit(model, y0):
        def body(_, y):
            state = step_matrix.factor(vector_field, 0.0, y, model, dt)
            dy = step_matrix.solve(state, jax.tree.map(lambda v: dt * v, vector_field(0, y, model)))
            return jax.tree.map(jnp.add, y, dy)

        return jax.lax.fori_loop(0, steps, body, y0)

    @jax.jit
    def explicit(model, y0):  # the same loop with an explicit update: the cost of f
        def body(_, y):
            return jax.tree.map(lambda v, d: v + 1e-9 * d, y, vector_field(0, y, model))

        return jax.lax.fori_loop(0, steps, body, y0)

    case = f"linearly implicit Euler m={plan.euler_m} (relu, eps=1e-3), {steps} steps"
    h.log(f"{SECTION_NAME} {case}")
    row, (a, psi) = h.timed_row(
        SECTION_NAME,
        case,
        "WoodburyStepMatrix",
        lambda: jax.block_until_ready(implicit(model, y0)),
        plan.repeats,
        count=steps,
        unit="steps/s",
        setting={"h": dt},
        sizes={"m": plan.euler_m, "steps": steps},
    )
    jax.block_until_ready(explicit(model, y0))
    field, _ = h.measure(lambda: jax.block_until_ready(explicit(model, y0)), plan.repeats)
    row.ratio = row.timing.median / field.median
    row.ratio_of = "time per step over one vector-field evaluation's"
    row.extra.update(
        f_eval_s=field.median / steps,
        risk_start=float(model.risk(y0[0], jnp.tanh(y0[1]))),
        risk_end=float(model.risk(a, jnp.tanh(psi))),
    )
    return row


def step_cost(case: str, batched: bool, model, y0, dt: float, plan: Plan) -> h.Row:
    """A row timing `plan.steps` fixed Rodas5P steps (vmapped over the lanes of `model` and `y0`
    if `batched`), with the compiled step's cost analysis and operation count per lane."""
    solver, term, steps = fsjax.solvers.Rodas5P(), diffrax.ODETerm(vector_field), plan.steps
    lanes = y0[0].shape[0] if batched else 1

    def step(model, y, t0=0.0):
        return solver.step(term, t0, t0 + dt, y, model, None, False)[0]

    def loop(model, y0):
        return jax.lax.fori_loop(0, steps, lambda i, y: step(model, y, i * dt), y0)

    one, many = (jax.vmap(step), jax.vmap(loop)) if batched else (step, loop)
    compiled = jax.jit(one).lower(model, y0).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    entry = compiled.as_text().split("ENTRY", 1)[1].splitlines()[1:]
    ops = [re.search(r"=\s*(?:\([^=]*?\)|\S+)\s+([\w-]+)\(", x) for x in entry]
    free = {"parameter", "constant", "bitcast", "get-tuple-element", "tuple"}
    kernels = sum(op is not None and op.group(1) not in free for op in ops)
    run = jax.jit(many)
    h.log(f"{SECTION_NAME} {case}")
    row, _ = h.timed_row(
        SECTION_NAME,
        case,
        "Rodas5P.step",
        lambda: jax.block_until_ready(run(model, y0)),
        plan.repeats,
        count=steps * lanes,
        unit="lane-steps/s",
        setting={"h": dt},
        sizes={"lanes": lanes, "m": y0[0].shape[-1], "steps": steps},
    )
    row.extra.update(
        us_per_lane_step=row.timing.median / (steps * lanes) * 1e6,
        xla_flops_per_lane_step=cost.get("flops", float("nan")) / lanes,
        xla_bytes_per_lane_step=cost.get("bytes accessed", float("nan")) / lanes,
        kernels=kernels,
    )
    return row


def step_costs(plan: Plan) -> list[h.Row]:
    """`step_cost` rows: the 2-D sweep at each lane count, then each particle count."""
    rows = []
    for lanes in plan.step_lanes:
        ps = sweep_grid(lanes)
        models = [fsjax.MeanField(p.target, p.mu, 0.0, p.rate_a, p.rate_w) for p in ps]
        model = jax.tree.map(lambda *x: jnp.asarray(np.stack(x)), *models)
        y0 = tuple(jnp.asarray([v(p) for p in ps]) for v in (lambda p: p.a0, lambda p: p.y0[1:]))
        rows.append(
            step_cost(f"Rodas5P step, 2-D sweep, {lanes} lanes", True, model, y0, 10.0, plan)
        )
    for m in plan.step_particles:
        p = relu_particles(m)
        model = fsjax.MeanField(p.target, p.mu, 0.0, p.rate_a, p.rate_w)
        y0 = (jnp.asarray(p.a0), jnp.asarray(np.arctanh(p.s0)))
        rows.append(step_cost(f"Rodas5P step, relu m={m}", False, model, y0, 1.0, plan))
    return rows


def run(plan: Plan) -> list[h.Row]:
    rows = [row for m in plan.sizes for row in factor_and_solve(m, plan)]
    return [*rows, euler_loop(plan), *step_costs(plan)]


SECTION = h.Section(SECTION_NAME, __doc__.split("\n\n")[0], run, Plan(), QUICK)
