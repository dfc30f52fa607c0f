r"""Linear algebra of the linearly implicit steps: factorise the step matrix
$M = I - c\,J$ once per step, with $J = \partial f/\partial y$ the Jacobian of the vector field
at the step's start and $c = h\gamma$, then solve $M x = b$ for every stage.

A step-matrix solver sees the vector field, the state and the diffrax `args`; fsjax's solves
pass the reduced model as `args` (`fsjax._solve.solve.integrate`), so a solver may use the
model's structure. `DenseStepMatrix` needs none: it forms $J$ by forward-mode differentiation.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax.flatten_util import ravel_pytree

from .linsolve import eliminate

# Above this many unknowns the unrolled elimination's trace grows too long; LU wins there.
UNROLL_MAX = 8


class AbstractStepMatrix(eqx.Module):
    """Factorise $I - cJ(t, y)$ (`factor`) and solve with the factorisation (`solve`)."""

    @abc.abstractmethod
    def factor(self, vector_field, t, y, args, c):
        """A pytree holding the factorised step matrix at `(t, y)` for the scalar `c`."""

    @abc.abstractmethod
    def solve(self, state, b):
        """$x = M^{-1} b$ for a right-hand side `b` structured like the state."""


class DenseStepMatrix(AbstractStepMatrix):
    """The Jacobian by `jax.jacfwd`, then unrolled Gaussian elimination for up to 8 unknowns
    (no LAPACK call per system, which dominates for the tiny systems sweeps vmap over) and an
    LU factorisation beyond."""

    def factor(self, vector_field, t, y, args, c):
        flat, unravel = ravel_pytree(y)
        jac = jax.jacfwd(lambda z: ravel_pytree(vector_field(t, unravel(z), args))[0])(flat)
        matrix = jnp.eye(flat.shape[0], dtype=flat.dtype) - c * jac
        if flat.shape[0] <= UNROLL_MAX:
            return matrix
        return jsl.lu_factor(matrix)

    def solve(self, state, b):
        flat, unravel = ravel_pytree(b)
        if isinstance(state, tuple):
            return unravel(jsl.lu_solve(state, flat))
        return unravel(eliminate(state, flat))
