r"""`network`: one online SGD step of the wide network in fsjax against plain PyTorch and the
machine's float32 matmul rate at the same shapes, and the cost of drawing the step's batch.

The step (THEORY.md section 3, `fsjax.Trainer.step`): draw $x \in \mathbb R^{B\times d}$,
$y = \sum_k c_k h_k(\langle\beta, x\rangle)$, take the gradient of
$\frac1{2B}\sum_b (y_b - \frac1n\sum_j a_j\tanh\langle w_j, x_b\rangle)^2$, apply SGD with
rates $\eta\lambda_a n$ and $\eta\lambda_w n$, and renormalise the rows of $w$. The PyTorch loop
is what a user would write: autograd, `torch.optim.SGD` with one parameter group per layer,
a Python loop over steps, float32 on the CPU, at one thread and at every core (on a shared,
oversubscribed CPU OpenMP's spinning threads can make the multi-threaded loop the slower, so
the target asks fsjax to beat both).
Step FLOPs are counted as `flops_per_step` (6 B d n); the matmul rate is that of
$X \leftarrow X + 10^{-3} (X W) W^\top$ at the step's shapes, 4 B d n FLOPs an iteration in
one compiled loop as the SGD steps are.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

import fsjax
from fsjax._model.network import flops_per_step
from fsjax._train.ensemble import init_ensemble, train_ensemble, vmap_members
from fsjax._train.sgd import _loss, record_steps, train_network

from . import _harness as h

TARGET = (0.0, 1.0, 0.0, 0.3)
LR, EPS, A0 = 0.02, 0.05, 0.5

try:
    import torch
except ImportError:  # the [bench] extra is not installed
    torch = None


@dataclasses.dataclass(frozen=True)
class Plan:
    sizes: tuple = ((256, 128, 4096), (1024, 256, 4096), (1024, 512, 4096))  # (n, d, B)
    flop: float = 3e10  # SGD FLOPs per timed call: sets the steps per call
    threads: tuple[int, ...] = tuple(sorted({1, os.cpu_count() or 1}))  # of the PyTorch loop
    repeats: int = 3


QUICK = Plan(sizes=((32, 16, 64),), flop=1e7, threads=(1,), repeats=2)


def fsjax_trainer(width: int, dim: int, batch: int, seed: int = 0):
    """(trainer, state) of `fsjax.Trainer` in float32, slow second layer."""
    k_teacher, k_net, k_train = jax.random.split(jax.random.key(seed), 3)
    teacher = fsjax.init_teacher(k_teacher, dim, TARGET, 0.0, jnp.float32)
    net = fsjax.init_network(k_net, width, dim, A0, "tanh", jnp.float32)
    rate_a, rate_w = (float(r) for r in fsjax.layer_rates("second_layer", EPS))
    trainer = fsjax.Trainer(teacher, fsjax.optimizer(LR, rate_a, rate_w, width), batch)
    return trainer, trainer.init(net, k_train)


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
    z = torch.tensor(np.asarray(x @ trainer.teacher.beta))
    return float(
        max(
            np.max(np.abs(loop.w.detach().numpy() - np.asarray(w))),
            np.max(np.abs(loop.a.detach().numpy() - np.asarray(net.a))),
            np.max(np.abs(loop.label(z).numpy() - np.asarray(y))),
        )
    )


def matmul(width: int, dim: int, batch: int, repeats: int):
    """The matmul loop of the module docstring, `repeats` iterations in one call."""
    kx, kw = jax.random.split(jax.random.key(2))
    x = jax.random.normal(kx, (batch, dim), dtype=jnp.float32)
    w = jax.random.normal(kw, (dim, width), dtype=jnp.float32) / float(np.sqrt(dim * width))

    @jax.jit
    def loop(x, w):
        return jax.lax.fori_loop(0, repeats, lambda _, acc: acc + 1e-3 * (acc @ w) @ w.T, x)

    return lambda: jax.block_until_ready(loop(x, w))


def size_rows(section: str, sizes, flop: float, repeats: int, threads=()) -> list[h.Row]:
    """`one_size` at each (n, d, B)."""
    return [r for size in sizes for r in one_size(section, *size, flop, repeats, threads)]


def one_size(section, width, dim, batch, flop, repeats, threads) -> list[h.Row]:
    """The matmul rate, one batch draw, fsjax's SGD loop over about `flop` FLOPs a call and
    the PyTorch loop at each of the `threads` counts."""
    case = f"n={width} d={dim} B={batch}"
    h.log(f"{section} {case}")
    step = flops_per_step(width, dim, batch)
    n_steps = max(2, int(flop / step))
    size = {"n": width, "d": dim, "B": batch, "steps": n_steps}
    trainer, state = fsjax_trainer(width, dim, batch)
    draw = jax.jit(lambda k: jax.random.normal(k, (batch, dim), jnp.float32))
    key, n = jax.random.key(3), jnp.asarray(n_steps)
    mm, _ = h.timed_row(
        section,
        case,
        "matmul (jax, f32)",
        matmul(width, dim, batch, n_steps),
        repeats,
        count=4.0 * batch * dim * width * n_steps / 1e9,
        unit="GFLOP/s",
        sizes=size,
    )
    sample, _ = h.timed_row(
        section,
        case,
        "draw x (B, d), f32",
        lambda: jax.block_until_ready(draw(key)),
        repeats,
        unit="batches/s",
        sizes=size,
    )
    fs, _ = h.timed_row(
        section,
        case,
        "fsjax Trainer",
        lambda: jax.block_until_ready(trainer.advance(state, n)),
        repeats,
        count=n_steps,
        unit="steps/s",
        sizes=size,
    )
    fs.extra["GFLOP/s"] = fs.rate * step / 1e9
    fs.ratio, fs.ratio_of = fs.extra["GFLOP/s"] / mm.rate, "FLOP/s (6 B d n a step) over matmul"
    rows = [mm, sample, fs]
    for count in threads if torch is not None else ():
        torch.set_num_threads(count)
        loop = TorchLoop(trainer, state)
        row, _ = h.timed_row(
            section,
            case,
            "PyTorch loop",
            lambda loop=loop: loop.steps(n_steps),
            repeats,
            count=n_steps,
            unit="steps/s",
            warmup=lambda loop=loop: loop.steps(1),
            setting={"threads": count},
            peer=True,
            sizes=size,
        )
        row.extra["GFLOP/s"] = row.rate * step / 1e9
        row.ratio, row.ratio_of = fs.rate / row.rate, "fsjax Trainer steps/s over this"
        rows.append(row)
    return rows


def run(plan: Plan) -> list[h.Row]:
    rows = []
    if torch is not None:
        rows.append(
            h.Row(
                "network",
                "equivalence n=32 d=16 B=64",
                "fsjax vs PyTorch",
                error=equivalence(),
                note="not timed; error: max |difference| after one step on one batch",
            )
        )
    return rows + size_rows("network", plan.sizes, plan.flop, plan.repeats, plan.threads)


TARGETS = (
    h.Target(
        "network step vs PyTorch",
        "steps/s over the PyTorch loop's, at every thread count",
        lambda r: r.section == "network" and r.peer,
        1.0,
    ),
)
SECTION = h.Section("network", __doc__.split("\n\n")[0], run, Plan(), QUICK, TARGETS)


ENSEMBLE_DOC = """`ensemble`: networks x SGD steps per second of a network sweep's ensemble chunk
(`fsjax._train.ensemble`: N networks in one jitted loop, vmapped or looped over as
`vmap_members` chooses for the backend, recorded at log-spaced steps) against the same N
networks looped and in one vmap where those are not the choice, and trained one by one with `kind:
network`'s `train_network`, and its FLOP rate (6 B d n a step) against the float32 matmul rate
at one network's shapes; the GPU case runs only on a GPU."""


@dataclasses.dataclass(frozen=True)
class EnsemblePlan:
    cases: tuple = ((16, 64, 32, 512, 1000), (16, 256, 128, 2048, 100))  # (N, n, d, B, steps)
    gpu_cases: tuple = ((64, 1024, 512, 4096, 200),)  # measured where the backend is a GPU
    record: int = 20  # record points, as `network.record`
    repeats: int = 3


ENSEMBLE_QUICK = EnsemblePlan(
    cases=((4, 16, 8, 32, 20),), gpu_cases=((4, 32, 16, 64, 20),), record=5, repeats=2
)


def _network_config(width: int, dim: int, batch: int, steps: int, record: int, seed: int):
    return fsjax.load_config(
        {
            "kind": "network",
            "model": {"activation": "tanh", "target": list(TARGET), "init": {"a": A0}},
            "dynamics": {"slow": "second_layer", "epsilon": EPS},
            "network": {
                "width": width,
                "dim": dim,
                "batch": batch,
                "lr": LR,
                "steps": steps,
                "record": record,
                "seed": seed,
                "mc_samples": 0,
            },
        }
    )


def ensemble_case(section, networks, width, dim, batch, steps, record, repeats) -> list[h.Row]:
    """The matmul rate, the ensemble (built and trained, as a sweep's chunk is) at the backend's
    `vmap_members`, looped and in one vmap, and the same networks one by one;
    `error` is the largest difference of each ensemble's recorded mean alignments from one by
    one's."""
    case = f"N={networks} n={width} d={dim} B={batch}"
    h.log(f"{section} {case}")
    sizes = {"N": networks, "n": width, "d": dim, "B": batch, "steps": steps}
    configs = [_network_config(width, dim, batch, steps, record, i) for i in range(networks)]
    model = configs[0].model
    marks = record_steps(steps, record)
    rate_a, rate_w = (float(r) for r in fsjax.layer_rates("second_layer", EPS))
    full = lambda x: np.full(networks, x)  # noqa: E731

    def ensemble(vmap_width):
        members, state = init_ensemble(
            jnp.arange(networks),
            full(LR),
            np.tile(TARGET, (networks, 1)),
            full(0.0),
            full(A0),
            full(rate_a),
            full(rate_w),
            width=width,
            dim=dim,
            batch=batch,
            activation=model.activation,
            hermite_order=model.hermite_order,
            dtype="float32",
            vmap_width=vmap_width,
        )
        return train_ensemble(members, state, marks)

    step = flops_per_step(width, dim, batch)
    mm, _ = h.timed_row(
        section,
        case,
        "matmul (jax, f32)",
        matmul(width, dim, batch, networks * steps),
        repeats,
        count=4.0 * batch * dim * width * networks * steps / 1e9,
        unit="GFLOP/s",
        sizes=sizes,
    )
    chosen = vmap_members(networks, width, dim, batch, "float32", jax.default_backend())
    ensembles = []
    for members in dict.fromkeys((chosen, 1, networks)):
        row, rec = h.timed_row(
            section,
            case,
            "fsjax ensemble",
            lambda members=members: ensemble(members),
            repeats,
            count=networks * steps,
            unit="network-steps/s",
            setting={"vmap": members},
            sizes=sizes,
        )
        row.extra["GFLOP/s"] = row.rate * step / 1e9
        row.ratio = row.extra["GFLOP/s"] / mm.rate
        row.ratio_of = "FLOP/s (6 B d n a step) over matmul"
        ensembles.append((row, rec))
    alone, out = h.timed_row(
        section,
        case,
        "one by one (train_network)",
        lambda: [train_network(c) for c in configs],
        repeats,
        count=networks * steps,
        unit="network-steps/s",
        sizes=sizes,
    )
    alone.ratio = ensembles[0][0].rate / alone.rate
    alone.ratio_of = f"ensemble (vmap {chosen}, the backend's choice) network-steps/s over this"
    s_alone = np.stack([ds["s_mean"].values for ds in out])
    for row, rec in ensembles:
        row.error = float(np.max(np.abs(rec["s_mean"] - s_alone)))
        row.note = "error: max |s_mean| difference from one by one, all records"
    return [mm, *(row for row, _ in ensembles), alone]


def run_ensemble(plan: EnsemblePlan) -> list[h.Row]:
    rows = [
        r
        for c in plan.cases
        for r in ensemble_case("ensemble", *c[:4], c[4], plan.record, plan.repeats)
    ]
    for c in plan.gpu_cases:
        if jax.default_backend() == "gpu":
            rows += ensemble_case("ensemble", *c[:4], c[4], plan.record, plan.repeats)
        else:
            case = "N={} n={} d={} B={}".format(*c[:4])
            rows.append(h.Row("ensemble", case, "fsjax ensemble", note="not measured: no GPU"))
    return rows


ENSEMBLE_TARGETS = (
    h.Target(
        "ensemble on GPU",
        "FLOP/s (6 B d n a step) over the matmul rate, 64 networks n = 1024, d = 512, B = 4096",
        lambda r: (
            r.section == "ensemble"
            and r.tool == "fsjax ensemble"
            and (r.sizes.get("N"), r.sizes.get("n"), r.sizes.get("d"), r.sizes.get("B"))
            == (64, 1024, 512, 4096)
        ),
        0.5,
    ),
)
ENSEMBLE_SECTION = h.Section(
    "ensemble", ENSEMBLE_DOC, run_ensemble, EnsemblePlan(), ENSEMBLE_QUICK, ENSEMBLE_TARGETS
)
