"""`particles`: many particles of the slow-first-layer ReLU flow (`problems.relu_particles`):
at m = 16, 64, 256 every implicit fsjax method against the peers at matched accuracy
(`tools.trajectory`: compiled LSODA per core and per machine, scipy and CVODE with a Python
right-hand side); at m = 4096 and 16384 one solve per method in a fresh process, for its
wall time including compilation and its peak memory (`_fresh`), up to a timeout; and m = 4096
particles in two identical groups (`problems.relu_groups`) against the 2-particle flow, whose
deviation in the error measure must stay below 1e-6 (the ratio is that deviation over 1e-6)."""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np

from . import _harness as h, tools
from ._fresh import fresh_row
from .problems import error, relu_groups, relu_particles


@dataclasses.dataclass(frozen=True)
class Plan(tools.Ladder):
    particles: tuple[int, ...] = (16, 64, 256)
    big_m: int = 256  # scipy's Radau takes seconds a solve at m = 64 here, minutes at 256
    large: tuple[int, ...] = (4096, 16384)
    large_rtol: float = 1e-6
    large_timeout: float = 90.0  # the target is 60 s; past 90 s a method has missed it
    dense_max_m: int = 64  # methods with a dense Newton step (not Rosenbrock): minutes beyond
    groups: tuple[int, ...] = (4096,)
    groups_rtol: float = 1e-8
    groups_bound: float = 1e-6


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
    groups=(8,),
)


def large(method: str, m: int, rtol: float) -> dict:
    """One solve from nothing compiled (run by `_fresh` in its own process)."""
    fn = tools.fsjax_solve(method, rtol, False)
    args = tools.fsjax_args([relu_particles(m)])
    start = time.perf_counter()
    _, _, status, steps = jax.block_until_ready(fn(*args))
    return {"seconds": time.perf_counter() - start, "steps": int(steps), "status": int(status)}


def skipped(plan: Plan, m: int) -> list[str]:
    """The methods with a dense Newton step (not Rosenbrock), left out beyond `dense_max_m`."""
    if m <= plan.dense_max_m:
        return []
    return [x for x in plan.methods if not x.startswith("rodas")]


def not_measured(case: str, m: int, methods) -> list[h.Row]:
    why = f"not measured: a dense Newton step on 2m = {2 * m} unknowns takes minutes"
    return [h.Row("particles", case, f"fsjax {x}", sizes={"m": m}, note=why) for x in methods]


def groups(plan: Plan) -> list[h.Row]:
    """m particles in two identical groups against the 2-particle flow: the same equations, so
    the deviation is the solver's (the step matrix, Woodbury against dense, and the order of
    the particle mean), not the model's. One solve each, timed as in `tools.ladder`."""
    rows = []
    rtol = plan.groups_rtol
    for m in plan.groups:
        case = f"relu two groups m={m} vs m=2"
        dense = skipped(plan, m)
        rows += not_measured(case, m, dense)
        for method in (x for x in plan.methods if x not in dense):
            tool = tools.fsjax_tool(method, (rtol,))
            h.log(f"particles {case}: {tool.name} rtol {rtol:g}")
            a2, s2, two = tool.prepare([relu_groups(2)], rtol)()
            p = relu_groups(m)
            row, (a, s, extra) = h.timed_row(
                "particles",
                case,
                tool.name,
                tool.prepare([p], rtol),
                1,
                unit="solves/s",
                setting={"rtol": rtol},
                sizes={"m": m, "t_final": float(p.ts[-1]), "n_save": p.ts.size},
            )
            row.extra.update(extra, steps_m2=two["steps"], failed_m2=two["failed"])
            row.error = error(
                a[0], s[0], (np.repeat(a2[0], m // 2, 1), np.repeat(s2[0], m // 2, 1))
            )
            row.ratio = row.error / plan.groups_bound
            row.ratio_of = f"deviation from the m = 2 solve over {plan.groups_bound:g}"
            row.note = "error: deviation from the m = 2 solve, not from a reference"
            rows.append(row)
    return rows


def run(plan: Plan) -> list[h.Row]:
    rows = []
    for m in plan.particles:
        dense = skipped(plan, m)
        sub = dataclasses.replace(plan, methods=tuple(x for x in plan.methods if x not in dense))
        rows += tools.trajectory("particles", f"relu m={m}", relu_particles(m), sub)
        rows += not_measured(f"relu m={m}", m, dense)
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
    return rows + groups(plan)


TARGETS = (
    h.Target(
        f"particles m = 16-256 vs every peer with a {tools.PYTHON_RHS}",
        "solves/s at equal or better accuracy",
        lambda r: r.section == "particles" and r.tool.endswith(f"({tools.PYTHON_RHS})"),
        3.0,
    ),
    h.Target(
        "particles m = 64 vs compiled LSODA on the machine's cores",
        "solves/s at equal or better accuracy",
        lambda r: (
            r.section == "particles"
            and r.case == "relu m=64"
            and r.tool == "numbalsoda"
            and r.setting.get("cores") == (os.cpu_count() or 1)
        ),
        1.5,
    ),
    h.Target(
        "m particles in two identical groups = the 2-particle flow",
        "max deviation from the m = 2 solve, in units of 1e-6",
        lambda r: r.section == "particles" and "two groups" in r.case,
        1.0,
        at_least=False,
    ),
)
SECTION = h.Section("particles", __doc__.split("\n\n")[0], run, Plan(), QUICK, TARGETS)
