"""The lane loop (`fsjax._solve.lanes`): each point of a queue, integrated on fewer lanes than
points, equals `fsjax.solve` of that point; points that fail keep their status and NaN without
holding up the others; a lane count that cannot fit is refused."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import pytest

import fsjax
from fsjax import _sizes
from fsjax._solve.lanes import LaneSolver
from fsjax._sweep.engine import sweep_problem
from fsjax._sweep.plan import sweep_plan

# tsit5 steps onto the save times (no accurate dense output), so this also runs the clipped
# controller; max_steps = 200 ends the dearer points (137 to 341 steps with rodas5p at these
# settings) with status 1 while the cheaper ones finish.
CONFIG = {
    "kind": "sweep",
    "model": {"activation": "tanh", "hermite_order": 8, "target": [0, 1, 0, 0.3]},
    "dynamics": {"slow": "second_layer", "epsilon": 0.05},
    "solver": {
        "method": "tsit5",
        "t_first": 1e-2,
        "t_final": 1e3,
        "n_save": 40,
        "rtol": 1e-8,
        "atol": 1e-10,
        "max_steps": 200,
    },
    "sweep": {"axes": {"target[3]": [-0.3, 0.3], "init.a": [0.2, 0.5, 2.0]}, "chunk": 6},
}


def test_queue_on_two_lanes_equals_single_solves():
    cfg = fsjax.load_config(CONFIG)
    problem = sweep_problem(cfg)
    rows = sweep_plan(cfg).values
    # 6 points in slots 0..6 (slot 6 padding, never run) on 2 lanes, one reload at a time.
    solver = LaneSolver(problem.settings, problem.setup)
    queue = np.vstack([rows, rows[:1]])
    traj, iterations = eqx.filter_jit(lambda s, r: s(r, 6, 2, 1))(solver, queue)
    ref = jax.jit(jax.vmap(lambda v: problem.settings.solve(*problem.setup(v))))(rows)
    np.testing.assert_array_equal(traj.num_steps[:6], ref.num_steps)
    np.testing.assert_array_equal(traj.status[:6], ref.status)
    assert set(np.asarray(ref.status)) == {0, 1}  # both outcomes are in the queue
    assert int(traj.status[6]) == -1 and np.isnan(traj.a[6]).all()
    # The same steps: only the rounding of differently batched kernels may differ.
    for x, y in ((traj.a, ref.a), (traj.s, ref.s)):
        np.testing.assert_array_equal(np.isnan(x[:6]), np.isnan(y))
        np.testing.assert_allclose(x[:6], y, rtol=1e-12, atol=1e-14)
    # Every iteration steps both lanes; they idle only while the last point finishes.
    steps = int(ref.num_steps.sum())
    assert steps <= 2 * int(iterations) <= steps + 2 * int(ref.num_steps.max())


def test_lanes_that_cannot_fit_are_refused(monkeypatch):
    monkeypatch.setattr(_sizes, "machine_bytes", lambda: 2**30)
    config = {
        "kind": "sweep",
        "model": {"target": [0, 1, 0, 0.3], "particles": 100},
        "solver": {"n_save": 400},
        "sweep": {"axes": {"init.a": [0.5, 1.0]}, "chunk": 1000, "lanes": 10**6},
    }
    # 100 particles at 400 saves: 1440 * 100 + 8 * 400 * 201 bytes a lane or a point.
    largest = 2**30 // (1440 * 100 + 8 * 400 * 201) - 1000
    with pytest.raises(fsjax.ConfigError, match=f"sweep.lanes = 1000000 .*fits is {largest}$"):
        fsjax.load_config(config)
    config["sweep"]["lanes"] = largest
    fsjax.load_config(config)
