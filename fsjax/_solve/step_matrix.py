r"""Linear algebra of the linearly implicit steps: factorise the step matrix
$M = I - c\,J$ once per step, with $J = \partial f/\partial y$ the Jacobian of the vector field
at the step's start and $c = h\gamma$, then solve $M x = b$ for every stage.

A step-matrix solver sees the vector field, the state and the diffrax `args`; fsjax's solves
pass the reduced model as `args` (`fsjax._solve.solve.integrate`), so a solver may use the
model's structure. `DenseStepMatrix` needs none: it forms $J$ by forward-mode differentiation
where the system gives no `jacobian_parts`.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.flatten_util import ravel_pytree

from .base import AbstractSystem
from .linsolve import UNROLL_MAX, UnrolledLU, lu_factor, lu_solve, unrolled_lu_solve


class AbstractStepMatrix(eqx.Module):
    """Factorise $I - cJ(t, y)$ (`factor`) and solve with the factorisation (`solve`)."""

    @abc.abstractmethod
    def factor(self, vector_field, t, y, args, c):
        """A pytree holding the factorised step matrix at `(t, y)` for the scalar `c`."""

    @abc.abstractmethod
    def solve(self, state, b):
        """$x = M^{-1} b$ for a right-hand side `b` structured like the state."""


def dense_jacobian(blocks, u, w):
    """$J = D + U W^\top$ as a (2m, 2m) matrix in the order of `ravel_pytree((a, psi))`, from
    `AbstractSystem.jacobian_parts`."""
    m = blocks.shape[-1]
    u, w = u.reshape(2 * m, -1), w.reshape(2 * m, -1)
    if 2 * m <= UNROLL_MAX:  # a fused reduction: under `vmap` a product is a batched one
        low_rank = jnp.sum(u[:, None, :] * w[None, :, :], axis=-1)
    else:
        low_rank = u @ w.T
    diagonal = jnp.where(jnp.eye(m, dtype=bool), blocks[..., None], 0.0)  # (r, q, i, j)
    return low_rank + jnp.moveaxis(diagonal, 2, 1).reshape(2 * m, 2 * m)


class DenseStepMatrix(AbstractStepMatrix):
    """The Jacobian in closed form from the system's `jacobian_parts` where `args` gives them
    (`MeanField`), else by `jax.jacfwd`; factorised once per step by `linsolve.lu_factor`
    (unrolled elimination up to 8 unknowns, LAPACK's LU beyond). Each solve substitutes; an
    unrolled one entry by entry on the state's leaves, without joining them into one vector."""

    def factor(self, vector_field, t, y, args, c):
        flat, unravel = ravel_pytree(y)
        parts = args.jacobian_parts(*y) if isinstance(args, AbstractSystem) else None
        if parts is not None:
            jac = dense_jacobian(*parts)
        else:
            jac = jax.jacfwd(lambda z: ravel_pytree(vector_field(t, unravel(z), args))[0])(flat)
        return lu_factor(jnp.eye(flat.shape[0], dtype=flat.dtype) - c * jac)

    def solve(self, state, b):
        if not isinstance(state, UnrolledLU):
            flat, unravel = ravel_pytree(b)
            return unravel(lu_solve(state, flat))
        leaves, treedef = jtu.tree_flatten(b)
        x = unrolled_lu_solve(state, [e for leaf in leaves for e in leaf.reshape(-1)])
        out, start = [], 0
        for leaf in leaves:
            out.append(jnp.stack(x[start : start + leaf.size]).reshape(leaf.shape))
            start += leaf.size
        return jtu.tree_unflatten(treedef, out)
