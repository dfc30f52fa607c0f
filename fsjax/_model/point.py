r"""One parameter point: the arrays of one reduced run, and the model and initial state they make.

A `Point` holds what a config and a sweep's or a map's axis values give one run: the target's
coefficients $c_k$ (zero beyond its degree), the activation's $\mu_k$, the label noise,
$\varepsilon$ and the initial particles, and, where the flow stands for a network, that
network's step, sizes and initial second layer, which set the boundary floor and the other
finite-size corrections (`fsjax._model.corrections`). Every number is an array leaf, so a
sweep vmaps `Point.set_axes` and `Point.model` over rows of axis values and a sensitivity
analysis differentiates through them; what sets shapes or code (the slow layer, the particle
count, the activation, the floor's dtype, the corrections switched on) is static.
`fsjax._point.point` builds the point of a config; `fsjax._model.axes.resolve` parses the
paths `set_axis` takes.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .. import hermite
from .._solve.settings import SolverSettings
from .axes import AxisField
from .base import AbstractReducedModel
from .corrections import BATCH_MODELS, NetworkMeanField, boundary_floor
from .mean_field import MeanField, SlowLayer, layer_rates
from .overlap import OverlapFlow

FLOWS = ("independent", "overlap")


def _floats(x) -> Array:
    return jnp.asarray(x, dtype=float)


def _optional_floats(x) -> Array | None:
    return None if x is None else _floats(x)


class Point(eqx.Module):
    """The arrays of one reduced run. `a`, `s` hold one value for every particle or one each
    (`particles` of them, `initial`); `lr`, `width`, `dim`, `batch` and `network_a` (the mean
    of the network's initial second layer, where the floor's spread starts) are those of the
    network the flow stands for, None without one. `floor_dtype` (the network's float
    precision; its products in `floor_products`, default the dtype's own) switches the
    boundary floor on, integrated with `settings` (a
    `SolverSettings`); `finite_width` and `finite_batch` (one of `BATCH_MODELS`) the other
    corrections of `NetworkMeanField`, for the network's `activation`. `flow` = "overlap"
    makes the model the exact `OverlapFlow` of `particles` neurons of `activation`, started
    from the orthogonal overlaps `overlaps` (packed; None: 0), and takes no corrections."""

    target: Float[Array, " L"] = eqx.field(converter=_floats)
    mu: Float[Array, " L"] = eqx.field(converter=_floats)
    noise: Float[Array, ""] = eqx.field(converter=_floats)
    epsilon: Float[Array, ""] = eqx.field(converter=_floats)
    a: Float[Array, " na"] = eqx.field(converter=_floats)
    s: Float[Array, " ns"] = eqx.field(converter=_floats)
    slow: SlowLayer = eqx.field(static=True)
    particles: int = eqx.field(static=True)
    lr: Float[Array, ""] | None = eqx.field(default=None, converter=_optional_floats)
    width: Float[Array, ""] | None = eqx.field(default=None, converter=_optional_floats)
    dim: Float[Array, ""] | None = eqx.field(default=None, converter=_optional_floats)
    batch: Float[Array, ""] | None = eqx.field(default=None, converter=_optional_floats)
    network_a: Float[Array, ""] | None = eqx.field(default=None, converter=_optional_floats)
    settings: SolverSettings | None = None
    activation: hermite.AbstractActivation | None = eqx.field(default=None, static=True)
    floor_dtype: str | None = eqx.field(default=None, static=True)
    floor_products: str | None = eqx.field(default=None, static=True)
    finite_width: bool = eqx.field(default=False, static=True)
    finite_batch: str = eqx.field(default="none", static=True)
    flow: str = eqx.field(default="independent", static=True)
    overlaps: Float[Array, " M"] | None = eqx.field(default=None, converter=_optional_floats)

    def __check_init__(self):
        if self.flow not in FLOWS:
            raise ValueError(f"flow must be one of {', '.join(FLOWS)}; got {self.flow!r}")
        if self.flow == "overlap" and (self.activation is None or self.corrected):
            raise ValueError("the overlap flow needs the activation and takes no corrections")
        if self.corrected and (self.lr is None or self.activation is None):
            raise ValueError("the network corrections need the network's values and activation")
        if self.floor_dtype is not None and self.settings is None:
            raise ValueError("the boundary floor needs the settings of its spread solve")
        if self.finite_batch not in BATCH_MODELS:
            raise ValueError(f"finite_batch must be one of {', '.join(BATCH_MODELS)}")

    @property
    def corrected_batch(self) -> bool:
        return self.finite_batch != "none"

    @property
    def corrected(self) -> bool:
        """Whether a finite-size correction of the independent flow is on."""
        return self.floor_dtype is not None or self.finite_width or self.corrected_batch

    def mean_field(self) -> MeanField:
        """The plain d -> infinity flow of this point."""
        rate_a, rate_w = layer_rates(self.slow, self.epsilon)
        return MeanField(self.target, self.mu, self.noise, rate_a, rate_w)

    def model(self) -> AbstractReducedModel:
        """The reduced model: the plain `MeanField`, the `NetworkMeanField` with the
        corrections switched on (the floor's spread is a solve, traced like the rest), or the
        `OverlapFlow`."""
        mean_field = self.mean_field()
        if self.flow == "overlap":
            return OverlapFlow(mean_field, self.activation, self.overlaps)
        if not self.corrected:
            return mean_field
        floor = {}
        if self.floor_dtype is not None:
            sizes = dict(lr=self.lr, dim=self.dim, batch=self.batch, dtype=self.floor_dtype)
            sizes["products"] = self.floor_products
            floor = boundary_floor(mean_field, self.network_a, settings=self.settings, **sizes)
        return NetworkMeanField(
            mean_field,
            self.activation,
            inv_width=1 / self.width if self.finite_width else 0.0,
            batch_noise=self.lr * self.dim / self.batch,
            batch_model=self.finite_batch,
            **floor,
        )

    def initial(self) -> tuple[Float[Array, " m"], Float[Array, " m"]]:
        """(a0, s0), each of length `particles`."""
        shape = (self.particles,)
        return jnp.broadcast_to(self.a, shape), jnp.broadcast_to(self.s, shape)

    def set_axis(self, field: AxisField, value: Float[ArrayLike, ""]) -> Point:
        """This point with the field an axis names (`fsjax._model.axes.resolve`) set to
        `value`: entry `field.index`, or every entry. With a network, an `init.a` axis also
        sets `network_a`: a sweep's networks start every neuron at the particle's value."""
        name = field.field
        old = getattr(self, name)
        if old is None:
            raise ValueError(f"{name} is a network's value; this point stands for no network")
        if field.index is None:
            new = jnp.full_like(old, value)
        else:
            size = self.particles if name in ("a", "s") else old.shape[-1]
            new = jnp.broadcast_to(old, (size,)).at[field.index].set(value)
        point = eqx.tree_at(lambda p: getattr(p, name), self, new)
        if name == "a" and self.network_a is not None:
            point = eqx.tree_at(lambda p: p.network_a, point, jnp.full_like(self.network_a, value))
        return point

    def set_axes(self, fields: tuple[AxisField, ...], values: Float[ArrayLike, " n"]) -> Point:
        """`set_axis` for each axis field and its value, in order."""
        point = self
        for field, value in zip(fields, values, strict=True):
            point = point.set_axis(field, value)
        return point
