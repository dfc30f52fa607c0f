"""`sweep`: the 2-D sweep (`problems.sweep_grid`: tanh, eps = 1e-3, t to 1e7, a (c3, a0) grid)
per point, every implicit fsjax method over all points as `kind: sweep` runs them (one lane
loop per core) against diffrax as written (Kvaerno5) vmapped over an evenly spread subset and
the peers looping over it (compiled LSODA per core and per machine, scipy and CVODE with a
Python right-hand side), at matched accuracy (errors on that subset); the same against
compiled LSODA on the eps sweep (`problems.eps_grid`: 16,384 points, eps over 1e-4..1e-1 by
c3); and fsjax's throughput against the number of points."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from . import _harness as h, tools
from .problems import REFERENCE_RTOL, eps_grid, reference, sweep_grid


@dataclasses.dataclass(frozen=True)
class Plan(tools.Ladder):
    points: int = 1024
    subset: int = 16
    eps: float = 1e-3
    t_final: float = 1e7
    n_save: int = 100
    # Half-decade rungs: Rodas5P's error here is 0.65-0.76x its rtol and Radau's 0.3x, so
    # Radau's rtol-1e-6 error (2.7e-7) fell between rungs 1e-6 and 1e-8 (`tools.Ladder`).
    rtols: tuple[float, ...] = (1e-5, 1e-6, 3e-7, 1e-7, 3e-8, 1e-8, 3e-9, 1e-9, 1e-10, 1e-11)
    peer_rtols: tuple[float, ...] = (1e-6, 1e-7, 1e-8)
    repeats: int = 1
    scaling: tuple[int, ...] = (100, 1000, 10_000)
    chunk: int = 1000
    scaling_rtol: float = 1e-8
    # The eps sweep against compiled LSODA only (its peers' time per point is that of the
    # 1,024-point rows'; Python right-hand sides and diffrax would add minutes, not news).
    eps_points: int = 16_384
    eps_range: tuple[float, float] = (1e-4, 1e-1)
    eps_rtols: tuple[float, ...] = (1e-6, 3e-7, 1e-7, 3e-8, 1e-8, 1e-9)


QUICK = Plan(
    points=8,
    subset=1,
    eps=1.0,
    t_final=1e3,
    n_save=20,
    methods=("kvaerno5",),
    rtols=(1e-6,),
    peer_rtols=(1e-6,),
    peer_repeats=1,
    scaling=(16,),
    chunk=8,
    scaling_rtol=1e-6,
    eps_points=8,
    eps_range=(0.1, 1.0),
    eps_rtols=(1e-6,),
)


def throughput(section, n, chunk, method, rtol, *, repeats, **grid) -> h.Row:
    """fsjax at N points: one compiled function of `chunk` points (fewer if N is smaller) over
    as many chunks as N needs, results copied to the host, as the sweep engine runs them."""
    chunk = min(n, chunk)
    n_chunks = -(-n // chunk)
    run = tools.fsjax_tool(method, (rtol,)).prepare(sweep_grid(chunk, **grid), rtol)
    h.log(f"{section} N={n_chunks * chunk}: fsjax {method}")
    row, out = h.timed_row(
        section,
        f"N={n_chunks * chunk} eps={grid['eps']:g}",
        f"fsjax {method}",
        lambda: [run() for _ in range(n_chunks)],
        repeats,
        count=n_chunks * chunk,
        unit="points/s",
        warmup=run,
        setting={"rtol": rtol},
        sizes={"points": n_chunks * chunk, "chunk": chunk},
    )
    row.extra["failed"] = sum(extra["failed"] for _, _, extra in out)
    return row


def run(plan: Plan) -> list[h.Row]:
    grid = {"eps": plan.eps, "t_final": plan.t_final, "n_save": plan.n_save}
    tools_ = [tools.fsjax_tool(m, plan.rtols) for m in plan.methods]
    # diffrax as written took over 3 minutes for the 1024 points at rtol 1e-6 (2026-12-03).
    diffrax = tools.diffrax_tool(plan.peer_rtols, on_subset=True)
    tools_ += [diffrax, *tools.lsoda_tool(plan.peer_rtols)]
    tools_ += tools.python_rhs_peers(plan.peer_rtols)
    rows = against_peers(plan, f"eps={plan.eps:g}", sweep_grid(plan.points, **grid), tools_, grid)
    rows += eps_sweep(plan, grid)
    for n in plan.scaling:
        for m in plan.methods:
            repeats = 1 if n > plan.chunk else 3
            rows.append(
                throughput("sweep", n, plan.chunk, m, plan.scaling_rtol, repeats=repeats, **grid)
            )
    return rows


def against_peers(plan: Plan, case: str, points, tools_, grid: dict) -> list[h.Row]:
    """`tools_` on `points` (case `<N> points <case>`), the peers on an evenly spread subset of
    `plan.subset`, errors against Radau references there (`tools.ladder`)."""
    pick = sorted(set(np.linspace(0, len(points) - 1, plan.subset).astype(int).tolist()))
    h.log(f"sweep {case}: Radau references at {len(pick)} points")
    refs = [reference(points[i]) for i in pick]
    sizes = grid | {"reference": f"Radau rtol {REFERENCE_RTOL:g} on the peers' subset"}
    return tools.ladder(
        "sweep",
        f"{len(points)} points {case}",
        points,
        pick,
        refs,
        tools_,
        repeats=plan.repeats,
        peer_repeats=plan.peer_repeats,
        unit="points/s",
        sizes=sizes,
    )


def eps_sweep(plan: Plan, grid: dict) -> list[h.Row]:
    """`problems.eps_grid`: eps over three decades by c3, fsjax on every point against
    compiled LSODA on an evenly spread subset, at matched error on that subset."""
    grid = grid | {"eps": plan.eps_range}
    tools_ = [tools.fsjax_tool(m, plan.eps_rtols) for m in plan.methods]
    tools_ += tools.lsoda_tool(plan.peer_rtols)
    case = "eps=" + "..".join(f"{e:g}" for e in plan.eps_range)
    return against_peers(plan, case, eps_grid(plan.eps_points, **grid), tools_, grid)


def _peer_ratio(tool, **setting):
    return lambda r: (
        r.section == "sweep" and r.tool == tool and setting.items() <= r.setting.items()
    )


TARGETS = (
    h.Target(
        f"ODE sweep vs Radau ({tools.PYTHON_RHS})",
        "points/s at equal or better accuracy",
        _peer_ratio(f"Radau ({tools.PYTHON_RHS})"),
        150.0,
    ),
    h.Target(
        f"ODE sweep vs CVODE ({tools.PYTHON_RHS})",
        "points/s at equal or better accuracy",
        _peer_ratio(f"CVODE ({tools.PYTHON_RHS})"),
        1.0,
    ),
    h.Target(
        "ODE sweep vs compiled LSODA on the machine's cores",
        "points/s at equal or better accuracy",
        _peer_ratio("numbalsoda", cores=os.cpu_count() or 1),
        3.0,
    ),
    h.Target(
        "ODE sweep vs diffrax as written",
        "points/s at equal or better accuracy",
        _peer_ratio("diffrax Kvaerno5 as written"),
        10.0,
    ),
)
SECTION = h.Section("sweep", __doc__.split("\n\n")[0], run, Plan(), QUICK, TARGETS)
