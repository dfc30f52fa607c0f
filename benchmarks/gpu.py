"""`gpu`: on a GPU, the 2-D sweep's throughput up to 1e6 points (`sweep.throughput`) and the
network step at sizes in the thousands against the matmul rate (`network.size_rows`), with
their first calls (compile times); elsewhere one row saying it was not measured."""

from __future__ import annotations

import dataclasses

import jax

from . import _harness as h, network, sweep, tools


@dataclasses.dataclass(frozen=True)
class Plan:
    points: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    chunk: int = 1 << 17
    rtol: float = 1e-10
    methods: tuple[str, ...] = tools.STIFF
    network_sizes: tuple = ((4096, 1024, 16384), (8192, 2048, 32768))
    network_flop: float = 1e13
    repeats: int = 3


QUICK = Plan(
    points=(1000,),
    chunk=1000,
    rtol=1e-6,
    methods=("kvaerno5",),
    network_sizes=((256, 128, 4096),),
    network_flop=1e10,
    repeats=2,
)


def run(plan: Plan) -> list[h.Row]:
    if jax.default_backend() != "gpu":
        return [
            h.Row(
                "gpu", "sweeps, network step, compile times", "fsjax", note="not measured: no GPU"
            )
        ]
    grid = {"eps": 1e-3, "t_final": 1e7, "n_save": 100}
    rows = [
        sweep.throughput("gpu", n, plan.chunk, m, plan.rtol, repeats=1, **grid)
        for n in plan.points
        for m in plan.methods
    ]
    return rows + network.size_rows("gpu", plan.network_sizes, plan.network_flop, plan.repeats)


TARGETS = (
    h.Target(
        "network step on GPU",
        "the matmul rate, at large sizes",
        lambda r: r.section == "gpu" and r.tool == "fsjax Trainer",
        0.5,
    ),
)
SECTION = h.Section("gpu", __doc__.split("\n\n")[0], run, Plan(), QUICK, TARGETS)
