r"""The onset and exit of unlearning and their gradients at a point of a plane of two
parameters.

At every point of a grid over two axes (each a target coefficient `target[k]` or `init.a`),
the quantities of `fsjax._analysis.sensitivity.quantities` ($t_\text{on}$, `kappa_final`,
`unlearning`, $t_\text{exit}$) and their derivatives with respect to both axis parameters, by
forward-mode automatic differentiation through the solve and the event times
(`sensitivity.jacobian`).
Typical plane: the primary nonlinear coefficient $c_p$ against the initial second-layer scale
$a_0$, where the map shows how strongly, and in which direction, each moves the onset, and
where the onset disappears (NaN: no alignment peak before `t_final`, the "none" side of the
dichotomy).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._model import axes as _axes
from .sensitivity import Parameters, Setup, jacobian, point_quantities

MAP_PARAMS = ("target[k]", "init.a")


def axis_field(path: str, n_target: int | None = None) -> _axes.AxisField:
    """The field a map axis path names (`fsjax._model.axes.resolve`; `n_target` checks
    k), or a `ValueError` unless it is one of `MAP_PARAMS`."""
    field = _axes.resolve(path, n_target=n_target, particles=1)
    if (field.field, field.index is None) in (("target", False), ("a", True)):
        return field
    raise ValueError(f"axis {path!r}: a sensitivity map takes {' or '.join(MAP_PARAMS)}")


@eqx.filter_jit
def point(params: Parameters, setup: Setup, fields, values):
    """Quantities (4,) and their derivatives (4, 2) with respect to the two axis parameters
    at the point with axis values `values` (`init.a` moves every particle together)."""
    base = params.on(setup.point)

    def q(v, adjoint=None):
        return point_quantities(base.set_axes(fields, v), setup.settings, adjoint, setup.exit_level)

    values = jnp.asarray(values, dtype=float)
    return q(values), jacobian(q, values)
