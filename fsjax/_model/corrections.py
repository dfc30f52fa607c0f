r"""Finite-size corrections of the reduced flow for a network of width $n$, batch $B$, step
$\eta$ (`NetworkMeanField`), both opt-in.

**Finite width** (`finite_width: true`). The reduced risk counts each neuron's
self-interaction as $\sum_k \mu_k^2 s_j^{2k}$, but $\mathbb E[\sigma(\langle w_j,
x\rangle)^2] = \mathbb E\sigma^2$. When the rows' components orthogonal to $\beta$ are mutually
orthogonal ($n \ll d$) and each of the $m$ particles stands for $n/m$ neurons, the network's
risk has exactly the extra term

$$R_\text{self} = \frac1{2nm}\sum_i a_i^2 D(s_i),\qquad D(s) = \mathbb E\sigma^2 -
  \sum_k \mu_k^2 s^{2k} \ge 0,$$

which adds $-\frac{\lambda_a}n a_i D(s_i)$ to $\dot a_i$ and
$\frac{\lambda_w}n (1 - s_i^2)\, a_i^2 \sum_k k\mu_k^2 s_i^{2k-1}$ to $\dot s_i$. (For
$n \gtrsim d$ the orthogonal components overlap and the term over-corrects.)

**Finite batch** (`finite_batch`), with $h = s z + \sqrt{1-s^2}\,g$,
$e = \sum_k r_k h_k(z) + \tau\xi$ ($z, g, \xi$ independent standard Gaussians) and the
expectations by a tensor Gauss-Hermite rule:

- `theory`: THEORY.md section 6. A step's gradient noise orthogonal to the row has squared
  norm $(\eta\lambda_w a)^2 (d/B)\,P_\text{tot}$, $P_\text{tot} = \mathbb E[e^2\sigma'(h)^2]$;
  renormalising shrinks the alignment, $\dot s \mathrel{+}= -\frac12\eta\lambda_w^2 a^2
  \frac dB P_\text{tot}\, s$.
- `shared`: the batch is shared by all neurons, so part of that noise is the same vector for
  all of them: the part carried by $\varphi'(s z) = \mathbb E_g\,\sigma'(h)$, of power
  $P_\text{sh} = \mathbb E_z[e^2\varphi'(sz)^2]$. It builds a common component $c$ of the rows
  orthogonal to $\beta$, which makes an off-index output of variance $a^2 K c^2$,
  $K = \mathbb E_z[\varphi'(sz)^2]$; the population gradient pulls it back at rate
  $2\lambda_w a^2 K$, so $c^2$ settles at $q = \eta\lambda_w \frac dB P_\text{sh} / (2K)$.
  Pulling $c$ back along the sphere returns its share of the renormalisation shrinkage to
  $s$, and the off-index output drags on the second layer:
  $$\dot s \mathrel{+}= -\tfrac12\eta\lambda_w^2 a^2\tfrac dB\,(P_\text{tot} - P_\text{sh})\,s,
    \qquad \dot a \mathrel{+}= -\lambda_a K q\, a = -\tfrac12\eta\lambda_a\lambda_w\tfrac dB
    P_\text{sh}\, a .$$
  Derived for many neurons per particle (the 2-D system of a wide network); with one particle
  per neuron it is applied particle by particle.

`docs/network.md` reports how each fares against networks.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .. import hermite
from .base import AbstractReducedModel
from .mean_field import MeanField, powers
from .network import second_moment

_NODES = 48  # per axis; the expectation of a smooth integrand converges far faster


BATCH_MODELS = ("none", "theory", "shared")


class NetworkMeanField(AbstractReducedModel):
    """`MeanField` plus the finite-width self-interaction (`inv_width` = $1/n$, 0 for none)
    and a finite-batch drift (`batch_model` of `BATCH_MODELS`, `batch_noise` = $\\eta d/B$)."""

    base: MeanField
    inv_width: jnp.ndarray
    batch_noise: jnp.ndarray
    second_moment: jnp.ndarray
    activation: hermite.AbstractActivation = eqx.field(static=True)
    batch_model: str = eqx.field(static=True)

    def __init__(
        self, base: MeanField, activation, *, inv_width=0.0, batch_noise=0.0, batch_model="none"
    ):
        if batch_model not in BATCH_MODELS:
            raise ValueError(f"batch_model must be one of {', '.join(BATCH_MODELS)}")
        self.base = base
        self.activation = hermite.activation(activation)
        self.inv_width = jnp.asarray(inv_width, dtype=float)
        self.batch_noise = jnp.asarray(batch_noise, dtype=float)
        self.second_moment = jnp.asarray(second_moment(self.activation))
        self.batch_model = batch_model

    @property
    def mean_field(self) -> MeanField:
        return self.base

    def noise_power(self, a, s):
        r"""$(P_\text{tot}, P_\text{sh}, K)$ for every particle: $\mathbb E[e^2\sigma'(h)^2]$,
        $\mathbb E_z[e^2\varphi'(sz)^2]$ and $\mathbb E_z[\varphi'(sz)^2]$."""
        z, wz = (jnp.asarray(v) for v in hermite.gauss_hermite(_NODES))
        e2 = (hermite.hermite_functions(self.base.orders - 1, z) @ self.base.residuals(a, s)) ** 2
        e2 = e2 + self.base.noise**2
        h = s[:, None, None] * z[:, None] + jnp.sqrt(1 - s**2)[:, None, None] * z[None, :]
        slope = self.activation.derivative(h)  # axes: particle, z, g
        smooth = slope @ wz  # phi'(s z)
        total = jnp.sum(wz[:, None] * wz[None, :] * e2[:, None] * slope**2, axis=(1, 2))
        return total, (e2 * smooth**2) @ wz, smooth**2 @ wz

    def _extra(self, a, psi):
        """The corrections to $(\\dot a_i, \\dot\\psi_i)$, $s_i = \\tanh\\psi_i$."""
        s = jnp.tanh(psi)
        p = powers(s, 2 * self.base.orders)  # s^0 .. s^(2L-1)
        mu2 = self.base.mu**2
        k = jnp.arange(self.base.orders)
        deficit = self.second_moment - p[:, ::2] @ mu2  # D(s) = E sigma^2 - sum mu_k^2 s^2k
        slope = jnp.pad(p[:, 1::2], ((0, 0), (1, 0)))[:, :-1] @ (k * mu2)  # sum k mu_k^2 s^2k-1
        da = -self.base.rate_a * self.inv_width * a * deficit
        g = self.base.rate_w * self.inv_width * a**2 * slope
        if self.batch_model == "none":
            return da, g
        total, shared, _ = self.noise_power(a, s)
        lam_a, lam_w = self.base.rate_a, self.base.rate_w
        if self.batch_model == "theory":
            ds = -0.5 * self.batch_noise * lam_w**2 * a**2 * total * s
        else:
            ds = -0.5 * self.batch_noise * lam_w**2 * a**2 * (total - shared) * s
            da = da - 0.5 * self.batch_noise * lam_a * lam_w * shared * a
        # d psi = d s / (1 - s^2) = d s cosh^2 psi.
        return da, g + ds * jnp.cosh(psi) ** 2

    def velocity(self, a, s):
        da, ds = self.base.velocity(a, s)
        ea, eg = self._extra(a, jnp.arctanh(s))
        return da + ea, ds + (1 - s**2) * eg

    def vector_field(self, t, y, args):
        """In (a, psi) with s = tanh(psi), where $\\dot\\psi = \\dot s / (1 - s^2)$."""
        a, psi = y
        da, g = self.base.vector_field(t, y, args)
        ea, eg = self._extra(a, psi)
        return da + ea, g + eg
