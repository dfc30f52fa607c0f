"""`particles`: many particles of the slow-first-layer ReLU flow (`problems.relu_particles`):
at m = 16, 64, 256 every implicit fsjax method against the peers at matched accuracy
(`tools.trajectory`); at m = 4096 and 16384 one solve per method in a fresh process, for its
wall time including compilation and its peak memory (`_fresh`), up to a timeout."""

from __future__ import annotations

import dataclasses
import time

import jax

from . import _harness as h, tools
from ._fresh import fresh_row
from .problems import relu_particles


@dataclasses.dataclass(frozen=True)
class Plan(tools.Ladder):
    particles: tuple[int, ...] = (16, 64, 256)
    big_m: int = 256  # scipy's Radau takes seconds a solve at m = 64 here, minutes at 256
    large: tuple[int, ...] = (4096, 16384)
    large_rtol: float = 1e-6
    large_timeout: float = 600.0


# One particle: the same compiled solve as the `ode` section's quick case.
QUICK = Plan(
    particles=(1,),
    large=(8,),
    methods=("kvaerno5",),
    rtols=(1e-6,),
    peer_rtols=(1e-6,),
    repeats=1,
    peer_repeats=1,
    large_timeout=300.0,
)


def large(method: str, m: int, rtol: float) -> dict:
    """One solve from nothing compiled (run by `_fresh` in its own process)."""
    fn = tools.fsjax_solve(method, rtol, False)
    args = tools.fsjax_args([relu_particles(m)])
    start = time.perf_counter()
    _, _, status, steps = jax.block_until_ready(fn(*args))
    return {"seconds": time.perf_counter() - start, "steps": int(steps), "status": int(status)}


def run(plan: Plan) -> list[h.Row]:
    rows = []
    for m in plan.particles:
        rows += tools.trajectory("particles", f"relu m={m}", relu_particles(m), plan)
    for method in plan.methods:
        stop = None  # the size at which this method did not finish: larger ones would not
        for m in plan.large:
            p = relu_particles(m)
            case = f"relu m={m}, one solve in a fresh process"
            sizes = {"m": m, "t_final": float(p.ts[-1]), "n_save": p.ts.size}
            setting = {"rtol": plan.large_rtol}
            if stop is not None:
                why = f"not measured: did not finish at m = {stop}"
                rows.append(h.Row("particles", case, f"fsjax {method}", setting, note=why))
                continue
            row = fresh_row(
                "particles",
                case,
                f"fsjax {method}",
                "benchmarks.particles:large",
                plan.large_timeout,
                unit="solves/s",
                setting=setting,
                sizes=sizes,
                note="time: the first call, compile included; memory: the whole process",
                method=method,
                m=m,
                rtol=plan.large_rtol,
            )
            stop = m if row.timing is None else None
            rows.append(row)
    return rows


SECTION = h.Section("particles", __doc__.split("\n\n")[0], run, Plan(), QUICK)
