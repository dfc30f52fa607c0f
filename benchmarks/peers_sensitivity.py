r"""Cost of the gradient of the onset of unlearning against the forward solve.

`t_onset(c_3, a_0, \varepsilon)` is `fsjax.onset_time` on tanh, $c = (0, 1, 0, c_3)$, slow
second layer, one particle from $s_0 = 0.01$ (THEORY.md section 7's case at eps = 0.05). The
forward pass is the event-terminated solve; the gradient is `jax.grad` through it (reverse mode:
diffrax's checkpointed adjoint through the solve and implicit differentiation of the event's
root find), all three partial derivatives in one pass. The adjoint's checkpoint count sets the
recomputation: diffrax's default sizes it from `max_steps`; a fixed count near the number of
steps taken is compared. Central finite differences check the gradient.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp

import fsjax
from fsjax import hermite

S0 = 0.01
POINT = (0.3, 0.5, 0.05)  # (c3, a0, eps)
ADJOINTS = {
    "default": None,
    "checkpoints=64": diffrax.RecursiveCheckpointAdjoint(checkpoints=64),
}


def onset(params, *, rtol: float = 1e-8, adjoint=None):
    """t_onset at params = (c3, a0, eps)."""
    mu = jnp.asarray(hermite.coefficients("tanh", 16))
    c3, a0, eps = params
    target = jnp.zeros_like(mu).at[1].set(1.0).at[3].set(c3)
    rate_a, rate_w = fsjax.layer_rates("second_layer", eps)
    model = fsjax.MeanField(target, mu, 0.0, rate_a, rate_w)
    atol = rtol * 1e-2
    return fsjax.onset_time(
        model,
        a0[None],
        jnp.array([S0]),
        t_final=1e4 / eps,
        solver=fsjax.make_solver("kvaerno5", rtol, atol),
        rtol=rtol,
        atol=atol,
        adjoint=adjoint,
    )


def functions(adjoint=None, *, batched: bool = False):
    """Jitted (forward, gradient) of t_onset, vmapped over rows of params when `batched`."""

    def fwd(p):
        return onset(p, adjoint=adjoint)

    grad = jax.grad(fwd)
    if batched:
        fwd, grad = jax.vmap(fwd), jax.vmap(grad)
    return jax.jit(fwd), jax.jit(grad)


def points(n: int) -> jax.Array:
    """n parameter rows around POINT (c3 in [0.1, 0.5], a0 in [0.3, 0.8])."""
    c3 = jnp.linspace(0.1, 0.5, n)
    a0 = jnp.linspace(0.3, 0.8, n)[::-1]
    return jnp.stack([c3, a0, jnp.full(n, POINT[2])], axis=1)


def finite_difference_error(grad, h: float = 1e-5) -> float:
    """Largest relative difference between `grad` at POINT and central differences."""
    x = jnp.asarray(POINT)
    g = grad(x)
    fd = jnp.stack([(onset(x + h * e) - onset(x - h * e)) / (2 * h) for e in jnp.eye(3)])
    return float(jnp.max(jnp.abs(g - fd) / jnp.abs(fd)))
