"""`ode`: single trajectories of the reduced ODE against compiled LSODA (numbalsoda, numba
right-hand side) and scipy Radau/BDF/LSODA and SUNDIALS CVODE (Python right-hand side) at
matched accuracy: one tanh particle over eps (the stiffness) and many particles at
eps = 1e-2 (`problems.tanh_particles`), every tool at a ladder of tolerances
(`tools.trajectory`)."""

from __future__ import annotations

import dataclasses

from . import _harness as h, tools
from .problems import tanh_particles


@dataclasses.dataclass(frozen=True)
class Plan(tools.Ladder):
    eps: tuple[float, ...] = (1.0, 1e-2, 1e-4, 1e-6)
    particles: tuple[int, ...] = (16, 64)
    particle_eps: float = 1e-2


QUICK = Plan(
    eps=(1.0,),
    particles=(),
    methods=("kvaerno5",),
    rtols=(1e-6,),
    peer_rtols=(1e-6,),
    repeats=2,
    peer_repeats=1,
)


def run(plan: Plan) -> list[h.Row]:
    rows = []
    for eps in plan.eps:
        rows += tools.trajectory("ode", f"m=1 eps={eps:g}", tanh_particles(1, eps), plan)
    for m in plan.particles:
        p = tanh_particles(m, plan.particle_eps)
        rows += tools.trajectory("ode", f"m={m} eps={plan.particle_eps:g}", p, plan)
    return rows


SECTION = h.Section("ode", __doc__.split("\n\n")[0], run, Plan(), QUICK)
