"""The two-layer network, its exact population risk, and online SGD (kind: network)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fsjax
from fsjax import _sizes, hermite
from fsjax._cli import main
from fsjax._model.network import (
    Network,
    RiskModel,
    Teacher,
    dual_kernel,
    init_network,
    init_teacher,
    monte_carlo_risk,
    second_moment,
)
from fsjax._train import sgd
from fsjax._train.sgd import CHECKPOINT, Trainer, optimizer, record_steps


def _config(**network):
    net = dict(width=16, dim=12, batch=256, lr=0.05, steps=60, record=8, mc_samples=512)
    net.update(network)
    return {
        "kind": "network",
        "model": {"activation": "tanh", "target": [0, 1, 0, 0.3], "init": {"a": 0.5}},
        "dynamics": {"slow": "second_layer", "epsilon": 0.1},
        "network": net,
    }


def _clustered_network(key, activation, n=6, d=10):
    """Rows in two tight clusters, one of them near beta: Gram entries near 1 and near 0."""
    kw, ka = jax.random.split(key)
    beta = jnp.zeros(d).at[0].set(1.0)
    centre = jnp.zeros((n, d)).at[: n // 2, 0].set(1.0).at[n // 2 :, 1].set(1.0)
    w = fsjax.unit_rows(centre + 0.3 * jax.random.normal(kw, (n, d)))
    a = 1.0 + jax.random.normal(ka, (n,))
    return Network(w, a, hermite.activation(activation)), beta


@pytest.mark.parametrize("name", ["relu", "erf"])
def test_dual_kernel_closed_forms_match_mehler_series(name):
    """The arc-cosine and arcsine kernels against the Mehler series sum_k mu_k^2 rho^k; at
    |rho| <= 0.8 the series to order 150 has converged far below 1e-10 (tail < 0.8^150)."""
    act = hermite.activation(name)
    mu2 = act.hermite(150) ** 2
    rho = np.linspace(-0.8, 0.8, 13)
    series = np.polynomial.polynomial.polyval(rho, mu2)
    np.testing.assert_allclose(np.asarray(dual_kernel(act)(jnp.asarray(rho))), series, atol=1e-10)
    assert float(dual_kernel(act)(jnp.asarray(1.0))) == pytest.approx(second_moment(act), 1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh", "relu"])
def test_closed_form_risk_matches_monte_carlo(name):
    """Exact population risk and its Hermite components of a finite, clustered network (rows
    nearly parallel, so the Gram matrix matters) against 400k held-out samples. Tolerance:
    5 Monte Carlo standard errors, estimated from the same samples."""
    net, beta = _clustered_network(jax.random.key(1), name)
    teacher = Teacher(beta, jnp.asarray([0.2, 1.0, -0.4, 0.3]), 0.1)
    x, y = teacher.sample(jax.random.key(2), 400_000)
    model = RiskModel(name, teacher.target, 0.1, order=8)
    risk, risk_k, risk_perp = model(net.w, net.a, beta)
    mc, se, mc_k = monte_carlo_risk(net, teacher, x, y, order=8)
    e = y - net(x)
    se = float(se)
    assert abs(float(risk) - float(mc)) < 5 * se
    # R_k = r_k^2 / 2: compare r_k with its estimate, standard error std(e h_k)/sqrt(N).
    h = hermite.hermite_functions(8, x @ beta)
    r_mc = jnp.mean(e[:, None] * h, axis=0)
    r_se = jnp.std(e[:, None] * h, axis=0) / np.sqrt(x.shape[0])
    r = model.target - model.mu * (net.a @ (net.w @ beta)[:, None] ** jnp.arange(9)) / 6
    np.testing.assert_array_less(jnp.abs(jnp.abs(r) - jnp.abs(r_mc)), 5 * r_se)
    np.testing.assert_allclose(risk_k, 0.5 * r**2, rtol=1e-12)
    np.testing.assert_allclose(mc_k, 0.5 * r_mc**2, rtol=1e-12)
    # Clustered rows carry output that is not a function of z: R_perp is clearly positive.
    assert float(risk_perp) > 5 * se


@pytest.mark.slow
def test_sgd_step_is_the_mean_field_update():
    """One optax step against the update written out by hand:
    a_j += lr lam_a mean_b(e_b sigma(h_jb)), w_j = normalise(w_j + lr lam_w a_j mean_b(e_b
    sigma'(h_jb) x_b)); float64, so agreement to rounding."""
    kt, kn, ks = jax.random.split(jax.random.key(3), 3)
    teacher = init_teacher(kt, 9, [0.1, 1.0, 0.5], 0.2, jnp.float64)
    net = init_network(kn, 7, 9, 0.4, "tanh", jnp.float64)
    lr, lam_a, lam_w = 0.3, 0.2, 1.5
    trainer = Trainer(teacher, optimizer(lr, lam_a, lam_w, 7), batch=64)
    state = eqx.filter_jit(trainer.step)(trainer.init(net, ks))
    _, sub = jax.random.split(ks)
    x, y = teacher.sample(sub, 64)
    h = x @ net.w.T
    e = y - jnp.tanh(h) @ net.a / 7
    a = net.a + lr * lam_a * jnp.mean(e[:, None] * jnp.tanh(h), axis=0)
    grad_w = jnp.einsum("b,bj,bi->ji", e, 1 - jnp.tanh(h) ** 2, x) / 64
    w = fsjax.unit_rows(net.w + lr * lam_w * net.a[:, None] * grad_w)
    np.testing.assert_allclose(state.net.a, a, rtol=1e-12)
    np.testing.assert_allclose(state.net.w, w, rtol=1e-12, atol=1e-15)
    assert int(state.step) == 1


def test_record_steps_are_log_spaced_and_distinct():
    marks = record_steps(40_000, 120)
    assert marks[0] == 0 and marks[1] == 1 and marks[-1] == 40_000
    assert np.all(np.diff(marks) > 0) and len(marks) <= 120


def test_uniform_record_steps_are_evenly_spaced_and_bad_spacing_is_named():
    np.testing.assert_array_equal(record_steps(1000, 11, "uniform"), np.arange(0, 1001, 100))
    assert record_steps(5, 100, "uniform").tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="log, uniform"):
        record_steps(10, 5, "cubic")
    with pytest.raises(fsjax.ConfigError, match="record_spacing"):
        fsjax.load_config(_config(record_spacing="cubic"))


def test_network_run_is_deterministic_and_float32_by_default():
    ds1, ds2 = fsjax.run(_config()), fsjax.run(_config())
    np.testing.assert_array_equal(ds1["s"].values, ds2["s"].values)
    assert ds1.attrs["dtype"] == "float32"
    assert ds1["time"].values[-1] == pytest.approx(60 * 0.05)
    # Rows stay on the sphere; alignment rises from ~1/sqrt(d) under a linear target part.
    assert float(ds1["s_mean"][-1]) > float(ds1["s_mean"][0]) + 0.1
    other = fsjax.run(_config(seed=1))
    assert not np.array_equal(other["s"].values, ds1["s"].values)


def test_float64_is_selectable():
    cfg = fsjax.load_config(_config(dtype="float64", steps=5, record=3))
    ds = sgd.train_network(cfg)
    assert ds["a"].dtype == np.float64
    # the arithmetic is recorded: as configured, and the products' format it resolved to
    assert (ds.attrs["matmul_precision"], ds.attrs["products"]) == ("default", "float64")


def test_resume_after_interruption_reproduces_uninterrupted_run(tmp_path, monkeypatch):
    """Interrupt training after its second chunk, resume from the checkpoint, and get the
    same weights bit for bit as a run that was never interrupted."""
    full = fsjax.run(_config())
    monkeypatch.setattr(sgd, "_CHECKPOINT_SECONDS", -1.0)
    monkeypatch.setattr(sgd, "_CHUNK_FLOP", 6.0 * 256 * 12 * 16 * 7)  # 7 steps per chunk

    class Interrupting(sgd.tqdm):
        done = 0

        def update(self, n=1):
            Interrupting.done += n
            if Interrupting.done >= 14:
                raise KeyboardInterrupt

    monkeypatch.setattr(sgd, "tqdm", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        fsjax.run(_config(), workdir=tmp_path)
    assert (tmp_path / CHECKPOINT).is_file()
    monkeypatch.setattr(sgd, "tqdm", sgd.tqdm.__mro__[1])
    resumed = fsjax.run(_config(), workdir=tmp_path, resume=True)
    assert resumed.attrs["steps_trained"] < 60
    np.testing.assert_array_equal(resumed["s"].values, full["s"].values)
    np.testing.assert_array_equal(resumed["a"].values, full["a"].values)


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    fsjax.run(_config(steps=5, record=3), workdir=tmp_path)
    with pytest.raises(fsjax.FsjaxError, match="different"):
        fsjax.run(_config(steps=5, record=3, seed=4), workdir=tmp_path, resume=True)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("width", 0, "network.width"),
        ("dim", -3, "network.dim"),
        ("batch", 0, "network.batch"),
        ("lr", 0.0, "network.lr"),
        ("steps", 0, "network.steps"),
        ("dtype", "float8", "network.dtype: got 'float8'"),
        ("record", 1, "network.record"),
    ],
)
def test_bad_network_sections_name_the_field(field, value, message):
    with pytest.raises(fsjax.ConfigError, match=message):
        fsjax.load_config(_config(**{field: value}))


def test_diverging_learning_rate_stops_and_reports_the_step():
    message = r"network.lr: training diverged .* at step \d+ \(t = "
    with pytest.raises(fsjax.FsjaxError, match=message):
        fsjax.run(_config(lr=1e4, steps=400, record=3))


def test_batch_beyond_memory_is_refused_with_the_estimate():
    # Refused when the config is validated, before anything is allocated.
    with pytest.raises(fsjax.ConfigError, match=r"^network: batch = .* needs about \S+ GiB"):
        fsjax.run(_config(batch=10**12, dim=1000))


def test_memory_refusals_name_the_largest_size_that_fits(monkeypatch):
    """The one check of every training run (for a network alone and for ensemble chunks): each
    refusal names the estimate and a size that fits, and one more than that does not."""
    have = _sizes.network_bytes(16, 12, 5000, 4)
    monkeypatch.setattr(sgd, "available_memory", lambda: (have, "test memory"))
    with pytest.raises(fsjax.FsjaxError, match=r"^network.batch: .* needs about \S+ GiB") as err:
        sgd.check_memory(1, 16, 12, 10**6, "float32")
    fits = int(str(err.value).rsplit("use network.batch: ", 1)[1].split()[0])
    assert fits == 5000
    sgd.check_memory(1, 16, 12, fits, "float32")
    with pytest.raises(fsjax.FsjaxError, match=r"^network\.batch"):
        sgd.check_memory(1, 16, 12, fits + 1, "float32")
    with pytest.raises(fsjax.FsjaxError, match=r"^sweep\.chunk: .* use sweep\.chunk: 1 or less"):
        sgd.check_memory(2, 16, 12, 5000, "float32")
    with pytest.raises(fsjax.FsjaxError, match=r"^network.mc_samples: .* needs about") as err:
        sgd.check_memory(1, 16, 12, 100, "float32", mc_samples=10**9)
    fits = int(str(err.value).rsplit("use network.mc_samples: ", 1)[1].split()[0])
    sgd.check_memory(1, 16, 12, 100, "float32", mc_samples=fits)
    with pytest.raises(fsjax.FsjaxError, match=r"^network\.mc_samples"):
        sgd.check_memory(1, 16, 12, 100, "float32", mc_samples=fits + 1)


def test_cli_reports_user_errors_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "kind: network\nmodel: {target: [0, 1]}\n"
        "network: {width: 4, dim: 4, batch: 8, lr: 0.1, steps: 3, dtype: half}\n"
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "network.dtype" in err[0] and "line 3" in err[0]
