"""Integrating the reduced dynamics with diffrax.

`solve` is a pure function of arrays: jit it, vmap it over parameter points, differentiate it.
A failed solve does not raise: its `status` says why and its unreached values are NaN.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float, Int

from ._linsolve import SmallDense
from ._reduced import MeanField

SOLVERS = {
    "kvaerno5": diffrax.Kvaerno5,
    "kvaerno4": diffrax.Kvaerno4,
    "kvaerno3": diffrax.Kvaerno3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
}
IMPLICIT_SOLVERS = ("kvaerno5", "kvaerno4", "kvaerno3")

STATUS_SUCCESS = 0
STATUS_MAX_STEPS = 1
STATUS_FAILED = 2
STATUS_MEANINGS = {
    STATUS_SUCCESS: "success",
    STATUS_MAX_STEPS: "max_steps reached before t_final",
    STATUS_FAILED: "solver failure (step size collapse, non-finite state or nonlinear solve)",
}


class Trajectory(eqx.Module):
    """A solved trajectory on the save grid `ts` (NaN after a failure)."""

    ts: Float[Array, " T"]
    a: Float[Array, "T m"]
    s: Float[Array, "T m"]
    status: Int[Array, ""]
    num_steps: Int[Array, ""]


def save_times(t_first: float, t_final: float, n_save: int) -> np.ndarray:
    """Log-spaced save times from t_first to t_final inclusive."""
    return np.geomspace(t_first, t_final, n_save)


def status_code(result) -> Int[Array, ""]:
    """Map a diffrax result to fsjax's integer status (see `STATUS_MEANINGS`)."""
    return jnp.where(
        result == diffrax.RESULTS.successful,
        STATUS_SUCCESS,
        jnp.where(result == diffrax.RESULTS.max_steps_reached, STATUS_MAX_STEPS, STATUS_FAILED),
    ).astype(jnp.int32)


def make_solver(method: str, rtol: float, atol: float) -> diffrax.AbstractSolver:
    """A diffrax solver by name. Implicit ones get a full Newton root finder with tolerances a
    decade below the step controller's: diffrax's default chord iteration often fails to
    converge on this system and each failure rejects the step, which made Kvaerno5 take about
    ten times as many steps for the same accuracy (measured: eps = 0.05, t = 800, rtol 1e-8:
    2394 steps with chord, 182 with Newton). The Newton systems are solved by `SmallDense`,
    which halved the time per step of a vmapped 1000-point sweep against LAPACK LU."""
    try:
        cls = SOLVERS[method]
    except KeyError:
        raise ValueError(f"unknown solver {method!r}; allowed: {', '.join(SOLVERS)}") from None
    if method in IMPLICIT_SOLVERS:
        newton = optx.Newton(rtol=rtol * 0.1, atol=atol * 0.1, linear_solver=SmallDense())
        return cls(root_finder=newton)
    return cls()


@eqx.filter_jit
def solve(
    model: MeanField,
    a0: Float[ArrayLike, " m"],
    s0: Float[ArrayLike, " m"],
    ts: Float[ArrayLike, " T"],
    *,
    solver: diffrax.AbstractSolver,
    rtol: float,
    atol: float,
    max_steps: int = 200_000,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> Trajectory:
    """Integrate `model` from t = 0 with particles `(a0, s0)` and save at `ts`.

    The state is `(a, psi)` with `s = tanh(psi)` (see `MeanField`); tolerances apply to both,
    so `atol` on psi bounds the relative error of 1 - |s| near the boundary."""
    a0 = jnp.asarray(a0, dtype=float)
    psi0 = jnp.arctanh(jnp.asarray(s0, dtype=float))
    ts = jnp.asarray(ts, dtype=float)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(model.vector_field),
        solver,
        t0=0.0,
        t1=ts[-1],
        dt0=None,
        y0=(a0, psi0),
        saveat=diffrax.SaveAt(ts=ts),
        # Steps land on the save times: filling them from Kvaerno5's low-order dense output
        # instead made the saved values 10-100x less accurate than the steps themselves.
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, step_ts=ts),
        max_steps=max_steps,
        adjoint=adjoint if adjoint is not None else diffrax.RecursiveCheckpointAdjoint(),
        throw=False,
    )
    a, psi = sol.ys
    finite = jnp.isfinite(a) & jnp.isfinite(psi)
    return Trajectory(
        ts=ts,
        a=jnp.where(finite, a, jnp.nan),
        s=jnp.where(finite, jnp.tanh(psi), jnp.nan),
        status=status_code(sol.result),
        num_steps=sol.stats["num_steps"],
    )
