r"""What fsjax's solvers need from a system, and what a solver declares to `solve`.

A system (`AbstractSystem`) travels as diffrax's `args` (`fsjax._solve.solve.integrate`), so
that the step matrices of the implicit stages see it: `vector_field` is what is integrated,
and `jacobian_parts`, when the system gives them, the structure of its Jacobian that
`AutoStepMatrix` factorises in $O(mL^2)$ instead of $O(m^3)$. The reduced models
(`fsjax._model.base.AbstractReducedModel`) are systems.
"""

import abc
from typing import TYPE_CHECKING

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

if TYPE_CHECKING:
    from typing import ClassVar as AbstractClassVar
else:
    from equinox import AbstractClassVar


class AbstractSystem(eqx.Module):
    """An ODE system on the state `y = (a, psi)` of $m$ particles, or `(a, psi, *more)` for a
    system that carries further coordinates (the overlap flow's overlaps), which it places
    itself (`initial_state`)."""

    @abc.abstractmethod
    def vector_field(self, t, y, args) -> tuple[Float[Array, " m"], Float[Array, " m"]]:
        """$(\\dot a_i, \\dot\\psi_i)$ at the state `y = (a, psi)`."""

    def initial_state(self, a0, s0) -> tuple[Array, ...]:
        """The state `(a, psi, *more)` that starts at the particles `(a0, s0)`."""
        return jnp.asarray(a0, dtype=float), jnp.arctanh(jnp.asarray(s0, dtype=float))

    def jacobian_parts(
        self, a: Float[Array, " m"], psi: Float[Array, " m"]
    ) -> tuple[Float[Array, "2 2 m"], Float[Array, "2 m N"], Float[Array, "2 m N"]] | None:
        r"""The Jacobian of `vector_field` as $J = D + U W^\top$: `(blocks, u, w)`, with
        `blocks[r, q]` (m,) entry (r, q) of every particle's 2x2 block of $D$ over
        (a, psi) x (a, psi), and `u[r]`, `w[r]` (m, N) the rows of $U$, $W$ for component r
        (`fsjax._solve.structured`). The default, None, means no known structure: the step
        matrices then form $J$ densely. Whether a system gives parts is read from the shapes
        alone (`jax.eval_shape`), at trace time."""
        del a, psi
        return None


class AbstractDenseOutputSolver(diffrax.AbstractSolver):
    """A diffrax solver that declares whether its dense output is as accurate as its steps:
    if so, `fsjax.solve` fills the save times from it instead of stepping onto them
    (`fsjax._solve.solve.interpolates_save_times`)."""

    accurate_dense_output: AbstractClassVar[bool]
