r"""Step matrices that use the particle structure of the mean-field Jacobian.

Every particle of `MeanField` couples to the others only through the L + 1 residuals, so its
Jacobian is $J = D + U W^\top$ with $D$ block diagonal (one 2x2 block per particle) and
$U, W$ of shape (2m, L + 1) (`AbstractSystem.jacobian_parts`, derived by
`MeanField.jacobian_parts`). With
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
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .base import AbstractSystem
from .linsolve import UNROLL_MAX, UnrolledLU, lu_factor, lu_solve
from .step_matrix import AbstractStepMatrix, DenseStepMatrix

# Blocks deflated into the capacitance matrix. Two cover a coincidence of two particles near
# singular at one c; a third would cost (L + 7)^2 / (L + 5)^2 more per factorisation.
DEFLATED = 2


def capacitance_size(orders: int, particles: int) -> int:
    """Rows of the capacitance matrix: one per order plus two per deflated block."""
    return orders + 2 * min(DEFLATED, particles)


class WoodburyFactors(eqx.Module):
    r"""The factorised step matrix: $\tilde A^{-1}$ as `inverse_blocks[r, q]` (each (m,),
    component r of $(a, \psi)$ from component q), the low-rank factors $[W, P]$ and
    $\tilde A^{-1} [U, P D_P]$ with the rows of all $a_i$ before those of all $\psi_i$
    ((2m, N), N = L + 1 + 2K), and the factorised capacitance matrix."""

    inverse_blocks: Float[Array, "2 2 m"]
    w: Float[Array, "2m N"]
    inverse_u: Float[Array, "2m N"]
    capacitance: UnrolledLU | tuple[Array, Array]
    c: Float[Array, ""]


class WoodburyStepMatrix(AbstractStepMatrix):
    """$M = I - cJ$ by the Woodbury identity, for an `AbstractSystem` that gives
    `jacobian_parts(a, psi)` (`MeanField`) passed as the diffrax `args`; the state is
    `y = (a, psi)`. The 2x2 blocks of $A = I - cD$ are inverted in closed form and the
    `DEFLATED` most nearly singular of them moved into the low-rank part (module docstring) as
    the extra columns $P$ and $P D_P$, so that a solve is one elementwise pass, two products
    with the (2m, N) factors and the capacitance solve (unrolled elimination up to 8 rows,
    else LU). At tens of particles the
    number of kernels a stage launches, not its arithmetic, sets the cost of a step: the
    gathers, scatters and 2x2 batched products of a per-particle layout cost twice as much.
    The factorisation likewise takes the parts component-major (`jacobian_parts`), combines
    them elementwise and picks the deflated blocks by `argmin`: a batched 2x2 product with its
    transpose and a `top_k` (a sort on the CPU) cost 15% of a step at m = 64."""

    def factor(self, vector_field, t, y, args, c):
        del vector_field, t  # the model's parts are the Jacobian of its vector field
        blocks, u, w = args.jacobian_parts(*y)
        m = u.shape[1]
        c = jnp.asarray(c, dtype=u.dtype)
        eye = jnp.eye(2, dtype=u.dtype)
        a = eye[:, :, None] - c * blocks
        det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        # |det| / ||A_i||_F^2 is at most 1/2 and scales like the inverse condition number.
        score = jnp.abs(det) / jnp.sum(a**2, axis=(0, 1))
        select = []  # one-hot (m,) of each deflated particle, worst first; top_k would sort
        for _ in range(min(DEFLATED, m)):
            pick = jnp.arange(m) == jnp.argmin(score)
            score = jnp.where(pick, jnp.inf, score)
            select.append(pick)
        select = jnp.stack(select, axis=-1).astype(u.dtype)  # (m, K)
        kept = jnp.sum(select, axis=-1) == 0
        adjugate = jnp.stack([jnp.stack([a[1, 1], -a[0, 1]]), jnp.stack([-a[1, 0], a[0, 0]])])
        # The deflated blocks become the identity; a safe determinant keeps their (unused)
        # inverse finite, so that gradients through the `where` stay finite too.
        inverse_blocks = jnp.where(kept, adjugate / jnp.where(kept, det, 1.0), eye[:, :, None])
        # Column (j, q) of P is the unit vector of component q of particle j; the same column
        # of P D_P holds that particle's block column q. Both (2, m, 2K): row (r, i).
        p = select[None, :, :, None] * eye[:, None, None, :]
        pd = select[None, :, :, None] * jnp.moveaxis(blocks, -1, 1)[:, :, None, :]
        w_full = jnp.concatenate([w, p.reshape(2, m, -1)], axis=-1)
        u_full = jnp.concatenate([u, pd.reshape(2, m, -1)], axis=-1)
        inverse_u = jnp.stack(
            [
                inverse_blocks[r, 0, :, None] * u_full[0]
                + inverse_blocks[r, 1, :, None] * u_full[1]
                for r in range(2)
            ]
        ).reshape(2 * m, -1)
        w_full = w_full.reshape(2 * m, -1)
        # C = I - c [W, P]^T A~^-1 [U, P D_P]
        capacitance = jnp.eye(w_full.shape[-1], dtype=u.dtype) - c * (w_full.T @ inverse_u)
        return WoodburyFactors(inverse_blocks, w_full, inverse_u, lu_factor(capacitance), c)

    def solve(self, state: WoodburyFactors, b):
        r"""$x = \tilde A^{-1} b + c\,\tilde A^{-1} [U, P D_P]\, C^{-1} [W, P]^\top
        \tilde A^{-1} b$, in $O(mL)$."""
        blocks = state.inverse_blocks
        y = jnp.concatenate([blocks[r, 0] * b[0] + blocks[r, 1] * b[1] for r in range(2)])
        z = lu_solve(state.capacitance, y @ state.w)
        x = y + state.c * (state.inverse_u @ z)
        m = b[0].shape[0]
        return x[:m], x[m:]


class AutoStepMatrix(AbstractStepMatrix):
    """The step matrix suited to the system, chosen at trace time: `DenseStepMatrix` for up to
    8 unknowns (unrolled elimination); `WoodburyStepMatrix` when `args` is an
    `AbstractSystem` that gives `jacobian_parts` (`MeanField`) and the capacitance matrix is
    smaller than the 2m unknowns; `DenseStepMatrix` (LU) otherwise (the finite-size
    corrections, few particles, `args` of other problems)."""

    def choose(self, y, args) -> AbstractStepMatrix:
        size = ravel_pytree(y)[0].shape[0]
        if size > UNROLL_MAX and isinstance(args, AbstractSystem):
            # Shapes only: nothing is added to the traced computation.
            parts = eqx.filter_eval_shape(args.jacobian_parts, *y)
            if parts is not None and capacitance_size(parts[1].shape[-1], size // 2) < size:
                return WoodburyStepMatrix()
        return DenseStepMatrix()

    def factor(self, vector_field, t, y, args, c):
        return self.choose(y, args).factor(vector_field, t, y, args, c)

    def solve(self, state, b):
        if isinstance(state, WoodburyFactors):
            return WoodburyStepMatrix().solve(state, b)
        return DenseStepMatrix().solve(state, b)
