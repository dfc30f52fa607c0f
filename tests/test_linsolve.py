"""The unrolled small dense solver against numpy, including a zero leading pivot."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

from fsjax._solve.linsolve import SmallDense


@pytest.mark.parametrize("n", [1, 2, 5, 8, 12])
def test_small_dense_matches_numpy(n):
    rng = np.random.default_rng(n)
    matrix = rng.normal(size=(n, n))
    if n > 1:
        matrix[0, 0] = 0.0  # forces a row exchange
    rhs = rng.normal(size=n)
    op = lx.MatrixLinearOperator(jnp.asarray(matrix))
    x = lx.linear_solve(op, jnp.asarray(rhs), SmallDense()).value
    # Condition numbers of these draws are below 1e3, so 1e-10 is ample for float64.
    np.testing.assert_allclose(x, np.linalg.solve(matrix, rhs), rtol=1e-10, atol=1e-12)


def test_small_dense_gradient_and_vmap():
    """Reverse-mode through the solve uses the transpose: compare with jnp.linalg.solve."""
    matrix = jnp.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.5, 2.0]])

    def via(solver_fn):
        return jax.grad(lambda b: jnp.sum(solver_fn(b) ** 2))(jnp.array([1.0, -2.0, 0.5]))

    ours = via(lambda b: lx.linear_solve(lx.MatrixLinearOperator(matrix), b, SmallDense()).value)
    np.testing.assert_allclose(ours, via(lambda b: jnp.linalg.solve(matrix, b)), rtol=1e-12)
    batched = jax.vmap(
        lambda b: lx.linear_solve(lx.MatrixLinearOperator(matrix), b, SmallDense()).value
    )(jnp.eye(3))
    np.testing.assert_allclose(batched @ matrix.T, np.eye(3), atol=1e-12)
