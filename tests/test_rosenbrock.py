"""The Rosenbrock-Wanner solvers: order conditions of the tableaus, observed convergence,
agreement with scipy's Radau and an explicit solver on the reduced system, vmap and grad,
failure without exceptions."""

import functools
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_reduced import CASES, mean_field, scipy_reference

import fsjax
from fsjax import hermite
from fsjax._solve.base import AbstractDenseOutputSolver
from fsjax._solve.rosenbrock import Rodas4, Rodas5P
from fsjax._solve.solve import integrate, interpolates_save_times

# (solver, order, embedded order, dense-output order)
METHODS = [(Rodas5P, 5, 4, 4), (Rodas4, 4, 3, 3)]
IDS = ["rodas5p", "rodas4"]

# The published coefficients have 16 significant digits: relative rounding up to 5e-16.
DIGITS = 5e-16


@functools.cache
def rooted_trees(n):
    """Every rooted tree with n vertices, once; a tree is the sorted tuple of its subtrees.
    Each tree with n > 1 vertices is a subtree grafted onto the root of a smaller one."""
    if n == 1:
        return ((),)
    found = set()
    for first in range(1, n):
        for child in rooted_trees(first):
            for rest in rooted_trees(n - first):
                found.add(tuple(sorted((child, *rest))))
    return tuple(sorted(found))


def size(tree):
    return 1 + sum(size(t) for t in tree)


def density(tree):
    """gamma(t) = |t| * prod over subtrees: the exact solution's weight is 1/gamma(t)."""
    return size(tree) * np.prod([density(t) for t in tree])


def weight(tree, alpha, beta):
    """The ROW elementary weight Phi_j(t) (Hairer & Wanner II, IV.7): a root with a single
    subtree comes from f and from J sum gamma_jk k_k, so it weighs beta = alpha + Gamma (with
    the diagonal); a root with several subtrees only from f, weighing alpha."""
    if len(tree) == 1:
        return beta @ weight(tree[0], alpha, beta)
    out = np.ones(alpha.shape[0])
    for t in tree:
        out = out * (alpha @ weight(t, alpha, beta))
    return out


def classical(tab):
    """(alpha, Gamma, cond(Gamma^-1)) from the W-transformed tableau: Gamma^-1 = diag(1/gamma)
    - C and alpha = a Gamma; weights b transform as b Gamma."""
    inv_gamma = np.eye(tab.b.shape[0]) / tab.gamma - tab.C
    big_gamma = np.linalg.inv(inv_gamma)
    return tab.a @ big_gamma, big_gamma, np.linalg.cond(inv_gamma)


def defects(tab, weights, order):
    """For every tree up to `order`: (|sum_j w_j Phi_j(t) - 1/gamma(t)|, bound). The bound:
    each coefficient carries the relative rounding DIGITS of its decimals, and recovering Gamma
    by an inverse amplifies that by at most cond(Gamma^-1); each product of at most |t| + 1
    factors adds |t| + 1 more. First order in these, the defect is at most
    (cond + |t| + 2) * DIGITS * sum_j |w_j| Phi_j(|alpha|, |beta|)."""
    alpha, big_gamma, cond = classical(tab)
    beta = alpha + big_gamma
    w = weights @ big_gamma
    out = []
    for n in range(1, order + 1):
        for tree in rooted_trees(n):
            value = w @ weight(tree, alpha, beta) - 1 / density(tree)
            scale = np.abs(w) @ weight(tree, np.abs(alpha), np.abs(beta))
            out.append((abs(value), (cond + n + 2) * DIGITS * scale))
    return out


def test_tree_count():
    """1, 1, 2, 4, 9 trees of orders 1..5: the 17 conditions of order 5."""
    assert [len(rooted_trees(n)) for n in range(1, 6)] == [1, 1, 2, 4, 9]


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_order_conditions(method):
    """The solution satisfies every condition up to its order and the embedded one up to its
    own; the next order fails by far more than rounding, so the check can tell."""
    solver, order, embedded, _ = method
    tab = solver.tableau
    for weights, p in ((tab.b, order), (tab.b - tab.b_error, embedded)):
        for value, bound in defects(tab, weights, p):
            assert value <= bound
        assert max(v for v, _ in defects(tab, weights, p + 1)[-len(rooted_trees(p + 1)) :]) > 1e-5


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_nodes_and_time_coefficients(method):
    """c_i = sum_j alpha_ij and d_i = sum_j gamma_ij (with the diagonal), to the rounding of
    the coefficients amplified by cond(Gamma^-1), as in `defects`."""
    tab = method[0].tableau
    alpha, big_gamma, cond = classical(tab)
    tol = (cond + 2) * DIGITS
    assert np.all(np.abs(alpha.sum(axis=1) - tab.c) <= tol * np.abs(alpha).sum(axis=1))
    assert np.all(np.abs(big_gamma.sum(axis=1) - tab.d) <= tol * np.abs(big_gamma).sum(axis=1))


def stability(tab, weights, z):
    """R(z) = 1 + z w^T (I - z B)^-1 1 with B = alpha + Gamma, the classical weights w."""
    alpha, big_gamma, _ = classical(tab)
    s = tab.b.shape[0]
    return 1 + z * (weights @ big_gamma) @ np.linalg.solve(
        np.eye(s) - z * (alpha + big_gamma), np.ones(s)
    )


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_stiff_accuracy_and_l_stability(method):
    """Stiffly accurate: the last stage sits at t0 + h (c_s = 1) and y1 is its argument plus
    u_s, so the error estimate is u_s; the embedded solution is the last stage's argument, the
    previous stage's argument plus u_(s-1). Then R(inf) = 0 for both (here at z = -1e12, where
    R = O(1/|z|)), and |R| <= 1 on the imaginary axis (A-stability), to rounding."""
    tab = method[0].tableau
    s = tab.b.shape[0]
    last = np.eye(s)[-1]
    assert tab.c[-1] == 1.0
    np.testing.assert_array_equal(tab.b, tab.a[-1] + last)
    np.testing.assert_array_equal(tab.b_error, last)
    np.testing.assert_array_equal(tab.a[-1], tab.a[-2] + np.eye(s)[-2])
    for weights in (tab.b, tab.b - tab.b_error):
        assert abs(stability(tab, weights, -1e12)) < 1e-9
    for y in np.geomspace(1e-3, 1e6, 200):
        assert abs(stability(tab, tab.b, 1j * y)) <= 1 + 1e-12


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_dense_output_order(method):
    """The continuous extension y0 + theta sum_j b_j u_j + theta (1 - theta) sum_r theta^r
    sum_j H_rj u_j has weights b(theta) that satisfy sum_j b_j(theta) Phi_j(t) =
    theta^|t| / gamma(t) up to its order, at every theta; bound as in `defects`."""
    solver, _, _, dense = method
    tab = solver.tableau
    alpha, big_gamma, cond = classical(tab)
    beta = alpha + big_gamma
    for theta in np.linspace(0.0, 1.0, 11):
        inner = sum(theta**r * row for r, row in enumerate(tab.H))
        w = (theta * tab.b + theta * (1 - theta) * inner) @ big_gamma
        for n in range(1, dense + 1):
            for tree in rooted_trees(n):
                value = w @ weight(tree, alpha, beta) - theta**n / density(tree)
                scale = np.abs(w) @ weight(tree, np.abs(alpha), np.abs(beta))
                assert abs(value) <= (cond + n + 2) * DIGITS * scale


def prothero_robinson(t, y, args):
    """y' = -(y - sin t) + cos t: non-autonomous (exercises the f_t terms), y = sin t."""
    return -(y - jnp.sin(t)) + jnp.cos(t)


def logistic(t, y, args):
    """y' = y (1 - y): nonlinear, y = 1 / (1 + 9 e^-t) from y0 = 0.1."""
    return y * (1 - y)


PROBLEMS = [
    (prothero_robinson, 0.0, np.sin),
    (logistic, 0.1, lambda t: 1 / (1 + 9 * np.exp(-t))),
]


@eqx.filter_jit
def fixed_step_solve(solver, vf, y0, t1, n):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf),
        solver,
        0.0,
        t1,
        t1 / n,
        jnp.array([y0]),
        stepsize_controller=diffrax.ConstantStepSize(),
        saveat=diffrax.SaveAt(t1=True),
        max_steps=256,
    )
    return sol.ys[-1, 0]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS, ids=IDS)
@pytest.mark.parametrize("problem", PROBLEMS, ids=["prothero-robinson", "logistic"])
def test_observed_order(method, problem):
    """Global error at t = 4 with n = 64 and 128 fixed steps; the slope log2(e_64 / e_128) is
    the order. The next term of the error expansion moves the slope by O(h): at most 0.05 at
    this pair (0.11 at n = 32/64, halving per refinement as an O(h) term does). Rounding, at
    most n eps ~ 1.4e-14 against errors >= 7e-13, moves it by at most log2(1.02 / 0.98) = 0.06.
    So |slope - p| <= 0.15, which still rejects orders p - 1 and p + 1 by a factor of seven."""
    solver, order, _, _ = method
    vf, y0, exact = problem
    errors = [
        abs(float(fixed_step_solve(solver(), vf, y0, 4.0, n)) - exact(4.0)) for n in (64, 128)
    ]
    assert abs(np.log2(errors[0] / errors[1]) - order) <= 0.15


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, case",
    [(Rodas5P, CASES[0]), (Rodas5P, CASES[2]), (Rodas4, CASES[0])],
    ids=["rodas5p-eps0.05", "rodas5p-eps1e-4", "rodas4-eps0.05"],
)
def test_reduced_system_matches_scipy_radau(method, case):
    """fsjax.solve with the method (by its `SOLVERS` name) at rtol 1e-10 against Radau at rtol
    1e-12. Each step keeps its local error below rtol |y| + atol; the bound is the sum of those
    over the steps taken, which allows no growth of errors along the flow, doubled for the
    reference's own error (a hundredth of ours per step). Measured: 5e-12 to 2e-11, 4e4 to 3e5
    times below the bound, which leaves room for the growth of errors in the fast phase."""
    target, act, slow, eps, a0, s0, t_final = case
    model = mean_field(target, act, 16, slow, eps)
    ts = fsjax.save_times(1e-2, t_final, 60)
    rtol, atol = 1e-10, 1e-12
    name = {Rodas5P: "rodas5p", Rodas4: "rodas4"}[method]
    solver = fsjax.solvers.make_solver(name, rtol, atol)
    assert isinstance(solver, method)
    traj = fsjax.solve(model, [a0], [s0], ts, solver=solver, rtol=rtol, atol=atol)
    assert int(traj.status) == 0
    ref_a, ref_s = scipy_reference(model, a0, s0, ts)
    bound = 2 * int(traj.num_steps) * (rtol * max(np.max(np.abs(ref_a)), 1.0) + atol)
    np.testing.assert_allclose(traj.a[:, 0], ref_a, rtol=0, atol=bound)
    np.testing.assert_allclose(traj.s[:, 0], ref_s, rtol=0, atol=bound)


@pytest.mark.slow
def test_vmap_over_points_matches_single_solves():
    """A vmapped solve runs each point's own step sequence with the same arithmetic; only XLA's
    fusion may reorder operations (the substitutions and the stages' sums of up to 8 terms,
    about 8 ulps a step). Over ~320 steps that is 3e-13, which the flow amplifies (measured
    1.1e-12 at a0 = 0.2, a factor ~4): 1e-11 leaves room for other CPUs' fusion."""
    model = mean_field([0, 1, 0, 0.3], eps=0.05)
    ts = jnp.asarray(fsjax.save_times(1e-2, 800.0, 30))
    opts = dict(solver=Rodas5P(), rtol=1e-8, atol=1e-10)
    a0 = jnp.array([0.2, 0.5, 1.5])
    batched = jax.vmap(lambda a: fsjax.solve(model, a[None], jnp.array([0.01]), ts, **opts))(a0)
    assert np.all(np.asarray(batched.status) == 0)
    for i, a in enumerate(np.asarray(a0)):
        single = fsjax.solve(model, [a], [0.01], ts, **opts)
        assert int(batched.num_steps[i]) == int(single.num_steps)
        np.testing.assert_allclose(batched.a[i], single.a, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(batched.s[i], single.s, rtol=1e-11, atol=1e-14)


@pytest.mark.slow
def test_gradient_matches_central_differences():
    """d(a + s)(t = 200)/d(a0, c3) by reverse mode through fsjax.solve against central
    differences with delta = 1e-4 at rtol 1e-10. The difference carries: truncation
    delta^2 |f'''| / 6 ~ 1e-9 (f''' ~ 0.5 from the delta = 1e-3 differences), solver noise
    2 E / (2 delta) with E ~ 1e-11 the global error of each solve (measured against Radau) ~
    1e-7, and the gap between the derivative of the discrete solution with its steps frozen
    and that of the flow, O(E). Bound 1e-6; measured 1e-9."""
    mu = hermite.coefficients("tanh", 16)
    rate_a, rate_w = fsjax.layer_rates("second_layer", 0.05)
    ts = jnp.asarray(fsjax.save_times(1e-2, 200.0, 20))

    def final(p):
        a0, c3 = p
        target = jnp.array([0.0, 1.0, 0.0, 0.0]).at[3].set(c3)
        model = fsjax.MeanField(target, mu, 0.0, rate_a, rate_w)
        traj = fsjax.solve(
            model, a0[None], jnp.array([0.01]), ts, solver=Rodas5P(), rtol=1e-10, atol=1e-12
        )
        return traj.a[-1, 0] + traj.s[-1, 0]

    p = jnp.array([0.5, 0.3])
    grad = np.asarray(jax.grad(final)(p))
    delta = 1e-4
    fd = [(final(p + delta * e) - final(p - delta * e)) / (2 * delta) for e in jnp.eye(2)]
    np.testing.assert_allclose(grad, np.asarray(fd), rtol=0, atol=1e-6)


def test_non_finite_state_gives_a_failure_status():
    """A NaN initial state makes every step's error estimate NaN, so each is rejected and the
    solve stops at max_steps with status 1 and NaN values; nothing raises."""
    model = mean_field([0, 1, 0, 0.3], eps=0.05)
    ts = fsjax.save_times(1e-2, 100.0, 10)
    traj = fsjax.solve(
        model, [jnp.nan], [0.01], ts, solver=Rodas5P(), rtol=1e-8, atol=1e-10, max_steps=300
    )
    assert int(traj.status) != 0
    assert np.all(np.isnan(np.asarray(traj.a)))


def test_finite_time_blow_up_gives_a_failure_result():
    """y' = y^2 from y = 1 blows up at t = 1: the steps shrink towards it and the solve ends
    without reaching t = 2 and with a non-success result, without raising."""
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: y**2),
        Rodas5P(),
        0.0,
        2.0,
        None,
        jnp.array([1.0]),
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
        max_steps=300,
        throw=False,
    )
    assert sol.result != diffrax.RESULTS.successful
    assert float(sol.ts[-1]) < 1.0


@pytest.mark.slow
def test_onset_event_on_the_dense_output_matches_an_explicit_solver():
    """`onset_time` locates a diffrax Event by root finding on the solver's dense output. With
    Rodas5P at rtol 1e-10 against Tsit5 at rtol 1e-11: an error dy in the interpolated state
    moves the root by about t_onset dy / |y| (the rate varies on the time scale t_onset), and
    dy is at most the summed local tolerances, a few hundred steps x 1e-10 with |y| ~ 0.5: a
    relative 1e-7, so 1e-6 bounds it. Measured: 2e-11 relative."""
    rate_a, rate_w = fsjax.layer_rates("second_layer", 0.05)
    model = fsjax.MeanField([0, 1, 0, 0.3], hermite.coefficients("tanh", 5), 0.0, rate_a, rate_w)

    def onset(method, rtol):
        solver = fsjax.solvers.make_solver(method, rtol, rtol * 1e-2)
        return float(
            fsjax.onset_time(
                model, [0.5], [0.01], t_final=400.0, solver=solver, rtol=rtol, atol=rtol * 1e-2
            )
        )

    reference = onset("tsit5", 1e-11)
    assert np.isfinite(reference)
    assert onset("rodas5p", 1e-10) == pytest.approx(reference, rel=1e-6)


@pytest.mark.slow
def test_solvers_with_an_accurate_dense_output_interpolate_the_save_times():
    """`solve` fills the save times from the dense output of a solver whose
    `accurate_dense_output` is true (the Rosenbrock methods; any solver may opt in through
    `AbstractDenseOutputSolver`, here Tsit5 on a non-stiff case) and steps onto them
    otherwise: its step count is `integrate`'s without or with `step_ts`."""
    interpolating = {
        n
        for n in fsjax.solvers.SOLVERS
        if interpolates_save_times(fsjax.solvers.make_solver(n, 1, 1))
    }
    assert interpolating == {"rodas5p", "rodas4"}

    class InterpolatingTsit5(diffrax.Tsit5, AbstractDenseOutputSolver):
        accurate_dense_output: ClassVar[bool] = True

    model = mean_field([0, 1, 0, 0.3], eps=0.5)
    ts = jnp.asarray(fsjax.save_times(1e-2, 50.0, 30))
    steps = []
    for solver, step_ts in ((diffrax.Tsit5(), ts), (InterpolatingTsit5(), None)):
        opts = dict(solver=solver, rtol=1e-8, atol=1e-10, max_steps=100_000)
        saveat = diffrax.SaveAt(ts=ts)
        sol = integrate(model, [0.5], [0.01], t1=ts[-1], saveat=saveat, step_ts=step_ts, **opts)
        traj = fsjax.solve(model, [0.5], [0.01], ts, **opts)
        steps.append(int(traj.num_steps))
        assert steps[-1] == int(sol.stats["num_steps"])
    assert steps[0] != steps[1]  # the save times do change the steps here
