"""Hermite algebra against closed forms and independent adaptive quadrature (scipy.quad)."""

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import eval_hermitenorm, ndtr

from fsjax import hermite


def quad_coefficient(fn, k):
    """E[f(g) h_k(g)] by adaptive quadrature, split at 0 where ReLU has its kink."""

    def integrand(z):
        return fn(z) * eval_hermitenorm(k, z) * math.exp(-z * z / 2)

    total = sum(
        quad(integrand, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=500)[0]
        for lo, hi in [(-40, 0), (0, 40)]
    )
    return total / math.sqrt(2 * math.pi * math.factorial(k))


FUNCTIONS = {
    "relu": lambda z: max(z, 0.0),
    "tanh": math.tanh,
    "erf": lambda z: math.erf(z / math.sqrt(2)),
    "gelu": lambda z: z * ndtr(z),
    "linear": lambda z: z,
}


# quad warns about round-off near its 1e-14 target on the odd-order ReLU integrals, which are 0.
@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_coefficients_match_quadrature(name):
    mu = hermite.coefficients(name, 12)
    ref = np.array([quad_coefficient(FUNCTIONS[name], k) for k in range(13)])
    # quad reaches ~1e-12 absolute on these smooth-times-Gaussian integrands.
    np.testing.assert_allclose(mu, ref, rtol=0, atol=1e-10)


def test_relu_closed_form_values():
    mu = hermite.coefficients("relu", 6)
    expected = [
        1 / math.sqrt(2 * math.pi),
        0.5,
        1 / (2 * math.sqrt(math.pi)),
        0.0,
        -1 / math.sqrt(2 * math.pi * 24),
        0.0,
        3 / math.sqrt(2 * math.pi * 720),
    ]
    np.testing.assert_allclose(mu, expected, rtol=1e-14, atol=1e-16)


def test_erf_first_coefficient():
    assert hermite.coefficients("erf", 1)[1] == pytest.approx(1 / math.sqrt(math.pi), rel=1e-14)


def test_hermite_functions_orthonormal():
    z, w = hermite.gauss_hermite(40)  # exact for degree <= 79
    h = np.asarray(hermite.hermite_functions(20, z))
    np.testing.assert_allclose((w[:, None] * h).T @ h, np.eye(21), atol=1e-12)


def test_hermite_functions_match_scipy():
    z = np.linspace(-3, 3, 7)
    h = np.asarray(hermite.hermite_functions(8, z))
    for k in range(9):
        np.testing.assert_allclose(
            h[:, k], eval_hermitenorm(k, z) / math.sqrt(math.factorial(k)), rtol=1e-12, atol=1e-12
        )


def test_polynomial_is_exact():
    # z^3 = He_3 + 3 He_1 = sqrt(6) h_3 + 3 h_1.
    mu = hermite.coefficients({"polynomial": [0, 0, 0, 1]}, 5)
    np.testing.assert_allclose(mu, [0, 3, 0, math.sqrt(6), 0, 0], atol=1e-13)


def test_series_round_trip_and_call():
    coeffs = [0.1, 0.5, -0.2, 0.3]
    act = hermite.activation({"hermite": coeffs})
    np.testing.assert_allclose(act.hermite(5), [*coeffs, 0, 0])
    np.testing.assert_allclose(
        hermite.project(lambda z: np.asarray(act(z)), 5), [*coeffs, 0, 0], atol=1e-13
    )


def test_parseval_for_smooth_activation():
    # sum_k mu_k^2 = E[tanh(g)^2]. tanh's coefficients decay slowly (|mu_99| ~ 2e-7), but the
    # squared tail beyond order 100 is below 1e-12 (the partial sums at 80 and 100 differ by 3e-12).
    mu = hermite.coefficients("tanh", 100)
    second_moment = quad(lambda z: math.tanh(z) ** 2 * math.exp(-z * z / 2), -40, 40, epsabs=1e-14)[
        0
    ] / math.sqrt(2 * math.pi)
    assert np.sum(mu**2) == pytest.approx(second_moment, abs=1e-11)


@pytest.mark.parametrize("rho", [-0.7, 0.0, 0.35, 0.9])
def test_correlation_identity(rho):
    """E[tanh(u) erf(v/sqrt2)] for unit-variance u, v with correlation rho, by a tensor Gauss
    rule, against the Mehler series sum_k mu_k phi_k rho^k (order 40: terms below 1e-12)."""
    z, w = hermite.gauss_hermite(120)
    u = z[:, None]
    v = rho * z[:, None] + math.sqrt(1 - rho**2) * z[None, :]
    exact = np.sum(w[:, None] * w[None, :] * np.tanh(u) * np.vectorize(math.erf)(v / math.sqrt(2)))
    series = hermite.correlation(
        hermite.coefficients("tanh", 40), hermite.coefficients("erf", 40), rho
    )
    assert float(series) == pytest.approx(exact, abs=1e-10)


def test_activation_call_and_derivative():
    relu = hermite.activation("relu")
    np.testing.assert_allclose(relu(np.array([-1.0, 2.0])), [0.0, 2.0])
    np.testing.assert_allclose(
        hermite.activation("tanh").derivative(np.array([0.0, 1.0])),
        [1.0, 1 - math.tanh(1.0) ** 2],
        rtol=1e-12,
    )


def test_unknown_activation_names_allowed_values():
    with pytest.raises(ValueError, match="allowed: relu, tanh, erf, gelu, linear"):
        hermite.coefficients("softsign", 4)


def test_kinked_function_fails_convergence_check():
    with pytest.raises(ValueError, match="did not converge"):
        hermite.project(np.abs, 8)
