r"""Hermite algebra: normalised Hermite polynomials, activation and target coefficients.

Throughout, $h_k(z) = \mathrm{He}_k(z)/\sqrt{k!}$ are the probabilists' Hermite polynomials
normalised to be orthonormal under $z \sim \mathcal N(0, 1)$. A function $f$ with
$\mathbb E[f(g)^2] < \infty$ has the expansion $f = \sum_k f_k h_k$ with
$f_k = \mathbb E[f(g) h_k(g)]$.

The *correlation identity* (Mehler) for unit vectors $w, v$ and $x \sim \mathcal N(0, I_d)$:

$$\mathbb E[\sigma(\langle w, x\rangle)\,\varphi(\langle v, x\rangle)]
   = \sum_k \mu_k \varphi_k \langle w, v\rangle^k .$$

Activations are `equinox.Module`s with a `__call__` (used by the network) and a
`hermite(order)` method returning $(\mu_0, \dots, \mu_{\text{order}})$ (used by the reduced
dynamics). Closed forms are used where they exist (ReLU, erf, linear, polynomials); smooth
activations use Gauss-Hermite quadrature whose convergence is checked at construction time.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
from jaxtyping import Array, ArrayLike, Float
from scipy.special import ndtr, roots_hermitenorm

__all__ = [
    "ACTIVATION_NAMES",
    "GELU",
    "AbstractActivation",
    "Erf",
    "HermiteSeries",
    "Linear",
    "Polynomial",
    "ReLU",
    "Tanh",
    "activation",
    "coefficients",
    "correlation",
    "gauss_hermite",
    "hermite_functions",
    "project",
]

_QUADRATURE_NODES = 240
_QUADRATURE_TOL = 1e-12


def hermite_functions(order: int, z: ArrayLike) -> Float[Array, "... order+1"]:
    r"""Evaluate $h_0(z), \dots, h_{\text{order}}(z)$ by the stable three-term recurrence
    $h_{k+1} = (z h_k - \sqrt{k}\, h_{k-1})/\sqrt{k+1}$. The last axis indexes $k$."""
    z = jnp.asarray(z)
    hs = [jnp.ones_like(z), z]
    for k in range(1, order):
        hs.append((z * hs[k] - math.sqrt(k) * hs[k - 1]) / math.sqrt(k + 1))
    return jnp.stack(hs[: order + 1], axis=-1)


def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss rule for the standard Gaussian measure (weights
    sum to one). Exact for polynomials of degree <= 2n - 1."""
    nodes, weights = roots_hermitenorm(n)  # asymptotic formulas keep large n accurate
    return nodes, weights / math.sqrt(2 * math.pi)


def _hermite_functions_np(order: int, z: np.ndarray) -> np.ndarray:
    hs = [np.ones_like(z), z]
    for k in range(1, order):
        hs.append((z * hs[k] - math.sqrt(k) * hs[k - 1]) / math.sqrt(k + 1))
    return np.stack(hs[: order + 1], axis=-1)


def project(fn: Callable[[np.ndarray], np.ndarray], order: int, nodes: int | None = None):
    r"""Hermite coefficients $f_k = \mathbb E[f(g) h_k(g)]$, $k \le$ `order`, of a smooth
    function by Gauss-Hermite quadrature, with a convergence check: the rules with `nodes` and
    with `2 * nodes // 3` points must agree to 1e-12 relative to $\sqrt{\mathbb E f^2}$,
    otherwise a `ValueError` says so (kinked functions need closed forms instead). By default
    `nodes` grows with the order, since high-order h_k oscillate on a finer scale."""
    nodes = nodes or max(_QUADRATURE_NODES, 6 * order)

    def rule(n):
        z, w = gauss_hermite(n)
        return (w * np.asarray(fn(z), dtype=np.float64)) @ _hermite_functions_np(order, z)

    fine, coarse = rule(nodes), rule(2 * nodes // 3)
    z, w = gauss_hermite(nodes)
    scale = math.sqrt(max(float(w @ np.asarray(fn(z), dtype=np.float64) ** 2), 1e-300))
    err = float(np.max(np.abs(fine - coarse))) / scale
    if not err < _QUADRATURE_TOL:
        raise ValueError(
            f"Gauss-Hermite projection did not converge (relative change {err:.2e} between "
            f"{2 * nodes // 3} and {nodes} nodes); the function is probably not smooth."
        )
    return fine


class AbstractActivation(eqx.Module):
    """An activation $\\sigma$ together with its Hermite coefficients $\\mu_k$."""

    @abc.abstractmethod
    def __call__(self, z: ArrayLike) -> Array:
        """Evaluate $\\sigma$ elementwise (JAX-traceable)."""

    @abc.abstractmethod
    def hermite(self, order: int) -> np.ndarray:
        """$(\\mu_0, \\dots, \\mu_{\\text{order}})$ as a float64 numpy array."""

    def derivative(self, z: ArrayLike) -> Array:
        """$\\sigma'(z)$ elementwise, by automatic differentiation."""
        return jnp.vectorize(jax.grad(lambda u: self(u)))(jnp.asarray(z, dtype=float))


class ReLU(AbstractActivation):
    r"""$\sigma(z) = \max(z, 0)$. Closed form by Gaussian integration by parts:
    $\mu_0 = 1/\sqrt{2\pi}$, $\mu_1 = 1/2$ and, for $k \ge 2$,
    $\mu_k = \mathrm{He}_{k-2}(0)/(\sqrt{2\pi}\sqrt{k!})$ (zero for odd $k \ge 3$)."""

    def __call__(self, z):
        return jnp.maximum(z, 0.0)

    def hermite(self, order):
        mu = np.zeros(order + 1)
        mu[0] = 1 / math.sqrt(2 * math.pi)
        if order >= 1:
            mu[1] = 0.5
        he_at_zero = _he_at_zero(max(order - 2, 0))
        for k in range(2, order + 1):
            mu[k] = he_at_zero[k - 2] / math.sqrt(2 * math.pi * math.factorial(k))
        return mu


class Erf(AbstractActivation):
    r"""$\sigma(z) = \mathrm{erf}(z/\sqrt 2) = 2\Phi(z) - 1$. Closed form: even $\mu_k$ vanish;
    for odd $k$, $\mu_k = (k-2)!!\,(-1/2)^{(k-1)/2} / \sqrt{\pi\, k!}$ (so $\mu_1 = 1/\sqrt\pi$),
    from $\mathbb E[\sigma^{(k)}(g)] = 2\,\mathbb E[\varphi^{(k-1)}(g)]$ and
    $\mathbb E_{z\sim\mathcal N(0,1/2)}[\mathrm{He}_n(z)] = (n-1)!!\,(-1/2)^{n/2}$."""

    def __call__(self, z):
        return jsp.erf(z / math.sqrt(2.0))

    def hermite(self, order):
        mu = np.zeros(order + 1)
        for k in range(1, order + 1, 2):
            n = k - 1
            mu[k] = (
                _double_factorial(n - 1)
                * (-0.5) ** (n // 2)
                / math.sqrt(math.pi * math.factorial(k))
            )
        return mu


class Tanh(AbstractActivation):
    """$\\sigma(z) = \\tanh z$; coefficients by converged Gauss-Hermite quadrature."""

    def __call__(self, z):
        return jnp.tanh(z)

    def hermite(self, order):
        return project(np.tanh, order)


class GELU(AbstractActivation):
    r"""$\sigma(z) = z\,\Phi(z)$ (exact GELU); coefficients by converged quadrature."""

    def __call__(self, z):
        return z * 0.5 * (1.0 + jsp.erf(z / math.sqrt(2.0)))

    def hermite(self, order):
        return project(lambda z: z * ndtr(z), order)


class Linear(AbstractActivation):
    """$\\sigma(z) = z$: $\\mu_1 = 1$, all others zero."""

    def __call__(self, z):
        return jnp.asarray(z)

    def hermite(self, order):
        mu = np.zeros(order + 1)
        if order >= 1:
            mu[1] = 1.0
        return mu


class HermiteSeries(AbstractActivation):
    r"""$\sigma(z) = \sum_k \mu_k h_k(z)$ from a user list of coefficients (exact)."""

    mu: tuple[float, ...]

    def __init__(self, mu: Sequence[float]):
        self.mu = tuple(float(m) for m in mu)

    def __call__(self, z):
        return hermite_functions(len(self.mu) - 1, z) @ jnp.asarray(self.mu)

    def hermite(self, order):
        mu = np.zeros(order + 1)
        n = min(order + 1, len(self.mu))
        mu[:n] = self.mu[:n]
        return mu


class Polynomial(AbstractActivation):
    r"""$\sigma(z) = \sum_j p_j z^j$ from monomial coefficients; its Hermite coefficients are
    exact (a Gauss rule with more nodes than the degree integrates it exactly)."""

    monomials: tuple[float, ...]

    def __init__(self, monomials: Sequence[float]):
        self.monomials = tuple(float(p) for p in monomials)

    def __call__(self, z):
        return jnp.polyval(jnp.asarray(self.monomials[::-1]), jnp.asarray(z))

    def hermite(self, order):
        z, w = gauss_hermite(len(self.monomials) + order + 2)
        values = np.polynomial.polynomial.polyval(z, self.monomials)
        return (w * values) @ _hermite_functions_np(order, z)


_NAMED = {"relu": ReLU, "tanh": Tanh, "erf": Erf, "gelu": GELU, "linear": Linear}
ACTIVATION_NAMES = tuple(_NAMED)


def activation(spec: str | dict | AbstractActivation) -> AbstractActivation:
    """Build an activation from a name (`relu`, `tanh`, `erf`, `gelu`, `linear`), a dict
    `{hermite: [mu_0, ...]}` or `{polynomial: [p_0, p_1, ...]}`, or pass one through."""
    if isinstance(spec, AbstractActivation):
        return spec
    if isinstance(spec, str):
        try:
            return _NAMED[spec]()
        except KeyError:
            raise ValueError(
                f"unknown activation {spec!r}; allowed: {', '.join(ACTIVATION_NAMES)}, "
                "{hermite: [mu_0, mu_1, ...]} or {polynomial: [p_0, p_1, ...]}"
            ) from None
    if isinstance(spec, dict) and len(spec) == 1:
        ((key, values),) = spec.items()
        if key == "hermite":
            return HermiteSeries(values)
        if key == "polynomial":
            return Polynomial(values)
    raise ValueError(
        f"activation must be one of {', '.join(ACTIVATION_NAMES)}, "
        f"{{hermite: [...]}} or {{polynomial: [...]}}; got {spec!r}"
    )


def coefficients(name: str | dict | AbstractActivation, order: int) -> np.ndarray:
    """Hermite coefficients $(\\mu_0, \\dots, \\mu_{\\text{order}})$ of an activation."""
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    return activation(name).hermite(order)


def correlation(mu: ArrayLike, phi: ArrayLike, rho: ArrayLike) -> Array:
    r"""$\mathbb E[\sigma(\langle w,x\rangle)\varphi(\langle v,x\rangle)] = \sum_k \mu_k\varphi_k
    \rho^k$ for unit $w, v$ with $\rho = \langle w, v\rangle$ (series truncated at the shorter
    of the two coefficient lists)."""
    mu, phi = jnp.asarray(mu), jnp.asarray(phi)
    n = min(mu.shape[-1], phi.shape[-1])
    return jnp.polyval((mu[..., :n] * phi[..., :n])[::-1], jnp.asarray(rho))


def _he_at_zero(n: int) -> list[float]:
    """$\\mathrm{He}_k(0)$ for k = 0..n: zero for odd k, $(-1)^{k/2}(k-1)!!$ for even k."""
    return [0.0 if k % 2 else (-1) ** (k // 2) * _double_factorial(k - 1) for k in range(n + 1)]


def _double_factorial(n: int) -> float:
    return float(math.prod(range(n, 0, -2))) if n > 0 else 1.0
