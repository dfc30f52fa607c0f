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
    """`P matrix = L U` entry by entry: `lu[i][j]` holds the multiplier of L (unit diagonal)
    below the diagonal and U on and above it, `pivots[k]` the row exchanged with row k at
    elimination step k. Separate arrays, not one (n, n) array, so that under `vmap` every
    operation of the elimination and of the substitutions is elementwise over the batch: no
    gather, scatter or concatenation, and XLA fuses a whole solve into one loop."""

    lu: tuple[tuple[Float[Array, ""], ...], ...]
    pivots: tuple[Int[Array, ""], ...]


def unrolled_lu(matrix) -> UnrolledLU:
    """Gaussian elimination with partial pivoting (the first row of largest modulus, as
    `argmax`), written out at trace time (static size)."""
    n = matrix.shape[0]
    rows = [[matrix[i, j] for j in range(n)] for i in range(n)]
    pivots = []
    for k in range(n - 1):
        pivot, best = jnp.asarray(k), jnp.abs(rows[k][k])
        for i in range(k + 1, n):
            better = jnp.abs(rows[i][k]) > best
            pivot, best = jnp.where(better, i, pivot), jnp.where(better, jnp.abs(rows[i][k]), best)
        top = rows[k]
        for i in range(k + 1, n):  # exchange rows k and pivot
            rows[k] = [jnp.where(pivot == i, x, y) for x, y in zip(rows[i], rows[k], strict=True)]
            rows[i] = [jnp.where(pivot == i, y, x) for x, y in zip(rows[i], top, strict=True)]
        for i in range(k + 1, n):
            factor = rows[i][k] / rows[k][k]
            rest = zip(rows[i][k + 1 :], rows[k][k + 1 :], strict=True)
            rows[i] = [*rows[i][:k], factor, *(x - factor * y for x, y in rest)]
        pivots.append(pivot)
    return UnrolledLU(tuple(map(tuple, rows)), tuple(pivots))


def unrolled_lu_solve(factors: UnrolledLU, rhs: list) -> list:
    """Forward then back substitution on the entries of the right-hand side, updated column by
    column in the order elimination on the augmented matrix would, so that both round
    alike."""
    lu, x = factors.lu, list(rhs)
    n = len(x)
    for k, pivot in enumerate(factors.pivots):  # all exchanges first: L is the final one's
        top = x[k]
        for i in range(k + 1, n):
            x[k], x[i] = jnp.where(pivot == i, x[i], x[k]), jnp.where(pivot == i, top, x[i])
    for k in range(n - 1):
        for i in range(k + 1, n):
            x[i] = x[i] - lu[i][k] * x[k]
    for k in reversed(range(n)):
        for j in range(k + 1, n):
            x[k] = x[k] - lu[k][j] * x[j]
        x[k] = x[k] / lu[k][k]
    return x


def lu_factor(matrix):
    """The factorisation of a small dense matrix, once for several solves (`lu_solve`):
    unrolled elimination up to `UNROLL_MAX` rows (no LAPACK call per system, which dominates
    for the tiny systems sweeps vmap over), LAPACK's LU beyond."""
    return unrolled_lu(matrix) if matrix.shape[-1] <= UNROLL_MAX else jsl.lu_factor(matrix)


def lu_solve(factors, rhs):
    """`matrix^-1 rhs` from `lu_factor(matrix)`."""
    if isinstance(factors, UnrolledLU):
        return jnp.stack(unrolled_lu_solve(factors, list(rhs)))
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
