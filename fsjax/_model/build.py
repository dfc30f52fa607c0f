"""Config sections -> the reduced model and its initial particles, built in one place for
every kind."""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from scipy.special import ndtri

from .. import hermite
from .._solve.settings import SolverSettings
from .base import AbstractReducedModel
from .corrections import NetworkMeanField, roundoff_rate
from .mean_field import MeanField, layer_rates, series_order


def activation_coefficients(model) -> np.ndarray:
    """$\\mu_0..\\mu_L$ of a `model:` section's activation, to `series_order`."""
    return hermite.coefficients(
        model.activation, series_order(model.hermite_order, len(model.target))
    )


def padded_target(model) -> np.ndarray:
    """The target's coefficients $c_0..c_L$, zero beyond its degree."""
    n = series_order(model.hermite_order, len(model.target)) + 1
    return np.pad(np.asarray(model.target, dtype=float), (0, n - len(model.target)))


def build_mean_field(model, slow: str, epsilon) -> MeanField:
    """The reduced system for a `model:` section; `epsilon` may be a traced array."""
    rate_a, rate_w = layer_rates(slow, epsilon)
    return MeanField(model.target, activation_coefficients(model), model.noise, rate_a, rate_w)


def boundary_floor_applies(config) -> bool:
    """`boundary_floor` as set, or by default whenever the config names a network."""
    floor = getattr(config, "boundary_floor", None)
    return getattr(config, "network", None) is not None if floor is None else floor


# Particles placed at the quantiles of the rows' initial alignments: Var(a) to about 1/m^2.
SPREAD_PARTICLES = 32


def second_layer_spread(mean_field: MeanField, a0, dim, settings) -> Float[Array, ""]:
    """$\\mathrm{Var}_j a_j$ of a network's neurons once its rows have met on the boundary.

    Rows uniform on the sphere start at alignments $s_j \\approx \\mathcal N(0, 1/d)$; the
    particle flow from those (placed at normal quantiles) and $a_j = $ `a0` spreads the
    $a_j$ while the rows differ, then moves them alike, so the spread is frozen until the exit.
    It is read at $t = 1/\\lambda_a$ (after the fast phase, which lasts $O(1/\\lambda_w)$,
    when $\\lambda_a \\ll \\lambda_w$). A failed solve gives 0 (no spread seed)."""
    m = SPREAD_PARTICLES
    # s = z / sqrt(z^2 + chi^2_(d-1)) for a uniform row; chi^2_(d-1) ~ d - 1 keeps |s| < 1
    # and N(0, 1/d) for large d.
    z = jnp.asarray(ndtri((np.arange(m) + 0.5) / m))
    s0 = z / jnp.sqrt(z**2 + jnp.maximum(jnp.asarray(dim, float) - 1, 1.0))
    rate_a = mean_field.rate_a
    t = jnp.where(rate_a > 0, 1 / jnp.where(rate_a > 0, rate_a, 1.0), 1.0)
    traj = settings.solve(mean_field, jnp.full(m, a0, dtype=float), s0, ts=jnp.reshape(t, (1,)))
    spread = jnp.var(traj.a[-1])
    return jnp.where(jnp.isfinite(spread), spread, 0.0)


def boundary_floor(mean_field: MeanField, a0, *, lr, dim, batch, dtype, settings) -> dict:
    """The `roundoff` and `spread_noise` arguments of `NetworkMeanField` for a network of
    input dimension `dim`, batch `batch`, step `lr`, rows in `dtype`, second layer started at
    `a0` (numbers or traced arrays, except `dtype`)."""
    spread = second_layer_spread(mean_field, a0, dim, settings)
    return dict(roundoff=roundoff_rate(lr, dtype), spread_noise=lr * dim / batch * spread)


def build_model(config) -> AbstractReducedModel:
    """The reduced model a config asks for: the plain `MeanField`, or, where the config names
    the network it stands for, a `NetworkMeanField` with the corrections it switches on
    (`boundary_floor`, and `compare`'s `finite_width`, `finite_batch`)."""
    mean_field = build_mean_field(config.model, config.dynamics.slow, config.dynamics.epsilon)
    net = getattr(config, "network", None)
    finite_width = getattr(config, "finite_width", False)
    finite_batch = getattr(config, "finite_batch", "none")
    floor = boundary_floor_applies(config)
    if not (floor or finite_width or finite_batch != "none"):
        return mean_field
    if floor:
        a0 = np.mean(init_values(config.model.init, "a", net.width))
        settings = SolverSettings.from_config(config.solver)
        sizes = dict(lr=net.lr, dim=net.dim, batch=net.batch, dtype=net.dtype)
        floor_terms = boundary_floor(mean_field, a0, settings=settings, **sizes)
    else:
        floor_terms = {}
    return NetworkMeanField(
        mean_field,
        config.model.activation,
        inv_width=1 / net.width if finite_width else 0.0,
        batch_noise=net.lr * net.dim / net.batch,
        batch_model=finite_batch,
        **floor_terms,
    )


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
