"""The reduced mean-field dynamics: vector field vs the risk, solutions vs scipy, invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import fsjax
from fsjax import hermite


def mean_field(target, activation="tanh", order=16, slow="second_layer", eps=0.01, noise=0.0):
    rate_a, rate_w = fsjax.layer_rates(slow, eps)
    return fsjax.MeanField(target, hermite.coefficients(activation, order), noise, rate_a, rate_w)


def test_velocity_is_the_projected_gradient_of_the_risk():
    """da_i = -lam_a m dR/da_i and ds_i = -lam_w m (1 - s_i^2) dR/ds_i, the derivatives of the
    risk taken by central finite differences (h = 1e-6 in float64: truncation ~1e-12, round-off
    ~1e-10, hence the 1e-8 tolerance)."""
    model = mean_field([0.2, 1.0, -0.4, 0.3, 0.1], "gelu", 8, "first_layer", eps=0.3, noise=0.1)
    rng = np.random.default_rng(0)
    m = 5
    a, s = rng.normal(size=m), rng.uniform(-0.9, 0.9, size=m)
    da, ds = (np.asarray(v) for v in model.velocity(jnp.asarray(a), jnp.asarray(s)))
    h = 1e-6

    def risk(a_, s_):
        return float(model.risk(jnp.asarray(a_), jnp.asarray(s_)))

    for i in range(m):
        e = np.eye(m)[i] * h
        grad_a = (risk(a + e, s) - risk(a - e, s)) / (2 * h)
        grad_s = (risk(a, s + e) - risk(a, s - e)) / (2 * h)
        assert da[i] == pytest.approx(-float(model.rate_a) * m * grad_a, abs=1e-8)
        assert ds[i] == pytest.approx(-float(model.rate_w) * m * (1 - s[i] ** 2) * grad_s, abs=1e-8)


def test_risk_components_closed_form():
    model = mean_field([0.0, 1.0, 0.0, 0.3], "erf", 6, noise=0.2)
    a, s = jnp.array([0.7, 1.3]), jnp.array([0.5, -0.2])
    mu = hermite.coefficients("erf", 6)
    c = np.array([0.0, 1.0, 0.0, 0.3, 0, 0, 0])
    m_k = np.array([(0.7 * 0.5**k + 1.3 * (-0.2) ** k) / 2 for k in range(7)])
    np.testing.assert_allclose(model.risk_components(a, s), 0.5 * (c - mu * m_k) ** 2, atol=1e-15)
    assert float(model.risk(a, s)) == pytest.approx(np.sum(0.5 * (c - mu * m_k) ** 2) + 0.02)


def scipy_reference(model, a0, s0, ts, rtol=1e-12, atol=1e-14):
    """The 2-D system written out in numpy (independent of fsjax's vector field) in the same
    s = tanh(psi) coordinates, solved by scipy's Radau."""
    c, mu = np.asarray(model.target), np.asarray(model.mu)
    k = np.arange(len(c))
    rate_a, rate_w = float(model.rate_a), float(model.rate_w)

    def rhs(t, y):
        a, psi = y
        s = np.tanh(psi)
        p = s**k
        r = c - mu * a * p
        dp = k * np.concatenate([[0.0], p[:-1]])
        return [rate_a * p @ (mu * r), rate_w * a * dp @ (mu * r)]

    sol = solve_ivp(
        rhs, (0, ts[-1]), [a0, np.arctanh(s0)], method="Radau", t_eval=ts, rtol=rtol, atol=atol
    )
    assert sol.success
    return sol.y[0], np.tanh(sol.y[1])


CASES = [
    # (target, activation, slow, eps, a0, s0, t_final)
    ([0, 1, 0, 0.3], "tanh", "second_layer", 0.05, 0.5, 0.01, 8e2),
    ([0, 1, 0, -0.5], "tanh", "second_layer", 1e-2, 1.5, 0.05, 1e6),
    ([0, 1, 0, 0.3], "tanh", "second_layer", 1e-4, 0.5, 0.01, 1e7),
    ([0.3, 0.8, 0.5], "relu", "first_layer", 1e-3, 0.2, 0.3, 1e5),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[1]}-{c[2]}-eps{c[3]}")
def test_two_dimensional_system_matches_scipy_radau(case):
    """fsjax at rtol 1e-10 against Radau at rtol 1e-12. The global error of a long solve is
    larger than the local tolerance (measured up to ~3e-7 at eps = 1e-3, t = 1e7), so 1e-5 is
    the bound: it still fails for any error in the model, the coordinates or the save grid."""
    target, act, slow, eps, a0, s0, t_final = case
    model = mean_field(target, act, 16, slow, eps)
    ts = fsjax.save_times(1e-2, t_final, 60)
    traj = fsjax.solve(
        model,
        [a0],
        [s0],
        ts,
        solver=fsjax.solvers.make_solver("kvaerno5", 1e-10, 1e-12),
        rtol=1e-10,
        atol=1e-12,
    )
    assert int(traj.status) == 0
    ref_a, ref_s = scipy_reference(model, a0, s0, ts)
    np.testing.assert_allclose(traj.a[:, 0], ref_a, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(traj.s[:, 0], ref_s, atol=1e-5)


@pytest.mark.slow
def test_exact_flow_leaves_the_boundary_after_the_fast_phase():
    """At eps = 1e-4 the fast phase pins s to 1 to within exp(-2 psi), psi ~ 1e3. An angle-
    coordinate solve stays stuck at s = 1; the exact flow leaves once the boundary has been
    unstable long enough, and alignment decays to ~0.26 by t = 1e7 (scipy agrees)."""
    model = mean_field([0, 1, 0, 0.3], eps=1e-4)
    ts = fsjax.save_times(1e-2, 1e7, 40)
    traj = fsjax.solve(
        model,
        [0.5],
        [0.01],
        ts,
        solver=fsjax.solvers.make_solver("kvaerno5", 1e-8, 1e-10),
        rtol=1e-8,
        atol=1e-10,
    )
    assert float(jnp.max(traj.s)) == 1.0  # the boundary is reached to float precision
    assert float(traj.s[-1, 0]) < 0.3
    assert float(traj.s[-1, 0]) == pytest.approx(
        scipy_reference(model, 0.5, 0.01, ts)[1][-1], abs=1e-5
    )


@pytest.mark.parametrize("s0", [0.999999, -0.999999, 0.01, -0.5])
def test_alignment_never_leaves_the_unit_interval(s0):
    model = mean_field([0, 1, 0, -0.5], "tanh", 16, "second_layer", 1e-3)
    traj = fsjax.solve(
        model,
        [2.0],
        [s0],
        fsjax.save_times(1e-3, 1e6, 200),
        solver=fsjax.solvers.make_solver("kvaerno5", 1e-8, 1e-10),
        rtol=1e-8,
        atol=1e-10,
    )
    assert int(traj.status) == 0
    assert np.all(np.abs(np.asarray(traj.s)) <= 1.0)


@pytest.mark.slow
def test_equal_particles_reduce_to_the_two_dimensional_system():
    model = mean_field([0.1, 1, 0.2, 0.3], "tanh", 12, "second_layer", 0.02)
    ts = fsjax.save_times(1e-2, 1e4, 50)
    kw = dict(solver=fsjax.solvers.make_solver("kvaerno5", 1e-10, 1e-12), rtol=1e-10, atol=1e-12)
    one = fsjax.solve(model, [0.4], [0.05], ts, **kw)
    many = fsjax.solve(model, [0.4] * 6, [0.05] * 6, ts, **kw)
    # Same equations up to the floating-point order of the particle mean.
    np.testing.assert_allclose(many.a, np.repeat(one.a, 6, axis=1), atol=1e-9)
    np.testing.assert_allclose(many.s, np.repeat(one.s, 6, axis=1), atol=1e-9)


def test_failed_solve_is_reported_not_raised():
    model = mean_field([0, 1, 0, 0.3], eps=1e-3)
    traj = fsjax.solve(
        model,
        [0.5],
        [0.01],
        fsjax.save_times(1e-2, 1e7, 20),
        solver=fsjax.solvers.make_solver("tsit5", 1e-8, 1e-10),
        rtol=1e-8,
        atol=1e-10,
        max_steps=50,
    )
    assert int(traj.status) == 1
    assert np.isnan(np.asarray(traj.a[-1])).all()


@pytest.mark.slow
def test_solve_vmaps_and_differentiates():
    """vmap over epsilon, and the gradient of the final second-layer weight with respect to
    epsilon through the solver against a central difference (relative step 1e-4; agreement
    to 1e-5 relative is far above solver noise at rtol 1e-12)."""
    ts = fsjax.save_times(1e-2, 2e3, 10)
    kw = dict(solver=fsjax.solvers.make_solver("kvaerno5", 1e-12, 1e-14), rtol=1e-12, atol=1e-14)

    def final_a(eps):
        return fsjax.solve(
            mean_field([0, 1, 0, 0.3], eps=eps), jnp.array([0.5]), jnp.array([0.01]), ts, **kw
        ).a[-1, 0]

    eps = jnp.array([0.01, 0.02, 0.05])
    batched = jax.vmap(final_a)(eps)
    np.testing.assert_allclose(batched, [final_a(e) for e in eps], rtol=1e-12)
    grad = float(jax.grad(final_a)(0.02))
    h = 0.02 * 1e-4
    fd = (float(final_a(0.02 + h)) - float(final_a(0.02 - h))) / (2 * h)
    assert grad == pytest.approx(fd, rel=1e-5)


def test_layer_rates_reject_unknown_layer():
    with pytest.raises(ValueError, match="first_layer, second_layer"):
        fsjax.layer_rates("middle", 0.1)
