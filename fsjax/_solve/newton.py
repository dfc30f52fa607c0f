r"""Newton's method for the stages of diffrax's implicit Runge-Kutta solvers, with the linear
systems solved by a step matrix (`fsjax._solve.step_matrix`).

diffrax solves each implicit stage for $f$ in $F(f) = f - v(t_i, y_p + d\,\mathrm{prod}(f, h),
\text{args}) = 0$ and passes the root finder the tuple
`(stage_index, d, v, prod, t_i, y_p, args, h)` (`ImplicitStage`; diffrax 0.7's
`_implicit_relation_f`). For an ODE term $\mathrm{prod}(f, h) = h f$, so
$\partial F/\partial f = I - cJ(t_i, y_i)$ with $c = d h$ and $y_i = y_p + c f$: the step
matrix of the Rosenbrock methods, which `AutoStepMatrix` factorises in $O(mL^2)$ for a
`MeanField` where the dense route takes $O(m^3)$.

The iteration is `optimistix.Newton`'s: the Jacobian is re-evaluated at every iterate, and the
solve stops once the update is within `atol + rtol |f|` and the residual within `atol` (max
norm), both at the iterate before the update. A non-finite update ends the solve with
`nonlinear_divergence`, so that diffrax rejects the step. diffrax also calls `init` to
precompute a Jacobian and hands the result back as `options["init_state"]`; as for
`optimistix.Newton`, nothing is precomputed and that option is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PyTree, Scalar

from .base import AbstractSystem
from .linsolve import lu_factor, lu_solve
from .step_matrix import AbstractStepMatrix
from .structured import AutoStepMatrix


class _NewtonState(eqx.Module):
    f: PyTree[Array]
    diff: PyTree[Array]
    result: optx.RESULTS
    step: Scalar


class ImplicitStage(NamedTuple):
    """The arguments diffrax hands the root finder of an implicit Runge-Kutta stage, in its
    order (module docstring); `args` is the system being integrated."""

    stage_index: Any
    diagonal: Any
    vf: Callable
    prod: Callable
    ti: Any
    yi_partial: PyTree[Array]
    args: Any
    control: Any


def _is_system(x) -> bool:
    return isinstance(x, AbstractSystem)


def implicit_stage(args) -> ImplicitStage | None:
    """`args` as diffrax's implicit-stage tuple, or None for a root find that is not one and
    holds no `AbstractSystem`. A system anywhere but in the stage's `args` slot raises: diffrax
    has changed the arguments of its stages, and a dense solve in their place would cost
    O(m^3) a Newton step where the step matrix costs O(mL^2)."""
    holds_system = any(map(_is_system, jtu.tree_leaves(args, is_leaf=_is_system)))
    if isinstance(args, tuple) and len(args) == len(ImplicitStage._fields):
        stage = ImplicitStage(*args)
        if (
            callable(stage.vf)
            and callable(stage.prod)
            and eqx.is_array(stage.control)
            and jnp.shape(stage.control) == ()
            and (_is_system(stage.args) or not holds_system)
        ):
            return stage
    if holds_system:
        raise RuntimeError(
            "StepMatrixNewton: a root find of an fsjax system with arguments other than "
            "diffrax 0.7's implicit-stage tuple (stage_index, diagonal, vf, prod, ti, "
            "yi_partial, args, control); the installed diffrax passes them differently"
        )
    return None


def _dense_update(fn, y, args, fx):
    """The Newton update by a dense Jacobian of `fn`, for callers other than diffrax."""
    flat, unravel = ravel_pytree(y)
    flat_f = ravel_pytree(fx)[0]
    if flat_f.shape != flat.shape:
        raise ValueError("StepMatrixNewton needs fn(y) structured like y (a square system)")
    jac = jax.jacfwd(lambda z: ravel_pytree(fn(unravel(z), args)[0])[0])(flat)
    return unravel(lu_solve(lu_factor(jac), flat_f))


class StepMatrixNewton(optx.AbstractRootFinder):
    """Full Newton iteration whose linear systems $(I - cJ)\\,\\delta = F$ are solved by
    `step_matrix` when the problem is a diffrax implicit stage (`implicit_stage`), and by a
    dense Jacobian of `fn` when it holds no `AbstractSystem`. `rtol`, `atol` and `norm` mean
    what they mean for `optimistix.Newton`."""

    rtol: float
    atol: float
    norm: Callable[[PyTree], Scalar] = optx.max_norm
    step_matrix: AbstractStepMatrix = AutoStepMatrix()

    def init(self, fn, y, args, options: dict[str, Any], f_struct, aux_struct, tags):
        del fn, args, options, aux_struct, tags
        return _NewtonState(
            f=jtu.tree_map(lambda s: jnp.full(s.shape, jnp.inf, s.dtype), f_struct),
            diff=jtu.tree_map(lambda x: jnp.full_like(x, jnp.inf), y),
            result=optx.RESULTS.successful,
            step=jnp.array(0),
        )

    def step(self, fn, y, args, options, state: _NewtonState, tags):
        del options, tags
        fx, aux = fn(y, args)
        stage = implicit_stage(args)
        if stage is None:
            diff = _dense_update(fn, y, args, fx)
        else:
            c = stage.diagonal * stage.control
            prod = stage.prod(y, stage.control)
            yi = jtu.tree_map(lambda p, q: p + stage.diagonal * q, stage.yi_partial, prod)
            factors = self.step_matrix.factor(stage.vf, stage.ti, yi, stage.args, c)
            diff = self.step_matrix.solve(factors, fx)
        new_y = jtu.tree_map(lambda a, b: a - b, y, diff)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(d)) for d in jtu.tree_leaves(diff)]))
        result = optx.RESULTS.where(
            finite, optx.RESULTS.successful, optx.RESULTS.nonlinear_divergence
        )
        return new_y, _NewtonState(f=fx, diff=diff, result=result, step=state.step + 1), aux

    def terminate(self, fn, y, args, options, state: _NewtonState, tags):
        del fn, args, options, tags
        y_scale = jtu.tree_map(lambda x: self.atol + self.rtol * jnp.abs(x), y)
        small_update = self.norm(jtu.tree_map(lambda d, s: jnp.abs(d) / s, state.diff, y_scale))
        small_residual = self.norm(jtu.tree_map(lambda f: jnp.abs(f) / self.atol, state.f))
        failed = state.result != optx.RESULTS.successful
        return failed | ((small_update < 1) & (small_residual < 1)), state.result

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {}
