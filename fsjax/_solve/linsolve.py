"""A linear solver for the small dense Jacobians of the implicit ODE steps.

Each Newton iteration of an implicit step solves a (2m x 2m) system. For the few-particle
systems that sweeps vmap over, a LAPACK call per system costs far more than the arithmetic;
Gaussian elimination written out at trace time runs as plain vectorised array code instead.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import lineax as lx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, Int

# Above this size the unrolled elimination's trace grows quadratically; LAPACK wins there.
UNROLL_MAX = 8


class UnrolledLU(eqx.Module):
    """`matrix[perm] = L U` with the multipliers of L (unit diagonal) below the diagonal of
    `lu` and U on and above it."""

    lu: Float[Array, "n n"]
    perm: Int[Array, " n"]


def unrolled_lu(matrix) -> UnrolledLU:
    """Gaussian elimination with partial pivoting, written out at trace time (static size)."""
    n = matrix.shape[0]
    rows = jnp.arange(n)
    perm = rows
    for k in range(n - 1):
        pivot = k + jnp.argmax(jnp.abs(matrix[k:, k]))
        swap = jnp.where(rows == k, pivot, jnp.where(rows == pivot, k, rows))
        matrix, perm = matrix[swap], perm[swap]
        factors = matrix[k + 1 :, k] / matrix[k, k]
        matrix = matrix.at[k + 1 :, k + 1 :].add(-factors[:, None] * matrix[k, k + 1 :])
        matrix = matrix.at[k + 1 :, k].set(factors)
    return UnrolledLU(matrix, perm)


def unrolled_lu_solve(factors: UnrolledLU, rhs):
    """Forward then back substitution, the right-hand side updated column by column in the
    order elimination on the augmented matrix would, so that both round alike."""
    lu, n = factors.lu, rhs.shape[0]
    x = rhs[factors.perm]
    for k in range(n - 1):
        x = x.at[k + 1 :].add(-lu[k + 1 :, k] * x[k])
    for k in reversed(range(n)):
        x = x.at[k].set((x[k] - lu[k, k + 1 :] @ x[k + 1 :]) / lu[k, k])
    return x


def lu_factor(matrix):
    """The factorisation of a small dense matrix, once for several solves (`lu_solve`):
    unrolled elimination up to `UNROLL_MAX` rows (no LAPACK call per system, which dominates
    for the tiny systems sweeps vmap over), LAPACK's LU beyond."""
    return unrolled_lu(matrix) if matrix.shape[-1] <= UNROLL_MAX else jsl.lu_factor(matrix)


def lu_solve(factors, rhs):
    """`matrix^-1 rhs` from `lu_factor(matrix)`."""
    if isinstance(factors, UnrolledLU):
        return unrolled_lu_solve(factors, rhs)
    return jsl.lu_solve(factors, rhs)


class SmallDense(lx.AbstractLinearSolver):
    """Dense solve for square operators whose input and output share one structure:
    `lu_factor` then `lu_solve` (unrolled elimination up to 8 unknowns, LAPACK beyond)."""

    def init(self, operator, options):
        del options
        if operator.in_structure() != operator.out_structure():
            raise ValueError("SmallDense needs a square operator with one input/output structure")
        return operator.as_matrix()

    def compute(self, state, vector, options):
        del options
        flat, unravel = ravel_pytree(vector)
        return unravel(lu_solve(lu_factor(state), flat)), lx.RESULTS.successful, {}

    def transpose(self, state, options):
        return state.T, options

    def conj(self, state, options):
        return state.conj(), options

    def assume_full_rank(self):
        return True
