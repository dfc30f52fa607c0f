r"""Newton's method for the stages of diffrax's implicit Runge-Kutta solvers, with the linear
systems solved by a step matrix (`fsjax._solve.step_matrix`).

diffrax solves each implicit stage for $f$ in $F(f) = f - v(t_i, y_p + d\,\mathrm{prod}(f, h),
\text{args}) = 0$ and passes the root finder the tuple
`(stage_index, d, v, prod, t_i, y_p, args, h)`. For an ODE term $\mathrm{prod}(f, h) = h f$, so
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
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PyTree, Scalar

from .linsolve import lu_factor, lu_solve
from .step_matrix import AbstractStepMatrix
from .structured import AutoStepMatrix


class _NewtonState(eqx.Module):
    f: PyTree[Array]
    diff: PyTree[Array]
    result: optx.RESULTS
    step: Scalar


def _stage_args(args):
    """The parts of diffrax's implicit-stage tuple, or None for any other `args`."""
    if not (isinstance(args, tuple) and len(args) == 8):
        return None
    _, diagonal, vf, prod, ti, yi_partial, model, control = args
    if not (callable(vf) and callable(prod)):
        return None
    if not (eqx.is_array(control) and jnp.shape(control) == ()):
        return None
    return diagonal, vf, prod, ti, yi_partial, model, control


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
    `step_matrix` when the problem is a diffrax implicit stage (module docstring), and by a
    dense Jacobian of `fn` otherwise. `rtol`, `atol` and `norm` mean what they mean for
    `optimistix.Newton`."""

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
        stage = _stage_args(args)
        if stage is None:
            diff = _dense_update(fn, y, args, fx)
        else:
            diagonal, vf, prod, ti, yi_partial, model, control = stage
            yi = jtu.tree_map(lambda p, q: p + diagonal * q, yi_partial, prod(y, control))
            factors = self.step_matrix.factor(vf, ti, yi, model, diagonal * control)
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
