"""Diagnostics of solved trajectories: alignment and its rate, event-located onset and exit
against an independent scipy solve, the onset at a network's resolution, power-law fits on
exact power laws, regimes, bad trajectories."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import fsjax
from fsjax import DIAGNOSTIC_NAMES, REGIMES, MeanField, Trajectory, hermite

TANH = hermite.coefficients("tanh", 12)
RTOL, ATOL = 1e-10, 1e-12
SOLVER = fsjax.solvers.make_solver("kvaerno5", RTOL, ATOL)


def tanh_model(c3, eps=0.01):
    return MeanField(jnp.array([0.0, 1.0, 0.0, c3]), TANH, 0.0, eps, 1.0)


def test_alignment_is_abs_a_weighted_mean():
    a, s = jnp.array([1.0, -3.0, 0.0]), jnp.array([0.2, 0.6, 0.9])
    assert fsjax.alignment(a, s) == pytest.approx((0.2 + 3 * 0.6) / 4, rel=1e-15)
    assert fsjax.alignment(jnp.array([0.7]), jnp.array([0.3])) == pytest.approx(0.3, rel=1e-15)


def test_scaled_rate_is_a_positive_multiple_of_the_alignment_rate():
    key = jax.random.PRNGKey(0)
    model = MeanField(jnp.array([0.1, 1.0, 0.4, -0.3]), TANH, 0.0, 0.05, 1.0)
    for k in jax.random.split(key, 3):
        ka, ks = jax.random.split(k)
        a = jax.random.normal(ka, (4,))
        psi = jax.random.normal(ks, (4,))
        s = jnp.tanh(psi)
        ell = jnp.log(1.0 / jnp.cosh(psi))
        rho = fsjax.scaled_alignment_rate(model, a, psi)
        # Same quantity by two routes (log-scaled sums vs jvp): float64 rounding only.
        assert rho * jnp.exp(2 * jnp.max(ell)) == pytest.approx(
            float(fsjax.alignment_rate(model, a, s)), rel=1e-10
        )


def test_scaled_rate_keeps_its_sign_where_s_rounds_to_one():
    model = tanh_model(0.3)
    a = jnp.array([0.5])
    psi = jnp.array([2000.0])  # tanh(psi) == 1.0 and sech^2 underflows to 0
    assert fsjax.alignment_rate(model, a, jnp.tanh(psi)) == 0.0
    # For one particle the scaled rate is g = dpsi/dt itself.
    assert fsjax.scaled_alignment_rate(model, a, psi) == pytest.approx(
        float(model.drift(a, jnp.ones(1))[1][0]), rel=1e-14
    )
    # Two particles pinned to the boundary at different depths: the sign is still resolved.
    psi2 = jnp.array([2000.0, 2100.0])
    rho = fsjax.scaled_alignment_rate(model, jnp.array([0.5, 0.5]), psi2)
    assert np.isfinite(rho) and rho > 0


def scipy_onset(c3, eps, a0, s0, t_final, level=None):
    """Independent reference: LSODA in (a, psi) with a terminal + to - event on dpsi/dt, or
    with a `level` on s - level (the exit from the boundary)."""
    c = np.array([0.0, 1.0, 0.0, c3])
    mu = np.asarray(TANH[:4])
    k = np.arange(4)

    def g_and_da(a, psi):
        s = np.tanh(psi)
        r = c - a * mu * s**k
        return a * np.sum(k * mu * s ** np.maximum(k - 1, 0) * r), eps * np.sum(mu * s**k * r)

    def rhs(t, y):
        g, da = g_and_da(*y)
        return [da, g]

    def event(t, y):
        return g_and_da(*y)[0] if level is None else np.tanh(y[1]) - level

    event.terminal, event.direction = True, -1
    sol = solve_ivp(
        rhs, (0, t_final), [a0, np.arctanh(s0)], "LSODA", rtol=1e-12, atol=1e-13, events=event
    )
    return sol.t_events[0][0]


@pytest.mark.slow
def test_onset_time_matches_scipy_event():
    model = MeanField(jnp.array([0.0, 1.0, 0.0, 0.3]), TANH[:4], 0.0, 0.01, 1.0)
    t_on = fsjax.onset_time(model, [0.5], [0.01], t_final=1e4, solver=SOLVER, rtol=RTOL, atol=ATOL)
    ref = scipy_onset(0.3, 0.01, 0.5, 0.01, 1e4)
    # Both solves run at rtol <= 1e-10; the event time inherits ~1e-9 relative error.
    assert float(t_on) == pytest.approx(ref, rel=1e-7)


@pytest.mark.slow
def test_exit_and_resolved_onset_match_scipy_events():
    """eps = 0.01: the peak is on the boundary (1 - s ~ e^(-2/eps)). `t_exit` at 0.99 is the
    scipy event on s - 0.99, and so is the onset at resolution 0.01 (the alignment is falling
    when it crosses 1 - 0.01); the grid versions agree to a save spacing."""
    model = MeanField(jnp.array([0.0, 1.0, 0.0, 0.3]), TANH[:4], 0.0, 0.01, 1.0)
    opts = dict(t_final=1e4, solver=SOLVER, rtol=RTOL, atol=ATOL)
    ref = scipy_onset(0.3, 0.01, 0.5, 0.01, 1e4, level=0.99)
    t_exit = fsjax.exit_event_time(model, [0.5], [0.01], **opts)
    t_on = fsjax.onset_time(model, [0.5], [0.01], resolution=0.01, **opts)
    # As for the onset above: both solves at rtol <= 1e-10, the event times to ~1e-9.
    assert float(t_exit) == pytest.approx(ref, rel=1e-7)
    assert float(t_on) == pytest.approx(ref, rel=1e-7)
    assert float(fsjax.onset_time(model, [0.5], [0.01], **opts)) < 0.9 * ref  # the sign change
    ts = jnp.linspace(1.0, 1e3, 400)
    traj = fsjax.solve(model, [0.5], [0.01], ts, solver=SOLVER, rtol=RTOL, atol=ATOL)
    d = fsjax.diagnose(model, traj, resolution=0.01)
    spacing = float(ts[1] - ts[0])
    assert abs(float(d["t_exit"]) - ref) < spacing and abs(float(d["t_onset"]) - ref) < spacing
    # An interior peak (eps = 0.05: kappa_max = 0.99943 < 1 - 1e-4) keeps its sign change.
    model = MeanField(jnp.array([0.0, 1.0, 0.0, 0.3]), TANH[:4], 0.0, 0.05, 1.0)
    plain = fsjax.onset_time(model, [0.5], [0.01], **opts)
    resolved = fsjax.onset_time(model, [0.5], [0.01], resolution=1e-4, **opts)
    assert float(resolved) == pytest.approx(float(plain), rel=1e-12)


def test_resolution_is_what_rounds_to_one():
    assert fsjax.resolution_of(None) == 0.0
    for dtype, u in (("float32", 2.0**-24), ("float64", 2.0**-53)):
        assert fsjax.resolution_of(dtype) == u
        # The floats below 1 are u apart: 1 - u is stored, 1 - u/4 rounds to 1.
        assert np.asarray(1 - u / 4, dtype) == 1 and np.asarray(1 - u, dtype) == 1 - u


@pytest.mark.slow
def test_no_peak_gives_nan_onset_and_regime_none():
    # Linear network, linear target: s -> 1 and a -> 1 monotonically, so there is no peak.
    # (Same shapes and t_final as the scipy check above, so the event solve is compiled once.)
    model = MeanField(jnp.array([0.0, 1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0, 0.0]), 0.0, 0.01)
    ts = fsjax.save_times(1e-2, 1e4, 100)
    traj = fsjax.solve(model, [0.5], [0.01], ts, solver=SOLVER, rtol=RTOL, atol=ATOL)
    t_on = fsjax.onset_time(model, [0.5], [0.01], t_final=1e4, solver=SOLVER, rtol=RTOL, atol=ATOL)
    d = fsjax.diagnose(model, traj, t_onset=t_on)
    assert np.isnan(d["t_onset"]) and np.isnan(fsjax.grid_onset(model, traj))
    assert REGIMES[int(d["regime"])] == "none"


def test_failed_solve_is_undetermined():
    ts = jnp.asarray(fsjax.save_times(1e-2, 1e5, 50))
    nan = jnp.full((50, 1), jnp.nan).at[:10].set(0.5)  # diverged after the tenth save
    traj = Trajectory(ts=ts, a=nan, s=nan, status=jnp.array(2), num_steps=jnp.array(40))
    d = fsjax.diagnose(tanh_model(0.3), traj)
    assert REGIMES[int(d["regime"])] == "undetermined"
    assert all(np.isnan(d[k]) for k in DIAGNOSTIC_NAMES if k != "regime")


def test_power_law_fit_is_exact_on_power_laws():
    ts = jnp.asarray(fsjax.save_times(1.0, 1e6, 120))
    a = (2.0 * ts**0.25)[:, None]
    s = (0.9 * ts**-0.2)[:, None]
    traj = Trajectory(ts=ts, a=a, s=s, status=jnp.array(0), num_steps=jnp.array(0))
    d = fsjax.diagnose(tanh_model(0.3), traj, t_onset=jnp.nan, fit_decades=2.0)
    assert d["exponent_a"] == pytest.approx(0.25, abs=1e-12)
    assert d["exponent_s"] == pytest.approx(-0.2, abs=1e-12)
    assert d["fit_r2_a"] == pytest.approx(1.0, abs=1e-12)
    assert abs(d["drift_s"]) < 1e-12
    assert REGIMES[int(d["regime"])] == "complete"


@pytest.mark.slow
def test_diagnose_vmaps_and_separates_the_three_outcomes():
    """THEORY section 5 for tanh (mu_3 < 0): c_3 > 0 is mu_p c_p < 0 (complete), c_3 = 0 is
    complete too, c_3 < 0 is a finite equilibrium (partial); a large a0 there removes the
    overshoot (none)."""
    ts = jnp.asarray(fsjax.save_times(1e-2, 1e6, 300))

    def point(c3, a0):
        model = tanh_model(c3)
        traj = fsjax.solve(
            model, a0[None], jnp.array([0.01]), ts, solver=SOLVER, rtol=1e-8, atol=1e-10
        )
        return fsjax.diagnose(model, traj)

    d = jax.jit(jax.vmap(point))(jnp.array([0.3, 0.0, -0.3, -0.3]), jnp.array([0.5, 0.5, 0.5, 3.0]))
    assert set(d) == set(DIAGNOSTIC_NAMES)
    names = [REGIMES[int(r)] for r in d["regime"]]
    assert names == ["complete", "complete", "partial", "none"]
    assert np.all(np.isfinite(d["t_onset"][:3]))


def test_exit_time_interpolates_the_first_crossing_after_the_peak():
    """A piecewise-linear kappa (exact under linear interpolation): up to 0.995 at t = 2, a
    plateau, a fall through 0.99 at t = 7.5, a second dip later; plus the two NaN cases."""
    ts = jnp.arange(0.0, 12.0)
    kappa = jnp.asarray([0.5, 0.9, 0.995, 0.995, 0.994, 0.993, 0.992, 0.991, 0.989, 0.9, 0.99, 0.8])
    assert float(fsjax.exit_time(ts, kappa)) == pytest.approx(7.5, rel=1e-12)
    # The rise through 0.99 (before the peak) is not an exit.
    assert float(fsjax.exit_time(ts, kappa, level=0.95)) == pytest.approx(8 + 0.039 / 0.089)
    assert np.isnan(float(fsjax.exit_time(ts, jnp.minimum(kappa, 0.98))))  # never on the boundary
    assert np.isnan(float(fsjax.exit_time(ts, jnp.maximum(kappa, 0.99))))  # never leaves it
    batched = jax.vmap(fsjax.exit_time, in_axes=(None, 0))(ts, jnp.stack([kappa, kappa]))
    np.testing.assert_allclose(batched, 7.5)
