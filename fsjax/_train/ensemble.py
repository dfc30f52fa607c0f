r"""Ensembles: many networks of one shape trained at once by online SGD (THEORY.md section 3).

Member $i$ has its own seed (teacher direction, initial rows, batches: the keys of
`fsjax._train.sgd.init_member`, as for `network.seed` in `train_network`), step $\eta_i$,
layer rates $(\lambda_{a,i}, \lambda_{w,i})$, target coefficients, initial second layer and
label noise; the step of a network trained alone (`fsjax._train.sgd.sgd_step`) is
`jax.vmap`-ed over them, or over batches of them in turn (`vmap_members`), inside one jitted
loop (`AbstractTrainer.advance`), driven by the host loop of every training run
(`train_to_marks`). The rates are traced arrays, not the
compile-time constants of `optimizer`: `optax.sgd(r)` computes $p + (-r)\,g$ in the weights'
dtype, and so does `Ensemble.step` with $r = \eta_i\lambda_i n$ rounded to that dtype, so a
member follows the same arithmetic as the network trained alone. Only the reduction order of
the batched matmuls may differ (see `tests/test_network_sweep.py` for the bound this puts on
the comparison).

How many members one vmap holds is chosen by backend (`vmap_members`). An accelerator takes
them all. A CPU runs one vmapped step as batched products whose arrays (the batch,
pre-activations and their derivatives: `fsjax._sizes.step_bytes` per member) stream through
its caches; once they outgrow the last-level cache the vmap is slower per network than the
members one after another. So a CPU vmaps batches of members whose arrays fit in
`CPU_VMAP_BYTES` and loops over the batches (`jax.lax.map`). Measured in one run
(benchmarks/RESULTS.md, network ensembles): 16 members of n = 64, d = 32, B = 512 (1.2 MB
each) ran 1.26x one by one in one vmap and 0.87x looped; of n = 256, d = 128, B = 2048 (20 MB
each) 1.02x in one vmap and 1.79x looped.

Every member is recorded at the same steps (`record_steps`) by the `Observer` of a network
trained alone, reduced to its means, so members with different $\eta_i$ are recorded at
different times $t = \text{step}\cdot\eta_i$. A member that diverges (the criterion of
`sgd_step`) keeps its `diverged_at` step and NaN records from then on; it never stops the
others.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Sharding
from jaxtyping import Array, Float, Int

from .. import hermite
from .._model.network import DTYPES, RiskModel, Teacher
from .._sizes import step_bytes
from .sgd import (
    AbstractTrainer,
    Dataset,
    Observer,
    TrainState,
    chunk_steps,
    init_member,
    loss_limit,
    per_layer_sgd,
    sgd_step,
    train_to_marks,
)

RECORDED = ("s_mean", "a_mean", "risk")


# The step arrays one vmap may hold on a CPU: the 32 MiB last-level cache of the CPU the
# crossover was measured on (benchmarks/RESULTS.md, network ensembles).
CPU_VMAP_BYTES = 32 * 2**20


def vmap_members(networks: int, width: int, dim: int, batch: int, dtype: str, backend: str) -> int:
    """Members stepped in one vmap: all of them on an accelerator; on a CPU as many as keep
    their step arrays (`step_bytes`) within `CPU_VMAP_BYTES`, at least one."""
    if backend != "cpu":
        return networks
    one = step_bytes(width, dim, batch, jnp.dtype(DTYPES[dtype]).itemsize)
    return int(np.clip(CPU_VMAP_BYTES // one, 1, networks))


class Ensemble(AbstractTrainer):
    """The members' teachers, per-layer step scales $\\eta_i\\lambda_i n$ (in the weights'
    dtype) and divergence limits, batched along the leading axis; a step vmaps `vmap_width`
    members at a time (`vmap_members`); `advance` is jitted once per ensemble shape."""

    teacher: Teacher
    scale_a: Float[Array, " N"]
    scale_w: Float[Array, " N"]
    loss_limit: Float[Array, " N"]
    risk_model: RiskModel
    target64: Float[Array, "N L"]
    noise64: Float[Array, " N"]
    batch: int = eqx.field(static=True)
    batch: int = eqx.field(static=True)
    vmap_width: int = eqx.field(static=True)
    data: Dataset | None = None

    def _member_step(self, teacher, scale_a, scale_w, limit, data, state: TrainState):
        # The step of `kind: network` with this member's scales (in the weights' dtype, as
        # optax rounds a Python-float rate there); plain SGD carries no optimiser state.
        tx = per_layer_sgd(scale_a, scale_w)
        start = TrainState(state.net, tx.init(state.net), state.key, state.step, state.diverged_at)
        s = sgd_step(teacher, tx, self.batch, limit, start, data)
        return TrainState(s.net, (), s.key, s.step, s.diverged_at)

    def step(self, state: TrainState) -> TrainState:
        members = (self.teacher, self.scale_a, self.scale_w, self.loss_limit, self.data, state)
        if self.vmap_width >= self.scale_a.shape[0]:
            return jax.vmap(self._member_step)(*members)
        batch = self.vmap_width if self.vmap_width > 1 else None
        return jax.lax.map(lambda m: self._member_step(*m), members, batch_size=batch)

    @eqx.filter_jit
    def observe(self, state: TrainState) -> dict[str, Array]:
        """Mean alignment, mean second layer and closed-form risk of every member (float64),
        and its training risk when it trains on a fixed set: the means of the `Observer`
        records of a network trained alone; NaN once a member has diverged."""

        def one(net, beta, target, noise, data, diverged_at):
            risk_model = eqx.tree_at(
                lambda r: (r.target, r.noise), self.risk_model, (target, noise)
            )
            teacher64 = Teacher(beta.astype(jnp.float64), target, noise)
            rec = Observer(risk_model, teacher64, None, None, data)(net)
            out = {
                "s_mean": jnp.mean(rec["s"]),
                "a_mean": jnp.mean(rec["a"].astype(jnp.float64)),
                "risk": rec["risk"],
            }
            if data is not None:
                out["risk_train"] = rec["risk_train"]
            return {k: jnp.where(diverged_at >= 0, jnp.nan, v) for k, v in out.items()}

        return jax.vmap(one)(
            state.net, self.teacher.beta, self.target64, self.noise64, self.data, state.diverged_at
        )


@functools.partial(
    jax.jit, static_argnames=("width", "dim", "activation", "dtype", "products", "samples")
)
def _members(seeds, target, noise, a0, *, width, dim, activation, dtype, products, samples):
    """Teachers, initial states, divergence limits and training sets (None: online), as
    `train_network` builds them."""
    dt = DTYPES[dtype]

    def member(seed, target, noise, a0):
        args = (seed, width, dim, target, noise, a0, activation, dt, products)
        teacher, net, k_train, _ = init_member(*args)
        data = None if samples is None else Dataset.draw(teacher, k_train, samples)
        return teacher, TrainState.start(net, k_train), loss_limit(teacher), data

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
    products: str = "float32",
    samples: int | None = None,
    vmap_width: int | None = None,
) -> tuple[Ensemble, TrainState]:
    """The ensemble and its initial state: member i is the network `train_network` builds
    from seed `seeds[i]` (teacher, rows, batch keys and, with `samples`, its training set,
    split from `jax.random.key(seed)`), its products in `products`
    (`fsjax._model.network.product_format`); `vmap_width` members step in one vmap (default:
    `vmap_members` on JAX's backend)."""
    act = hermite.activation(activation)
    base = RiskModel(act, np.zeros(target.shape[-1]), 0.0, hermite_order)
    n_order = base.target.shape[-1]
    teacher, state, limit, data = _members(
        seeds,
        target,
        noise,
        a0,
        width=width,
        dim=dim,
        activation=act,
        dtype=dtype,
        products=products,
        samples=samples,
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
        data=data,
        vmap_width=vmap_width
        or vmap_members(len(seeds), width, dim, batch, dtype, jax.default_backend()),
    )
    return ensemble, state


def place_members(
    ensemble: Ensemble, state: TrainState, sharding: Sharding
) -> tuple[Ensemble, TrainState]:
    """The members' arrays (leading axis) of `ensemble` and `state` laid out by `sharding`
    (split over devices), training sets included; the shared risk model stays where it is.
    Members split over several devices step in one vmap: a loop over batches would cut across
    the devices' shares."""
    members = lambda e: (e.teacher, e.scale_a, e.scale_w, e.loss_limit, e.target64, e.noise64)  # noqa: E731
    placed, data = jax.device_put((members(ensemble), ensemble.data), sharding)
    ensemble = eqx.tree_at(members, ensemble, placed)
    if data is not None:  # online SGD has no training set to place
        ensemble = eqx.tree_at(lambda e: e.data, ensemble, data)
    if len(sharding.device_set) > 1:
        ensemble = dataclasses.replace(ensemble, vmap_width=ensemble.scale_a.shape[0])
    return ensemble, jax.device_put(state, sharding)


def train_ensemble(ensemble: Ensemble, state: TrainState, marks: np.ndarray) -> dict:
    """Train every member to each step in `marks` (from `record_steps`) and record it there:
    `{"s_mean", "a_mean", "risk": (N, T) arrays (and "risk_train" with training sets),
    "diverged_at": (N,) steps (-1: never)}`."""
    n, width, dim = state.net.w.shape
    records = []

    def observe(st):
        return {k: np.asarray(v) for k, v in ensemble.observe(st).items()}

    chunk = chunk_steps(n, width, dim, ensemble.batch)
    state = train_to_marks(ensemble, state, marks, observe, records, chunk=chunk)
    out = {k: np.stack([r[k] for r in records], axis=1) for k in records[0]}
    out["diverged_at"] = np.asarray(state.diverged_at)
    return out
