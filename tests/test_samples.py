"""Training on a fixed, finite dataset (`network.samples`): drawn once, passed over in a fresh
order each pass, its training risk recorded beside the population risk."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fsjax
from fsjax._model.network import RiskModel, Teacher
from fsjax._train import sgd
from fsjax._train.ensemble import init_ensemble, train_ensemble
from fsjax._train.sgd import Dataset, Observer, Trainer, init_member, optimizer

TARGET = [0, 1, 0, 0.3]


def _config(**network):
    net = dict(width=16, dim=12, batch=64, lr=0.05, steps=60, record=6, mc_samples=0)
    net.update(network)
    return {
        "kind": "network",
        "model": {"activation": "tanh", "target": TARGET, "noise": 0.1, "init": {"a": 0.5}},
        "dynamics": {"slow": "second_layer", "epsilon": 0.1},
        "network": net,
    }


def _member(seed=0, width=16, dim=12):
    return init_member(seed, width, dim, jnp.asarray(TARGET), 0.1, 0.5, "tanh", jnp.float32)


def _rows(batch_x, x):
    """The row of `x` each row of `batch_x` is (exact float equality: a gather copies bits)."""
    match = np.all(np.asarray(batch_x)[:, None, :] == np.asarray(x)[None, :, :], axis=-1)
    assert (match.sum(axis=1) == 1).all()
    return match.argmax(axis=1)


def test_dataset_is_drawn_once_and_each_sample_used_once_per_pass():
    """N = 10, B = 3: three batches a pass (the tenth sample of each order sits that pass out),
    every batch made of rows of the one drawn set with their labels, no sample twice in a pass,
    and the passes in different orders."""
    teacher, _, key, _ = _member()
    data = Dataset.draw(teacher, key, 10)
    batch = jax.jit(lambda step: data.batch(step, 3))
    passes = []
    for p in range(4):
        rows = []
        for i in range(3):
            x, y = batch(jnp.asarray(3 * p + i, dtype=jnp.int64))
            index = _rows(x, data.x)
            np.testing.assert_array_equal(np.asarray(y), np.asarray(data.y)[index])
            rows.extend(index)
        assert len(set(rows)) == 9
        passes.append(rows)
    assert len({tuple(p) for p in passes}) == 4
    # Labels are the teacher's, with its noise drawn once: f*(x.beta) plus noise of size 0.1.
    residual = np.asarray(data.y) - np.asarray(teacher.label(data.x @ teacher.beta))
    assert 0 < np.abs(residual).max() < 0.5


# One pass is 64 steps of B = 64; the 60 steps of `_config` stay within it. One size keeps
# the compiled training loop and observer shared by the tests.
N = 2**12


@pytest.fixture(scope="module")
def trained():
    """A network trained through `train_network` for 60 steps on N samples, and its training
    set rebuilt from its seed."""
    ds = fsjax.run(_config(samples=N))
    teacher, net, key, _ = _member()
    return ds, net, Dataset.draw(teacher, key, N)


def test_training_risk_equals_a_direct_evaluation_on_the_dataset(trained):
    """The recorded training risk at step 0 (the seed's initial network) and the Observer's
    after 70 steps (into the second pass), against numpy in float64 on the same N samples:
    equal to float64 rounding of a mean of N terms (rtol 1e-12)."""
    ds, net, data = trained

    def direct(w, a):
        x, y = np.asarray(data.x, np.float64), np.asarray(data.y, np.float64)
        f = np.tanh(x @ np.asarray(w, np.float64).T) @ np.asarray(a, np.float64) / a.shape[0]
        return 0.5 * np.mean((y - f) ** 2)

    assert float(ds["risk_train"][0]) == pytest.approx(direct(net.w, net.a), rel=1e-12)
    teacher, _, key, _ = _member()
    trainer = Trainer(teacher, optimizer(0.05, 0.1, 1.0, 16), 64, data)
    state = trainer.advance(trainer.init(net, key), jnp.asarray(70))
    teacher64 = Teacher(teacher.beta.astype(jnp.float64), jnp.asarray(TARGET), 0.1)
    rec = Observer(RiskModel("tanh", TARGET, 0.1, 6), teacher64, None, None, data)(state.net)
    assert float(rec["risk_train"]) == pytest.approx(direct(state.net.w, state.net.a), rel=1e-12)


def test_an_ensemble_member_trains_on_the_same_dataset(trained):
    """Member 0 of an ensemble with seed 0 is the network alone: same set, same batches; the
    records agree to the float32 rounding of a different matmul reduction order (rtol 1e-5,
    the bound tests/test_network_sweep.py uses)."""
    ds, _, _ = trained
    ensemble, state = init_ensemble(
        jnp.asarray([0, 1]),
        np.full(2, 0.05),
        np.asarray([TARGET] * 2),
        np.full(2, 0.1),
        np.full(2, 0.5),
        np.full(2, 0.1),
        np.ones(2),
        width=16,
        dim=12,
        batch=64,
        activation="tanh",
        hermite_order=6,
        dtype="float32",
        samples=N,
    )
    rec = train_ensemble(ensemble, state, ds["step"].values)
    for name in ("risk", "risk_train"):
        np.testing.assert_allclose(rec[name][0], ds[name].values, rtol=1e-5)
        assert not np.allclose(rec[name][1], ds[name].values, rtol=1e-2)


def test_a_large_dataset_tracks_online_sgd(trained):
    """N > steps * B: one pass, no sample seen twice, so training is online SGD on other
    draws. Its population risk differs from online SGD's by the batch noise alone, which three
    online streams of the same network measure: allow three times their spread. Its training
    risk, on samples mostly unseen, stays within 5 standard errors of the population risk."""
    ds, net, data = trained
    teacher, _, _, _ = _member()
    online = Trainer(teacher, optimizer(0.05, 0.1, 1.0, 16), 64)
    teacher64 = Teacher(teacher.beta.astype(jnp.float64), jnp.asarray(TARGET), 0.1)
    model = RiskModel("tanh", TARGET, 0.1, 6)
    streams = []
    for k in range(3):
        state = online.advance(online.init(net, jax.random.key(k)), jnp.asarray(60))
        streams.append(float(model(state.net.w, state.net.a, teacher64.beta)[0]))
    assert abs(float(ds["risk"][-1]) - np.mean(streams)) < 3 * (max(streams) - min(streams))
    x = np.asarray(data.x, np.float64)
    f = np.tanh(x @ np.asarray(net.w, np.float64).T) @ np.asarray(net.a, np.float64) / 16
    se = np.std(0.5 * (np.asarray(data.y) - f) ** 2) / np.sqrt(N)  # of the initial risk
    assert abs(float(ds["risk_train"][-1]) - float(ds["risk"][-1])) < 5 * se


def test_bad_samples_are_one_line_errors(monkeypatch):
    with pytest.raises(fsjax.ConfigError, match=r"samples = 32 is below batch = 64") as err:
        fsjax.load_config(_config(samples=32))
    assert "\n" not in str(err.value)
    with pytest.raises(fsjax.ConfigError, match=r"network.samples"):
        fsjax.load_config(_config(samples=0))
    with pytest.raises(fsjax.ConfigError, match=r"samples = \d+ at width = 16, dim = 12 needs"):
        fsjax.load_config(_config(samples=10**13))
    # At run time, against the memory free then.
    have = sgd.network_bytes(16, 12, 64, 4) + sgd.dataset_bytes(1000, 16, 12, 4)
    monkeypatch.setattr(sgd, "available_memory", lambda: (have, "test memory"))
    with pytest.raises(fsjax.FsjaxError, match=r"^network.samples: .* use network.samples: 1"):
        sgd.check_memory(1, 16, 12, 64, "float32", samples=10**6)
    sgd.check_memory(1, 16, 12, 64, "float32", samples=1000)


def test_a_network_sweep_refuses_samples():
    """A sweep records no training risk, and its batch may vary by point: it trains online."""
    net = _config(samples=128)["network"]
    sweep = {"kind": "sweep", "model": {"target": TARGET}, "network": net}
    sweep["sweep"] = {"axes": {"network.lr": [0.05, 0.1]}}
    with pytest.raises(fsjax.ConfigError, match=r"network.samples = 128: a network sweep") as err:
        fsjax.load_config(sweep)
    assert "\n" not in str(err.value)
