"""The slow-first-layer analysis (fsjax/_analysis/slow_first.py): the critical manifold against
numpy's least squares, the named degeneracies, the slow flow and its learning times against
the full flow at small eps, and fixed points against the flow's own velocity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fsjax
from fsjax import hermite
from fsjax._kinds.phase_portrait import portrait_figures

EPS = 1e-4
RELU4 = hermite.coefficients("relu", 4)
ERF5 = hermite.coefficients("erf", 5)
TARGET = jnp.array([0.2, 0.6, 0.5, 0.0, 0.3])  # every order ReLU reaches up to 4 (mu_3 = 0)


def relu_model(eps=EPS, target=TARGET, mu=RELU4):
    return fsjax.MeanField(target, mu, 0.0, *fsjax.layer_rates("first_layer", eps))


def features(mu, s):
    return np.asarray(mu)[:, None] * np.asarray(s)[None, :] ** np.arange(len(mu))[:, None]


def test_fit_is_numpy_least_squares():
    model = relu_model(mu=hermite.coefficients("relu", 8))  # orders 0, 1, 2, 4, 6, 8
    mu, c = np.asarray(model.mu), np.asarray(model.target)
    s = np.array([0.7, -0.4, 0.2])
    fit = fsjax.second_layer_fit(model, s, a=np.array([5.0, -3.0, 1.0]))  # a is forgotten
    phi = features(mu, s)
    a_np = np.linalg.lstsq(phi / s.size, c, rcond=None)[0]
    # lstsq and the normal equations agree to the conditioning (cond(G) ~ 1e3) times rounding.
    np.testing.assert_allclose(fit.a, a_np, rtol=1e-11)
    np.testing.assert_allclose(fit.rates, np.linalg.eigvalsh(phi.T @ phi / s.size), rtol=1e-12)
    assert int(fit.rank) == 3 and fsjax.degeneracy(model, s) is None
    # Coincident particles: the fit keeps a's null-space part, and from a = 0 it is numpy's
    # minimum-norm solution.
    s = np.array([0.7, 0.7, -0.4])
    a0 = np.array([1.0, 0.0, 0.0])
    fit = fsjax.second_layer_fit(model, s, a=a0)
    a_np = np.linalg.lstsq(features(mu, s) / 3, c, rcond=None)[0]
    np.testing.assert_allclose(fsjax.second_layer_fit(model, s).a, a_np, rtol=1e-11)
    np.testing.assert_allclose(fit.a[0] - fit.a[1], 1.0, rtol=1e-12)  # the null direction
    np.testing.assert_allclose(fit.a[0] + fit.a[1], a_np[0] + a_np[1], rtol=1e-11)
    assert int(fit.rank) == 2


@pytest.mark.parametrize(
    "mu, s, name",
    [
        (RELU4, [0.3, 0.3], "coincident alignments s_0 = s_1 = 0.3"),
        (ERF5, [0.3, -0.3], "opposite alignments s_0 = -s_1 = 0.3 with only odd"),
        (ERF5, [0.3, 0.0], "alignment s_1 = 0 with mu_0 = 0"),
        (ERF5, [0.1, 0.2, 0.3, 0.4], "more particles (m = 4) than non-zero activation"),
    ],
)
def test_degeneracies_are_named_and_refused(mu, s, name):
    model = relu_model(mu=mu, target=jnp.array([0.0, 0.6, 0.0, -0.3]))
    assert name in fsjax.degeneracy(model, s)
    if "coincident" in name:  # a symmetric Newton stays there (elsewhere it may leave)
        with pytest.raises(fsjax.FsjaxError, match="degenerate point"):
            fsjax.slow_fixed_point(model, s)


def test_the_analysis_needs_a_slow_first_layer():
    model = fsjax.MeanField(TARGET, RELU4, 0.0, *fsjax.layer_rates("second_layer", 0.1))
    with pytest.raises(fsjax.FsjaxError, match="slow first layer"):
        fsjax.slow_flow_first(model, 0.1, [0.05], [1.0])


# The slow solves compile for 20-30 s each (an eigendecomposition and a JVP in the field).
@pytest.fixture(scope="module")
def flows():
    """ReLU, m = 1, a0 = 0.1, s0 = 0.05: the fast fit learns R_0, the first layer's motion
    R_1 (at T_1 = 3.04); the slow flow and the full flow at eps = 1e-4 on one grid."""
    model = relu_model()
    a0, s0 = np.array([0.1]), np.array([0.05])
    T = np.geomspace(1e-4, 20.0, 300)
    slow = fsjax.slow_flow(model, a0, s0, T)  # dispatches to slow_flow_first
    solver = fsjax.solvers.make_solver("rodas5p", 1e-10, 1e-12)
    full = fsjax.solve(model, a0, s0, T / EPS, solver=solver, rtol=1e-10, atol=1e-12)
    return model, a0, s0, T, slow, full


@pytest.mark.slow
def test_slow_flow_follows_the_full_flow_within_order_eps(flows):
    _, _, _, T, slow, full = flows
    assert isinstance(slow, fsjax.SlowFirstTrajectory) and slow.degeneracy is None
    later = T > 0.1  # after the fast transient (t > 1e3 = many times 1/rate, rate >= 0.16)
    # Tikhonov: O(eps) away from the manifold's flow. The first correction is
    # a - a* = eps G^-1 da*/dT, up to 5.3 eps here; s is off by up to 2.3 eps.
    np.testing.assert_allclose(np.asarray(full.s)[later], slow.s[later], atol=5 * EPS)
    np.testing.assert_allclose(np.asarray(full.a)[later], slow.a[later], atol=10 * EPS)
    assert np.nanmax(slow.separation) < 1e-3  # fast rates >> eps all along


@pytest.mark.slow
def test_learning_times_match_the_full_flow(flows):
    model, a0, s0, T, _, full = flows
    start = np.asarray(model.risk_components(a0, s0))
    T_k, _ = fsjax.predicted_times(model, a0, s0, T, fraction=0.1)
    comp = np.asarray(jax.vmap(model.risk_components)(full.a, full.s))
    t_k = fsjax.learning_times(T / EPS, comp, 0.1, start)
    assert T_k[0] == 0.0  # the fast fit learns the constant part
    assert T_k[1] == pytest.approx(3.0412, rel=1e-3)
    assert EPS * t_k[1] == pytest.approx(T_k[1], rel=0.05)  # the target; measured 3e-4
    assert np.isnan(T_k[2:]).all()  # one particle does not get R_2 or R_4 below 10%


def test_learning_times_of_a_power_law():
    t = np.geomspace(1.0, 100.0, 7)
    r = np.stack([t**-2, 0 * t + 1.0], axis=-1)  # log-log linear: interpolation is exact
    np.testing.assert_allclose(fsjax.learning_times(t, r, 0.01), [10.0, np.nan], rtol=1e-12)
    levels = fsjax.plateau_levels(t, t**-2, np.array([1.0, 100.0]))
    np.testing.assert_allclose(levels, [1e-2], rtol=1e-12)


def test_fixed_point_is_a_rest_point_of_the_full_flow():
    """ReLU up to order 2, c = (0.2, 0.6, -0.5), m = 1: an interior stable fixed point."""
    model = relu_model(target=jnp.array([0.2, 0.6, -0.5]), mu=hermite.coefficients("relu", 2))
    fp = fsjax.slow_fixed_point(model, [0.5])
    assert fp.converged and fp.stable and 0 < fp.s[0] < 1
    da, ds = model.velocity(jnp.asarray(fp.a), jnp.asarray(fp.s))
    np.testing.assert_allclose([da[0], ds[0]], 0.0, atol=1e-12)
    # Its eigenvalue against a central difference of the slow velocity (error h^2 ~ 1e-10).
    h = 1e-5
    v = lambda x: float(fsjax.slow_velocity_first(model, jnp.array([x]))[0])  # noqa: E731
    fd = (v(fp.s[0] + h) - v(fp.s[0] - h)) / (2 * h)
    assert fp.eigenvalues[0].real == pytest.approx(fd, rel=1e-7)


@pytest.mark.slow
def test_merging_particles_stop_the_slow_flow_with_the_degeneracy_named():
    """ReLU, m = 2 from s = (0.05, -0.1): the two alignments run together while a_1 = -a_2
    grows (the fit's Gram matrix turns singular); the flow stops there."""
    slow = fsjax.slow_flow_first(relu_model(), [0.1, 0.1], [0.05, -0.1], [1.0, 40.0, 60.0])
    assert slow.T_degenerate == pytest.approx(42.77, abs=0.05)
    assert "singular Gram matrix at T = 42.7" in slow.degeneracy
    assert np.isfinite(slow.s[:2]).all() and np.isnan(slow.s[2]).all()


@pytest.mark.slow
def test_phase_portrait_of_a_slow_first_layer(tmp_path):
    cfg = {
        "kind": "phase_portrait",
        "model": {
            "activation": "relu",
            "hermite_order": 4,
            "target": [0.2, 0.6, 0.5, 0.0, 0.3],
            "init": {"a": 0.1, "s": 0.05},
        },
        "dynamics": {"slow": "first_layer", "epsilon": 1e-3},
        "solver": {"t_first": 1.0, "t_final": 2e4, "n_save": 60},
        "portrait": {"epsilons": [1e-3], "fraction": 0.1},
    }
    ds = fsjax.run(cfg)
    # The measured time against the fine-grid prediction: O(eps) apart, plus the grid.
    # 60 saves over 4.3 decades (ratio 1.18): log-log interpolation is good to ~2e-3 here.
    assert ds["predicted_T"].values[1] == pytest.approx(3.0412, rel=3e-3)
    assert ds["learned_T"].values[0, 1] == pytest.approx(3.0412, rel=1e-2)
    assert ds.attrs["degeneracy"] == "none" and ds["fixed_converged"].item()
    assert [p.name for p in portrait_figures(ds, tmp_path)] == ["phase_portrait.png"]
