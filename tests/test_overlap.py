"""The overlap flow (THEORY.md section 9): its vector field against `jax.grad` of the risk on
explicit unit vectors, its solutions against scipy, its limits, and how configs choose it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import fsjax
from fsjax import hermite
from fsjax._kinds.compare import CompareConfig
from fsjax._model.corrections import NetworkMeanField
from fsjax._model.mean_field import MeanField
from fsjax._model.network import RiskModel
from fsjax._model.overlap import OverlapFlow, orthogonal_overlaps, overlap_matrix, pairs
from fsjax._solve.settings import make_solver

# A finite Hermite series activation: its Mehler kernel is exact to the series' order, so the
# closed forms below hold to rounding.
SERIES = {"hermite": [0.1, 0.8, 0.3, -0.2, 0.1]}
TARGET = [0.3, 1.0, -0.5, 0.2]
M, D = 4, 6
RATES = (1.3, 0.7)


def _rows(seed=0, m=M, d=D):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(m, d))
    beta = rng.normal(size=d)
    return w / np.linalg.norm(w, axis=1, keepdims=True), beta / np.linalg.norm(beta), rng


def _flow(w, beta, noise=0.1):
    base = MeanField(TARGET, hermite.coefficients(SERIES, 4), noise, *RATES)
    return OverlapFlow(base, SERIES, orthogonal_overlaps(jnp.asarray(w), jnp.asarray(beta)))


def _explicit(flow, beta):
    """The network's risk and its projected gradient flow on explicit unit rows `w`: what the
    overlap flow must reproduce through (a, s, Q) alone."""
    risk_model = RiskModel(SERIES, TARGET, float(flow.base.noise), order=8)
    beta = jnp.asarray(beta)
    lam_a, lam_w = RATES

    def risk(a, w):
        return risk_model(w, a, beta)[0]

    @jax.jit
    def velocity(a, w):
        m = a.shape[-1]
        grad_a, grad_w = jax.grad(risk, argnums=(0, 1))(a, w)
        tangent = grad_w - jnp.sum(grad_w * w, axis=-1, keepdims=True) * w
        return -lam_a * m * grad_a, -lam_w * m * tangent

    return risk, velocity


def _observed(y):
    """(a, s, Q) from the overlap flow's state (a, psi, phi)."""
    a, psi, phi = y
    s = jnp.tanh(psi)
    return a, s, overlap_matrix(s, 1 / jnp.cosh(psi), phi)


def test_vector_field_is_the_projected_gradient_flow_on_unit_vectors():
    """d/dt of a_i, s_i and Q_ij from the overlap flow against those of the explicit rows under
    `jax.grad` of the network's closed-form risk (RiskModel): both are exact, so they agree to
    rounding (1e-12 on numbers of order 1)."""
    w, beta, rng = _rows()
    a = rng.normal(size=M)
    flow = _flow(w, beta)
    risk, velocity = _explicit(flow, beta)
    da, dw = velocity(jnp.asarray(a), jnp.asarray(w))
    y = flow.initial_state(a, w @ beta)
    rates = jax.jit(lambda y: jax.jvp(_observed, (y,), (flow.vector_field(0.0, y, None),))[1])
    ta, ts, tq = rates(y)
    i, j = pairs(M)
    np.testing.assert_allclose(ta, da, atol=1e-12)
    np.testing.assert_allclose(ts, dw @ beta, atol=1e-12)
    np.testing.assert_allclose(tq[i, j], (dw @ w.T + w @ dw.T)[i, j], atol=1e-12)
    assert float(jnp.max(jnp.abs(tq[i, j]))) > 1e-2  # the overlaps do move
    np.testing.assert_allclose(flow.risk(a, w @ beta, y[2]), risk(a, w), atol=1e-14)


@pytest.mark.slow
def test_solution_against_scipy_on_explicit_rows():
    """fsjax.solve of the overlap flow against scipy's DOP853 integrating the explicit rows
    (m d + m unknowns) at rtol 1e-12: with fsjax at rtol 1e-10 the two differ by the solvers'
    errors, 1e-8 leaves two decades of room."""
    w, beta, rng = _rows(seed=1, m=3, d=5)
    a = rng.normal(size=3)
    flow = _flow(w, beta)
    _, velocity = _explicit(flow, beta)
    ts = np.array([0.5, 2.0, 6.0])

    def rhs(t, y):
        da, dw = velocity(jnp.asarray(y[:3]), jnp.asarray(y[3:].reshape(3, 5)))
        return np.concatenate([np.asarray(da), np.asarray(dw).ravel()])

    ref = solve_ivp(
        rhs, (0, ts[-1]), np.concatenate([a, w.ravel()]), "DOP853", ts, rtol=1e-12, atol=1e-12
    )
    w_ref = ref.y[3:].T.reshape(-1, 3, 5)
    w_ref /= np.linalg.norm(w_ref, axis=-1, keepdims=True)
    traj = fsjax.solve(
        flow, a, w @ beta, ts, solver=make_solver("tsit5", 1e-10, 1e-12), rtol=1e-10, atol=1e-12
    )
    assert int(traj.status) == 0
    q = jax.vmap(lambda s, phi: overlap_matrix(s, jnp.sqrt(1 - s**2), phi))(traj.s, traj.more[0])
    i, j = pairs(3)
    np.testing.assert_allclose(traj.a, ref.y[:3].T, atol=1e-8)
    np.testing.assert_allclose(traj.s, w_ref @ beta, atol=1e-8)
    np.testing.assert_allclose(
        q[:, i, j], np.einsum("tid,tjd->tij", w_ref, w_ref)[:, i, j], atol=1e-8
    )


def test_orthogonal_parts_give_the_self_interaction_flow():
    """At P = 0 (the rows' orthogonal parts mutually orthogonal) the alignments and second
    layer move as the independent flow with `finite_width`'s self-interaction at n = m, and
    the plain `MeanField` differs from both by that term (exact identities: 1e-13)."""
    rng = np.random.default_rng(2)
    a, s = rng.normal(size=M), rng.uniform(-0.9, 0.9, size=M)
    base = MeanField(TARGET, hermite.coefficients(SERIES, 4), 0.0, *RATES)
    flow = OverlapFlow(base, SERIES)
    da, dpsi, _ = flow.vector_field(0.0, flow.initial_state(a, s), None)
    corrected = NetworkMeanField(base, SERIES, inv_width=1 / M)
    ca, cpsi = corrected.vector_field(0.0, (a, np.arctanh(s)), None)
    np.testing.assert_allclose(da, ca, atol=1e-13)
    np.testing.assert_allclose(dpsi, cpsi, atol=1e-13)
    plain = base.vector_field(0.0, (a, np.arctanh(s)), None)
    assert np.max(np.abs(np.asarray(plain[0]) - np.asarray(da))) > 1e-3


def _compare(**overrides):
    cfg = {
        "kind": "compare",
        "model": {"activation": "relu", "target": [0.2, 0.6, 0.5], "particles": 4},
        "dynamics": {"slow": "first_layer", "epsilon": 0.1},
        "network": {
            "width": 4,
            "dim": 16,
            "batch": 256,
            "lr": 0.05,
            "steps": 40,
            "record": 5,
            "mc_samples": 0,
        },
        "solver": {"method": "tsit5"},
    }
    for key, value in overrides.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    return cfg


def test_compare_defaults_to_the_overlap_flow_neuron_by_neuron():
    assert fsjax.load_config(_compare()).reduced_flow() == "overlap"
    means = fsjax.load_config(_compare(model={"particles": 1}))
    assert means.reduced_flow() == "independent"
    corrected = fsjax.load_config(_compare(finite_width=True))
    assert corrected.reduced_flow() == "independent"
    assert not fsjax.load_config(_compare()).stands_for().floor
    with pytest.raises(fsjax.ConfigError, match=r"model.flow: overlap follows the network"):
        fsjax.load_config(_compare(model={"particles": 1, "flow": "overlap"}))
    with pytest.raises(fsjax.ConfigError, match=r"finite_width, finite_batch"):
        fsjax.load_config(_compare(model={"flow": "overlap"}, finite_width=True))
    assert isinstance(fsjax.load_config(_compare()), CompareConfig)


@pytest.mark.slow
def test_compare_starts_from_the_network_rows():
    """The flow starts at the network's own (a, s) and overlaps, so at the first record
    (step 0) the risks agree to the float32 rounding of the rows (1e-6 relative)."""
    ds = fsjax.run(_compare())
    assert int(ds["status_mf"]) == 0
    np.testing.assert_allclose(ds["risk_mf"].values[0], ds["risk_net"].values[0], rtol=1e-6)
    np.testing.assert_allclose(
        ds["risk_perp_mf"].values[0], ds["risk_perp_net"].values[0], rtol=1e-5, atol=1e-9
    )
