"""`engine`: the sweep engine (`fsjax.run_sweep`, every diagnostic of every point) on the 2-D
system of configs/quickstart.yaml (tanh, c = (0, 1, 0, c3), eps = 0.01, t to 1e6) over a
(c3, a0) grid: points/s against the number of points and the chunk size, the useful step
fraction without and with neighbour ordering, and peak memory in a fresh process."""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np

import fsjax

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


QUICK = Plan(points=(16,), chunk=16, chunks=(), chunk_points=16, balance_points=16, fresh=())


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
