r"""Online large-batch SGD for the two-layer network (THEORY.md section 3).

Every step draws a fresh batch from the teacher and applies, with the mean-field width scaling,

$$w_j \leftarrow \frac{w_j - \eta\lambda_w n\,\nabla_{w_j} L_B}
                      {\|w_j - \eta\lambda_w n\,\nabla_{w_j} L_B\|},\qquad
  a_j \leftarrow a_j - \eta\lambda_a n\,\nabla_{a_j} L_B,\qquad
  L_B = \frac1{2B}\sum_{b}(y_b - f(x_b))^2 ,$$

so that training time $t = \text{steps}\cdot\eta$ matches the reduced flow's time. The two
learning rates are an `optax.partition` of two `optax.sgd`s; the normalisation is a projection
applied after the update. Steps run inside one jitted loop per chunk; the host only records,
reports progress and checkpoints between chunks. A run is a pure function of its seed: batches
come from a key split once per step, so a resumed run reproduces an uninterrupted one.

With `network.samples: N` the batches come instead from a fixed training set drawn once from
the teacher (`Dataset`), pass after pass, each pass in its own random order; the training risk
over the set is recorded beside the population risk.

Every network fsjax trains, alone (`train_network`, through `Trainer`, which keeps a single
network's records as they always were) or as a member of an ensemble
(`fsjax._train.ensemble`), goes through the pieces here, each written once: its teacher, rows
and keys from its seed (`init_member`), the step (`sgd_step`, behind `Trainer` and `Ensemble`,
both `AbstractTrainer`s), what is recorded (`Observer`), the memory estimate and refusal
(`check_memory`) and the host loop that advances in chunks and records at the marks
(`train_to_marks`).
"""

from __future__ import annotations

import abc
import functools
import math
import time
from collections.abc import Mapping
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jaxtyping import Array, Float
from tqdm.auto import tqdm

from .._errors import FsjaxError
from .._io import atomic_write, fingerprint
from .._model.build import init_values
from .._model.mean_field import layer_rates
from .._model.network import (
    DTYPES,
    Network,
    RiskModel,
    Teacher,
    flops_per_step,
    init_network,
    init_teacher,
    monte_carlo_risk,
    product_format,
    unit_rows,
)
from .._sizes import available_memory, dataset_bytes, gib, held_out_bytes, network_bytes

CHECKPOINT = "network_checkpoint.npz"
# Work per jitted call: ~1e11 FLOP (a second or two on a CPU) keeps the progress bar and the
# checkpoints current without making the host loop a measurable cost.
_CHUNK_FLOP = 1e11
_CHECKPOINT_SECONDS = 10.0


def per_layer_sgd(scale_a, scale_w) -> optax.GradientTransformation:
    """Plain SGD with step `scale_a` on the second layer and `scale_w` on the rows (numbers,
    or arrays in the weights' dtype for traced per-network steps)."""
    return optax.partition(
        {"a": optax.sgd(scale_a), "w": optax.sgd(scale_w)},
        lambda net: Network(w="w", a="a", activation=net.activation, products=net.products),
    )


@functools.cache
def optimizer(eta: float, rate_a: float, rate_w: float, width: int):
    """Per-layer SGD with mean-field scaling: rates $\\eta\\lambda_a n$ and $\\eta\\lambda_w n$
    (cached, so that runs with the same rates reuse one compiled training loop)."""
    return per_layer_sgd(eta * rate_a * width, eta * rate_w * width)


class TrainState(eqx.Module):
    """Weights, optimiser state, PRNG key, steps taken, and the first step at which training
    was seen to diverge (-1 while it has not; see `Trainer.loss_limit`)."""

    net: Network
    opt_state: optax.OptState
    key: jax.Array
    step: jax.Array
    diverged_at: jax.Array

    @classmethod
    def start(cls, net: Network, key, opt_state: optax.OptState = ()) -> TrainState:
        """Step 0 of `net`, its batches drawn from `key`."""
        zero = jnp.asarray(0, dtype=jnp.int64)
        return cls(net, opt_state, key, zero, zero - 1)


def init_member(
    seed, width: int, dim: int, target, noise, a0, activation, dtype, products="float32"
):
    """(teacher, network, batch key, held-out key) of the network with this seed, its products
    in `products` (`product_format`): the one derivation of keys, so that a network is the
    same alone and in an ensemble."""
    k_teacher, k_net, k_train, k_test = jax.random.split(jax.random.key(seed), 4)
    teacher = init_teacher(k_teacher, dim, target, noise, dtype)
    net = init_network(k_net, width, dim, a0, activation, dtype, products)
    return teacher, net, k_train, k_test


class Dataset(eqx.Module):
    """A fixed training set of N samples drawn once from the teacher, and the key of the order
    it is passed in. Pass p visits the samples in a random permutation of its own (from
    `fold_in(order_key, p)`), consecutive slices of `batch` of it per step, so each sample is
    used once per pass: the epochs of the finite-data theory, which independent batches
    (with replacement across steps) are not. The last N mod `batch` of a pass's permutation
    sit that pass out rather than make a short or straddling batch. The permutation is
    recomputed each step from the step count (O(N log N), small beside the step's B d n work
    unless N / B is in the thousands), so the training state and its checkpoints stay those of
    online SGD."""

    x: Float[Array, "N d"]
    y: Float[Array, " N"]
    order_key: jax.Array

    @classmethod
    def draw(cls, teacher: Teacher, key, samples: int) -> Dataset:
        """`samples` inputs and noisy labels from `teacher`, and their order key, from `key`."""
        k_data, k_order = jax.random.split(key)
        x, y = teacher.sample(k_data, samples)
        return cls(x, y, k_order)

    def batch(self, step, batch: int):
        """The batch `(x, y)` of SGD step `step` (0-based)."""
        n = self.y.shape[-1]
        per_pass = n // batch
        key = jax.random.fold_in(self.order_key, (step // per_pass).astype(jnp.uint32))
        start = (step % per_pass) * batch
        index = jax.lax.dynamic_slice_in_dim(jax.random.permutation(key, n), start, batch)
        return self.x[index], self.y[index]


def _loss(net: Network, x, y):
    return 0.5 * jnp.mean((y - net(x)) ** 2)


def loss_limit(teacher: Teacher):
    """1e8 times the zero predictor's loss E[y^2]/2 (plus one, for a vanishing target)."""
    return 1e8 * (0.5 * jnp.sum(teacher.target**2) + 0.5 * teacher.noise**2 + 1)


def sgd_step(
    teacher: Teacher, tx, batch: int, limit, state: TrainState, data: Dataset | None = None
) -> TrainState:
    """One SGD step on a fresh batch (online), or on the step's batch of `data`, the rows
    renormalised, divergence recorded."""
    key, sub = jax.random.split(state.key)
    x, y = teacher.sample(sub, batch) if data is None else data.batch(state.step, batch)
    loss, grads = eqx.filter_value_and_grad(_loss)(state.net, x, y)
    updates, opt_state = tx.update(grads, state.opt_state, state.net)
    net = eqx.apply_updates(state.net, updates)
    net = eqx.tree_at(lambda n: n.w, net, unit_rows(net.w))
    step = state.step + 1
    # A batch loss 1e8 times that of the zero predictor is divergence too: with bounded
    # activations and unit rows the weights can run away to ~1e16 without overflowing.
    sane = jnp.isfinite(net.w).all() & jnp.isfinite(net.a).all() & (loss < limit)
    diverged_at = jnp.where((state.diverged_at < 0) & ~sane, step, state.diverged_at)
    return TrainState(net, opt_state, key, step, diverged_at)


class AbstractTrainer(eqx.Module):
    """An update rule for a `TrainState` (of one network, or of many along a leading axis);
    `advance` runs it in one jitted loop, compiled once per trainer shape."""

    @abc.abstractmethod
    def step(self, state: TrainState) -> TrainState:
        """One SGD step."""

    @eqx.filter_jit
    def advance(self, state: TrainState, n_steps) -> TrainState:
        """`n_steps` SGD steps (a traced count: one compilation serves every chunk length)."""
        return jax.lax.fori_loop(0, n_steps, lambda _, st: self.step(st), state)


class Trainer(AbstractTrainer):
    """One network: its data source (the teacher, online, or a fixed `data` set drawn from
    it) and `optax` update rule."""

    teacher: Teacher
    tx: optax.GradientTransformation = eqx.field(static=True)
    batch: int = eqx.field(static=True)
    data: Dataset | None = None

    @property
    def loss_limit(self):
        return loss_limit(self.teacher)

    def init(self, net: Network, key) -> TrainState:
        return TrainState.start(net, key, self.tx.init(net))

    def step(self, state: TrainState) -> TrainState:
        return sgd_step(self.teacher, self.tx, self.batch, self.loss_limit, state, self.data)


def record_steps(steps: int, n_points: int, spacing: str = "log") -> np.ndarray:
    """Up to `n_points` distinct steps from 0 to `steps`: step 0 and log-spaced steps from 1
    (`spacing="log"`), or evenly spaced ones (`"uniform"`)."""
    if spacing == "uniform":
        return np.unique(np.round(np.linspace(0, steps, n_points)).astype(np.int64))
    if spacing != "log":
        raise ValueError(f"record spacing must be one of log, uniform; got {spacing!r}")
    grid = np.unique(np.round(np.geomspace(1, steps, n_points - 1)).astype(np.int64))
    return np.concatenate([[0], grid])


class Observer(eqx.Module):
    """What is recorded of a network, alone or in an ensemble: order parameters and risks in
    closed form, Monte Carlo on a fixed held-out set when one is given, and the training risk
    over the training set (in float64) when it trains on one."""

    risk_model: RiskModel
    teacher64: Teacher
    x_test: jax.Array | None
    y_test: jax.Array | None
    data: Dataset | None = None

    @eqx.filter_jit
    def __call__(self, net: Network) -> dict:
        beta = self.teacher64.beta
        s = net.w.astype(jnp.float64) @ beta
        risk, risk_k, risk_perp = self.risk_model(net.w, net.a, beta)
        out = dict(s=s, a=net.a, risk=risk, risk_k=risk_k, risk_perp=risk_perp)
        if self.x_test is not None:
            order = self.risk_model.mu.shape[-1] - 1
            out["risk_mc"], out["risk_mc_se"], out["risk_k_mc"] = monte_carlo_risk(
                net, self.teacher64, self.x_test, self.y_test, order
            )
        if self.data is not None:
            data = self.data
            out["risk_train"] = monte_carlo_risk(net, self.teacher64, data.x, data.y, 0)[0]
        return out


def _fingerprint(config) -> str:
    """What a checkpoint must match to be resumed: the sections that shape the training."""
    return fingerprint(
        {k: getattr(config, k).model_dump(mode="json") for k in ("model", "dynamics", "network")}
    )


def _save_checkpoint(path: Path, state: TrainState, records: list[dict], fingerprint: str):
    leaves = jax.tree.leaves(state.opt_state)
    arrays = {
        "w": np.asarray(state.net.w),
        "a": np.asarray(state.net.a),
        "key": np.asarray(jax.random.key_data(state.key)),
        "step": np.asarray(state.step),
        "diverged_at": np.asarray(state.diverged_at),
        "fingerprint": np.asarray(fingerprint),
        "n_records": np.asarray(len(records)),
        **{f"opt_{i}": np.asarray(x) for i, x in enumerate(leaves)},
    }
    for name in records[0] if records else ():
        arrays[f"rec_{name}"] = np.stack([r[name] for r in records])
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays), ".tmp.npz")


def _load_checkpoint(path: Path, state: TrainState, fingerprint: str):
    with np.load(path) as data:
        if str(data["fingerprint"]) != fingerprint:
            raise FsjaxError(
                f"{path} belongs to a run with a different model/dynamics/network config; "
                "pass --force to start over"
            )
        dtype = state.net.w.dtype
        net = eqx.tree_at(
            lambda n: (n.w, n.a),
            state.net,
            (jnp.asarray(data["w"], dtype=dtype), jnp.asarray(data["a"], dtype=dtype)),
        )
        treedef = jax.tree.structure(state.opt_state)
        opt = jax.tree.unflatten(treedef, [data[f"opt_{i}"] for i in range(treedef.num_leaves)])
        key = jax.random.wrap_key_data(jnp.asarray(data["key"]))
        n_records = int(data["n_records"])
        names = [k.removeprefix("rec_") for k in data.files if k.startswith("rec_")]
        records = [{name: data[f"rec_{name}"][i] for name in names} for i in range(n_records)]
        state = TrainState(
            net, opt, key, jnp.asarray(data["step"]), jnp.asarray(data["diverged_at"])
        )
    return state, records


def check_memory(
    networks: int,
    width: int,
    dim: int,
    batch: int,
    dtype: str,
    *,
    devices: int = 1,
    mc_samples: int = 0,
    samples: int = 0,
) -> None:
    """Refuse, before anything is allocated, `networks` networks trained at once (split over
    `devices` devices of the memory of the first), a float64 held-out set of `mc_samples`
    samples and the networks' training sets of `samples` samples each that do not fit, naming
    the estimate and the largest size that fits."""
    itemsize = jnp.dtype(DTYPES[dtype]).itemsize
    have, where = available_memory()
    free = f"only {gib(have)} of {where} is free"
    sizes = f"width={width}, dim={dim}, batch={batch}"
    one = network_bytes(width, dim, batch, itemsize)
    if one > have:
        # The estimate is affine in the batch: the largest batch that fits, if any.
        fixed = network_bytes(width, dim, 0, itemsize)
        fits = (have - fixed) // (network_bytes(width, dim, 1, itemsize) - fixed)
        advice = (
            f"use network.batch: {fits} or less"
            if fits > 0
            else "no batch fits; lower network.width or network.dim"
        )
        raise FsjaxError(
            f"network.batch: one network with {sizes} needs about {gib(one)} but {free}; {advice}"
        )
    need = one * math.ceil(networks / devices)
    if need > have:
        each = " per device" if devices > 1 else ""
        raise FsjaxError(
            f"sweep.chunk: an ensemble chunk of {networks} networks with {sizes} needs about "
            f"{gib(need)}{each} but {free}; use sweep.chunk: {have // one * devices} or less"
        )
    per_sample = held_out_bytes(1, width, dim)
    if mc_samples * per_sample > have:
        raise FsjaxError(
            f"network.mc_samples: the held-out set ({mc_samples} samples) needs about "
            f"{gib(mc_samples * per_sample)} but {free}; "
            f"use network.mc_samples: {have // per_sample} or less"
        )
    per_sample = dataset_bytes(1, width, dim, itemsize) * math.ceil(networks / devices)
    if samples * per_sample > have:
        raise FsjaxError(
            f"network.samples: the training sets ({samples} samples for each of {networks} "
            f"networks) need about {gib(samples * per_sample)} but {free}; "
            f"use network.samples: {have // per_sample} or less"
        )


def chunk_steps(networks: int, width: int, dim: int, batch: int) -> int:
    """Steps per jitted call of `networks` networks trained at once (~`_CHUNK_FLOP` of work)."""
    per_call = _CHUNK_FLOP // (networks * flops_per_step(width, dim, batch))
    return int(np.clip(per_call, 1, 10_000))


def train_to_marks(
    trainer: AbstractTrainer,
    state: TrainState,
    marks: np.ndarray,
    observe,
    records: list,
    *,
    chunk: int,
    after_chunk=None,
) -> TrainState:
    """Advance `state` to each step of `marks` (from `record_steps`) in calls of at most
    `chunk` steps and append `observe(state)` to `records` there; the first `len(records)`
    marks count as recorded already (a resumed run). `after_chunk(state, n)` runs on the
    host after each call of `n` steps (progress, divergence, checkpoints)."""
    for mark in marks[len(records) :]:
        # Members of an ensemble step together: the first one's count is everyone's.
        while (done := int(jnp.ravel(state.step)[0])) < mark:
            n = min(chunk, int(mark) - done)
            state = trainer.advance(state, jnp.asarray(n))
            if after_chunk is not None:
                after_chunk(state, n)
        records.append(observe(state))
    return state


def train_network(config, *, workdir: Path | None = None, resume: bool = False) -> xr.Dataset:
    """Train the network of `config.network` on the teacher of `config.model` and record it at
    log-spaced steps; checkpoint into `workdir` and continue from it when `resume` is set."""
    cfg, model = config.network, config.model
    check_memory(
        1,
        cfg.width,
        cfg.dim,
        cfg.batch,
        cfg.dtype,
        mc_samples=cfg.mc_samples,
        samples=cfg.samples or 0,
    )
    if not isinstance(model.init.a, Mapping) and len(model.init.a) not in (1, cfg.width):
        raise FsjaxError(
            f"model.init.a has {len(model.init.a)} values but network.width = {cfg.width}; "
            f"give one value, {cfg.width} or a distribution"
        )
    rate_a, rate_w = (float(r) for r in layer_rates(config.dynamics.slow, config.dynamics.epsilon))
    a0 = init_values(model.init, "a", cfg.width)
    products = product_format(cfg.dtype, cfg.matmul_precision)
    teacher, net, k_train, k_test = init_member(
        cfg.seed,
        cfg.width,
        cfg.dim,
        model.target,
        model.noise,
        a0,
        model.activation,
        DTYPES[cfg.dtype],
        products,
    )
    data = None if cfg.samples is None else Dataset.draw(teacher, k_train, cfg.samples)
    trainer = Trainer(teacher, optimizer(cfg.lr, rate_a, rate_w, cfg.width), cfg.batch, data)
    state = trainer.init(net, k_train)

    teacher64 = Teacher(teacher.beta.astype(jnp.float64), model.target, model.noise)
    x_test = y_test = None
    if cfg.mc_samples:
        x_test, y_test = teacher64.sample(k_test, cfg.mc_samples)
    risk_model = RiskModel(model.activation, model.target, model.noise, model.hermite_order)
    observe = Observer(risk_model, teacher64, x_test, y_test, data)

    fingerprint = _fingerprint(config)
    path = Path(workdir) / CHECKPOINT if workdir is not None else None
    records: list[dict] = []
    if resume and path is not None and path.is_file():
        state, records = _load_checkpoint(path, state, fingerprint)
    marks = record_steps(cfg.steps, cfg.record, cfg.record_spacing)

    def observe_host(st):
        return {k: np.asarray(v) for k, v in observe(st.net).items()}

    start = time.perf_counter()
    done_at_start = int(state.step)
    last_save = time.monotonic()
    with tqdm(total=cfg.steps, initial=done_at_start, unit="step", desc="sgd", disable=None) as bar:

        def after_chunk(state, n):
            nonlocal last_save
            bar.update(n)
            if int(state.diverged_at) >= 0:
                raise FsjaxError(
                    f"network.lr: training diverged (non-finite weights or a batch loss "
                    f"above {float(trainer.loss_limit):.3g}) at step "
                    f"{int(state.diverged_at)} (t = {int(state.diverged_at) * cfg.lr:g}); "
                    f"lower network.lr (now {cfg.lr:g})"
                )
            if path is not None and time.monotonic() - last_save > _CHECKPOINT_SECONDS:
                _save_checkpoint(path, state, records, fingerprint)
                last_save = time.monotonic()

        chunk = chunk_steps(1, cfg.width, cfg.dim, cfg.batch)
        state = train_to_marks(
            trainer, state, marks, observe_host, records, chunk=chunk, after_chunk=after_chunk
        )
    if path is not None:
        _save_checkpoint(path, state, records, fingerprint)
    elapsed = time.perf_counter() - start
    trained = int(state.step) - done_at_start
    return network_dataset(config, records, marks, risk_model, rate_a, rate_w, trained, elapsed)


def network_dataset(config, records, marks, risk_model, rate_a, rate_w, trained, elapsed):
    """Stack the records into a labelled dataset on the time grid t = step * lr."""
    cfg = config.network
    rec = {k: np.stack([r[k] for r in records]) for k in records[0]}
    data = {
        "step": (("time",), marks),
        "s": (("time", "neuron"), rec["s"]),
        "a": (("time", "neuron"), rec["a"].astype(np.float64)),
        "s_mean": (("time",), rec["s"].mean(axis=1)),
        "a_mean": (("time",), rec["a"].astype(np.float64).mean(axis=1)),
        "risk": (("time",), rec["risk"]),
        "risk_k": (("time", "order"), rec["risk_k"]),
        "risk_perp": (("time",), rec["risk_perp"]),
        "target": (("order",), np.asarray(risk_model.target)),
        "mu": (("order",), np.asarray(risk_model.mu)),
    }
    if "risk_mc" in rec:
        data["risk_mc"] = (("time",), rec["risk_mc"])
        data["risk_mc_se"] = (("time",), rec["risk_mc_se"])
        data["risk_k_mc"] = (("time", "order"), rec["risk_k_mc"])
    if "risk_train" in rec:
        data["risk_train"] = (("time",), rec["risk_train"])
    return xr.Dataset(
        data,
        coords={
            "time": marks * cfg.lr,
            "neuron": np.arange(cfg.width),
            "order": np.arange(risk_model.mu.shape[-1]),
        },
        attrs={
            "rate_a": rate_a,
            "rate_w": rate_w,
            "dtype": cfg.dtype,
            "matmul_precision": cfg.matmul_precision,
            "products": product_format(cfg.dtype, cfg.matmul_precision),
            "steps_trained": trained,
            "train_seconds": elapsed,
            "steps_per_second": trained / elapsed if trained else float("nan"),
        },
    )
