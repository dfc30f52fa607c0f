"""Solver settings: the integrator and its tolerances, built once from a `solver:` section.

Every kind that solves the reduced dynamics goes through `SolverSettings.from_config`, so the
config's `method`, `rtol`, `atol` and `max_steps` are read in one place.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .newton import StepMatrixNewton
from .rosenbrock import Rodas4, Rodas5P
from .solve import Trajectory, save_times, solve

SOLVERS = {
    "kvaerno5": diffrax.Kvaerno5,
    "kvaerno4": diffrax.Kvaerno4,
    "kvaerno3": diffrax.Kvaerno3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "rodas5p": Rodas5P,
    "rodas4": Rodas4,
}
IMPLICIT_SOLVERS = ("kvaerno5", "kvaerno4", "kvaerno3")


def make_solver(method: str, rtol: float, atol: float) -> diffrax.AbstractSolver:
    """A diffrax solver by name. Implicit ones get a full Newton root finder with tolerances a
    decade below the step controller's: diffrax's default chord iteration often fails to
    converge on this system and each failure rejects the step, which made Kvaerno5 take about
    ten times as many steps for the same accuracy (measured: eps = 0.05, t = 800, rtol 1e-8:
    2394 steps with chord, 182 with Newton). The Newton systems go through the step-matrix
    solvers (`StepMatrixNewton`): unrolled elimination for the few-particle systems sweeps vmap
    over (it halved the time per step of a vmapped 1000-point sweep against LAPACK LU), the
    Woodbury solve for many particles (m = 64: 0.11 s a compiled solve, `python -m
    experiments.method_choice particles`; the dense Newton took about 4 s, same steps)."""
    try:
        cls = SOLVERS[method]
    except KeyError:
        raise ValueError(f"unknown solver {method!r}; allowed: {', '.join(SOLVERS)}") from None
    if method in IMPLICIT_SOLVERS:
        # The same Newton iteration with I - cJ factorised by `AutoStepMatrix` (Woodbury for a
        # MeanField): identical steps, and at m = 64 (relu, eps = 1e-3, t = 1e5, rtol 1e-8)
        # 0.16 s per solve against 4.3 s for dense systems.
        return cls(root_finder=StepMatrixNewton(rtol=rtol * 0.1, atol=atol * 0.1))
    return cls()


class SolverSettings(eqx.Module):
    """An integrator with its tolerances, step budget and save grid. `options` are the keyword
    arguments `fsjax.solve` and `fsjax.onset_time` take."""

    solver: diffrax.AbstractSolver
    ts: Float[Array, " T"]
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    @classmethod
    def from_config(cls, cfg) -> SolverSettings:
        """From a `SolverConfig`: its method, tolerances, step budget and log-spaced grid."""
        return cls(
            solver=make_solver(cfg.method, cfg.rtol, cfg.atol),
            ts=jnp.asarray(save_times(cfg.t_first, cfg.t_final, cfg.n_save)),
            rtol=cfg.rtol,
            atol=cfg.atol,
            max_steps=cfg.max_steps,
        )

    @property
    def t_final(self) -> Float[Array, ""]:
        return self.ts[-1]

    @property
    def options(self) -> dict:
        return dict(solver=self.solver, rtol=self.rtol, atol=self.atol, max_steps=self.max_steps)

    def solve(self, model, a0, s0, ts=None) -> Trajectory:
        """`fsjax.solve` on the config's grid (or on `ts`)."""
        return solve(model, a0, s0, self.ts if ts is None else ts, **self.options)
