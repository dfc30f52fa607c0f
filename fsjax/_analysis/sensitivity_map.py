r"""The onset of unlearning and its gradients at a point of a plane of two parameters.

At every point of a grid over two axes (each a target coefficient `target[k]` or `init.a`),
the quantities of `fsjax._analysis.sensitivity.quantities` ($t_\text{on}$, `kappa_final`,
`unlearning`) and their derivatives with respect to both axis parameters, by forward-mode
automatic differentiation through the solve and the event time (`sensitivity.jacobian`).
Typical plane: the primary nonlinear coefficient $c_p$ against the initial second-layer scale
$a_0$, where the map shows how strongly, and in which direction, each moves the onset, and
where the onset disappears (NaN: no alignment peak before `t_final`, the "none" side of the
dichotomy).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._sweep import axes as _axes
from .sensitivity import Parameters, Setup, jacobian, quantities

MAP_PARAMS = ("target[k]", "init.a")


def axis_field(path: str, n_target: int) -> tuple[str, int | None]:
    """The `Parameters` field and index an axis path names."""
    field = _axes.resolve(path, n_target=n_target, particles=1)
    if field.field == "target" and field.index is not None:
        return "target", field.index
    if field.field == "a" and field.index is None:
        return "init_a", None
    raise ValueError(f"axis {path!r}: a sensitivity map takes {' or '.join(MAP_PARAMS)}")


def _set(params: Parameters, field: str, index: int | None, value) -> Parameters:
    x = getattr(params, field)
    new = jnp.full_like(x, value) if index is None else x.at[index].set(value)
    return eqx.tree_at(lambda p: getattr(p, field), params, new)


@eqx.filter_jit
def point(params: Parameters, setup: Setup, fields, values):
    """Quantities (3,) and their derivatives (3, 2) with respect to the two axis parameters
    at the point with axis values `values` (`init.a` moves every particle together)."""

    def q(v, adjoint=None):
        p = params
        for (field, index), x in zip(fields, v, strict=True):
            p = _set(p, field, index, x)
        return quantities(p, setup, adjoint)

    values = jnp.asarray(values, dtype=float)
    return q(values), jacobian(q, values)
