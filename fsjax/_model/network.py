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
from .._errors import FsjaxError
from ..hermite import AbstractActivation
from .mean_field import MeanField, series_order

DTYPES = {"bfloat16": jnp.bfloat16, "float32": jnp.float32, "float64": jnp.float64}
# Explicit mantissa bits of the operands of a float32 network's products in each
# `network.matmul_precision` (float32's own 23: operands as stored). TF32 and bfloat16 units
# round their operands to nearest, ties to even, keep float32's exponent and accumulate in
# float32.
PRODUCT_BITS = {"float32": 23, "tensorfloat32": 10, "bfloat16": 7}
MATMUL_PRECISIONS = ("default", *PRODUCT_BITS)
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


def round_mantissa(x: Float[Array, "..."], bits: int) -> Float[Array, "..."]:
    """float32 `x` rounded to `bits` explicit mantissa bits, to nearest with ties to even (the
    rounding of a TF32 or bfloat16 unit's operands), in float32's exponent range."""
    drop = 23 - bits
    if drop <= 0:
        return x
    i = jax.lax.bitcast_convert_type(x, jnp.uint32)
    # Adding half an ulp less one, plus the kept last bit, carries exactly when the dropped
    # bits exceed half, or equal it with an odd kept part; a carry into the exponent is right.
    i = i + jnp.uint32((1 << (drop - 1)) - 1) + ((i >> drop) & 1)
    return jax.lax.bitcast_convert_type(i & jnp.uint32(~((1 << drop) - 1) & 0xFFFFFFFF), x.dtype)


def _operand(x, products: str):
    """An operand as a unit of `products` reads it: bfloat16 operands as bfloat16 (a native
    type: the accelerators' bfloat16 units, exact products on a CPU), TF32 by rounding."""
    if products == "bfloat16":
        return x.astype(jnp.bfloat16)
    return round_mantissa(x, PRODUCT_BITS[products])


def _dot(x, y, products: str):
    return jnp.matmul(
        _operand(x, products), _operand(y, products), preferred_element_type=jnp.float32
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def rounded_matmul(x, y, products: str):
    """`x @ y` of float32 arrays with both operands rounded to `products`' format and the sum
    in float32, and so are the products of its backward pass; `y` a matrix or a vector (the
    outer product that the vector's cotangent makes has no sum, and is a float32 multiply)."""
    return _dot(x, y, products)


def _rounded_matmul_fwd(x, y, products):
    return _dot(x, y, products), (x, y)


def _rounded_matmul_bwd(products, residuals, g):
    x, y = residuals
    if y.ndim == 1:
        return g[..., None] * y, _dot(jnp.swapaxes(x, -1, -2), g, products)
    return _dot(g, jnp.swapaxes(y, -1, -2), products), _dot(jnp.swapaxes(x, -1, -2), g, products)


rounded_matmul.defvjp(_rounded_matmul_fwd, _rounded_matmul_bwd)


def matmul(x, y, products: str):
    """A product of the network (forward, and through autodiff backward) in `products`, a
    resolved `network.matmul_precision` (`product_format`): float32 and float64 networks'
    own arithmetic at the highest precision (so an accelerator's default TF32 or bfloat16
    passes do not apply), TF32 as the GPU's TF32 unit (`precision=HIGH`) or, elsewhere,
    emulated by `rounded_matmul`, bfloat16 by `rounded_matmul`'s bfloat16 operands."""
    if products in ("float32", "float64") or x.dtype != jnp.float32:
        return jnp.matmul(x, y, precision=jax.lax.Precision.HIGHEST)
    if products == "tensorfloat32" and jax.default_backend() == "gpu":
        return jnp.matmul(x, y, precision=jax.lax.Precision.HIGH)
    return rounded_matmul(x, y, products)


def backend_products(platform: str | None = None, capability: str | None = None) -> str:
    """What `network.matmul_precision: default` does to float32 products on `platform`
    (default: JAX's first device): TF32 on NVIDIA GPUs of compute capability >= 8, one
    bfloat16 pass on TPUs, float32 elsewhere."""
    if platform is None:
        device = jax.devices()[0]
        platform, capability = device.platform, getattr(device, "compute_capability", None)
    if platform == "gpu" and capability is not None and float(capability) >= 8:
        return "tensorfloat32"
    return "bfloat16" if platform == "tpu" else "float32"


def product_format(
    dtype: str, matmul_precision: str, platform: str | None = None, capability=None
) -> str:
    """The format a network of `dtype` rounds its products' operands to under
    `matmul_precision` (`MATMUL_PRECISIONS`) on `platform` (default: JAX's first device):
    float64 and bfloat16 networks multiply in their own dtype; a mode the backend has no
    unit for is an `FsjaxError` naming the field."""
    if dtype != "float32":
        return dtype
    if matmul_precision == "default":
        return backend_products(platform, capability)
    if platform is None:
        device = jax.devices()[0]
        platform, capability = device.platform, getattr(device, "compute_capability", None)
    if matmul_precision == "tensorfloat32" and platform == "tpu":
        raise FsjaxError(
            "network.matmul_precision: a TPU has no TF32 unit (its 'high' precision is three "
            "bfloat16 passes); choose float32, bfloat16 or default"
        )
    if matmul_precision == "tensorfloat32" and platform == "gpu" and float(capability) < 8:
        raise FsjaxError(
            f"network.matmul_precision: TF32 needs an NVIDIA GPU of compute capability 8.0 or "
            f"later (this one: {capability}); choose float32, bfloat16 or default"
        )
    return matmul_precision


class Network(eqx.Module):
    r"""$f(x) = \frac1n\sum_j a_j\sigma(\langle w_j, x\rangle)$; rows of `w` have unit norm;
    its products in the format `products` (`product_format`)."""

    w: Float[Array, "n d"]
    a: Float[Array, " n"]
    activation: AbstractActivation = eqx.field(static=True)
    products: str = eqx.field(default="float32", static=True)

    def __call__(self, x: Float[Array, "B d"]) -> Float[Array, " B"]:
        h = matmul(x, self.w.T, self.products)
        return matmul(self.activation(h), self.a, self.products) / self.a.shape[-1]

    def alignment(self, beta: Float[Array, " d"]) -> Float[Array, " n"]:
        """$s_j = \\langle w_j, \\beta\\rangle$."""
        return self.w @ beta


def unit_rows(w: Float[Array, "n d"]) -> Float[Array, "n d"]:
    """Each row divided by its Euclidean norm (the projection onto the sphere)."""
    return w / jnp.linalg.norm(w, axis=-1, keepdims=True)


def init_network(
    key, width: int, dim: int, a0, activation, dtype=jnp.float32, products="float32"
) -> Network:
    """Rows uniform on the unit sphere (so $s_j \\sim \\mathcal N(0, 1/d)$ for a fixed
    $\\beta$), second layer `a0` (a scalar or one value per neuron), products in `products`."""
    w = unit_rows(jax.random.normal(key, (width, dim), dtype=jnp.float64)).astype(dtype)
    a = jnp.broadcast_to(jnp.asarray(a0, dtype=dtype), (width,))
    return Network(w, a, hermite.activation(activation), products)


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
