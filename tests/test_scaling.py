"""Predicted late-time exponents (THEORY.md section 5) from the Hermite coefficients."""

import math

import numpy as np

from fsjax import hermite
from fsjax._analysis.scaling import predicted_exponents


def test_predicted_exponents_follow_the_sign_of_mu_p_c_p():
    mu = hermite.coefficients("tanh", 8)  # mu_2 = 0, mu_3 < 0: p = 3
    assert predicted_exponents([0, 1, 0, 0], mu) == (3, 1 / 6, -1 / 6)
    assert predicted_exponents([0, 1, 0, 0.3], mu) == (3, 1 / 4, -1 / 4)
    p, ea, es = predicted_exponents([0, 1, 0, -0.3], mu)  # mu_3 c_3 > 0: finite equilibrium
    assert p == 3 and math.isnan(ea) and math.isnan(es)
    # GELU has mu_2 != 0, so the quadratic coefficient is the primary one.
    assert predicted_exponents([0, 1, 0, 0.3], hermite.coefficients("gelu", 8))[:2] == (2, 1 / 4)
    assert predicted_exponents([0, 1], np.array([0.0, 1.0]))[0] is None
