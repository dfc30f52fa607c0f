r"""The late-time scaling laws the small-alignment analysis predicts (THEORY.md section 5), to set
beside the exponents `fsjax._analysis.diagnostics` fits to a solution.

With a slow second layer and the leading nonlinear order $p$ (the first $j \ge 2$ with
$\mu_j \ne 0$), unlearning is complete with

- $a \sim t^{1/(2p)}$, $\kappa \sim t^{-1/(2p)}$ when $c_p = 0$;
- $a \sim t^{1/(p+1)}$, $\kappa \sim t^{-1/(p+1)}$ when $\mu_p c_p < 0$;

and there is no power law when $\mu_p c_p > 0$ (a finite equilibrium). These are predictions,
not inputs: the gallery's scaling figure draws them beside the fitted slopes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

ZERO = 1e-12  # Hermite coefficients below this count as zero (closed forms give exact zeros)


def predicted_exponents(target: ArrayLike, mu: ArrayLike) -> tuple[int | None, float, float]:
    """(p, exponent of a, exponent of the alignment) predicted for a slow second layer; p is
    None when the activation has no nonlinear coefficient, the exponents NaN where no power
    law is predicted."""
    mu = np.asarray(mu, dtype=float)
    c = np.pad(np.asarray(target, dtype=float), (0, max(0, mu.size - len(target))))
    nonlinear = [j for j in range(2, mu.size) if abs(mu[j]) > ZERO]
    if not nonlinear:
        return None, np.nan, np.nan
    p = nonlinear[0]
    if abs(c[p]) <= ZERO:
        return p, 1 / (2 * p), -1 / (2 * p)
    if mu[p] * c[p] < 0:
        return p, 1 / (p + 1), -1 / (p + 1)
    return p, np.nan, np.nan
