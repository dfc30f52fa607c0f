r"""The exact population gradient flow of $m$ neurons at any input dimension: the overlap flow
(THEORY.md section 9, seed 002's Proposition 2).

The state is the second layer $a_i$, the alignments $s_i = \langle w_i, \beta\rangle$ and the
overlaps $Q_{ij} = \langle w_i, w_j\rangle$ of the unit first-layer rows. For unit vectors
Mehler's formula gives $\mathbb E[\sigma(h_i)\sigma(h_j)] = g(Q_{ij})$,
$g(q) = \sum_k \mu_k^2 q^k$ (on the diagonal the exact $g(1) = \mathbb E\sigma^2$), so with
$F(s) = \sum_k c_k\mu_k s^k$ the risk

$$R = \tfrac12\Big(\sum_k c_k^2 + \tau^2\Big) - \frac1m\sum_i a_i F(s_i)
    + \frac1{2m^2}\sum_{i,j} a_i a_j\, g(Q_{ij})$$

and its projected gradient flow on the spheres close on these numbers, whatever $d$. Its
Hermite components along $\beta$ are `MeanField`'s, $R_k = \frac12 r_k^2$; the rest,
$R_\perp = R - \sum_k R_k - \tau^2/2$, is the output off the teacher's direction, which
`MeanField` (Proposition 3) drops by taking the rows' parts orthogonal to $\beta$ mutually
orthogonal.

**Coordinates.** Write $w_i = s_i\beta + c_i u_i$ with $c_i = \sqrt{1 - s_i^2}$ and $u_i$ a
unit vector orthogonal to $\beta$, and integrate $\psi_i = \operatorname{artanh} s_i$ (as
`MeanField`) and $\phi_{ij} = \operatorname{artanh} P_{ij}$ for $i < j$, where
$P_{ij} = \langle u_i, u_j\rangle$ is the correlation of the orthogonal parts, so that
$Q_{ij} = s_i s_j + c_i c_j P_{ij}$. $|s_i| < 1$ and $|P_{ij}| < 1$ hold exactly, hence
$|Q_{ij}| < 1$; $c_i = \operatorname{sech}\psi_i$ keeps its relative accuracy at the boundary
where $Q_{ij} - s_i s_j$ would cancel; Proposition 3's flow is $P = 0$ and a network started
uniformly on the sphere has $P_{ij}(0) \sim \mathcal N(0, 1/d)$.

**Flow.** The gradient of $R$ in $w_i$ is $G_i = -\frac1m a_i F'(s_i)\beta + \frac1m\sum_{k
\ne i} A_{ik} w_k$ with $A_{ik} = a_i a_k g'(Q_{ik})/m$, and $\dot w_i = -\lambda_w m(G_i -
\langle w_i, G_i\rangle w_i)$. Projecting onto $\beta$ and onto the $u_j$ (the terms along
$w_i$ cancel) gives, with $B_{ik} = A_{ik} c_k/c_i$ and $b_i = \sum_k B_{ik}P_{ik}$,

$$\dot a_i = \lambda_a\Big(F(s_i) - \frac1m\sum_j a_j g(Q_{ij})\Big),\qquad
  \dot\psi_i = \frac{\dot s_i}{c_i^2} = \lambda_w\big(a_i F'(s_i) - (A s)_i + s_i b_i\big),$$
$$\dot P_{ij} = \langle\dot u_i, u_j\rangle + \langle u_i, \dot u_j\rangle
  = -\lambda_w\big((BP)_{ij} + (BP)_{ji} - (b_i + b_j) P_{ij}\big),\qquad
  \dot\phi_{ij} = \dot P_{ij}/(1 - P_{ij}^2),$$

$O(m^3)$ per evaluation. At $P = 0$ held fixed, $(\dot a, \dot s)$ is `MeanField`'s plus the
self-interaction of `NetworkMeanField`'s `finite_width` at $n = m$; dropping that too
($g(s_i^2)$ for $g(1)$ on the diagonal) leaves `MeanField`. The ratio $c_k/c_i$ grows when one
row nears $\beta$ and another does not: the direction $u_i$ of a row close to $\beta$ turns
fast, which a stiff solver takes in its stride.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .. import hermite
from .base import AbstractReducedModel
from .mean_field import MeanField, series
from .network import second_moment


def _log_sech(x):
    """$\\log\\operatorname{sech} x$, accurate and finite for any finite x."""
    x = jnp.abs(x)
    return jnp.log(2.0) - x - jnp.log1p(jnp.exp(-2.0 * x))


def pairs(m: int) -> tuple[np.ndarray, np.ndarray]:
    """The index pairs (i, j), i < j, in the order of the packed overlaps."""
    return np.triu_indices(m, 1)


def unpack(packed: Float[Array, " M"], m: int, diagonal: float) -> Float[Array, "m m"]:
    """The symmetric m x m matrix with the packed entries above the diagonal."""
    i, j = pairs(m)
    upper = jnp.zeros((m, m), dtype=packed.dtype).at[i, j].set(packed)
    return upper + upper.T + diagonal * jnp.eye(m, dtype=packed.dtype)


def overlap_matrix(s, c, phi) -> Float[Array, "m m"]:
    """$Q_{ij} = s_i s_j + c_i c_j P_{ij}$, $P_{ij} = \\tanh\\phi_{ij}$, from the alignments,
    $c_i = \\sqrt{1 - s_i^2}$ and the packed $\\phi$ (the diagonal is 1 up to rounding)."""
    p = unpack(jnp.tanh(phi), s.shape[-1], 1.0)
    return s[:, None] * s[None, :] + c[:, None] * c[None, :] * p


def orthogonal_overlaps(w: Float[Array, "m d"], beta: Float[Array, " d"]) -> Float[Array, " M"]:
    r"""The packed $P_{ij} = \langle u_i, u_j\rangle$ of unit rows `w` and unit `beta`:
    the correlations of the rows' parts orthogonal to $\beta$."""
    perp = w - (w @ beta)[:, None] * beta
    u = perp / jnp.linalg.norm(perp, axis=-1, keepdims=True)
    return (u @ u.T)[pairs(w.shape[0])]


class OverlapFlow(AbstractReducedModel):
    """The exact $m$-neuron flow on the state `(a, psi, phi)` (module docstring), started from
    the orthogonal parts' correlations `overlaps` (packed, `pairs` order; None: 0, the rows'
    orthogonal parts mutually orthogonal, as Proposition 3 takes them). `activation` gives
    $\\mathbb E\\sigma^2$ on the kernel's diagonal."""

    base: MeanField
    second_moment: Float[Array, ""]
    overlaps: Float[Array, " M"] | None

    def __init__(self, base: MeanField, activation, overlaps=None):
        self.base = base
        # A constant of the activation: computed eagerly, so that a model built inside jit or
        # vmap (a sweep's per-point model) does not trace the quadrature.
        with jax.ensure_compile_time_eval():
            self.second_moment = jnp.asarray(second_moment(hermite.activation(activation)))
        self.overlaps = None if overlaps is None else jnp.asarray(overlaps, dtype=float)

    @property
    def mean_field(self) -> MeanField:
        return self.base

    def initial_state(self, a0, s0):
        """`(a, psi, phi)` at the particles `(a0, s0)` and the model's initial `overlaps`."""
        a0, psi0 = super().initial_state(a0, s0)
        m = a0.shape[-1]
        given = jnp.zeros(m * (m - 1) // 2) if self.overlaps is None else self.overlaps
        return a0, psi0, jnp.arctanh(given)

    def jacobian_parts(self, *y):
        """None: the pairs couple densely, so the step matrices form the Jacobian."""
        return None

    def _kernel(self, q):
        """$g(Q_{ij})$ with $\\mathbb E\\sigma^2$ on the diagonal, and $g'(Q_{ij})$ off it."""
        m = q.shape[-1]
        value, slope = (x.reshape(m, m) for x in series(self.base.mu**2, q.reshape(-1)))
        eye = jnp.eye(m, dtype=bool)
        return jnp.where(eye, self.second_moment, value), jnp.where(eye, 0.0, slope)

    def vector_field(self, t, y, args):
        """$(\\dot a_i, \\dot\\psi_i, \\dot\\phi_{ij})$ at `y = (a, psi, phi)`."""
        a, psi, phi = y
        m = a.shape[-1]
        mf = self.base
        s = jnp.tanh(psi)
        log_c = _log_sech(psi)
        c = jnp.exp(log_c)
        p = unpack(jnp.tanh(phi), m, 1.0)
        g, dg = self._kernel(overlap_matrix(s, c, phi))
        f, df = series(mf.target * mf.mu, s)
        da = mf.rate_a * (f - g @ a / m)
        coupling = a[:, None] * a[None, :] * dg / m  # A_ik, zero on the diagonal
        ratio = coupling * jnp.exp(log_c[None, :] - log_c[:, None])  # B_ik = A_ik c_k / c_i
        bp = ratio @ p
        b = jnp.diagonal(bp)
        dpsi = mf.rate_w * (a * df - coupling @ s + s * b)
        dp = -mf.rate_w * (bp + bp.T - (b[:, None] + b[None, :]) * p)
        i, j = pairs(m)
        return da, dpsi, dp[i, j] * jnp.cosh(phi) ** 2

    def risk(self, a, s, phi) -> Float[Array, ""]:
        """The population risk (module docstring), the off-index part included."""
        mf = self.base
        m = a.shape[-1]
        q = overlap_matrix(s, jnp.sqrt(jnp.clip(1 - s**2, 0.0)), phi)
        cross = a @ series(mf.target * mf.mu, s)[0] / m
        return 0.5 * (
            jnp.sum(mf.target**2) + mf.noise**2 - 2 * cross + a @ self._kernel(q)[0] @ a / m**2
        )
