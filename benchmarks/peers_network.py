r"""One online SGD step of the wide network in fsjax and in plain PyTorch, and the machine's
matmul rate at the same shapes.

The step (THEORY.md section 3, `fsjax.Trainer.step`): draw $x \in \mathbb R^{B\times d}$,
$y = \sum_k c_k h_k(\langle\beta, x\rangle)$, take the gradient of
$\frac1{2B}\sum_b (y_b - \frac1n\sum_j a_j\tanh\langle w_j, x_b\rangle)^2$, apply SGD with
rates $\eta\lambda_a n$ and $\eta\lambda_w n$, and renormalise the rows of $w$. The PyTorch loop
is what a user would write: autograd, `torch.optim.SGD` with one parameter group per layer,
a Python loop over steps, float32 on the CPU. Step FLOPs are counted as
`fsjax._network.flops_per_step` (6 B d n) and the matmul rate is that of a float32
$(B\times d)(d\times n)$ product at the same shapes, timed in the same process.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import fsjax
from fsjax._model.network import flops_per_step
from fsjax._train.sgd import _loss

TARGET = (0.0, 1.0, 0.0, 0.3)
LR, EPS, A0 = 0.02, 0.05, 0.5

try:
    import torch
except ImportError:  # the [bench] extra is not installed
    torch = None


def fsjax_trainer(width: int, dim: int, batch: int, seed: int = 0):
    """(trainer, state) of `fsjax.Trainer` in float32, slow second layer."""
    k_teacher, k_net, k_train = jax.random.split(jax.random.key(seed), 3)
    teacher = fsjax.init_teacher(k_teacher, dim, TARGET, 0.0, jnp.float32)
    net = fsjax.init_network(k_net, width, dim, A0, "tanh", jnp.float32)
    rate_a, rate_w = (float(r) for r in fsjax.layer_rates("second_layer", EPS))
    trainer = fsjax.Trainer(teacher, fsjax.optimizer(LR, rate_a, rate_w, width), batch)
    return trainer, trainer.init(net, k_train)


def fsjax_steps(trainer, state, n_steps: int):
    """Run `n_steps` steps and wait for them (one jitted loop, as `fsjax.train_network`)."""
    return jax.block_until_ready(trainer.advance(state, jnp.asarray(n_steps)))


class TorchLoop:
    """The same teacher, network and update in PyTorch, started from fsjax's weights."""

    def __init__(self, trainer, state, seed: int = 0):
        self.beta = torch.tensor(np.asarray(trainer.teacher.beta))
        self.target = torch.tensor(np.asarray(TARGET), dtype=torch.float32)
        self.w = torch.tensor(np.asarray(state.net.w), requires_grad=True)
        self.a = torch.tensor(np.asarray(state.net.a), requires_grad=True)
        self.batch = trainer.batch
        n = self.a.shape[0]
        rate_a, rate_w = (float(r) for r in fsjax.layer_rates("second_layer", EPS))
        self.opt = torch.optim.SGD(
            [
                {"params": [self.a], "lr": LR * rate_a * n},
                {"params": [self.w], "lr": LR * rate_w * n},
            ]
        )
        self.gen = torch.Generator().manual_seed(seed)

    def label(self, z):
        """$\\sum_k c_k He_k(z)/\\sqrt{k!}$ by the three-term recurrence."""
        prev, cur = torch.ones_like(z), z
        out = self.target[0] * prev + self.target[1] * cur
        for k in range(1, self.target.shape[0] - 1):
            prev, cur = cur, z * cur - k * prev
            out = out + self.target[k + 1] * cur / math.sqrt(math.factorial(k + 1))
        return out

    def step(self, x=None, y=None):
        if x is None:
            x = torch.randn(self.batch, self.beta.shape[0], generator=self.gen)
            y = self.label(x @ self.beta)
        f = torch.tanh(x @ self.w.T) @ self.a / self.a.shape[0]
        loss = 0.5 * torch.mean((y - f) ** 2)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.w /= torch.linalg.vector_norm(self.w, dim=1, keepdim=True)

    def steps(self, n_steps: int):
        for _ in range(n_steps):
            self.step()


def equivalence(width: int = 32, dim: int = 16, batch: int = 64) -> float:
    """Largest difference between fsjax's and the PyTorch loop's weights after one step on
    the same batch from the same weights (float32: expect ~1e-7 of the weights' size)."""
    trainer, state = fsjax_trainer(width, dim, batch)
    x, y = trainer.teacher.sample(jax.random.key(1), batch)
    grads = jax.grad(_loss)(state.net, x, y)
    updates, _ = trainer.tx.update(grads, state.opt_state, state.net)
    net = jax.tree.map(lambda p, u: p + u, state.net, updates)
    w = fsjax.unit_rows(net.w)
    loop = TorchLoop(trainer, state)
    loop.step(torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y)))
    label_diff = np.max(
        np.abs(
            loop.label(torch.tensor(np.asarray(x @ trainer.teacher.beta))).numpy() - np.asarray(y)
        )
    )
    return float(
        max(
            np.max(np.abs(loop.w.detach().numpy() - np.asarray(w))),
            np.max(np.abs(loop.a.detach().numpy() - np.asarray(net.a))),
            label_diff,
        )
    )


def matmul(width: int, dim: int, batch: int, repeats: int):
    r"""A jitted loop of `repeats` dependent float32 products at the step's shapes,
    $X \leftarrow X + 10^{-3} (X W) W^\top$ with $X$ of shape (B, d) and $W$ (d, n): 4 B d n
    FLOPs an iteration, inside one compiled loop as the SGD steps are (no dispatch cost)."""
    kx, kw = jax.random.split(jax.random.key(2))
    x = jax.random.normal(kx, (batch, dim), dtype=jnp.float32)
    w = jax.random.normal(kw, (dim, width), dtype=jnp.float32) / float(np.sqrt(dim * width))

    @jax.jit
    def loop(x, w):
        return jax.lax.fori_loop(0, repeats, lambda _, acc: acc + 1e-3 * (acc @ w) @ w.T, x)

    return lambda: jax.block_until_ready(loop(x, w))


def step_flops(width: int, dim: int, batch: int) -> float:
    return flops_per_step(width, dim, batch)


def matmul_flops(width: int, dim: int, batch: int) -> float:
    """FLOPs of one iteration of `matmul`."""
    return 4.0 * batch * dim * width
