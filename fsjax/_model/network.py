r"""The wide two-layer network, its single-index teacher, and its exact population risk.

The network is $f(x) = \frac1n \sum_j a_j \sigma(\langle w_j, x\rangle)$ with unit rows
$\|w_j\| = 1$ (THEORY.md section 3); the teacher draws $x \sim \mathcal N(0, I_d)$ and
$y = f_*(\langle\beta, x\rangle) + \tau\xi$ with $f_* = \sum_k c_k h_k$.

The population risk of a *finite* network is known in closed form from its order parameters:
with the Gram matrix $G_{jl} = \langle w_j, w_l\rangle$, the alignments $s_j = \langle w_j,
\beta\rangle$ and the dual kernel $\kappa(\rho) = \mathbb E[\sigma(u)\sigma(v)]$ for unit
Gaussians of correlation $\rho$ (Mehler: $\kappa(\rho) = \sum_k \mu_k^2\rho^k$),

$$2R = \sum_k c_k^2 + \tau^2 - \frac2n\sum_j a_j\sum_k c_k\mu_k s_j^k
      + \frac1{n^2}\sum_{j,l} a_j a_l\,\kappa(G_{jl}) .$$

Its Hermite components along the teacher direction are $R_k = \frac12 r_k^2$ with
$r_k = \mathbb E[(y - f)h_k(z)] = c_k - \mu_k\frac1n\sum_j a_j s_j^k$ (the reduced model's
residuals); the rest, $R_\perp = R - \sum_k R_k - \tau^2/2$, is the part of the network's output
that is not a function of $z$, which the $d, n \to \infty$ limit drops.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .. import hermite
from ..hermite import AbstractActivation
from .mean_field import MeanField, series_order

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
# Mehler series length for activations without a closed-form kernel: for tanh the neglected
# tail sum_{k>32} mu_k^2 is 8.5e-8 (and 1.4e-5 at 16), far below Monte Carlo resolution.
_KERNEL_ORDER = 32


class Teacher(eqx.Module):
    r"""Single-index data: $x \sim \mathcal N(0, I_d)$, $y = \sum_k c_k h_k(\langle\beta,
    x\rangle) + \tau\xi$. Samples come out in the dtype of `beta`."""

    beta: Float[Array, " d"]
    target: Float[Array, " K"]
    noise: Float[Array, ""]

    def __init__(self, beta, target, noise=0.0):
        beta = jnp.asarray(beta)
        self.beta = beta
        self.target = jnp.asarray(target, dtype=beta.dtype)
        self.noise = jnp.asarray(noise, dtype=beta.dtype)

    def label(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        """$f_*(z) = \\sum_k c_k h_k(z)$ (noise-free)."""
        return hermite.hermite_functions(self.target.shape[-1] - 1, z) @ self.target

    def sample(self, key: PRNGKeyArray, batch: int):
        """A fresh batch `(x, y)` of shapes `(batch, d)` and `(batch,)`."""
        kx, kn = jax.random.split(key)
        dtype = self.beta.dtype
        x = jax.random.normal(kx, (batch, self.beta.shape[-1]), dtype=dtype)
        y = self.label(x @ self.beta)
        return x, y + self.noise * jax.random.normal(kn, (batch,), dtype=dtype)


class Network(eqx.Module):
    r"""$f(x) = \frac1n\sum_j a_j\sigma(\langle w_j, x\rangle)$; rows of `w` have unit norm."""

    w: Float[Array, "n d"]
    a: Float[Array, " n"]
    activation: AbstractActivation = eqx.field(static=True)

    def __call__(self, x: Float[Array, "B d"]) -> Float[Array, " B"]:
        return self.activation(x @ self.w.T) @ self.a / self.a.shape[-1]

    def alignment(self, beta: Float[Array, " d"]) -> Float[Array, " n"]:
        """$s_j = \\langle w_j, \\beta\\rangle$."""
        return self.w @ beta


def unit_rows(w: Float[Array, "n d"]) -> Float[Array, "n d"]:
    """Each row divided by its Euclidean norm (the projection onto the sphere)."""
    return w / jnp.linalg.norm(w, axis=-1, keepdims=True)


def init_network(key, width: int, dim: int, a0, activation, dtype=jnp.float32) -> Network:
    """Rows uniform on the unit sphere (so $s_j \\sim \\mathcal N(0, 1/d)$ for a fixed
    $\\beta$), second layer `a0` (a scalar or one value per neuron)."""
    w = unit_rows(jax.random.normal(key, (width, dim), dtype=jnp.float64)).astype(dtype)
    a = jnp.broadcast_to(jnp.asarray(a0, dtype=dtype), (width,))
    return Network(w, a, hermite.activation(activation))


def init_teacher(key, dim: int, target, noise=0.0, dtype=jnp.float32) -> Teacher:
    """A teacher with a uniformly random unit direction $\\beta$."""
    beta = jax.random.normal(key, (dim,), dtype=jnp.float64)
    return Teacher((beta / jnp.linalg.norm(beta)).astype(dtype), target, noise)


def second_moment(activation: AbstractActivation) -> float:
    """$\\mathbb E[\\sigma(g)^2]$ by a 240-node Gauss rule: converged for smooth activations and
    exact for ReLU (the symmetric rule gives exactly half of $\\mathbb E[g^2] = 1$)."""
    z, w = hermite.gauss_hermite(240)
    return float(w @ np.asarray(activation(jnp.asarray(z)), dtype=np.float64) ** 2)


@functools.cache
def dual_kernel(activation: AbstractActivation):
    r"""$\kappa(\rho) = \mathbb E[\sigma(u)\sigma(v)]$ for unit Gaussians with correlation
    $\rho$. Closed forms: ReLU (arc-cosine kernel)
    $\kappa = (\sqrt{1-\rho^2} + (\pi - \arccos\rho)\rho)/(2\pi)$; erf
    $\kappa = \frac2\pi\arcsin(\rho/2)$. Otherwise the Mehler series to order 32, with the
    exact $\mathbb E\sigma^2$ at $\rho = 1$ (the diagonal)."""
    if isinstance(activation, hermite.ReLU):

        def relu_kernel(rho):
            rho = jnp.clip(rho, -1.0, 1.0)
            return (jnp.sqrt(1 - rho**2) + (jnp.pi - jnp.arccos(rho)) * rho) / (2 * jnp.pi)

        return relu_kernel
    if isinstance(activation, hermite.Erf):
        return lambda rho: (2 / jnp.pi) * jnp.arcsin(jnp.clip(rho, -1.0, 1.0) / 2)
    mu2 = jnp.asarray(activation.hermite(_KERNEL_ORDER) ** 2)
    diagonal = second_moment(activation)

    def series(rho):
        return jnp.where(rho >= 1.0, diagonal, jnp.polyval(mu2[::-1], rho))

    return series


class RiskModel(eqx.Module):
    """Everything the closed-form population risk needs besides the weights: the teacher's
    coefficients, the activation's $\\mu_k$ (to the same length) and its dual kernel."""

    target: Float[Array, " L"]
    mu: Float[Array, " L"]
    noise: Float[Array, ""]
    kernel: object = eqx.field(static=True)

    def __init__(self, activation, target, noise, order: int):
        act = hermite.activation(activation)
        target = np.asarray(target, dtype=np.float64)
        order = series_order(order, target.size)
        self.target = jnp.asarray(np.pad(target, (0, order + 1 - target.size)))
        self.mu = jnp.asarray(act.hermite(order))
        self.noise = jnp.asarray(float(noise))
        self.kernel = dual_kernel(act)

    def residuals(self, a, s) -> Float[Array, " L"]:
        """$r_k = c_k - \\mu_k\\frac1n\\sum_j a_j s_j^k$."""
        return MeanField(self.target, self.mu, self.noise).residuals(a, s)

    def __call__(self, w, a, beta):
        """(risk, R_k for every order, R_perp) in float64."""
        w, a, beta = (jnp.asarray(v, dtype=jnp.float64) for v in (w, a, beta))
        w = unit_rows(w)
        s = w @ beta
        n = a.shape[-1]
        k = jnp.arange(self.mu.shape[-1])
        cross = (a @ (s[:, None] ** k)) @ (self.target * self.mu) / n
        gram = jnp.clip(w @ w.T, -1.0, 1.0).at[jnp.diag_indices(n)].set(1.0)
        self_term = a @ self.kernel(gram) @ a / n**2
        risk = 0.5 * (jnp.sum(self.target**2) + self.noise**2 - 2 * cross + self_term)
        risk_k = 0.5 * self.residuals(a, s) ** 2
        return risk, risk_k, risk - jnp.sum(risk_k) - 0.5 * self.noise**2


def monte_carlo_risk(net: Network, teacher: Teacher, x, y, order: int):
    """(risk, its standard error, R_k for k <= order) estimated on held-out samples `(x, y)`:
    $\\frac12\\overline{(y-f)^2}$ and $\\frac12\\overline{(y-f)h_k(z)}^{\\,2}$, in float64."""
    x, y = jnp.asarray(x, dtype=jnp.float64), jnp.asarray(y, dtype=jnp.float64)
    net = Network(
        jnp.asarray(net.w, dtype=jnp.float64), jnp.asarray(net.a, jnp.float64), net.activation
    )
    e = y - net(x)
    h = hermite.hermite_functions(order, x @ jnp.asarray(teacher.beta, dtype=jnp.float64))
    se = jnp.std(0.5 * e**2) / jnp.sqrt(e.shape[0])
    return 0.5 * jnp.mean(e**2), se, 0.5 * jnp.mean(e[:, None] * h, axis=0) ** 2


def flops_per_step(width: int, dim: int, batch: int) -> float:
    """The conventional 6 B d n FLOPs of a dense layer's forward and backward pass (this loop
    needs only the forward product and the weight gradient, 4 B d n)."""
    return 6.0 * batch * dim * width
