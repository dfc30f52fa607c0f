r"""The reduced mean-field dynamics of a wide two-layer network (d -> infinity).

With $m$ particles $(a_i, s_i)$, $s_i = \langle w_i, \beta\rangle$ the alignment of a first-layer
row with the teacher direction, the network's $k$-th Hermite output coefficient is
$\mu_k M_k$ with $M_k = \frac1m\sum_i a_i s_i^k$ and the population risk is

$$R(a, s) = \tfrac12 \sum_{k=0}^{L} (c_k - \mu_k M_k)^2 + \tfrac{\tau^2}{2},
  \qquad r_k = c_k - \mu_k M_k ,$$

summed over every order the target *or the activation* reaches ($L$ = max of the target's
degree and `hermite_order`): the network's own components beyond the target's degree are part
of the risk. The flow is

$$\dot a_i = -\lambda_a m\,\partial_{a_i} R = \lambda_a \sum_k \mu_k s_i^k r_k ,\qquad
  \dot s_i = -\lambda_w m (1 - s_i^2)\,\partial_{s_i} R
          = \lambda_w (1 - s_i^2)\, a_i \sum_k k\mu_k s_i^{k-1} r_k ,$$

integrated in the coordinates $s_i = \tanh\psi_i$, where $\dot s_i = (1-s_i^2) g_i$ becomes
$\dot\psi_i = g_i = \lambda_w a_i \sum_k k\mu_k s_i^{k-1} r_k$: $|s_i| < 1$ holds exactly,
the rate stays bounded, and the distance to the boundary, $1 - |s_i| \approx 2e^{-2|\psi_i|}$,
is resolved however small it gets. The angle coordinates $s = \sin\theta$ cannot resolve it
below the float spacing of $\pi/2$: once the fast phase pins $s$ to the boundary, a solve in
angles either sticks there for good or leaves it at a time set by rounding, whereas the exact
flow leaves it after the entry-exit delay ($\psi$ returns to O(1) once $\int g\,dt$ does).
Which layer is slow is set by the rates: `first_layer` is
$(\lambda_a, \lambda_w) = (1, \varepsilon)$, `second_layer` is $(\varepsilon, 1)$.
"""

from __future__ import annotations

import math
from typing import Literal

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .base import AbstractReducedModel

SlowLayer = Literal["first_layer", "second_layer"]
SLOW_LAYERS = ("first_layer", "second_layer")


def layer_rates(slow: SlowLayer, epsilon: ArrayLike) -> tuple[Array, Array]:
    """(lambda_a, lambda_w) for the named slow layer and time-scale ratio epsilon."""
    one = jnp.ones_like(jnp.asarray(epsilon, dtype=float))
    if slow == "first_layer":
        return one, one * epsilon
    if slow == "second_layer":
        return one * epsilon, one
    raise ValueError(f"slow must be one of {', '.join(SLOW_LAYERS)}; got {slow!r}")


def series_order(hermite_order: int, n_target: int) -> int:
    """The highest Hermite order the risk sums over: the activation's truncation or the
    target's degree, whichever is larger (see the module docstring)."""
    return max(hermite_order, n_target - 1)


def powers(s: Float[Array, " m"], n: int) -> Float[Array, "m n"]:
    r"""$s_i^k$ for k = 0..n-1 as one broadcast product over the binary digits of k,
    $s^k = \prod_b (s^{2^b})^{k_b}$ (exact gradients at s = 0). It fuses into its consumer;
    a column per power does not (the stack of columns is a separate copy on the CPU) and
    `jnp.cumprod` lowers to a windowed reduction, each several times slower there."""
    k = np.arange(n)
    out = jnp.ones((*s.shape, n), dtype=s.dtype)
    square = s
    for b in range(max(n - 1, 1).bit_length()):
        out = out * jnp.where((k >> b) & 1 == 1, square[..., None], 1.0)
        square = square * square
    return out


def series(v: Float[Array, " n"], s: Float[Array, " m"], derivatives: int = 1):
    r"""$\sum_k v_k s_i^k$ and its first `derivatives` derivatives in $s_i$, a tuple of (m,)
    arrays. One particle (the sweeps' 2-D system, vmapped over lanes) by Horner's rule: a
    chain of multiply-adds that XLA fuses into one loop, where a table of powers times a
    matrix is an (n,) temporary and, under `vmap`, a batched product of n-term rows per lane,
    several times slower on the CPU. Several particles by the table of powers times the
    coefficients of every derivative at once: one product, where a Horner chain per output
    is copied into each of its consumers (m = 64: 40% slower a step). Exact at s = 0,
    gradients included."""
    n = v.shape[-1]
    if s.shape[-1] > 1:
        k = np.arange(n)
        # Column d holds the coefficients of the d-th derivative: v_k k!/(k-d)! at order k - d.
        cols = [v]
        for d in range(1, derivatives + 1):
            falling = np.prod([k - j for j in range(d)], axis=0)[d:].astype(float)
            cols.append(jnp.pad(falling * v[d:], (0, d)))
        out = powers(s, n) @ jnp.stack(cols, axis=-1)
        return tuple(out[..., d] for d in range(derivatives + 1))
    # acc[d] accumulates the d-th derivative over d!; None is a zero not yet touched.
    acc = [None] * (derivatives + 1)
    for k in reversed(range(n)):
        for d in range(derivatives, 0, -1):
            if acc[d - 1] is not None:
                acc[d] = acc[d - 1] if acc[d] is None else acc[d] * s + acc[d - 1]
        acc[0] = jnp.broadcast_to(v[k], s.shape) if acc[0] is None else acc[0] * s + v[k]
    acc = [jnp.zeros_like(s) if x is None else x for x in acc]
    return tuple(x if d < 2 else math.factorial(d) * x for d, x in enumerate(acc))


class MeanField(AbstractReducedModel):
    """The $m$-particle reduced system; every field is an array, so the module can be
    vmapped over and differentiated with respect to any of them."""

    target: Float[Array, " L"]
    mu: Float[Array, " L"]
    noise: Float[Array, ""]
    rate_a: Float[Array, ""]
    rate_w: Float[Array, ""]

    def __init__(self, target, mu, noise=0.0, rate_a=1.0, rate_w=1.0):
        target, mu = jnp.asarray(target, dtype=float), jnp.asarray(mu, dtype=float)
        n = max(target.shape[-1], mu.shape[-1])
        self.target = jnp.pad(target, (0, n - target.shape[-1]))
        self.mu = jnp.pad(mu, (0, n - mu.shape[-1]))
        self.noise = jnp.asarray(noise, dtype=float)
        self.rate_a = jnp.asarray(rate_a, dtype=float)
        self.rate_w = jnp.asarray(rate_w, dtype=float)

    @property
    def mean_field(self) -> MeanField:
        return self

    def output_coefficients(self, a: Float[Array, " m"], s: Float[Array, " m"]):
        r"""$\mu_k M_k = \mu_k \frac1m \sum_i a_i s_i^k$ for every order k."""
        p = powers(s, self.orders)
        # One particle: no sum, which keeps the batched product a vmapped one would be (one
        # per lane) out of the sweeps' step.
        moments = a[..., 0, None] * p[..., 0, :] if a.shape[-1] == 1 else a @ p
        return self.mu * moments / a.shape[-1]

    def residuals(self, a, s) -> Float[Array, " L"]:
        """$r_k = c_k - \\mu_k M_k$."""
        return self.target - self.output_coefficients(a, s)

    def risk_components(self, a, s) -> Float[Array, " L"]:
        """$R_k = r_k^2/2$; the risk is their sum plus $\\tau^2/2$."""
        return 0.5 * self.residuals(a, s) ** 2

    def drift(self, a, s):
        """$\\dot a_i$ and $g_i = \\lambda_w a_i\\sum_k k\\mu_k s_i^{k-1} r_k$, so that
        $\\dot s_i = (1-s_i^2) g_i$ and $\\dot\\psi_i = g_i$. Defined on the closed
        boundary $|s_i| = 1$ too, which the fast-slow analysis needs."""
        value, slope = series(self.mu * self.residuals(a, s), s)
        return self.rate_a * value, self.rate_w * a * slope

    def velocity(self, a, s) -> tuple[Float[Array, " m"], Float[Array, " m"]]:
        """$(\\dot a_i, \\dot s_i)$ in the original coordinates."""
        da, g = self.drift(a, s)
        return da, (1 - s**2) * g

    def vector_field(self, t, y, args):
        """The flow in the integrated coordinates y = (a, psi), s = tanh(psi)."""
        a, psi = y
        return self.drift(a, jnp.tanh(psi))

    def jacobian_parts(self, a: Float[Array, " m"], psi: Float[Array, " m"]):
        r"""The Jacobian of `vector_field` in parts, $J = D + U W^\top$, in $O(mL)$ memory.

        Write $v_k = \mu_k r_k$, $p_{ik} = s_i^k$, $p'_{ik} = k s_i^{k-1}$,
        $p''_{ik} = k(k-1) s_i^{k-2}$ and $\sigma_i = ds_i/d\psi_i = 1 - s_i^2$, so that
        $\dot a_i = \lambda_a \sum_k p_{ik} v_k$ and $g_i = \lambda_w a_i \sum_k p'_{ik} v_k$.
        Particle i's drift depends on the state through its own $(a_i, \psi_i)$ and through the
        residuals, $r_k = c_k - \frac{\mu_k}m \sum_j a_j p_{jk}$, so by the chain rule
        $J = D + \sum_k (\partial f/\partial r_k)(\partial r_k/\partial y)^\top$:

        - $D$, holding $r$ fixed, is block diagonal with one 2x2 block per particle,
          $$D_i = \begin{pmatrix} 0 & \lambda_a \sigma_i \sum_k p'_{ik} v_k \\
            \lambda_w \sum_k p'_{ik} v_k & \lambda_w a_i \sigma_i \sum_k p''_{ik} v_k
            \end{pmatrix};$$
        - $U_{\cdot k} = \partial f/\partial r_k$: $U^a_{ik} = \lambda_a \mu_k p_{ik}$,
          $U^\psi_{ik} = \lambda_w a_i \mu_k p'_{ik}$;
        - $W_{\cdot k} = \partial r_k/\partial y$: $W^a_{jk} = -\mu_k p_{jk}/m$,
          $W^\psi_{jk} = -\mu_k a_j p'_{jk} \sigma_j / m$.

        $U W^\top$ has rank at most L + 1, the number of orders. $\sigma_i$ is evaluated as
        $\operatorname{sech}^2\psi_i = 4e^{-2|\psi_i|}/(1 + e^{-2|\psi_i|})^2$, which keeps
        its relative accuracy where $1 - s_i^2$ from the rounded $s_i$ has lost it (or is 0,
        beyond $|\psi_i| \approx 19$).

        Returns `(blocks, u, w)` with the rows of all $a_i$ before those of all $\psi_i$, the
        layout of the step matrices: `blocks[r, q]` (m,) holds entry (r, q) of every $D_i$
        over (a, psi) x (a, psi), and `u[r]`, `w[r]` (m, L + 1) the rows of $U$, $W$ for
        component r, so that `u.reshape(2 * m, -1)` is $U$.
        """
        s = jnp.tanh(psi)
        e = jnp.exp(-2 * jnp.abs(psi))
        sigma = 4 * e / (1 + e) ** 2
        n = self.orders
        p = powers(s, n)
        k = jnp.arange(n, dtype=p.dtype)
        dp = k * jnp.pad(p, ((0, 0), (1, 0)))[:, :n]
        v = self.mu * self.residuals(a, s)
        _, slope, curvature = series(v, s, 2)  # sum_k p'_ik v_k and sum_k p''_ik v_k
        blocks = jnp.stack(
            [
                jnp.stack([jnp.zeros_like(a), self.rate_a * sigma * slope]),
                jnp.stack([self.rate_w * slope, self.rate_w * a * sigma * curvature]),
            ]
        )
        u = jnp.stack([self.rate_a * self.mu * p, self.rate_w * a[:, None] * self.mu * dp])
        w = jnp.stack([p, (a * sigma)[:, None] * dp]) * (-self.mu / a.shape[-1])
        return blocks, u, w
