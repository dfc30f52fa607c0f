r"""`kind: compare`: the network under SGD against the reduced flow it claims to follow.

The reduced system starts at the network's initial order parameters: with `model.particles`
= 1 the 2-D system at the means $(\bar a, \bar s)$ of the network at step 0, with
`model.particles` = `network.width` one particle per neuron at its own $(a_j, s_j)$. It is
saved at the network's record times, and the deviations

$$\max_{t \ge t_\min} |\bar s_\text{net}(t) - \bar s_\text{mf}(t)|, \qquad
  \max_{t \ge t_\min} |\bar a_\text{net}(t) - \bar a_\text{mf}(t)|$$

are stored as `max_abs_dev_s` and `max_abs_dev_a`.

**Finite-batch drift** (THEORY.md section 6, opt-in with `finite_batch: true`): renormalising
a row after a step whose noise has squared norm $(\eta\lambda_w a_j)^2 (d/B)\,\mathbb
E[e^2\sigma'(h_j)^2]$ shrinks its alignment on average, which adds

$$\dot s_j \mathrel{+}= -\tfrac12\,\eta\lambda_w^2 a_j^2\,\frac dB\,
   \mathbb E[e^2\sigma'(h_j)^2]\, s_j$$

to the reduced flow, with $h_j = s_j z + \sqrt{1-s_j^2}\,g$, $e = \sum_k r_k h_k(z) + \tau\xi$
($z, g, \xi$ independent standard Gaussians), the expectation by a tensor Gauss-Hermite rule.
`docs/network.md` reports how it fares against networks with small batches.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import xarray as xr

from . import hermite
from ._reduced import MeanField
from ._sgd import train_network
from ._trajectory import build_mean_field, solve_with, trajectory_dataset

_NODES = 48  # per axis; the expectation of a smooth integrand converges far faster


class FiniteBatchMeanField(eqx.Module):
    """`MeanField` plus the finite-batch renormalisation drift; `strength` is $\\eta d/B$."""

    base: MeanField
    strength: jnp.ndarray
    activation: hermite.AbstractActivation = eqx.field(static=True)

    def __init__(self, base: MeanField, activation, strength):
        self.base = base
        self.strength = jnp.asarray(strength, dtype=float)
        self.activation = hermite.activation(activation)

    def noise_power(self, a, s):
        r"""$\mathbb E[e^2\sigma'(h_j)^2]$ for every particle."""
        z, wz = (jnp.asarray(v) for v in hermite.gauss_hermite(_NODES))
        e = hermite.hermite_functions(self.base.orders - 1, z) @ self.base.residuals(a, s)
        h = s[:, None, None] * z[:, None] + jnp.sqrt(1 - s**2)[:, None, None] * z[None, :]
        slope2 = self.activation.derivative(h) ** 2
        weight = wz[:, None] * wz[None, :]
        return jnp.sum(weight * (e[:, None] ** 2 + self.base.noise**2) * slope2, axis=(1, 2))

    def _extra(self, a, s):
        """The drift added to $\\dot s_j$."""
        return -0.5 * self.strength * self.base.rate_w**2 * a**2 * self.noise_power(a, s) * s

    def velocity(self, a, s):
        da, ds = self.base.velocity(a, s)
        return da, ds + self._extra(a, s)

    def vector_field(self, t, y, args):
        """In (a, psi) with s = tanh(psi): $\\dot\\psi = \\dot s / (1 - s^2)$."""
        a, psi = y
        s = jnp.tanh(psi)
        da, g = self.base.vector_field(t, y, args)
        return da, g + self._extra(a, s) * jnp.cosh(psi) ** 2


def _deviation(x, y, mask) -> float:
    return float(np.nanmax(np.abs(np.asarray(x) - np.asarray(y))[mask]))


def run_compare(config, *, workdir=None, resume=False) -> xr.Dataset:
    """Train the network, solve the reduced flow from its initial order parameters at its
    record times, and put both into one dataset with their deviations."""
    net = train_network(config, workdir=workdir, resume=resume)
    mean_field = build_mean_field(config.model, config.dynamics.slow, config.dynamics.epsilon)
    cfg = config.network
    model = mean_field
    if config.finite_batch:
        model = FiniteBatchMeanField(
            mean_field, config.model.activation, cfg.lr * cfg.dim / cfg.batch
        )
    a_net, s_net = net["a"].values, net["s"].values
    if config.model.particles == 1:
        a0, s0 = a_net[:1, :].mean(axis=1), s_net[:1, :].mean(axis=1)
    else:
        a0, s0 = a_net[0], s_net[0]
    times = net["time"].values
    reduced = trajectory_dataset(mean_field, solve_with(config.solver, model, a0, s0, ts=times))

    ds = net.rename({k: f"{k}_net" for k in net.data_vars if k not in ("target", "mu", "step")})
    for name in ("a", "s", "risk", "risk_k"):
        ds[f"{name}_mf"] = reduced[name]
    ds["s_mean_mf"] = reduced["s"].mean("particle")
    ds["a_mean_mf"] = reduced["a"].mean("particle")
    ds["status_mf"] = reduced["status"]
    mask = times >= config.t_min
    ds["max_abs_dev_s"] = _deviation(ds["s_mean_net"], ds["s_mean_mf"], mask)
    ds["max_abs_dev_a"] = _deviation(ds["a_mean_net"], ds["a_mean_mf"], mask)
    ds["max_rel_dev_risk"] = float(
        np.nanmax((np.abs(ds["risk_net"] - ds["risk_mf"]) / ds["risk_mf"]).values[mask])
    )
    if config.model.particles > 1:
        ds["max_abs_dev_s_neuron"] = _deviation(s_net, reduced["s"].values, mask)
        ds["max_abs_dev_a_neuron"] = _deviation(a_net, reduced["a"].values, mask)
    ds.attrs["t_min"] = config.t_min
    ds.attrs["status_mf_meaning"] = reduced.attrs["status_meaning"]
    return ds
