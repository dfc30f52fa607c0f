"""Config sections -> the reduced model and its initial particles, built in one place for
every kind."""

from __future__ import annotations

import numpy as np

from .. import hermite
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


def initial_particles(model) -> tuple[np.ndarray, np.ndarray]:
    """(a0, s0), each of length `particles` (a single value is repeated)."""
    m = model.particles
    a0 = np.broadcast_to(np.asarray(model.init.a, dtype=float), (m,)).copy()
    s0 = np.broadcast_to(np.asarray(model.init.s, dtype=float), (m,)).copy()
    return a0, s0
