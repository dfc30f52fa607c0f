"""Rodas4: Hairer & Wanner, Solving ODEs II (2nd ed., 1996), IV.7, Table 7.2 (code RODAS).

Six stages, order 4, stiffly accurate with an embedded order-3 solution, L-stable; its
3rd-order continuous extension has two rows of `H`. Coefficients as in the RODAS code and
OrdinaryDiffEq.jl's `Rodas4`, in the W-transformed form of `fsjax._solve.rosenbrock.base`.
"""

from __future__ import annotations

from typing import ClassVar

from .base import AbstractRosenbrock, RosenbrockTableau

_A_ROW_5 = (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950)

_TABLEAU = RosenbrockTableau.stiffly_accurate(
    a_lower=(
        (1.544,),
        (0.9466785280815826, 0.2557011698983284),
        (3.314825187068521, 2.896124015972201, 0.9986419139977817),
        _A_ROW_5,
        (*_A_ROW_5, 1.0),
    ),
    C_lower=(
        (-5.6688,),
        (-2.430093356833875, -0.2063599157091915),
        (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
        (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
        (
            8.083246795921522,
            -7.981132988064893,
            -31.52159432874371,
            16.31930543123136,
            -6.058818238834054,
        ),
    ),
    gamma=0.25,
    c=(0.0, 0.386, 0.21, 0.63, 1.0, 1.0),
    d=(0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0),
    H=(
        (
            10.12623508344586,
            -7.487995877610167,
            -34.80091861555747,
            -7.992771707568823,
            1.025137723295662,
            0.0,
        ),
        (
            -0.6762803392801253,
            6.087714651680015,
            16.43084320892478,
            24.76722511418386,
            -6.594389125716872,
            0.0,
        ),
    ),
)


class Rodas4(AbstractRosenbrock):
    """Rodas4 (Hairer & Wanner): 6-stage, order-4 stiffly accurate ROW method with an
    order-3 embedded error estimate and a 3rd-order dense output."""

    tableau: ClassVar[RosenbrockTableau] = _TABLEAU

    def order(self, terms):
        del terms
        return 4
