r"""Step matrices that use the particle structure of the mean-field Jacobian.

Every particle of `MeanField` couples to the others only through the L + 1 residuals, so its
Jacobian is $J = D + U W^\top$ with $D$ block diagonal (one 2x2 block per particle) and
$U, W$ of shape (2m, L + 1) (`MeanField.jacobian_parts` derives the parts). With
$A = I - cD$ and the capacitance matrix $C = I - c\,W^\top A^{-1} U$, the Woodbury identity

$$M^{-1} = (A - cUW^\top)^{-1} = A^{-1} + c\,A^{-1} U C^{-1} W^\top A^{-1}$$

solves $M x = b$ in $O(mL^2)$ time to factorise and $O(mL)$ to solve, in $O(mL)$ memory,
where the dense route takes $O(m^3)$ and $O(m^2)$.

Conditioning. Near $|s_i| = 1$ the factors $\sigma_i = 1 - s_i^2$ shrink the $\psi_i$ column of
$J$ towards zero; nothing here divides by them and $\sigma_i$ is evaluated from $\psi_i$, so
these columns keep their relative accuracy and $A_i$ tends to a unit lower-triangular block.
The hazard is elsewhere: $D_i$ is a saddle (its determinant,
$-\lambda_a\lambda_w\sigma_i (\sum_k k\mu_k s_i^{k-1} r_k)^2$, is never positive), so for every
particle some $c > 0$ makes $A_i$ singular although $M$ is not, the coupling through the
residuals being what stabilises the flow. Woodbury's error grows like $\|A^{-1}\|$, and so
like the inverse distance of $c$ to the nearest such value, which among thousands of particles
is often small. The $K$ most nearly singular blocks are therefore deflated into the low-rank
part: with $P$ selecting their particles, $M = \tilde A - c\,[U, P D_P]\,[W, P]^\top$ where
$\tilde A$ is $A$ with those blocks set to the identity, an exact rewriting that costs $2K$
more capacitance rows and leaves the $(K+1)$-th worst block as the worst one inverted. With a
block made exactly singular the backward error stays at rounding level, where plain Woodbury's
is of order one (tests/test_structured.py).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, Int

from .linsolve import eliminate
from .step_matrix import UNROLL_MAX, AbstractStepMatrix, DenseStepMatrix

# Blocks deflated into the capacitance matrix. Two cover a coincidence of two particles near
# singular at one c; a third would cost (L + 7)^2 / (L + 5)^2 more per factorisation.
DEFLATED = 2


def capacitance_size(orders: int, particles: int) -> int:
    """Rows of the capacitance matrix: one per order plus two per deflated block."""
    return orders + 2 * min(DEFLATED, particles)


def _factor_small(matrix):
    """The matrix itself for unrolled elimination, else its LU factorisation."""
    return matrix if matrix.shape[-1] <= UNROLL_MAX else jsl.lu_factor(matrix)


def _solve_small(state, rhs):
    return jsl.lu_solve(state, rhs) if isinstance(state, tuple) else eliminate(state, rhs)


def _apply_blocks(blocks, x):
    """Per-particle 2x2 products: (m, 2, 2) @ (m, 2, ...)."""
    return jnp.einsum("mij,mj...->mi...", blocks, x)


class WoodburyFactors(eqx.Module):
    """The factorised step matrix: $\\tilde A^{-1}$, $W$, $\\tilde A^{-1} U$, the deflated
    particles `worst` with their blocks $D_P$, and the factorised capacitance matrix."""

    inverse_blocks: Float[Array, "m 2 2"]
    w: Float[Array, "m 2 n"]
    inverse_u: Float[Array, "m 2 n"]
    worst: Int[Array, " K"]
    worst_blocks: Float[Array, "K 2 2"]
    capacitance: Array | tuple[Array, Array]
    c: Float[Array, ""]


class WoodburyStepMatrix(AbstractStepMatrix):
    """$M = I - cJ$ by the Woodbury identity, for a model offering `jacobian_parts(a, psi)`
    (`MeanField`) passed as the diffrax `args`; the state is `y = (a, psi)`. The 2x2 blocks of
    $A = I - cD$ are inverted in closed form, the `DEFLATED` most nearly singular of them moved
    into the low-rank part (module docstring), and the capacitance matrix factorised by
    unrolled elimination (up to 8 rows) or LU."""

    def factor(self, vector_field, t, y, args, c):
        del vector_field, t  # the model's parts are the Jacobian of its vector field
        blocks, u, w = args.jacobian_parts(*y)
        m, n = u.shape[0], u.shape[-1]
        c = jnp.asarray(c, dtype=u.dtype)
        eye = jnp.eye(2, dtype=u.dtype)
        a = eye - c * blocks
        det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
        # |det| / ||A_i||_F^2 is at most 1/2 and scales like the inverse condition number.
        _, worst = jax.lax.top_k(-jnp.abs(det) / jnp.sum(a**2, axis=(1, 2)), min(DEFLATED, m))
        kept = jnp.ones(m, dtype=bool).at[worst].set(False)
        adjugate = jnp.stack(
            [
                jnp.stack([a[:, 1, 1], -a[:, 0, 1]], axis=-1),
                jnp.stack([-a[:, 1, 0], a[:, 0, 0]], axis=-1),
            ],
            axis=-2,
        )
        # The deflated blocks become the identity; a safe determinant keeps their (unused)
        # inverse finite, so that gradients through the `where` stay finite too.
        inverse = adjugate / jnp.where(kept, det, 1.0)[:, None, None]
        inverse_blocks = jnp.where(kept[:, None, None], inverse, eye)
        inverse_u = _apply_blocks(inverse_blocks, u)
        worst_blocks = blocks[worst]
        k = worst.shape[0]
        # C = I - c [[W^T A~^-1 U, W_P^T D_P], [U_P, blockdiag D_P]] (A~ = I on P).
        top = jnp.concatenate(
            [
                jnp.einsum("mik,mil->kl", w, inverse_u),
                jnp.einsum("jik,jib->kjb", w[worst], worst_blocks).reshape(n, 2 * k),
            ],
            axis=1,
        )
        bottom = jnp.concatenate(
            [
                u[worst].reshape(2 * k, n),
                jnp.einsum("jl,jab->jalb", jnp.eye(k, dtype=u.dtype), worst_blocks).reshape(
                    2 * k, 2 * k
                ),
            ],
            axis=1,
        )
        capacitance = jnp.eye(n + 2 * k, dtype=u.dtype) - c * jnp.concatenate([top, bottom])
        return WoodburyFactors(
            inverse_blocks, w, inverse_u, worst, worst_blocks, _factor_small(capacitance), c
        )

    def solve(self, state: WoodburyFactors, b):
        """$x = \\tilde A^{-1} b + c\\,\\tilde A^{-1} [U, P D_P]\\, C^{-1} [W, P]^\\top
        \\tilde A^{-1} b$, in $O(mL)$."""
        y = _apply_blocks(state.inverse_blocks, jnp.stack(b, axis=-1))
        n = state.w.shape[-1]
        z = jnp.concatenate([jnp.einsum("mik,mi->k", state.w, y), y[state.worst].reshape(-1)])
        z = _solve_small(state.capacitance, z)
        x = y + state.c * state.inverse_u @ z[:n]
        deflated = jnp.einsum("jab,jb->ja", state.worst_blocks, z[n:].reshape(-1, 2))
        x = x.at[state.worst].add(state.c * deflated)
        return x[:, 0], x[:, 1]


class AutoStepMatrix(AbstractStepMatrix):
    """The step matrix suited to the system, chosen at trace time: `DenseStepMatrix` for up to
    8 unknowns (unrolled elimination); `WoodburyStepMatrix` when `args` offers
    `jacobian_parts` (`MeanField`) and the capacitance matrix is smaller than the 2m
    unknowns; `DenseStepMatrix` (LU) otherwise (the finite-size corrections, few particles)."""

    def choose(self, y, args) -> AbstractStepMatrix:
        size = ravel_pytree(y)[0].shape[0]
        if size > UNROLL_MAX and hasattr(args, "jacobian_parts"):
            if capacitance_size(args.orders, size // 2) < size:
                return WoodburyStepMatrix()
        return DenseStepMatrix()

    def factor(self, vector_field, t, y, args, c):
        return self.choose(y, args).factor(vector_field, t, y, args, c)

    def solve(self, state, b):
        if isinstance(state, WoodburyFactors):
            return WoodburyStepMatrix().solve(state, b)
        return DenseStepMatrix().solve(state, b)
