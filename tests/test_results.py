"""The one table of result codes: fixed integers, one message each, what solves report and
what datasets store."""

import diffrax
import jax.numpy as jnp
import pytest

import fsjax
from fsjax._solve.rosenbrock import Rodas5P
from fsjax._solve.solve import status_code


def test_codes_are_fixed_distinct_and_described():
    """Stored results are these integers: a code never changes its meaning."""
    assert {int(r): r.name for r in fsjax.RESULTS} == {
        -2: "chunk_lost",
        -1: "not_run",
        0: "successful",
        1: "max_steps_reached",
        2: "solver_failed",
        3: "network_diverged",
    }
    assert fsjax.STATUS_MEANINGS == {int(r): r.message for r in fsjax.RESULTS}
    assert all(fsjax.STATUS_MEANINGS.values())
    assert len(set(fsjax.STATUS_MEANINGS.values())) == len(fsjax.RESULTS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("successful", fsjax.RESULTS.successful),
        ("max_steps_reached", fsjax.RESULTS.max_steps_reached),
        ("dt_min_reached", fsjax.RESULTS.solver_failed),
        ("nonlinear_divergence", fsjax.RESULTS.solver_failed),
        ("internal_error", fsjax.RESULTS.solver_failed),
    ],
)
def test_diffrax_results_map_to_a_code(name, expected):
    code = status_code(getattr(diffrax.RESULTS, name))
    assert code.dtype == jnp.int32 and int(code) == expected


def test_a_solve_out_of_steps_reports_its_code_and_message():
    """Five steps cannot reach t = 100: the trajectory says max_steps, and its dataset says
    what that code means."""
    model = fsjax.MeanField([0, 1, 0, 0.3], fsjax.hermite.coefficients("tanh", 8))
    ts = fsjax.save_times(1e-2, 1e2, 5)
    traj = fsjax.solve(
        model, [0.5], [0.01], ts, solver=Rodas5P(), rtol=1e-8, atol=1e-10, max_steps=5
    )
    assert int(traj.status) == fsjax.RESULTS.max_steps_reached
    ds = fsjax.trajectory_dataset(model, traj)
    assert int(ds["status"]) == fsjax.RESULTS.max_steps_reached
    assert ds.attrs["status_meaning"] == fsjax.RESULTS.max_steps_reached.message
