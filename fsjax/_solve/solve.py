"""Integrating the reduced dynamics with diffrax.

`solve` is a pure function of arrays: jit it, vmap it over parameter points, differentiate it.
A failed solve does not raise: its `status` says why and its unreached values are NaN.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._results import RESULTS
from .base import AbstractDenseOutputSolver, AbstractSystem


class Trajectory(eqx.Module):
    """A solved trajectory on the save grid `ts` (NaN after a failure); `more` holds the
    saved coordinates beyond `(a, psi)` of a system that has them (`initial_state`)."""

    ts: Float[Array, " T"]
    a: Float[Array, "T m"]
    s: Float[Array, "T m"]
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    more: tuple[Array, ...] = ()


def save_times(t_first: float, t_final: float, n_save: int) -> np.ndarray:
    """Log-spaced save times from t_first to t_final inclusive."""
    return np.geomspace(t_first, t_final, n_save)


def status_code(result) -> Int[Array, ""]:
    """Map a diffrax result to fsjax's integer status (`fsjax.RESULTS`): success, max_steps
    reached, or any other failure."""
    return jnp.where(
        result == diffrax.RESULTS.successful,
        RESULTS.successful,
        jnp.where(
            result == diffrax.RESULTS.max_steps_reached,
            RESULTS.max_steps_reached,
            RESULTS.solver_failed,
        ),
    ).astype(jnp.int32)


def interpolates_save_times(solver: diffrax.AbstractSolver) -> bool:
    """Whether `solve` fills the save times from `solver`'s dense output rather than stepping
    onto them: an `AbstractDenseOutputSolver` declaring `accurate_dense_output` (the Rosenbrock
    methods do). diffrax's own solvers declare nothing and step onto the save times:
    Kvaerno5's third-order dense output made saved values 100-4000x less accurate than its
    steps, while the Rosenbrock methods' stiffly accurate one stays within 1.5-5x of their
    steps (2-D sweep, rtol 1e-6 to 1e-8) at 27-50% fewer steps."""
    return isinstance(solver, AbstractDenseOutputSolver) and solver.accurate_dense_output


def _vector_field(t, y, model: AbstractSystem):
    return model.vector_field(t, y, None)


# The integrated system: the model travels as diffrax's `args`.
TERM = diffrax.ODETerm(_vector_field)
# The first step tried. `diffeqsolve` wraps its terms, so that its initial-step heuristic sees
# no `ODETerm` and always tried 0.01; it is given explicitly so that every loop that steps the
# reduced dynamics (`fsjax._solve.lanes`) starts alike.
FIRST_STEP = 0.01


def controller(rtol: float, atol: float, step_ts=None) -> diffrax.AbstractStepSizeController:
    """The step-size controller of every reduced solve (clipped onto `step_ts` when given)."""
    return diffrax.PIDController(rtol=rtol, atol=atol, step_ts=step_ts)


def trajectory(ts, ys, status, num_steps) -> Trajectory:
    """The `Trajectory` of saved states `ys = (a, psi, *more)` at `ts`, NaN where not finite
    (after a failure)."""
    a, psi, *more = ys
    finite = jnp.isfinite(a) & jnp.isfinite(psi)
    return Trajectory(
        ts=ts,
        a=jnp.where(finite, a, jnp.nan),
        s=jnp.where(finite, jnp.tanh(psi), jnp.nan),
        status=status,
        num_steps=num_steps,
        more=tuple(jnp.where(jnp.all(finite, -1, keepdims=True), x, jnp.nan) for x in more),
    )


def integrate(
    model: AbstractSystem,
    a0: Float[ArrayLike, " m"],
    s0: Float[ArrayLike, " m"],
    *,
    t1,
    saveat: diffrax.SaveAt,
    solver: diffrax.AbstractSolver,
    rtol: float,
    atol: float,
    max_steps: int,
    adjoint: diffrax.AbstractAdjoint | None = None,
    step_ts=None,
    event: diffrax.Event | None = None,
) -> diffrax.Solution:
    """The one `diffrax.diffeqsolve` call behind `solve` and `onset_time`: from t = 0 at
    particles `(a0, s0)` in the integrated coordinates `(a, psi)`, adaptive steps, and no
    exception on failure (the solution's `result` says what happened). The model travels as
    diffrax's `args`, so that step matrices can use its structure
    (`AbstractSystem.jacobian_parts`)."""
    return diffrax.diffeqsolve(
        TERM,
        solver,
        t0=0.0,
        t1=t1,
        dt0=FIRST_STEP,
        y0=model.initial_state(a0, s0),
        args=model,
        saveat=saveat,
        stepsize_controller=controller(rtol, atol, step_ts),
        event=event,
        max_steps=max_steps,
        adjoint=adjoint if adjoint is not None else diffrax.RecursiveCheckpointAdjoint(),
        throw=False,
    )


@eqx.filter_jit
def solve(
    model: AbstractSystem,
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
    ts = jnp.asarray(ts, dtype=float)
    sol = integrate(
        model,
        a0,
        s0,
        t1=ts[-1],
        saveat=diffrax.SaveAt(ts=ts),
        solver=solver,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        adjoint=adjoint,
        step_ts=None if interpolates_save_times(solver) else ts,
    )
    return trajectory(ts, sol.ys, status_code(sol.result), sol.stats["num_steps"])
