"""The step-matrix Newton root finder of the Kvaerno stages: the same steps as optimistix's
Newton with a dense solve, agreement with Rodas5P, gradients, failure without exceptions, and
the layout of diffrax's stage arguments it relies on."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import fsjax
from fsjax import hermite
from fsjax._solve.linsolve import SmallDense
from fsjax._solve.newton import StepMatrixNewton
from fsjax._solve.rosenbrock import Rodas5P
from fsjax._solve.structured import AutoStepMatrix


def mean_field(target, activation, slow, eps):
    rate_a, rate_w = fsjax.layer_rates(slow, eps)
    return fsjax.MeanField(target, hermite.coefficients(activation, 16), 0.0, rate_a, rate_w)


def kvaerno5(rtol, atol, dense=False):
    if dense:
        finder = optx.Newton(rtol=rtol * 0.1, atol=atol * 0.1, linear_solver=SmallDense())
    else:
        finder = StepMatrixNewton(rtol=rtol * 0.1, atol=atol * 0.1)
    return diffrax.Kvaerno5(root_finder=finder)


@pytest.mark.slow
def test_two_dimensional_solve_equals_dense_newton():
    """At m = 1 both solve the same 2x2 systems by the same elimination: the steps agree and
    the states differ by rounding, far below rtol (1e-3 rtol as the bound)."""
    model = mean_field([0, 1, 0, 0.3], "tanh", "second_layer", 0.01)
    ts = fsjax.save_times(1e-2, 1e3, 30)
    rtol, atol = 1e-8, 1e-10
    new, old = (
        fsjax.solve(model, [0.5], [0.01], ts, solver=kvaerno5(rtol, atol, d), rtol=rtol, atol=atol)
        for d in (False, True)
    )
    assert int(new.status) == int(old.status) == 0
    assert int(new.num_steps) == int(old.num_steps)
    np.testing.assert_allclose(new.a, old.a, rtol=1e-3 * rtol, atol=1e-3 * atol)
    np.testing.assert_allclose(new.s, old.s, rtol=1e-3 * rtol, atol=1e-3 * atol)


@pytest.mark.slow
def test_mean_field_agrees_with_rodas5p_and_dense_newton():
    """m = 20 (Woodbury systems): against Rodas5P at rtol 1e-10 the global error of two
    solves of ~300 steps, each step within rtol, is bounded by 1e-7 (measured 1.5e-10); against
    the dense Newton path, by rounding (1e-3 rtol)."""
    model = mean_field([0.2, 0.6, 0.5, 0.3], "relu", "first_layer", 1e-3)
    m = 20
    a0, s0 = np.full(m, 0.1), np.linspace(-0.6, 0.6, m)
    ts = fsjax.save_times(1e-2, 1e3, 20)
    rtol, atol = 1e-10, 1e-12
    ref = fsjax.solve(model, a0, s0, ts, solver=Rodas5P(), rtol=rtol, atol=atol)
    new = fsjax.solve(model, a0, s0, ts, solver=kvaerno5(rtol, atol), rtol=rtol, atol=atol)
    old = fsjax.solve(model, a0, s0, ts, solver=kvaerno5(rtol, atol, True), rtol=rtol, atol=atol)
    assert int(new.status) == int(ref.status) == int(old.status) == 0
    np.testing.assert_allclose(new.a, ref.a, atol=1e-7)
    np.testing.assert_allclose(new.s, ref.s, atol=1e-7)
    assert int(new.num_steps) == int(old.num_steps)
    np.testing.assert_allclose(new.a, old.a, rtol=1e-3 * rtol, atol=1e-3 * atol)
    np.testing.assert_allclose(new.s, old.s, rtol=1e-3 * rtol, atol=1e-3 * atol)


@pytest.mark.slow
def test_gradient_matches_central_differences():
    """d a(T) / d a0 at m = 2: h = 1e-5 leaves truncation ~1e-10 and solver noise
    ~rtol / h = 1e-7, hence 1e-5 relative."""
    model = mean_field([0.2, 0.6, 0.5, 0.3], "relu", "first_layer", 0.1)
    ts = jnp.asarray(fsjax.save_times(1e-2, 50.0, 5))
    rtol, atol = 1e-12, 1e-14
    solver = kvaerno5(rtol, atol)

    def final(a):
        traj = fsjax.solve(
            model, a, jnp.array([-0.3, 0.4]), ts, solver=solver, rtol=rtol, atol=atol
        )
        return jnp.sum(traj.a[-1])

    a0 = jnp.array([0.1, 0.2])
    grad = jax.grad(final)(a0)
    h = 1e-5
    fd = [(final(a0.at[i].add(h)) - final(a0.at[i].add(-h))) / (2 * h) for i in range(a0.shape[0])]
    np.testing.assert_allclose(grad, fd, rtol=1e-5)


def test_nan_initial_state_fails_without_raising():
    model = mean_field([0, 1, 0, 0.3], "tanh", "second_layer", 0.01)
    ts = fsjax.save_times(1e-2, 1e2, 5)
    traj = fsjax.solve(
        model,
        [jnp.nan],
        [0.01],
        ts,
        solver=kvaerno5(1e-8, 1e-10),
        rtol=1e-8,
        atol=1e-10,
        max_steps=300,
    )
    assert int(traj.status) != 0


def test_general_root_find_falls_back_to_a_dense_jacobian():
    """Outside diffrax: x^3 = 2 and a 2-D system, by the dense Jacobian."""
    finder = StepMatrixNewton(rtol=1e-12, atol=1e-12)
    sol = optx.root_find(lambda x, _: x**3 - 2.0, finder, jnp.array(1.0))
    np.testing.assert_allclose(sol.value, 2.0 ** (1 / 3), rtol=1e-12)
    sol = optx.root_find(
        lambda x, _: (x[0] ** 2 + x[1] - 3.0, x[0] - x[1] ** 2 + 3.0),
        finder,
        (jnp.array(1.5), jnp.array(1.5)),
    )
    np.testing.assert_allclose([sol.value[0], sol.value[1]], [1.0, 2.0], atol=1e-12)


FACTORED = []  # what `RecordingStepMatrix.factor` was handed, at trace time


class RecordingStepMatrix(AutoStepMatrix):
    """`AutoStepMatrix`, recording the system and step matrix scalar of every factorisation."""

    def factor(self, vector_field, t, y, args, c):
        FACTORED.append((args, jnp.shape(c)))
        return super().factor(vector_field, t, y, args, c)


def test_kvaerno_stages_reach_the_step_matrix():
    """A Kvaerno5 solve hands every Newton system to the step matrix with the model as the
    system and a scalar c: this fails if diffrax changes the arguments of its implicit stages
    (`ImplicitStage`), which would otherwise leave the structured path unused. The recording
    step matrix factorises as `AutoStepMatrix` does, so the solve is the default one exactly."""
    model = mean_field([0, 1, 0, 0.3], "tanh", "second_layer", 0.01)
    ts = fsjax.save_times(1e-2, 10.0, 5)
    rtol, atol = 1e-8, 1e-10
    FACTORED.clear()
    finder = StepMatrixNewton(rtol=rtol * 0.1, atol=atol * 0.1, step_matrix=RecordingStepMatrix())
    solver = diffrax.Kvaerno5(root_finder=finder)
    got = fsjax.solve(model, [0.5], [0.01], ts, solver=solver, rtol=rtol, atol=atol)
    assert FACTORED and all(
        isinstance(system, fsjax.MeanField) and shape == () for system, shape in FACTORED
    )
    want = fsjax.solve(model, [0.5], [0.01], ts, solver=kvaerno5(rtol, atol), rtol=rtol, atol=atol)
    assert int(got.status) == int(want.status) == 0
    assert int(got.num_steps) == int(want.num_steps)
    for x, y in ((got.a, want.a), (got.s, want.s)):
        np.testing.assert_array_equal(x, y)


def test_a_system_in_another_argument_layout_raises():
    """A root find whose arguments hold a system but not in diffrax's stage layout (here the
    stage tuple with two entries swapped) is refused, not solved densely in silence."""
    model = mean_field([0, 1, 0, 0.3], "tanh", "second_layer", 0.01)
    y = (jnp.array([0.5]), jnp.array([0.1]))
    vf = lambda t, y, args: args.vector_field(t, y, None)  # noqa: E731
    prod = lambda f, h: jax.tree.map(lambda x: h * x, f)  # noqa: E731
    layout = (0, jnp.array(0.2), vf, prod, jnp.array(0.0), y, model, jnp.array(0.1))
    swapped = (*layout[:5], layout[6], layout[5], layout[7])

    def relation(f, args):  # any square system: only the arguments' layout matters here
        del args
        return jax.tree.map(lambda a, b: a - b, f, model.vector_field(0.0, f, None))

    finder = StepMatrixNewton(rtol=1e-10, atol=1e-12)
    optx.root_find(relation, finder, y, layout, max_steps=5, throw=False)  # the layout works
    with pytest.raises(RuntimeError, match="implicit-stage tuple"):
        optx.root_find(relation, finder, y, swapped, max_steps=5, throw=False)
