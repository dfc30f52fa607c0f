"""The boundary floor of a network's rows (`boundary_floor`, fsjax._model.corrections): the
rounding constant against simulated float32 steps, the fixed point against its closed form, the
second layer's spread against networks, and small networks at small eps that leave the boundary
when the floored flow does and not when the plain one does."""

from __future__ import annotations

import math

import diffrax
import numpy as np
import pytest

import fsjax
from fsjax import hermite
from fsjax._errors import ConfigError
from fsjax._kinds import load_config
from fsjax._kinds.sweep import run_sweep
from fsjax._model.corrections import ROUNDOFF_PER_STEP, NetworkMeanField, roundoff_rate
from fsjax._model.network import unit_rows
from fsjax._point import build_model
from fsjax._solve.solve import integrate


def _one_step_rounding(w32, delta32):
    """Squared norm of the rounding error of one float32 step (update, then renormalise),
    with the error's part along the exact new row removed (a change of length, not of
    direction), per row."""
    exact = w32.astype(np.float64) + delta32.astype(np.float64)
    exact /= np.linalg.norm(exact, axis=1, keepdims=True)
    rounded = np.asarray(unit_rows(w32 + delta32), dtype=np.float64)
    err = rounded - exact
    err -= np.sum(err * exact, axis=1, keepdims=True) * exact
    return np.sum(err**2, axis=1)


def test_rounding_per_step_matches_simulated_float32_steps():
    """delta = 2 sum_i ulp(w_i)^2 / 12 per step (two roundings, each uniform over +-ulp/2),
    and 0.361 u^2 when the mantissas follow Benford's law.

    100,000 rows of d = 64: the mean of the squared error has a relative standard error of
    about sqrt(var / N) / mean <= sqrt(2 / 100000) ~ 0.5% (the per-row error is a sum of 128
    small uniform terms, close to a scaled chi-square with >= 64 degrees of freedom, whose
    relative std is at most sqrt(2/64) = 0.18; 0.18 / sqrt(1e5) = 6e-4); 5 standard errors is
    0.3%. The division by a rounded norm (a float32 reduction over 64 terms) adds a common
    factor per row: it changes the length only, which the projection removes. The Benford
    constant describes Gaussian rows to the extent their mantissas are log-uniform: checked
    here to 5%, the spread of E[(ulp/x)^2] / x^2 between mantissa laws being a factor 4."""
    rng = np.random.default_rng(0)
    n, d = 100_000, 64
    w32 = np.asarray(unit_rows(rng.normal(size=(n, d)).astype(np.float32)))
    delta32 = (1e-3 * rng.normal(size=(n, d))).astype(np.float32)
    measured = _one_step_rounding(w32, delta32)
    u = np.finfo(np.float32).eps / 2
    ulp2 = np.sum(np.spacing(np.abs(w32 + delta32)).astype(np.float64) ** 2, axis=1)
    predicted = 2 * ulp2 / 12
    assert np.mean(measured) == pytest.approx(np.mean(predicted), rel=5e-3)
    assert np.mean(measured) / u**2 == pytest.approx(ROUNDOFF_PER_STEP, rel=0.05)
    assert ROUNDOFF_PER_STEP == pytest.approx(2 * 4 / 12 * 3 / (8 * math.log(2)))
    assert float(roundoff_rate(0.05, "float32")) == pytest.approx(ROUNDOFF_PER_STEP * u**2 / 0.05)
    assert float(roundoff_rate(0.05, "float64")) == pytest.approx(
        ROUNDOFF_PER_STEP * (np.finfo(np.float64).eps / 2) ** 2 / 0.05
    )


@pytest.mark.slow
def test_floor_holds_psi_at_the_closed_form_fixed_point():
    """With the second layer frozen (lam_a = 0) on the boundary branch, dpsi/dt =
    g(a, tanh psi) - (rho/4) sinh(2 psi) settles where sinh(2 psi*) = 4 g / rho, g taken at
    s = 1 (at psi* ~ 15.6, 1 - s ~ 6e-14, so g(a, s*) = g(a, 1) to ~1e-13 relative). The
    relaxation rate there is (rho/2) cosh(2 psi*) ~ 2 g ~ 0.2, so by t = 2000 the transient
    has decayed by e^-400; what is left is the solve's error at rtol 1e-10, held to 1e-7
    relative (a thousand times the tolerance: errors of an adaptive solve accumulate over its
    steps, and at a stable fixed point they do not grow)."""
    mf = fsjax.MeanField([0, 1, 0, 0.3], hermite.coefficients("tanh", 16), 0.0, 0.0, 1.0)
    rho = float(roundoff_rate(0.05, "float32"))
    model = NetworkMeanField(mf, "tanh", roundoff=rho)
    a = 0.5
    g = float(mf.drift(np.array([a]), np.array([1.0]))[1][0])
    assert g > 0  # the boundary attracts at a = 0.5
    solver = fsjax.solvers.make_solver("rodas5p", 1e-10, 1e-12)
    options = dict(solver=solver, rtol=1e-10, atol=1e-12, max_steps=100_000)
    at = diffrax.SaveAt(ts=[2000.0])
    # `integrate` returns psi itself: s = tanh(psi) would resolve 1 - s ~ 6e-14 only to 2e-3.
    psi = float(integrate(model, [a], [0.5], t1=2000.0, saveat=at, **options).ys[1][0, 0])
    psi_star = np.arcsinh(4 * g / rho) / 2
    assert psi == pytest.approx(psi_star, rel=1e-7)
    # The plain flow goes on climbing, psi ~ g t, far past the floor.
    plain = float(integrate(mf, [a], [0.5], t1=2000.0, saveat=at, **options).ys[1][0, 0])
    assert plain > 10 * psi_star


def _exit_config(**extra):
    return {
        "kind": "sweep",
        "model": {"activation": "tanh", "target": [0, 1, 0, 0.3], "init": {"a": 0.5}},
        "dynamics": {"slow": "second_layer", "epsilon": 3e-3},
        "network": {
            "width": 16,
            "dim": 16,
            "batch": 256,
            "lr": 0.1,
            "steps": 13_000,
            "record": 160,
            "record_spacing": "uniform",
            "mc_samples": 0,
        },
        "solver": {"rtol": 1e-8, "atol": 1e-10},
        "sweep": {"axes": {"model.noise": [0.0]}, "seeds": 2},
        **extra,
    }


@pytest.mark.slow
def test_small_network_leaves_the_boundary_with_the_floored_flow():
    """eps = 3e-3, n = d = 16, float32, t to 1300: the networks leave s = 1 at t ~ 1015, the
    floored flow at ~1025 and the plain flow only at ~2000 (its psi climbs to O(1/eps)),
    timed on a uniform record grid.

    Bound on max |dev s| with the floor: 0.03 (the target of the exit study). What it carries:
    the exit time's error, about 1% of the exit (the derived constant: a factor 2 in rho moves
    the exit by log(2)/ln(1/(rho/g)) ~ 3% of the delay after the contact, ~1% of the exit),
    times the slope of s through the jump (~0.05 over ~20 time units at this eps, i.e. ~0.03
    for a 10-unit shift, attained only if a record falls inside the jump), plus the finite-d
    fluctuation of the mean alignment after the exit (0.01 at d = 16 measured on the
    plateau). The plain flow, still on the boundary while the networks have left, misses by
    the depth of the jump (0.08): the test fails without the floor."""
    config = load_config(_exit_config())
    ds = run_sweep(config).isel(model_noise=0)
    assert ds["status"].values.tolist() == [0, 0]
    assert np.all(ds["max_abs_dev_s"].values <= 0.03)
    # Exit times: the floor's 1% (10), one record step (1300 / 159 = 8.2) and the crossing
    # of 0.99 shifted by the mean's 0.01 fluctuation over the jump's slope (0.05 / 20): 4.
    assert np.all(np.abs(ds["t_exit"].values - ds["t_exit_mf"].values) <= 10 + 8.2 + 4)
    plain_model = build_model(load_config(_exit_config(boundary_floor=False)))
    solver = fsjax.solvers.make_solver("rodas5p", 1e-8, 1e-10)
    for seed in range(2):
        net = ds.isel(seed=seed)
        t, s_net = net["t"].values, net["s_mean_net"].values
        a0, s0 = net["a_mean_net"].values[:1], s_net[:1]
        plain = fsjax.solve(plain_model, a0, s0, t, solver=solver, rtol=1e-8, atol=1e-10)
        later = t >= 1.0
        assert np.max(np.abs(np.asarray(plain.s[:, 0]) - s_net)[later]) >= 0.05


def test_boundary_floor_defaults_and_errors():
    traj = {
        "kind": "trajectory",
        "model": {"activation": "tanh", "target": [0, 1, 0, 0.3], "init": {"a": 0.5, "s": 0.0}},
        "dynamics": {"slow": "second_layer", "epsilon": 1e-3},
    }
    net = {"width": 128, "dim": 64, "batch": 2048, "lr": 0.05}
    assert isinstance(build_model(load_config(traj)), fsjax.MeanField)
    model = build_model(load_config({**traj, "network": net}))
    assert float(model.roundoff) == pytest.approx(float(roundoff_rate(0.05, "float32")))
    model = build_model(load_config({**traj, "network": {**net, "dtype": "float64"}}))
    assert float(model.roundoff) == pytest.approx(float(roundoff_rate(0.05, "float64")))
    off = build_model(load_config({**traj, "network": net, "boundary_floor": False}))
    assert isinstance(off, fsjax.MeanField)
    with pytest.raises(ConfigError, match=r"boundary_floor: .*network\.lr, network\.dtype"):
        load_config({**traj, "boundary_floor": True})
    sweep = {**traj, "kind": "sweep", "sweep": {"axes": {"init.a": [0.5, 1.0]}}}
    with pytest.raises(ConfigError, match=r"boundary_floor: .*add a network: section"):
        load_config({**sweep, "boundary_floor": True})
