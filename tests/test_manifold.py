"""Critical manifold and reduced slow flow, checked against closed forms.

For one particle $F(a, s) = -a\\,(P(s) - a\\,Q(s))$ with $P = \\sum_k k\\mu_k c_k s^{k-1}$ and
$Q = \\sum_k k\\mu_k^2 s^{2k-1}$, so the interior critical manifold is the graph
$a = A(s) = P(s)/Q(s)$: contacts with the boundary are $A(\\pm1)$, folds are the critical points
of $A$, and at a root $\\partial_s F = -a\\,Q\\,A'(s)$ gives the stability. numpy polynomials
evaluate all of these independently of the Newton solves.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import Polynomial as P

import fsjax
from fsjax import MeanField, hermite
from fsjax._analysis.manifold import (
    branches,
    critical_point,
    fast_gradient,
    fast_hessian,
    require_slow_second_layer,
    slow_flow,
)
from fsjax._kinds.phase_portrait import portrait_figures

TANH = hermite.coefficients("tanh", 9)


def graph(mu, c):
    """(P, Q) as numpy polynomials in s."""
    mu, c = np.asarray(mu, float), np.pad(np.asarray(c, float), (0, len(mu) - len(c)))
    p, q = P([0.0]), P([0.0])
    for k in range(1, len(mu)):
        p += k * mu[k] * c[k] * P.basis(k - 1)
        q += k * mu[k] ** 2 * P.basis(2 * k - 1)
    return p, q


def test_branches_lie_on_the_graph_a_equals_P_over_Q_with_the_right_stability():
    c = [0.0, 1.0, 0.0, 0.3]
    model = MeanField(jnp.asarray(c), TANH, 0.0, 1e-3, 1.0)
    p, q = graph(TANH, c)
    b = branches(model, np.linspace(0.2, 4.0, 12), n_scan=400)
    ok = np.isfinite(b.s)
    assert ok.sum() >= 8
    aa = np.broadcast_to(b.a[:, None], b.s.shape)[ok]
    s = b.s[ok]
    # Newton converges to 1e-13: the graph identity holds to rounding.
    np.testing.assert_allclose(p(s) / q(s), aa, rtol=1e-10)
    slope = (p.deriv() * q - p * q.deriv())(s) / q(s) ** 2
    np.testing.assert_array_equal(b.stable[ok], -aa * q(s) * slope > 0)
    # Contact: A(1) = sum k mu_k c_k / sum k mu_k^2, where s = 1 stops attracting.
    a_c = p(1.0) / q(1.0)
    assert b.contacts[0] == pytest.approx([a_c, 1.0], rel=1e-12)
    assert np.all(b.upper_stable == (b.a < a_c))


@pytest.mark.slow
def test_fold_is_a_critical_point_of_the_graph():
    mu, c = [0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, -1.0]
    model = MeanField(jnp.asarray(c), jnp.asarray(mu), 0.0, 1e-2, 1.0)
    p, q = graph(mu, c)
    b = branches(model, np.linspace(-1.0, -0.05, 40), n_scan=400)
    assert b.folds.shape == (1, 2)
    a_f, s_f = b.folds[0]
    num = p.deriv() * q - p * q.deriv()
    s_ref = next(r.real for r in num.roots() if abs(r.imag) < 1e-12 and 0.5 < r.real < 1)
    assert s_f == pytest.approx(s_ref, rel=1e-10)
    assert a_f == pytest.approx(p(s_ref) / q(s_ref), rel=1e-10)


def test_critical_point_for_several_particles():
    model = MeanField(jnp.array([0.0, 1.0, 0.0, 0.3]), TANH, 0.0, 1e-3, 1.0)
    a = jnp.array([1.5, 2.0, 3.0])
    cp = critical_point(model, a, jnp.array([0.8, 0.7, 0.5]))
    assert bool(cp.converged)
    assert np.max(np.abs(fast_gradient(model, a, cp.s))) < 1e-12
    eig = np.linalg.eigvalsh(np.asarray(fast_hessian(model, a, cp.s)))
    assert bool(cp.stable) == bool(np.all(eig > 0))


def test_manifold_needs_a_slow_second_layer():
    model = MeanField(jnp.array([0.0, 1.0]), TANH, 0.0, 1.0, 1e-2)  # slow first layer
    with pytest.raises(fsjax.FsjaxError, match="slow second layer"):
        require_slow_second_layer(model)
    with pytest.raises(fsjax.FsjaxError, match="slow second layer"):
        branches(model, [0.5, 1.0])


@pytest.mark.slow
def test_full_flow_follows_the_entry_exit_slow_flow_not_the_textbook_one():
    """eps = 1e-3, tanh, c = (0, 1, 0, 0.3): the boundary s = 1 stops attracting at the contact
    T_c = 2.08 but the full flow stays on it until the entry-exit time T_exit = 4.19."""
    eps = 1e-3
    c = jnp.array([0.0, 1.0, 0.0, 0.3])
    model = MeanField(c, hermite.coefficients("tanh", 16), 0.0, eps, 1.0)
    T = np.array([1.0, 4.0, 6.0, 10.0])
    delayed = slow_flow(model, 0.5, 0.01, T, entry_exit=True)
    textbook = slow_flow(model, 0.5, 0.01, T, entry_exit=False)
    assert textbook.T_exit == pytest.approx(2.083, abs=1e-3)
    assert delayed.T_exit == pytest.approx(4.189, abs=1e-3)
    solver = fsjax.solvers.make_solver("kvaerno5", 1e-9, 1e-11)
    full = fsjax.solve(model, [0.5], [0.01], T / eps, solver=solver, rtol=1e-9, atol=1e-11)
    a, s = np.asarray(full.a[:, 0]), np.asarray(full.s[:, 0])
    # docs/fastslow.md measures the error of the delayed slow flow at ~2 eps away from the jump.
    np.testing.assert_allclose(a, delayed.a, atol=10 * eps)
    np.testing.assert_allclose(s, delayed.s, atol=10 * eps)
    # At T = 4 (between contact and exit) the full flow is still pinned to s = 1 while the
    # textbook flow has moved down its interior branch (to s = 0.913, 87 eps away).
    assert s[1] == pytest.approx(1.0, abs=1e-12)
    assert 1.0 - textbook.s[1] > 0.05


@pytest.mark.slow
def test_floored_slow_flow_leaves_the_boundary_when_the_floored_flow_does():
    """The same case standing for an n = 128, d = 64 float32 network (lr = 0.05): the floor caps
    psi at ~15 (Psi = eps psi ~ 0.015), so the floored entry-exit rule leaves soon after the
    contact, with the full floored flow (phase portrait: t_exit = 2636.5 at s = 0.99), not at
    the plain rule's 4.19."""
    cfg = {
        "kind": "phase_portrait",
        "model": {"activation": "tanh", "hermite_order": 16, "target": [0, 1, 0, 0.3]},
        "dynamics": {"epsilon": 1e-3},
        "solver": {"t_first": 1.0, "t_final": 6000.0, "n_save": 30, "rtol": 1e-9, "atol": 1e-11},
        "portrait": {"epsilons": [1e-3], "a_range": [0.2, 3.0], "n_a": 15},
        "network": {"width": 128, "dim": 64, "batch": 2048, "lr": 0.05},
    }
    t_exit = float(fsjax.run(cfg)["t_exit"].values[0])
    floored = slow_flow(fsjax.build_model(fsjax.load_config(cfg)), 0.5, 0.01, np.array([1.0, 6.0]))
    # The slow flow leaves at psi = 0, the full flow crosses s = 0.99 (psi = 2.65) before:
    # psi falls at |g| ~ 0.05-0.1 there, 30-50 time units, 0.03-0.05 in slow time.
    assert 0.0 < floored.T_exit - 1e-3 * t_exit < 0.1


def test_phase_portrait_kind(tmp_path):
    cfg = {
        "kind": "phase_portrait",
        "model": {"activation": "tanh", "hermite_order": 9, "target": [0, 1, 0, 0.3]},
        "solver": {"t_final": 50.0, "n_save": 20},
        "portrait": {"epsilons": [0.1], "a_range": [0.2, 3.0], "n_a": 15},
    }
    ds = fsjax.run(cfg)
    p, q = graph(TANH, [0, 1, 0, 0.3])
    assert ds["contacts"].values[0] == pytest.approx([p(1.0) / q(1.0), 1.0], rel=1e-12)
    assert ds["upper_stable"].values.tolist() == (ds["a_grid"].values < p(1.0) / q(1.0)).tolist()
    assert ds["s"].shape == (1, 20) and np.isfinite(ds["t_onset"].values[0])
    assert [p.name for p in portrait_figures(ds, tmp_path)] == ["phase_portrait.png"]
    with pytest.raises(fsjax.ConfigError, match="particles: 1"):
        fsjax.load_config({**cfg, "model": {**cfg["model"], "particles": 2}})
