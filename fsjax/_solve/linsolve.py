"""A linear solver for the small dense Jacobians of the implicit ODE steps.

Each Newton iteration of an implicit step solves a (2m x 2m) system. For the few-particle
systems that sweeps vmap over, a LAPACK call per system costs far more than the arithmetic;
Gaussian elimination written out at trace time runs as plain vectorised array code instead.
"""

from __future__ import annotations

import jax.numpy as jnp
import lineax as lx
from jax.flatten_util import ravel_pytree

# Above this size the unrolled elimination's trace grows quadratically; LAPACK wins there.
_UNROLL_MAX = 8


def eliminate(matrix, rhs):
    """Solve matrix @ x = rhs by Gaussian elimination with partial pivoting (static size)."""
    n = rhs.shape[0]
    aug = jnp.concatenate([matrix, rhs[:, None]], axis=1)
    rows = jnp.arange(n)
    for k in range(n - 1):
        pivot = k + jnp.argmax(jnp.abs(aug[k:, k]))
        aug = aug[jnp.where(rows == k, pivot, jnp.where(rows == pivot, k, rows))]
        factors = aug[k + 1 :, k] / aug[k, k]
        aug = aug.at[k + 1 :].add(-factors[:, None] * aug[k])
    x = jnp.zeros_like(rhs)
    for k in reversed(range(n)):
        x = x.at[k].set((aug[k, n] - aug[k, k + 1 : n] @ x[k + 1 :]) / aug[k, k])
    return x


class SmallDense(lx.AbstractLinearSolver):
    """Dense solve for square operators whose input and output share one structure:
    unrolled elimination up to 8 unknowns, `jnp.linalg.solve` beyond."""

    def init(self, operator, options):
        del options
        if operator.in_structure() != operator.out_structure():
            raise ValueError("SmallDense needs a square operator with one input/output structure")
        return operator.as_matrix()

    def compute(self, state, vector, options):
        del options
        flat, unravel = ravel_pytree(vector)
        if flat.shape[0] <= _UNROLL_MAX:
            solution = eliminate(state, flat)
        else:
            solution = jnp.linalg.solve(state, flat)
        return unravel(solution), lx.RESULTS.successful, {}

    def transpose(self, state, options):
        return state.T, options

    def conj(self, state, options):
        return state.conj(), options

    def assume_full_rank(self):
        return True
