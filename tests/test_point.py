"""The one parameter point (`fsjax._model.point.Point`, built by `fsjax._point.point`): its
models against the constructions written out from the config's numbers, for a trajectory, a
compare config, a sweep row, a network-sweep row and the sensitivity parameters; its setter.

The point builds the same arrays with the same operations as the written-out constructions, so
the models are compared exactly (their velocities at a few states, and the floor's rates)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fsjax import hermite
from fsjax._kinds import load_config
from fsjax._model.axes import AxisField
from fsjax._model.corrections import NetworkMeanField, boundary_floor
from fsjax._model.mean_field import MeanField, layer_rates
from fsjax._point import build_model, parameters_from, point
from fsjax._solve.settings import SolverSettings
from fsjax._sweep.engine import sweep_problem
from fsjax._sweep.network import point_models

MODEL = {"activation": "tanh", "hermite_order": 5, "target": [0.0, 1.0, 0.0, 0.3]}
SOLVER = {"t_first": 1.0, "t_final": 100.0, "n_save": 4}
NET = {"width": 16, "dim": 32, "batch": 64, "lr": 0.05}
A, S = np.array([0.2, 0.5, 0.9]), np.array([-0.3, 0.1, 0.6])


def _mean_field(c3=0.3, noise=0.0, eps=0.05):
    """The reduced flow of `MODEL` (orders 0..5: the activation's truncation)."""
    mu = hermite.coefficients("tanh", 5)
    return MeanField([0.0, 1.0, 0.0, c3], mu, noise, *layer_rates("second_layer", eps))


def _assert_same_flow(model, expected):
    assert type(model) is type(expected)
    for got, want in zip(model.velocity(A, S), expected.velocity(A, S), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    if isinstance(expected, NetworkMeanField):
        for name in ("inv_width", "roundoff", "spread_noise"):
            np.testing.assert_array_equal(getattr(model, name), getattr(expected, name))


@pytest.mark.parametrize("kind", ["trajectory", "compare"])
def test_model_of_a_config_with_a_network(kind):
    init = {"a": {"uniform": [0.3, 0.7]}, "s": 0.05, "seed": 3}
    data = {"kind": kind, "model": {**MODEL, "init": init}, "solver": SOLVER}
    data |= {"dynamics": {"epsilon": 0.05}, "network": NET}
    if kind == "compare":
        data["network"] = {**NET, "steps": 10}
        data |= {"finite_width": True, "finite_batch": "theory"}
    config = load_config(data)
    mean_field = _mean_field()
    # The floor starts the spread at the mean of the network's 16 initial a (seed 3, stream 0).
    a0 = np.mean(np.random.default_rng([3, 0]).uniform(0.3, 0.7, 16))
    settings = SolverSettings.from_config(config.solver)
    floor = boundary_floor(
        mean_field, a0, lr=0.05, dim=32, batch=64, dtype="float32", settings=settings
    )
    options = {"inv_width": 1 / 16, "batch_model": "theory"} if kind == "compare" else {}
    expected = NetworkMeanField(mean_field, "tanh", batch_noise=0.05 * 32 / 64, **options, **floor)
    _assert_same_flow(build_model(config), expected)
    if kind == "trajectory":
        _assert_same_flow(build_model(load_config(data | {"boundary_floor": False})), mean_field)


def test_sweep_row_sets_the_axes_into_the_point():
    config = load_config(
        {
            "kind": "sweep",
            "model": {**MODEL, "particles": 2, "init": {"a": [0.4, 0.6], "s": 0.02}},
            "solver": SOLVER,
            "sweep": {
                "axes": {
                    "target[3]": [0.4],
                    "init.a[1]": [0.8],
                    "dynamics.epsilon": [0.02],
                    "model.noise": [0.1],
                }
            },
        }
    )
    problem = sweep_problem(config)
    rows = jnp.asarray([[0.4, 0.8, 0.02, 0.1], [0.2, 0.3, 0.05, 0.0]])
    for row, (c3, a1, eps, noise) in zip(rows, rows.tolist(), strict=True):
        model, a0, s0 = problem.setup(row)
        _assert_same_flow(model, _mean_field(c3, noise, eps))
        np.testing.assert_array_equal(a0, [0.4, a1])
        np.testing.assert_array_equal(s0, [0.02, 0.02])
    # vmapped over rows as the sweep runs it: the same points.
    batched = jax.vmap(lambda r: problem.setup(r)[0].mean_field.rate_a)(rows)
    np.testing.assert_array_equal(batched, rows[:, 2])


def test_network_sweep_row_carries_the_floor_at_its_values():
    config = load_config(
        {
            "kind": "sweep",
            "model": {**MODEL, "init": {"a": 0.3, "s": 0.0}},
            "dynamics": {"epsilon": 0.05},
            "solver": SOLVER,
            "network": {**NET, "steps": 10},
            "sweep": {"axes": {"network.lr": [0.1], "init.a": [0.5], "network.dim": [24]}},
        }
    )
    models = point_models(config)
    row = jnp.asarray([0.1, 0.5, 24.0])
    mean_field = _mean_field()
    settings = SolverSettings.from_config(config.solver)
    floor = boundary_floor(
        mean_field, 0.5, lr=0.1, dim=24, batch=64, dtype="float32", settings=settings
    )
    expected = NetworkMeanField(mean_field, "tanh", **floor)
    _assert_same_flow(models.reduced_model(row), expected)
    values = models.network_values(row[None])
    assert float(values["a0"][0]) == 0.5  # the networks start at the row's init.a
    np.testing.assert_array_equal(values["target"][0], [0.0, 1.0, 0.0, 0.3])
    off = point_models(config.model_copy(update={"boundary_floor": False}))
    _assert_same_flow(off.reduced_model(row), mean_field)


def test_sensitivity_parameters_are_the_points_arrays():
    config = load_config(
        {
            "kind": "sensitivity",
            "model": {**MODEL, "particles": 3, "init": {"a": 0.5, "s": [0.01, 0.02, 0.03]}},
            "dynamics": {"epsilon": 0.05},
            "solver": SOLVER,
        }
    )
    params, setup = parameters_from(config)
    np.testing.assert_array_equal(params.target, [0.0, 1.0, 0.0, 0.3, 0.0, 0.0])
    np.testing.assert_array_equal(params.mu, hermite.coefficients("tanh", 5))
    np.testing.assert_array_equal(params.init_a, [0.5])  # one value moves every particle
    np.testing.assert_array_equal(params.init_s, [0.01, 0.02, 0.03])
    assert float(params.epsilon) == 0.05
    back = params.on(setup.point)
    _assert_same_flow(back.model(), _mean_field())
    np.testing.assert_array_equal(back.initial()[0], [0.5, 0.5, 0.5])


def _leaves(p):
    return {f: getattr(p, f) for f in ("target", "mu", "noise", "epsilon", "a", "s", "lr")}


@pytest.mark.parametrize(
    "field",
    [
        AxisField("target", 3),
        AxisField("a", None),
        AxisField("a", 1),
        AxisField("s", None),
        AxisField("noise", None),
        AxisField("epsilon", None),
        AxisField("lr", None),
    ],
)
def test_setter_sets_exactly_the_named_field(field):
    config = load_config(
        {
            "kind": "trajectory",
            "model": {**MODEL, "particles": 3, "init": {"a": 0.5, "s": 0.1}},
            "solver": SOLVER,
            "network": NET,
            "boundary_floor": False,
        }
    )
    before = point(config)
    after = before.set_axis(field, 0.25)
    for name, old in _leaves(before).items():
        new = _leaves(after)[name]
        if name != field.field:
            np.testing.assert_array_equal(new, old)
            continue
        # `a` holds one value for every particle until one particle is set.
        shape = (3,) if name == "a" else old.shape
        expected = np.broadcast_to(np.asarray(old), shape).copy()
        if field.index is None:
            expected[...] = 0.25
        else:
            expected[field.index] = 0.25
        np.testing.assert_array_equal(np.broadcast_to(new, shape), expected)
    # With a network, init.a is where its second layer starts too; nothing else moves.
    expected_a = 0.25 if field.field == "a" else float(before.network_a)
    assert float(after.network_a) == expected_a
    for name in ("width", "dim", "batch"):
        assert float(getattr(after, name)) == float(getattr(before, name))


def test_setter_refuses_network_values_without_a_network_and_differentiates():
    config = load_config({"kind": "trajectory", "model": MODEL, "solver": SOLVER})
    base = point(config)
    with pytest.raises(ValueError, match="stands for no network"):
        base.set_axis(AxisField("lr", None), 0.1)
    # d rate_a / d epsilon = 1 for a slow second layer, through the setter.
    rate = lambda eps: base.set_axis(AxisField("epsilon", None), eps).mean_field().rate_a  # noqa: E731
    assert float(jax.grad(rate)(0.05)) == 1.0
