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

**Boundary floor** (`boundary_floor`, on by default wherever the flow stands for a network).
The exact flow leaves the boundary branch $s = 1$ only after the entry-exit delay: $\psi$ climbs
to $O(1/\epsilon)$ while the boundary attracts and must come back down. A network cannot climb
that far. What its rows can lose is their *spread*: the rows' parts $u_j$ off $\beta$ split
into a component $\bar u$ shared by all rows and the rest $v_j$. On the boundary, $\bar u$ is
pulled back at rate $\bar\kappa = g + \lambda_w a^2\sum_k k\mu_k^2 s^{2k-1}$, which stays
positive through the contact (moving all rows together leaves their overlap alone); only the
spread $p = \overline{|v_j|^2}$ obeys $\dot p = -2gp$ and turns unstable at the contact,
$g(a, 1) = 0$. So the exit is seeded by whatever keeps $p$ from falling like $e^{-2\int g}$,
added to the flow as an injection $\rho$ into $1 - s^2$ (like any isotropic perturbation of a
unit vector, it shrinks the alignment: $\dot s \mathrel{+}= -\frac\rho2 s$, i.e.
$\dot\psi \mathrel{+}= -\frac\rho4\sinh 2\psi$; in the interior that is nothing). Two seeds:

- *Rounding* (`roundoff`). Every step rounds each entry of $w_j$ twice (the update
  $w_j + \Delta_j$ and the division by the norm), independently from row to row once the rows
  differ in their last bits. Each error is uniform over $\pm\frac12\mathrm{ulp}(w_{ji})$, of
  variance $\mathrm{ulp}^2/12$; with mantissas spread as Benford's law says
  ($\mathbb E[(\mathrm{ulp}(x)/x)^2] = 4u^2\cdot\frac{3}{8\ln 2}$, $u$ the unit roundoff) and
  $\sum_i w_{ji}^2 = 1$, the two roundings add
  $\delta = 2\cdot\frac{4u^2}{12}\cdot\frac{3}{8\ln 2} = 0.361\,u^2$ per step:
  $\rho_u = \delta/\eta$ per unit time.
- *Batch noise through the second layer's spread* (`spread_noise`). On the boundary the rows'
  gradient noise is one shared vector $\xi$ of power $\eta\lambda_w^2\frac dB P$ per unit time,
  $P = \mathbb E_z[e^2\sigma'(z)^2]$, but row $j$ receives it times $a_j$ and relaxes at
  $\bar\kappa a_j/\bar a$, so with $\delta_j = a_j/\bar a - 1$ the spread obeys
  $\dot v_j = -g v_j + \delta_j\,\dot{\bar u}$. At low frequency $\dot{\bar u}$ carries no
  power, and what seeds $v_j$ is $-g\,\delta_j\bar u$: white at the scale $1/g$, of intensity
  $g^2\,\delta_j^2\cdot 2\,\overline{|\bar u|^2}/\bar\kappa$. With
  $\overline{|\bar u|^2} = \bar a^2\eta\lambda_w^2\frac dB P/(2\bar\kappa)$,
  $\rho_a = \eta\lambda_w^2\frac dB\,\mathrm{Var}(a)\,P\,(g/\bar\kappa)^2$. The spread
  $\mathrm{Var}(a)$ of the second layer is made in the fast phase, while the rows still differ
  ($s_j \sim \mathcal N(0, 1/d)$ at the start), and frozen from then on:
  `second_layer_spread` reads it off the particle flow.

- *Reduced-precision products* (`product_roundoff`). A float32 network whose products round
  their operands to TF32 or bfloat16 (`network.matmul_precision`; unit roundoff $u_p$ of
  $2^{-11}$ or $2^{-8}$, and $2^{-8}$ in a bfloat16 network, whose operands are bfloat16)
  rounds, in the weight gradient $\sum_b \delta_{bj} x_b$, each backpropagated error
  $\delta_{bj} = e_b a_j\sigma'(h_{bj})/(nB)$. On the boundary the rows' $\delta_{bj}$
  differ only by their factor $a_j$, by a relative $\Delta_j = a_j/\bar a - 1$. Two rows
  $D = \delta(\Delta_j - \Delta_k)$ apart round alike unless a rounding boundary falls
  between them, and then part by an ulp: their errors differ by a mean square
  $r(\mathrm{ulp} - r)$, $r = D \bmod \mathrm{ulp}$ ($|D|\,\mathrm{ulp}$ for $|D| \ll
  \mathrm{ulp}$, $\mathrm{ulp}^2/6$ for $|D| \gg \mathrm{ulp}$). Averaged over Gaussian $a_j$
  and over mantissas as Benford's law spreads them (weighted by $\delta^2$), the row-to-row
  variance is $C(u_p, \mathrm{sd}(a)/|a|)\,\mathbb E\delta^2$ (`row_rounding_variance`;
  $C = \frac{4u_p}{3}\frac{\mathrm{sd}(a)}{\sqrt\pi|a|}$ for small spreads). Summed over
  the batch, each row's gradient gets white noise orthogonal to $\beta$ of power
  $\rho_p = \eta\lambda_w^2\frac dB P\,a^2 C$ per unit time (the shared gradient noise's
  power times $C$), seeding the spread directly (no $(g/\bar\kappa)^2$: it is not shared).
  The rounding of $x$ is shared by all rows; that of the rows themselves parts them by an
  amount that vanishes with the spread $p$; float32's own rounding of $\delta$
  ($u_p = 2^{-24}$) is below $10^{-3}$ of the spread seed at these sizes: all left out.

In float32 rounding dominates near the contact; in float64 the batch seed does; with TF32
or bfloat16 products the product seed does. Both leave a
floor of $p$ at $O(\rho/g)$, so $\psi$ is capped at $O(\log(g/\rho))$ instead of
$O(1/\epsilon)$, and the delay after the contact is $\tau$ with
$\int_{t_c}^{t_c + \tau}|g| \approx \frac12\ln(1/p_c)$: of order $\sqrt{\epsilon\ln(1/p_c)}$
in slow time, where the plain flow's does not shrink with $\epsilon$. No constant is fitted;
`docs/theory-notes.md` has the derivation's checks against networks. (The batch noise does not
act like THEORY's isotropic drift here: on the boundary it is shared, and a shared component
does not seed the exit.)

`docs/network.md` reports how each fares against networks.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from scipy.special import ndtri

from .. import hermite
from .base import AbstractReducedModel
from .mean_field import MeanField, powers
from .network import second_moment

_NODES = 48  # per axis; the expectation of a smooth integrand converges far faster


BATCH_MODELS = ("none", "theory", "shared")
# Squared norm added to a unit row per SGD step by rounding, in units of u^2 (module docstring).
ROUNDOFF_PER_STEP = 2 * (4 / 12) * 3 / (8 * math.log(2))


def unit_roundoff(dtype: str) -> float:
    """Half the spacing of `dtype`'s numbers at 1 ("bfloat16", "float32", "float64")."""
    return float(jnp.finfo(dtype).eps) / 2


def roundoff_rate(lr, dtype: str):
    r"""$\rho = 0.361\,u^2/\eta$: the rounding floor's rate per unit time for rows stored in
    `dtype` ("bfloat16", "float32" or "float64") and trained with step `lr` (a number or an
    array)."""
    return ROUNDOFF_PER_STEP * unit_roundoff(dtype) ** 2 / jnp.asarray(lr, dtype=float)


# Unit roundoff of the format each resolved product mode (`fsjax._model.network.product_format`)
# rounds the backpropagated errors to, beyond the network's own float32 or float64 (module
# docstring, product seed).
PRODUCT_ROUNDOFF = {"float64": 0.0, "float32": 0.0, "tensorfloat32": 2.0**-11, "bfloat16": 2.0**-8}


# Gauss-Legendre rule on the mantissa m in [1, 2) and terms of the Fourier series of the
# rounding errors' row-to-row variance (`row_rounding_variance`): both converged to 1e-10 where
# they are used (the series for q >= 0.1, where its k-th term is below exp(-0.197 k^2)).
_MANTISSA_NODES = 16
_FOURIER_TERMS = 16


def row_rounding_variance(u, rel_sd):
    r"""The row-to-row variance of the rounding errors of values $X(1 + \Delta_j)$,
    $\Delta_j \sim \mathcal N(0, \sigma^2)$ (`rel_sd` = $\sigma$), rounded to nearest in a
    format of unit roundoff `u`, in units of $X^2$ and averaged over $X$'s mantissa $m$ as
    Benford's law spreads it, weighted by $X^2$ (density $m/1.5$ on $[1, 2)$).

    Two rows $D = X(\Delta_j - \Delta_k)$ apart (Gaussian, sd $\sqrt2\sigma X$) round to
    errors whose difference has mean square $f(D) = r(\mathrm{ulp} - r)$, $r = D \bmod
    \mathrm{ulp}$ (the grid's offset uniform); for $q = \mathrm{sd}(D)/\mathrm{ulp}$,
    $\mathbb E f/\mathrm{ulp}^2 = \frac16 - \frac1{\pi^2}\sum_k e^{-2\pi^2k^2q^2}/k^2$,
    which below $q = 0.1$ is $\sqrt{2/\pi}\,q - q^2$ (exact but for $e^{-1/2q^2}$); the
    rows' variance is half of it. For $q \ll 1$ the average is
    $\frac{4u}{3}\sigma/\sqrt\pi$."""
    nodes, weights = np.polynomial.legendre.leggauss(_MANTISSA_NODES)
    m = jnp.asarray(1.5 + nodes / 2)
    ulp = 2 * u / m  # of X = m, relative
    q = jnp.sqrt(2.0) * rel_sd / ulp
    k = jnp.arange(1, _FOURIER_TERMS + 1)
    series = 1 / 6 - jnp.sum(jnp.exp(-2 * (jnp.pi * k * q[:, None]) ** 2) / k**2, -1) / jnp.pi**2
    small = jnp.sqrt(2 / jnp.pi) * q - q**2
    mean_square = ulp**2 * jnp.where(q < 0.1, small, series)
    return jnp.asarray(weights / 2) @ (m / 1.5 * mean_square / 2)


# Particles placed at the quantiles of the rows' initial alignments: Var(a) to about 1/m^2.
SPREAD_PARTICLES = 32


def second_layer_spread(mean_field: MeanField, a0, dim, settings) -> Float[Array, ""]:
    """$\\mathrm{Var}_j a_j$ of a network's neurons once its rows have met on the boundary.

    Rows uniform on the sphere start at alignments $s_j \\approx \\mathcal N(0, 1/d)$; the
    particle flow from those (placed at normal quantiles) and $a_j = $ `a0` spreads the
    $a_j$ while the rows differ, then moves them alike, so the spread is frozen until the exit.
    It is read at $t = 1/\\lambda_a$ (after the fast phase, which lasts $O(1/\\lambda_w)$,
    when $\\lambda_a \\ll \\lambda_w$). `settings` (a `SolverSettings`) integrate it; a
    failed solve gives 0 (no spread seed)."""
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


def boundary_floor(
    mean_field: MeanField, a0, *, lr, dim, batch, dtype, settings, products=None
) -> dict:
    """The `roundoff`, `spread_noise` and `product_roundoff` arguments of `NetworkMeanField` for
    a network of input dimension `dim`, batch `batch`, step `lr`, rows in `dtype`, products
    in `products` (`fsjax._model.network.product_format`; default: the dtype's own), second
    layer started at `a0` (numbers or traced arrays, except `dtype` and `products`)."""
    spread = second_layer_spread(mean_field, a0, dim, settings)
    return dict(
        roundoff=roundoff_rate(lr, dtype),
        spread_noise=lr * dim / batch * spread,
        product_roundoff=PRODUCT_ROUNDOFF[products or dtype],
    )


class NetworkMeanField(AbstractReducedModel):
    """`MeanField` plus the finite-width self-interaction (`inv_width` = $1/n$, 0 for none),
    a finite-batch drift (`batch_model` of `BATCH_MODELS`, `batch_noise` = $\\eta d/B$) and
    the boundary floor: rounding (`roundoff` = $\\rho$ of `roundoff_rate`, 0 for none) and
    the batch noise through the second layer's spread (`spread_noise` =
    $\\eta\\,(d/B)\\,\\mathrm{Var}_j a_j$, None for none) and the rounding of
    reduced-precision products (`product_roundoff` = $u_p$ of `PRODUCT_ROUNDOFF`, 0 for none;
    with the spread)."""

    base: MeanField
    inv_width: jnp.ndarray
    batch_noise: jnp.ndarray
    roundoff: jnp.ndarray
    spread_noise: jnp.ndarray | None
    product_roundoff: jnp.ndarray
    second_moment: jnp.ndarray
    activation: hermite.AbstractActivation = eqx.field(static=True)
    batch_model: str = eqx.field(static=True)

    def __init__(
        self,
        base: MeanField,
        activation,
        *,
        inv_width=0.0,
        batch_noise=0.0,
        batch_model="none",
        roundoff=0.0,
        spread_noise=None,
        product_roundoff=0.0,
    ):
        if batch_model not in BATCH_MODELS:
            raise ValueError(f"batch_model must be one of {', '.join(BATCH_MODELS)}")
        self.base = base
        self.activation = hermite.activation(activation)
        self.inv_width = jnp.asarray(inv_width, dtype=float)
        self.batch_noise = jnp.asarray(batch_noise, dtype=float)
        self.roundoff = jnp.asarray(roundoff, dtype=float)
        self.spread_noise = None if spread_noise is None else jnp.asarray(spread_noise, float)
        self.product_roundoff = jnp.asarray(product_roundoff, dtype=float)
        # A constant of the activation: computed eagerly, so a model built inside jit or vmap
        # (a sweep's per-point model) does not trace the quadrature.
        with jax.ensure_compile_time_eval():
            self.second_moment = jnp.asarray(second_moment(self.activation))
        self.batch_model = batch_model

    @property
    def mean_field(self) -> MeanField:
        return self.base

    def noise_power(self, a, s):
        r"""$(P_\text{tot}, P_\text{sh}, K)$ for every particle: $\mathbb E[e^2\sigma'(h)^2]$,
        $\mathbb E_z[e^2\varphi'(sz)^2]$ and $\mathbb E_z[\varphi'(sz)^2]$."""
        z, wz, e2 = self._squared_error(a, s)
        h = s[:, None, None] * z[:, None] + jnp.sqrt(1 - s**2)[:, None, None] * z[None, :]
        slope = self.activation.derivative(h)  # axes: particle, z, g
        smooth = slope @ wz  # phi'(s z)
        total = jnp.sum(wz[:, None] * wz[None, :] * e2[:, None] * slope**2, axis=(1, 2))
        return total, (e2 * smooth**2) @ wz, smooth**2 @ wz

    def boundary_power(self, a, s):
        """$\\mathbb E_z[e^2\\sigma'(z)^2]$: the power of the rows' shared gradient noise when
        they sit on the boundary ($P_\\text{sh} = P_\\text{tot}$ there), residuals at `(a, s)`."""
        z, wz, e2 = self._squared_error(a, s)
        return e2 * self.activation.derivative(z) ** 2 @ wz

    def _squared_error(self, a, s):
        """Gauss-Hermite nodes and weights in z, and $e^2 = (\\sum_k r_k h_k(z))^2 + \\tau^2$ there
        (the label noise averaged over)."""
        z, wz = (jnp.asarray(v) for v in hermite.gauss_hermite(_NODES))
        e = hermite.hermite_functions(self.base.orders - 1, z) @ self.base.residuals(a, s)
        return z, wz, e**2 + self.base.noise**2

    def floor_rate(self, a, s, slope):
        """The boundary floor's rate of every particle: `roundoff`, plus the spread seed
        $\\eta\\lambda_w^2\\frac dB\\mathrm{Var}(a)\\,P\\,(g/\\bar\\kappa)^2$ (module docstring),
        $\\bar\\kappa = g + \\lambda_w a^2 \\sum_k k\\mu_k^2 s^{2k-1}$ (`slope`) the rate at
        which a component shared by all rows relaxes; and the product seed
        $\\eta\\lambda_w^2\\frac dB P a^2 C$, $C$ the `row_rounding_variance` of $u_p$ at
        the relative spread $\\mathrm{sd}(a)/|a|$ (module docstring)."""
        if self.spread_noise is None:
            return self.roundoff
        lam_w = self.base.rate_w
        g = self.base.drift(a, s)[1]
        shared_rate = g + lam_w * a**2 * slope
        power = self.boundary_power(a, s)
        seed = self.spread_noise * lam_w**2 * power * (g / shared_rate) ** 2
        return self.roundoff + seed + lam_w**2 * power * self.product_seed(a)

    def product_seed(self, a):
        """$\\eta\\frac dB a^2 C(u_p, \\mathrm{sd}(a)/|a|)$: the product seed over
        $\\lambda_w^2 P$, with $\\eta\\frac dB$ = `batch_noise` and $\\mathrm{Var}(a)$ =
        `spread_noise` / `batch_noise` (0 without reduced-precision products)."""
        on = (self.product_roundoff > 0) & (self.batch_noise > 0)
        var = self.spread_noise / jnp.where(on, self.batch_noise, 1.0)
        rel = jnp.sqrt(var) / jnp.abs(a)
        u = jnp.where(on, self.product_roundoff, 1.0)
        variance = jax.vmap(row_rounding_variance, (None, 0))(u, jnp.atleast_1d(rel))
        return jnp.where(on, self.batch_noise * a**2 * variance.reshape(rel.shape), 0.0)

    def _extra(self, a, psi):
        """The corrections to $(\\dot a_i, \\dot\\psi_i)$, $s_i = \\tanh\\psi_i$."""
        s = jnp.tanh(psi)
        p = powers(s, 2 * self.base.orders)  # s^0 .. s^(2L-1)
        mu2 = self.base.mu**2
        k = jnp.arange(self.base.orders)
        deficit = self.second_moment - p[:, ::2] @ mu2  # D(s) = E sigma^2 - sum mu_k^2 s^2k
        slope = jnp.pad(p[:, 1::2], ((0, 0), (1, 0)))[:, :-1] @ (k * mu2)  # sum k mu_k^2 s^2k-1
        da = -self.base.rate_a * self.inv_width * a * deficit
        # s cosh^2 psi = sinh(2 psi) / 2: the floor's -rho s / 2 on s, in psi.
        floor = self.floor_rate(a, s, slope)
        g = self.base.rate_w * self.inv_width * a**2 * slope - 0.25 * floor * jnp.sinh(2 * psi)
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
