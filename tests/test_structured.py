"""The structured step matrix: the Jacobian's parts against forward-mode differentiation, the
Woodbury solve against the dense matrix it factorises (particles near |s| = 1 and blocks of
A = I - cD made singular included), batching, gradients, and the automatic choice.

Rounding bounds are first order, gamma_N ~ N u with u the float64 unit roundoff."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fsjax
from benchmarks.problems import error, relu_groups
from fsjax import hermite
from fsjax._solve.linsolve import UnrolledLU
from fsjax._solve.step_matrix import DenseStepMatrix
from fsjax._solve.structured import (
    AutoStepMatrix,
    WoodburyFactors,
    WoodburyStepMatrix,
    capacitance_size,
)

U = np.finfo(np.float64).eps / 2

MODELS = {
    # (activation, order, target, slow layer, eps)
    "tanh-first": ("tanh", 16, [0.2, 0.6, 0.5, 0.3], "first_layer", 1e-3),
    "relu-second": ("relu", 16, [0.0, 1.0, -0.3, 0.0, 0.2, 0.1], "second_layer", 1e-2),
    # Target longer than the activation's series; 4 orders: the capacitance is unrolled (8 rows).
    "erf-short": ("erf", 2, [0.1, 0.8, 0.0, -0.4], "first_layer", 0.3),
}


def model(name) -> fsjax.MeanField:
    activation, order, target, slow, eps = MODELS[name]
    rates = fsjax.layer_rates(slow, eps)
    return fsjax.MeanField(target, hermite.coefficients(activation, order), 0.0, *rates)


def state(m, seed, far=True):
    """A random state with particles near |s| = 1: psi = 15, -14 and (if `far`) 30, where
    1 - tanh(psi)^2 rounds to 0."""
    rng = np.random.default_rng(seed)
    a, psi = 0.2 + 0.5 * rng.normal(size=m), rng.normal(size=m)
    psi[: min(m, 3 if far else 2)] = [15.0, -14.0, 30.0][: min(m, 3 if far else 2)]
    return jnp.asarray(a), jnp.asarray(psi)


def vector_field(t, y, args):
    return args.vector_field(t, y, None)


def dense(blocks, u, w, dtype=np.float64):
    """D + U W^T as a (2m, 2m) matrix in the order of ravel_pytree((a, psi))."""
    blocks, u, w = (np.asarray(x, dtype=dtype) for x in (blocks, u, w))
    m = blocks.shape[-1]
    uf, wf = u.reshape(2 * m, -1), w.reshape(2 * m, -1)
    jac = uf @ wf.T
    i = np.arange(m)
    for p in range(2):
        for q in range(2):
            jac[p * m + i, q * m + i] += blocks[p, q]
    return jac


def absolute_parts(mf, a, psi):
    """The parts with every term replaced by its absolute value, so that the error of summing
    them is bounded by gamma_N times these: with target |c|, coefficients |mu| and a -> -|a|
    the residual becomes |c| + |mu| |a|.|s|^k / m and every product is a product of moduli."""
    absolute = fsjax.MeanField(
        jnp.abs(mf.target), jnp.abs(mf.mu), 0.0, jnp.abs(mf.rate_a), jnp.abs(mf.rate_w)
    )
    return (np.abs(np.asarray(x)) for x in absolute.jacobian_parts(-jnp.abs(a), jnp.abs(psi)))


@pytest.mark.parametrize("name", list(MODELS))
def test_jacobian_parts_match_forward_mode(name):
    """Forward mode carries dpsi -> ds as (1 + s)(1 - s) of the rounded s, 5e-4 off in relative
    terms at psi = 15; the parts use sech^2 psi. Every psi_j column of J is sigma_j d/ds_j, so
    dividing each by its own sigma_j compares the rest, which both compute from the same terms:
    each entry is off by at most (m + 3n + 10) u times the sum of its terms' moduli (powers by
    cumulative products, the residuals' m-term sums, two n-term sums, a few products), twice
    that for the difference, plus 2u for the divisions."""
    mf = model(name)
    m, n = 5, mf.orders
    a, psi = state(m, seed=len(name), far=False)
    jac = jax.jacfwd(lambda z: jnp.concatenate(mf.vector_field(0.0, (z[:m], z[m:]), None)))(
        jnp.concatenate([a, psi])
    )
    parts = dense(*mf.jacobian_parts(a, psi))
    s = np.tanh(np.asarray(psi, dtype=np.float64))
    e = np.exp(-2 * np.abs(np.asarray(psi)))
    sigma_parts = 4 * e / (1 + e) ** 2
    sigma_jax = (1 + np.asarray(jnp.tanh(psi))) * (1 - np.asarray(jnp.tanh(psi)))
    assert np.all(sigma_jax > 0) and np.abs(s).max() > 1 - 1e-12
    scale_parts = np.concatenate([np.ones(m), 1 / sigma_parts])
    scale_jax = np.concatenate([np.ones(m), 1 / sigma_jax])
    bound = dense(*absolute_parts(mf, a, psi)) * scale_parts
    k = 2 * (m + 3 * n + 12)
    np.testing.assert_array_less(
        np.abs(np.asarray(jac) * scale_jax - parts * scale_parts), k * U * bound + 1e-300
    )


def singular_block_c(mf, a, psi):
    """The smallest c > 0 at which a block I - c D_i is singular: det = 1 - c d22 - c^2 d12 d21
    with d12 d21 >= 0 (D_i is a saddle), whose positive root is 2 / (d22 + sqrt(d22^2 + 4 d12
    d21))."""
    blocks = np.asarray(mf.jacobian_parts(a, psi)[0])
    d12, d21, d22 = blocks[0, 1], blocks[1, 0], blocks[1, 1]
    return float(2 / np.max(d22 + np.sqrt(d22**2 + 4 * d12 * d21)))


@eqx.filter_jit
def woodbury_solve(mf, y, c, b):
    step = WoodburyStepMatrix()
    return step.solve(step.factor(vector_field, 0.0, y, mf, c), b)


def flat(x):
    return np.concatenate([np.asarray(v) for v in x])


@pytest.mark.parametrize("c_kind", ["small", "large", "singular-block"])
@pytest.mark.parametrize("m", [3, 17, 64])
@pytest.mark.parametrize("name", list(MODELS))
def test_woodbury_solves_the_step_matrix(name, m, c_kind):
    """M x = b with M = I - c(D + U W^T) formed from the parts in extended precision, so that
    its residual is exact to 1e-19. Backward error: a backward-stable dense solve (LU with
    partial pivoting, growth ~1 here) of N = 2m unknowns has ||Mx - b|| <= N u (||M|| ||x|| +
    ||b||); Woodbury's sums run over 2m particle rows and N' = n + 4 capacitance rows, so
    (2m + N') u is asked of it. Forward error against numpy's dense solve: x - x_d =
    M^-1 (r - r_d) exactly, so ||x - x_d|| <= (||r|| + ||r_d||) / sigma_min(M)."""
    mf = model(name)
    a, psi = state(m, seed=m)
    c = {"small": 0.5, "large": 40.0}.get(c_kind) or singular_block_c(mf, a, psi)
    rng = np.random.default_rng(1)
    b = (jnp.asarray(rng.normal(size=m)), jnp.asarray(rng.normal(size=m)))
    x = flat(woodbury_solve(mf, (a, psi), jnp.asarray(c), b))

    big = np.longdouble
    matrix = np.eye(2 * m, dtype=big) - big(c) * dense(*mf.jacobian_parts(a, psi), dtype=big)
    bf = flat(b).astype(big)

    def residual(v):
        return np.linalg.norm(matrix @ v.astype(big) - bf)

    norm_m = np.linalg.norm(matrix.astype(np.float64), 2)
    n_cap = capacitance_size(mf.orders, m)
    assert residual(x) <= (2 * m + n_cap) * U * (norm_m * np.linalg.norm(x) + np.linalg.norm(bf))

    m64 = matrix.astype(np.float64)
    x_dense = np.linalg.solve(m64, flat(b))
    sigma_min = np.linalg.svd(m64, compute_uv=False)[-1]
    assert np.linalg.norm(x - x_dense) <= 1.01 * (residual(x) + residual(x_dense)) / sigma_min


def test_woodbury_vmaps_over_models_states_and_steps():
    """A batch of models, states and c against one solve at a time: the two differ only in the
    order of their sums, each within the backward-error bound above, so by at most twice
    (2m + N') u cond(M) ||x||."""
    m = 17
    names = list(MODELS)[:2]
    models = [model(nm) for nm in names]
    states = [state(m, seed=i) for i in range(2)]
    cs = jnp.array([0.5, 7.0])
    rng = np.random.default_rng(2)
    bs = (jnp.asarray(rng.normal(size=(2, m))), jnp.asarray(rng.normal(size=(2, m))))
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *models)
    ys = jax.tree.map(lambda *x: jnp.stack(x), *states)
    batched = jax.vmap(woodbury_solve)(stacked, ys, cs, bs)
    for i in range(2):
        one = flat(woodbury_solve(models[i], states[i], cs[i], (bs[0][i], bs[1][i])))
        matrix = np.eye(2 * m) - float(cs[i]) * dense(*models[i].jacobian_parts(*states[i]))
        bound = 2 * (2 * m + capacitance_size(models[i].orders, m)) * U * np.linalg.cond(matrix)
        got = flat((batched[0][i], batched[1][i]))
        assert np.linalg.norm(got - one) <= bound * np.linalg.norm(one)


@pytest.mark.slow
def test_gradient_through_factor_and_solve_matches_finite_differences():
    """d/dh of w . x(theta + h delta) for a random direction over every model field and the
    state. Central differences at h: truncation h^2 L'''/6, estimated from the change between
    h and 2h (which is 3 times it), doubled to cover the estimate's own O(h^4) error; rounding:
    each value is good to (2m + N') u cond(M) |w| |x|, which differencing divides by h."""
    mf = model("relu-second")
    m = 17
    y = state(m, seed=3, far=False)
    c = 3.0
    rng = np.random.default_rng(4)
    b = (jnp.asarray(rng.normal(size=m)), jnp.asarray(rng.normal(size=m)))
    weight = jnp.asarray(rng.normal(size=2 * m))

    def loss(params):
        mf_, y_ = params
        return jnp.dot(weight, jnp.concatenate(woodbury_solve(mf_, y_, c, b)))

    params = (mf, y)
    direction = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=jnp.shape(x))), params)
    grad = jax.grad(loss)(params)
    exact = sum(jax.tree.leaves(jax.tree.map(jnp.vdot, grad, direction)))

    def along(h):
        return float(loss(jax.tree.map(lambda p, d: p + h * d, params, direction)))

    def central(h):
        return (along(h) - along(-h)) / (2 * h)

    h = 1e-5
    matrix = np.eye(2 * m) - c * dense(*mf.jacobian_parts(*y))
    x = flat(woodbury_solve(mf, y, c, b))
    value_error = (2 * m + capacitance_size(mf.orders, m)) * U * np.linalg.cond(matrix)
    value_error *= np.linalg.norm(weight) * np.linalg.norm(x)
    tolerance = 2 * abs(central(2 * h) - central(h)) / 3 + value_error / h
    assert abs(float(exact) - central(h)) <= tolerance
    assert tolerance < 1e-6 * abs(float(exact))  # tight enough to mean something


@pytest.mark.slow
def test_auto_picks_by_size_and_model():
    """Unrolled dense up to 8 unknowns, Woodbury for a MeanField whose capacitance matrix is
    smaller than the system, dense LU otherwise; and Auto's solves are the chosen solver's."""
    auto = AutoStepMatrix()
    tanh = model("tanh-first")  # 17 orders: capacitance 21
    corrected = fsjax.NetworkMeanField(tanh, "tanh", inv_width=0.01)
    cases = [
        (tanh, 4, DenseStepMatrix, UnrolledLU),  # 8 unknowns: unrolled elimination
        (tanh, 10, DenseStepMatrix, tuple),  # 20 unknowns < 21: LU
        (tanh, 11, WoodburyStepMatrix, WoodburyFactors),
        (corrected, 11, DenseStepMatrix, tuple),  # jacobian_parts is None: no structure
    ]
    for mf, m, kind, state_type in cases:
        y = state(m, seed=m)
        assert type(auto.choose(y, mf)) is kind
        factors = auto.factor(vector_field, 0.0, y, mf, 2.0)
        assert isinstance(factors, state_type)
        chosen = kind().factor(vector_field, 0.0, y, mf, 2.0)
        b = (jnp.ones(m), jnp.linspace(-1.0, 1.0, m))
        got, want = flat(auto.solve(factors, b)), flat(kind().solve(chosen, b))
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_two_identical_groups_reproduce_the_two_particle_flow():
    """m = 64 particles in two identical groups (`benchmarks.problems.relu_groups`: ReLU, slow
    first layer, eps = 1e-3, t to 1e5), by Rodas5P with the Woodbury step matrix, against the
    same flow as 2 particles (dense step matrix). The particle mean and the step controller's
    RMS error norm are the same for m/2 copies of two particles as for the two, so both solves
    take the same steps (asserted) and differ by rounding only (the order of the mean's sums,
    Woodbury against dense): a few u times the step matrix's condition per step, against the
    local error of up to rtol = 1e-8 that the controller lets through per step. Carried by the
    same flow, the difference therefore stays far below the 2-particle solve's own error
    against the flow (measured against rtol 1e-12), which is the bound. m = 4,096 against the
    issue's 1e-6 is the `particles` benchmark's `relu two groups` row."""

    def run(m, rtol):
        p = relu_groups(m)
        model = fsjax.MeanField(p.target, p.mu, 0.0, p.rate_a, p.rate_w)
        solver = fsjax.solvers.make_solver("rodas5p", rtol, 1e-2 * rtol)
        if m > 2:
            chosen = solver.step_matrix.choose((jnp.asarray(p.a0), jnp.asarray(p.s0)), model)
            assert isinstance(chosen, WoodburyStepMatrix)
        # Tolerances as arrays: both m = 2 solves share one compilation.
        rtol = jnp.asarray(rtol)
        traj = fsjax.solve(model, p.a0, p.s0, p.ts, solver=solver, rtol=rtol, atol=1e-2 * rtol)
        assert int(traj.status) == 0
        return traj

    many, two, exact = run(64, 1e-8), run(2, 1e-8), run(2, 1e-12)
    assert int(many.num_steps) == int(two.num_steps)
    deviation = error(many.a, many.s, (np.repeat(two.a, 32, 1), np.repeat(two.s, 32, 1)))
    assert deviation <= error(two.a, two.s, (exact.a, exact.s))
