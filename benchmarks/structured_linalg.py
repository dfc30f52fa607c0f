"""The structured (Woodbury) step matrix against the dense one, in one process.

    python benchmarks/structured_linalg.py [--sizes 64 256 1024 4096 16384] [--dense-max 1024]
                                           [--steps 200]

Part 1 factorises M = I - cJ and solves once, for MeanField with tanh (L = 16) at each m:
wall time (median of repeats, compile excluded), the solve alone (a Rosenbrock step solves
once per stage), XLA's memory for the compiled call (temporaries plus arguments and outputs),
and, where the dense solve runs too, the relative difference of the two solutions.

Part 2 runs a fixed-step linearly implicit Euler loop, y <- y + (I - hJ(y))^-1 h f(y), under
`jax.lax.fori_loop` on m = 4096 particles (ReLU, slow first layer, eps = 1e-3, target
(0.2, 0.6, 0.5, 0.3), s uniform in [-0.6, 0.6], a = 0.1) and reports the cost per step, also
in units of one vector-field evaluation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import fsjax
from fsjax import hermite
from fsjax._solve.step_matrix import DenseStepMatrix
from fsjax._solve.structured import WoodburyStepMatrix


def vector_field(t, y, args):
    return args.vector_field(t, y, None)


def timed(fn, *args, repeats):
    """Median and min wall time of a compiled call, in seconds, after one warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def memory_mib(fn, *args):
    """XLA's accounting of the compiled call: temporaries + arguments + outputs."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    if stats is None:
        return float("nan")
    total = stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes
    return total / 2**20


def factor_and_solve(m, dense_max, repeats):
    model = fsjax.MeanField(
        [0.2, 0.6, 0.5, 0.3],
        hermite.coefficients("tanh", 16),
        0.0,
        *fsjax.layer_rates("first_layer", 1e-3),
    )
    rng = np.random.default_rng(m)
    y = (jnp.asarray(0.1 + 0.3 * rng.normal(size=m)), jnp.asarray(rng.normal(size=m)))
    b = (jnp.asarray(rng.normal(size=m)), jnp.asarray(rng.normal(size=m)))
    c = jnp.asarray(5.0)
    rows, solutions = [], {}
    steps = {"woodbury": WoodburyStepMatrix()}
    if m <= dense_max:
        steps["dense"] = DenseStepMatrix()
    for name, step in steps.items():

        def both(model, y, c, b, step=step):
            return step.solve(step.factor(vector_field, 0.0, y, model, c), b)

        def solve_only(state, b, step=step):
            return step.solve(state, b)

        both_jit, solve_jit = jax.jit(both), jax.jit(solve_only)
        state = jax.jit(lambda model, y, c, step=step: step.factor(vector_field, 0.0, y, model, c))(
            model, y, c
        )
        median, low = timed(both_jit, model, y, c, b, repeats=repeats)
        solve_median, _ = timed(solve_jit, state, b, repeats=repeats)
        solutions[name] = np.concatenate([np.asarray(v) for v in both_jit(model, y, c, b)])
        rows.append((m, name, median, low, solve_median, memory_mib(both, model, y, c, b)))
    difference = float("nan")
    if "dense" in solutions:
        x, x_dense = solutions["woodbury"], solutions["dense"]
        difference = np.linalg.norm(x - x_dense) / np.linalg.norm(x_dense)
    return rows, difference


def euler_loop(m, steps, h, repeats):
    """Linearly implicit Euler on the benchmark's m-particle system; per-step cost."""
    rates = fsjax.layer_rates("first_layer", 1e-3)
    model = fsjax.MeanField([0.2, 0.6, 0.5, 0.3], hermite.coefficients("relu", 16), 0.0, *rates)
    y0 = (jnp.full(m, 0.1), jnp.arctanh(jnp.linspace(-0.6, 0.6, m)))
    step_matrix = WoodburyStepMatrix()

    @jax.jit
    def run(model, y0):
        def body(_, y):
            state = step_matrix.factor(vector_field, 0.0, y, model, h)
            dy = step_matrix.solve(state, jax.tree.map(lambda v: h * v, vector_field(0, y, model)))
            return jax.tree.map(jnp.add, y, dy)

        return jax.lax.fori_loop(0, steps, body, y0)

    @jax.jit
    def fields(model, y0):
        def body(_, y):  # the same loop with the explicit Euler update, for the f-eval cost
            return jax.tree.map(lambda v, d: v + 1e-9 * d, y, vector_field(0, y, model))

        return jax.lax.fori_loop(0, steps, body, y0)

    median, _ = timed(run, model, y0, repeats=repeats)
    f_median, _ = timed(fields, model, y0, repeats=repeats)
    a, psi = run(model, y0)
    risks = [float(model.risk(*yy)) for yy in ((y0[0], jnp.tanh(y0[1])), (a, jnp.tanh(psi)))]
    return median / steps, f_median / steps, risks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 4096, 16384])
    parser.add_argument("--dense-max", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}, L = 16, c = 5")
    print("| m | step matrix | factor+solve ms (min) | solve ms | XLA memory MiB | rel. diff |")
    print("|---|---|---|---|---|---|")
    for m in args.sizes:
        rows, difference = factor_and_solve(m, args.dense_max, args.repeats)
        for m_, name, median, low, solve_median, mib in rows:
            diff = f"{difference:.1e}" if np.isfinite(difference) else "-"
            print(
                f"| {m_} | {name} | {1e3 * median:.3g} ({1e3 * low:.3g}) | "
                f"{1e3 * solve_median:.3g} | {mib:.3g} | {diff} |"
            )
    h, m = 1.0, 4096
    per_step, per_field, (risk0, risk1) = euler_loop(m, args.steps, h, args.repeats)
    print()
    print("| m | steps | h | ms / step | ms / f-eval | step / f-eval | risk: start -> end |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {m} | {args.steps} | {h} | {1e3 * per_step:.3g} | {1e3 * per_field:.3g} | "
        f"{per_step / per_field:.3g} | {risk0:.4g} -> {risk1:.4g} |"
    )


if __name__ == "__main__":
    main()
