"""Config sections -> the reduced model's arrays and its initial particles, read in one place
for every kind (`fsjax._point` reads whole configs through these)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import ndtri

from .. import hermite
from .mean_field import MeanField, series_order
from .point import Point


def activation_coefficients(model) -> np.ndarray:
    """$\\mu_0..\\mu_L$ of a `model:` section's activation, to `series_order`."""
    return hermite.coefficients(
        model.activation, series_order(model.hermite_order, len(model.target))
    )


def padded_target(model) -> np.ndarray:
    """The target's coefficients $c_0..c_L$, zero beyond its degree."""
    n = series_order(model.hermite_order, len(model.target)) + 1
    return np.pad(np.asarray(model.target, dtype=float), (0, n - len(model.target)))


def model_point(model, slow: str, epsilon) -> Point:
    """The parameter point of a `model:` section with the flow's slow layer and `epsilon`
    (a number or a traced array), standing for no network."""
    return Point(
        target=padded_target(model),
        mu=activation_coefficients(model),
        noise=model.noise,
        epsilon=epsilon,
        a=init_parameters(model.init, "a", model.particles),
        s=init_parameters(model.init, "s", model.particles),
        slow=slow,
        particles=model.particles,
    )


def build_mean_field(model, slow: str, epsilon) -> MeanField:
    """The reduced system for a `model:` section; `epsilon` may be a traced array."""
    return model_point(model, slow, epsilon).mean_field()


def init_values(init, name: str, n: int) -> np.ndarray:
    """The `n` initial values of `init.a` or `init.s` (an `InitConfig`): a single value
    repeated, one value each, or placed by a distribution. Random draws come from
    `init.seed`, on a stream of their own per field, so `a` and `s` are independent and the
    same seed gives the same particles on every machine."""
    given = getattr(init, name)
    if not isinstance(given, Mapping):
        return np.broadcast_to(np.asarray(given, dtype=float), (n,)).copy()
    ((kind, (x, y)),) = given.items()
    rng = np.random.default_rng([init.seed, ("a", "s").index(name)])
    if kind == "uniform":
        return rng.uniform(x, y, n)
    if kind == "normal":
        return rng.normal(x, y, n)
    if kind == "linspace":
        return np.linspace(x, y, n)
    return x + y * ndtri((np.arange(n) + 0.5) / n)  # normal_quantiles


def init_parameters(init, name: str, n: int) -> np.ndarray:
    """`init.a` or `init.s` as parameters: the given values (one value moves every particle
    together), or the `n` values a distribution places (one parameter per particle)."""
    given = getattr(init, name)
    if isinstance(given, Mapping):
        return init_values(init, name, n)
    return np.asarray(given, dtype=float)


def initial_particles(model) -> tuple[np.ndarray, np.ndarray]:
    """(a0, s0), each of length `particles`."""
    m = model.particles
    return init_values(model.init, "a", m), init_values(model.init, "s", m)
