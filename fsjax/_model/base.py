r"""The interface every reduced model offers to the solvers, diagnostics and analysis.

A reduced model is a flow of $m$ particles $(a_i, s_i)$, integrated in the coordinates
$(a_i, \psi_i)$ with $s_i = \tanh\psi_i$ (see `MeanField`). Its teacher and activation
coefficients, label noise and layer rates are those of the plain `MeanField` underneath
(`mean_field`), and so is its risk; `vector_field` is what diffrax integrates.
"""

from __future__ import annotations

import abc

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._solve.base import AbstractSystem


class AbstractReducedModel(AbstractSystem):
    """Base of `MeanField` and its finite-size corrections (`NetworkMeanField`): a system the
    solvers integrate (`AbstractSystem`), whose `jacobian_parts` only `MeanField` gives."""

    @property
    @abc.abstractmethod
    def mean_field(self):
        """The plain d -> infinity `MeanField` underneath (itself, for a `MeanField`)."""

    @property
    def orders(self) -> int:
        return self.mean_field.target.shape[-1]

    def residuals(self, a, s) -> Float[Array, " L"]:
        return self.mean_field.residuals(a, s)

    def risk_components(self, a, s) -> Float[Array, " L"]:
        return self.mean_field.risk_components(a, s)

    def risk(self, a, s) -> Float[Array, ""]:
        return jnp.sum(self.risk_components(a, s)) + 0.5 * self.mean_field.noise**2

    def velocity(self, a, s) -> tuple[Float[Array, " m"], Float[Array, " m"]]:
        """$(\\dot a_i, \\dot s_i)$ in the original coordinates."""
        da, g = self.vector_field(None, (a, jnp.arctanh(s)), None)
        return da, (1 - s**2) * g
