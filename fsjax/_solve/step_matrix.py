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
from jax.flatten_util import ravel_pytree

from .linsolve import lu_factor, lu_solve


class AbstractStepMatrix(eqx.Module):
    """Factorise $I - cJ(t, y)$ (`factor`) and solve with the factorisation (`solve`)."""

    @abc.abstractmethod
    def factor(self, vector_field, t, y, args, c):
        """A pytree holding the factorised step matrix at `(t, y)` for the scalar `c`."""

    @abc.abstractmethod
    def solve(self, state, b):
        """$x = M^{-1} b$ for a right-hand side `b` structured like the state."""


class DenseStepMatrix(AbstractStepMatrix):
    """The Jacobian by `jax.jacfwd`, factorised once per step by `linsolve.lu_factor`
    (unrolled elimination up to 8 unknowns, LAPACK's LU beyond); each solve substitutes."""

    def factor(self, vector_field, t, y, args, c):
        flat, unravel = ravel_pytree(y)
        jac = jax.jacfwd(lambda z: ravel_pytree(vector_field(t, unravel(z), args))[0])(flat)
        return lu_factor(jnp.eye(flat.shape[0], dtype=flat.dtype) - c * jac)

    def solve(self, state, b):
        flat, unravel = ravel_pytree(b)
        return unravel(lu_solve(state, flat))
