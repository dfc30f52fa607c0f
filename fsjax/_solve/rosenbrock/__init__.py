"""Linearly implicit Rosenbrock-Wanner solvers: one Jacobian and one factorisation per step."""

from .base import (
    AbstractRosenbrock as AbstractRosenbrock,
    RosenbrockInterpolation as RosenbrockInterpolation,
    RosenbrockTableau as RosenbrockTableau,
)
from .rodas4 import Rodas4 as Rodas4
from .rodas5p import Rodas5P as Rodas5P
