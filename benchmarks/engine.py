"""`engine`: the sweep engine (`fsjax.run_sweep`, every diagnostic of every point) on the 2-D
system of configs/quickstart.yaml (tanh, c = (0, 1, 0, c3), eps = 0.01, t to 1e6) over a
(c3, a0) grid: points/s against the number of points and the chunk size, the useful step
fraction without and with neighbour ordering, and peak memory in a fresh process; and the
lane loop (continuous batching) against the lockstep chunks it replaced on heterogeneous
sweeps (`benchmarks.problems.sweep_grid`'s grid, eps over three decades, m-particle flows),
with the time per lane-step against the number of lanes that `fsjax._sweep.engine.LANES` is
chosen by.

Run alone: `python -m benchmarks run --section engine`."""

from __future__ import annotations

import copy
import dataclasses
import time

import equinox as eqx
import jax
import numpy as np

import fsjax
from fsjax._sweep.engine import sweep_problem
from fsjax._sweep.plan import first_pass, second_pass, sweep_plan

from . import _harness as h
from ._fresh import fresh_row

BASE = {
    "kind": "sweep",
    "model": {"activation": "tanh", "hermite_order": 16, "target": [0, 1, 0, 0.3]},
    "dynamics": {"slow": "second_layer", "epsilon": 0.01},
    "solver": {"t_first": 1e-2, "t_final": 1e6, "n_save": 100, "rtol": 1e-8, "atol": 1e-10},
    "sweep": {"axes": {}, "chunk": 256, "balance": "neighbours"},
}


@dataclasses.dataclass(frozen=True)
class Plan:
    points: tuple[int, ...] = (100, 1000, 10_000)
    chunk: int = 256
    chunks: tuple[int, ...] = (16, 64, 256, 1024)  # at chunk_points
    chunk_points: int = 1000
    balance_points: int = 10_000
    fresh: tuple[int, ...] = (1000, 100_000)
    timeout: float = 1800.0
    hetero_points: int = 1024  # the 2-D heterogeneous sweeps, one chunk
    particles: tuple[int, ...] = (16, 64)  # m of the particle sweeps, 32 points each
    lanes: tuple[int, ...] = (8, 16, 32, 64, 128, 256)  # on the sweep_grid sweep


QUICK = Plan(
    points=(16,),
    chunk=16,
    chunks=(),
    chunk_points=16,
    balance_points=16,
    fresh=(),
    hetero_points=16,
    particles=(),
    lanes=(),
)


def heterogeneous(plan: Plan) -> dict[str, dict]:
    """Sweeps whose points' step counts spread widely: `sweep_grid`'s (tanh, eps 1e-3, t to
    1e7, c3 x a0), eps over three decades x c3, and m-particle ReLU flows (slow first layer,
    `relu_particles`) over eps x c3."""
    n = plan.hetero_points
    rows = max(int(np.sqrt(n / 4)), 1)
    tanh = {
        "kind": "sweep",
        "model": {"activation": "tanh", "hermite_order": 16, "target": [0, 1, 0, 0.3]},
        "dynamics": {"slow": "second_layer", "epsilon": 1e-3},
        "solver": {"t_first": 1e-2, "t_final": 1e7, "n_save": 100, "rtol": 1e-8, "atol": 1e-10},
    }
    tanh["model"]["init"] = {"a": 0.5, "s": 0.01}
    out = {
        f"sweep_grid N={rows * (n // rows)}": tanh
        | {
            "sweep": {
                "axes": {
                    "target[3]": {"linspace": [-0.3, 0.3, rows]},
                    "init.a": {"linspace": [0.1, 3.0, n // rows]},
                },
                "chunk": n,
            }
        },
        f"eps 1e-4..1e-1 x c3 N={rows * (n // rows)}": tanh
        | {
            "sweep": {
                "axes": {
                    "dynamics.epsilon": {"geomspace": [1e-4, 1e-1, n // rows]},
                    "target[3]": {"linspace": [-0.3, 0.3, rows]},
                },
                "chunk": n,
            }
        },
    }
    for m in plan.particles:
        out[f"relu m={m} eps 1e-4..1e-2 x c3 N=32"] = {
            "kind": "sweep",
            "model": {
                "activation": "relu",
                "hermite_order": 16,
                "target": [0.2, 0.6, 0.5, 0.3],
                "particles": m,
                "init": {"a": 0.1, "s": {"linspace": [-0.6, 0.6]}},
            },
            "dynamics": {"slow": "first_layer", "epsilon": 1e-3},
            "solver": {"t_first": 1e-2, "t_final": 1e5, "n_save": 50, "rtol": 1e-8, "atol": 1e-10},
            "sweep": {
                "axes": {
                    "dynamics.epsilon": {"geomspace": [1e-4, 1e-2, 8]},
                    "target[3]": {"linspace": [-0.3, 0.3, 4]},
                },
                "chunk": 32,
            },
        }
    return out


@eqx.filter_jit
def _lockstep_chunk(problem, rows):
    return jax.vmap(problem)(rows)


def lockstep(cfg) -> dict:
    """The engine before the lane loop, for comparison: each chunk's rows through the vmapped
    one-point solve (`SweepProblem`), in the two-pass order of `fsjax._sweep.plan`, every lane
    stepping until its chunk's slowest point is done. Its useful step fraction."""
    plan, chunk, problem = sweep_plan(cfg), cfg.sweep.chunk, sweep_problem(cfg)
    steps = np.zeros(plan.size, dtype=np.int64)
    executed = 0

    def run(order):
        nonlocal executed
        for lo in range(0, len(order), chunk):
            index = order[lo : lo + chunk]
            rows = plan.values[np.resize(index, chunk)]
            steps[index] = np.asarray(_lockstep_chunk(problem, rows)["num_steps"])[: len(index)]
            executed += chunk * int(steps[index].max())

    first = first_pass(plan.size, chunk, cfg.sweep.balance)
    run(first)
    run(second_pass(plan, first, steps[first]))
    return {"useful_step_fraction": steps.sum() / executed}


def lanes_run(cfg) -> dict:
    ds = fsjax.run_sweep(cfg, progress=False)
    return {
        "useful_step_fraction": ds.attrs["useful_step_fraction"],
        "lane_steps": int(ds["num_steps"].sum()) / ds.attrs["useful_step_fraction"],
        "failed": int((ds["status"] != 0).sum()),
    }


def lane_rows(plan: Plan) -> list[h.Row]:
    """Lockstep chunks vs the lane loop (automatic lanes) on each heterogeneous sweep, then
    the lane loop on the first at each of `plan.lanes` lanes (wall time per lane-step)."""
    rows = []
    sweeps = heterogeneous(plan)
    runs = [(case, "lockstep chunks (before)", lockstep, cfg) for case, cfg in sweeps.items()]
    runs += [(case, "lane loop", lanes_run, cfg) for case, cfg in sweeps.items()]
    case, base = next(iter(sweeps.items()))
    for lanes in plan.lanes:
        cfg = copy.deepcopy(base)
        cfg["sweep"]["lanes"] = lanes
        runs.append((case, f"lane loop, {lanes} lanes", lanes_run, cfg))
    for case, tool, fn, cfg in runs:
        cfg = fsjax.load_config(cfg)
        h.log(f"engine {case}: {tool}")
        row, extra = h.timed_row(
            "engine",
            case,
            tool,
            lambda fn=fn, cfg=cfg: fn(cfg),
            1,
            count=sweep_plan(cfg).size,
            unit="points/s",
            setting={"lanes": cfg.sweep.lanes or "auto", "chunk": cfg.sweep.chunk},
        )
        row.extra = extra
        if "lane_steps" in extra:
            row.extra["us_per_lane_step"] = 1e6 * row.timing.median / extra["lane_steps"]
        rows.append(row)
    return rows


def grid_size(n: int) -> int:
    """The points of `config(n)`: a grid as square as n allows, at most n."""
    rows = int(np.sqrt(n))
    return rows * (n // rows)


def config(n: int, *, chunk: int, balance="neighbours"):
    """The grid of `grid_size(n)` points over c3 in [-0.6, 0.6] and a0 in [0.05, 5]
    (geometric)."""
    rows = int(np.sqrt(n))
    cfg = copy.deepcopy(BASE)
    cfg["sweep"].update(
        axes={
            "target[3]": {"linspace": [-0.6, 0.6, rows]},
            "init.a": {"geomspace": [0.05, 5.0, n // rows]},
        },
        chunk=chunk,
        balance=balance,
    )
    return fsjax.load_config(cfg)


def warmup(chunk: int):
    """A 4-point sweep that compiles the chunk function every sweep of that chunk shares."""
    fsjax.run_sweep(config(4, chunk=chunk, balance="none"), progress=False)


def fresh_sweep(n: int, chunk: int) -> dict:
    """An n-point sweep after the warm-up compile (run by `_fresh` in its own process)."""
    warmup(chunk)
    cfg = config(n, chunk=chunk)
    start = time.perf_counter()
    fsjax.run_sweep(cfg, progress=False)
    return {"seconds": time.perf_counter() - start}


def run(plan: Plan) -> list[h.Row]:
    rows = lane_rows(plan)
    cases = dict.fromkeys(
        [(n, plan.chunk, "neighbours") for n in plan.points]
        + [(plan.chunk_points, c, "neighbours") for c in plan.chunks]
        + [(plan.balance_points, plan.chunk, b) for b in ("none", "neighbours")]
    )
    rows = []
    for n, chunk, balance in cases:
        cfg, count = config(n, chunk=chunk, balance=balance), grid_size(n)
        h.log(f"engine N={count} chunk {chunk} balance {balance}")
        row, ds = h.timed_row(
            "engine",
            f"N={count}",
            "fsjax run_sweep",
            lambda cfg=cfg: fsjax.run_sweep(cfg, progress=False),
            1,
            count=count,
            unit="points/s",
            warmup=lambda chunk=chunk: warmup(chunk),
            setting={"chunk": chunk, "balance": balance},
            sizes={"points": count, "eps": 0.01, "t_final": 1e6, "rtol": 1e-8},
        )
        row.extra = {
            "useful_step_fraction": ds.attrs["useful_step_fraction"],
            "failed": int((ds["status"] != 0).sum()),
        }
        rows.append(row)
    for n in plan.fresh:
        rows.append(
            fresh_row(
                "engine",
                f"N={grid_size(n)}, fresh process",
                "fsjax run_sweep",
                "benchmarks.engine:fresh_sweep",
                plan.timeout,
                count=grid_size(n),
                unit="points/s",
                setting={"chunk": plan.chunk, "balance": "neighbours"},
                sizes={"points": n},
                note="time: after a warm-up compile; memory: the whole process",
                n=n,
                chunk=plan.chunk,
            )
        )
    return rows


SECTION = h.Section("engine", __doc__.split("\n\n")[0], run, Plan(), QUICK)
