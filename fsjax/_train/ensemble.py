r"""Ensembles: many networks of one shape trained at once by online SGD (THEORY.md section 3).

Member $i$ has its own seed (teacher direction, initial rows, batches: the keys
`fsjax._train.sgd.train_network` derives from `network.seed`), step $\eta_i$, layer rates
$(\lambda_{a,i}, \lambda_{w,i})$, target coefficients, initial second layer and label noise; the
step of `fsjax._train.sgd.Trainer` is `jax.vmap`-ed over them inside one jitted loop. The update
is written out instead of going through `optax` because the optax rates are compile-time
constants: `optax.sgd(r)` computes $p + (-r)\,g$ in the weights' dtype, and so does
`Ensemble.step` with $r = \eta_i\lambda_i n$ rounded to that dtype, so a member follows the
same arithmetic as the network trained alone. Only the reduction order of the batched matmuls
may differ (see `tests/test_network_sweep.py` for the bound this puts on the comparison).

Every member is recorded at the same steps (`record_steps`), so members with different $\eta_i$
are recorded at different times $t = \text{step}\cdot\eta_i$. A member that diverges (the
criterion of `Trainer.step`) keeps its `diverged_at` step and NaN records from then on; it never
stops the others.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Sharding
from jaxtyping import Array, Float, Int

from .. import hermite
from .._errors import FsjaxError
from .._model.network import (
    DTYPES,
    RiskModel,
    Teacher,
    available_memory,
    flops_per_step,
    gib,
    init_network,
    init_teacher,
    step_memory,
)
from .sgd import _CHUNK_FLOP, TrainState, loss_limit, per_layer_sgd, sgd_step

RECORDED = ("s_mean", "a_mean", "risk")


def ensemble_memory(networks: int, width: int, dim: int, batch: int, itemsize: int) -> int:
    """Bytes an ensemble step holds at once: `step_memory` per member, plus the float64 Gram
    matrix and its kernel (2 n^2) and float64 rows (n d) of the closed-form risk."""
    return networks * (step_memory(width, dim, batch, itemsize) + 8 * (2 * width**2 + width * dim))


def check_ensemble_memory(
    networks: int, width: int, dim: int, batch: int, dtype: str, *, devices: int = 1
) -> None:
    """Refuse an ensemble chunk whose working set exceeds what a device holds, naming the
    estimate and the largest chunk that fits; the chunk's members are split over `devices`
    devices of that memory each."""
    itemsize = jnp.dtype(DTYPES[dtype]).itemsize
    one = ensemble_memory(1, width, dim, batch, itemsize)
    need = one * math.ceil(networks / devices)
    have, where = available_memory()
    if need <= have:
        return
    sizes = f"width={width}, dim={dim}, batch={batch}"
    if have < one:
        raise FsjaxError(
            f"network.batch: one network with {sizes} needs about {gib(one)} but "
            f"only {gib(have)} of {where} is free; lower network.batch"
        )
    each = " per device" if devices > 1 else ""
    raise FsjaxError(
        f"sweep.chunk: an ensemble chunk of {networks} networks with {sizes} needs about "
        f"{gib(need)}{each} but only {gib(have)} of {where} is free; "
        f"use sweep.chunk: {have // one * devices} or less"
    )


class Ensemble(eqx.Module):
    """The members' teachers, per-layer step scales $\\eta_i\\lambda_i n$ (in the weights'
    dtype) and divergence limits, batched along the leading axis; `advance` is jitted once
    per ensemble shape."""

    teacher: Teacher
    scale_a: Float[Array, " N"]
    scale_w: Float[Array, " N"]
    loss_limit: Float[Array, " N"]
    risk_model: RiskModel
    target64: Float[Array, "N L"]
    noise64: Float[Array, " N"]
    batch: int = eqx.field(static=True)

    def _member_step(self, teacher, scale_a, scale_w, limit, state: TrainState) -> TrainState:
        # The step of `kind: network` with this member's scales (in the weights' dtype, as
        # optax rounds a Python-float rate there); plain SGD carries no optimiser state.
        tx = per_layer_sgd(scale_a, scale_w)
        start = TrainState(state.net, tx.init(state.net), state.key, state.step, state.diverged_at)
        s = sgd_step(teacher, tx, self.batch, limit, start)
        return TrainState(s.net, (), s.key, s.step, s.diverged_at)

    def step(self, state: TrainState) -> TrainState:
        return jax.vmap(self._member_step)(
            self.teacher, self.scale_a, self.scale_w, self.loss_limit, state
        )

    @eqx.filter_jit
    def advance(self, state: TrainState, n_steps) -> TrainState:
        """`n_steps` SGD steps of every member (a traced count: one compile per shape)."""
        return jax.lax.fori_loop(0, n_steps, lambda _, st: self.step(st), state)

    @eqx.filter_jit
    def observe(self, state: TrainState) -> dict[str, Array]:
        """Mean alignment, mean second layer and closed-form risk of every member (float64),
        as `fsjax._train.sgd.Observer` computes them; NaN once a member has diverged."""

        def one(net, beta, target, noise, diverged_at):
            beta = beta.astype(jnp.float64)
            risk_model = eqx.tree_at(
                lambda r: (r.target, r.noise), self.risk_model, (target, noise)
            )
            out = {
                "s_mean": jnp.mean(net.w.astype(jnp.float64) @ beta),
                "a_mean": jnp.mean(net.a.astype(jnp.float64)),
                "risk": risk_model(net.w, net.a, beta)[0],
            }
            return {k: jnp.where(diverged_at >= 0, jnp.nan, v) for k, v in out.items()}

        return jax.vmap(one)(
            state.net, self.teacher.beta, self.target64, self.noise64, state.diverged_at
        )


@functools.partial(jax.jit, static_argnames=("width", "dim", "activation", "dtype"))
def _members(seeds, target, noise, a0, *, width, dim, activation, dtype):
    """Teachers, initial states and divergence limits, as `train_network` builds them."""
    dt = DTYPES[dtype]

    def member(seed, target, noise, a0):
        k_teacher, k_net, k_train, _ = jax.random.split(jax.random.key(seed), 4)
        teacher = init_teacher(k_teacher, dim, target, noise, dt)
        net = init_network(k_net, width, dim, a0, activation, dt)
        zero = jnp.asarray(0, dtype=jnp.int64)
        state = TrainState(net, (), k_train, zero, zero - 1)
        return teacher, state, loss_limit(teacher)

    return jax.vmap(member)(seeds, target, noise, a0)


def init_ensemble(
    seeds: Int[Array, " N"],
    lr: Float[Array, " N"],
    target: Float[Array, "N K"],
    noise: Float[Array, " N"],
    a0: Float[Array, " N"],
    rate_a: Float[Array, " N"],
    rate_w: Float[Array, " N"],
    *,
    width: int,
    dim: int,
    batch: int,
    activation,
    hermite_order: int,
    dtype: str,
) -> tuple[Ensemble, TrainState]:
    """The ensemble and its initial state: member i is the network `train_network` builds
    from seed `seeds[i]` (teacher, rows and batch keys split from `jax.random.key(seed)`)."""
    act = hermite.activation(activation)
    base = RiskModel(act, np.zeros(target.shape[-1]), 0.0, hermite_order)
    n_order = base.target.shape[-1]
    teacher, state, limit = _members(
        seeds, target, noise, a0, width=width, dim=dim, activation=act, dtype=dtype
    )
    target64 = jnp.pad(jnp.asarray(target, dtype=float), ((0, 0), (0, n_order - target.shape[-1])))
    dt = DTYPES[dtype]
    scale = lambda rate: jnp.asarray(np.asarray(lr) * np.asarray(rate) * width, dtype=dt)  # noqa: E731
    ensemble = Ensemble(
        teacher=teacher,
        scale_a=scale(rate_a),
        scale_w=scale(rate_w),
        loss_limit=limit,
        risk_model=base,
        target64=target64,
        noise64=jnp.asarray(noise, dtype=float),
        batch=batch,
    )
    return ensemble, state


def place_members(
    ensemble: Ensemble, state: TrainState, sharding: Sharding
) -> tuple[Ensemble, TrainState]:
    """The members' arrays (leading axis) of `ensemble` and `state` laid out by `sharding`
    (split over devices); the shared risk model stays where it is."""
    members = lambda e: (e.teacher, e.scale_a, e.scale_w, e.loss_limit, e.target64, e.noise64)  # noqa: E731
    ensemble = eqx.tree_at(members, ensemble, jax.device_put(members(ensemble), sharding))
    return ensemble, jax.device_put(state, sharding)


def train_ensemble(ensemble: Ensemble, state: TrainState, marks: np.ndarray) -> dict:
    """Train every member to each step in `marks` (from `record_steps`) and record it there:
    `{"s_mean", "a_mean", "risk": (N, T) arrays, "diverged_at": (N,) steps (-1: never)}`."""
    n, width, dim = state.net.w.shape
    per_call = _CHUNK_FLOP // (n * flops_per_step(width, dim, ensemble.batch))
    chunk = int(np.clip(per_call, 1, 10_000))
    records = []
    for mark in marks:
        while int(state.step[0]) < mark:
            steps = min(chunk, int(mark) - int(state.step[0]))
            state = ensemble.advance(state, jnp.asarray(steps))
        records.append({k: np.asarray(v) for k, v in ensemble.observe(state).items()})
    out = {k: np.stack([r[k] for r in records], axis=1) for k in RECORDED}
    out["diverged_at"] = np.asarray(state.diverged_at)
    return out
