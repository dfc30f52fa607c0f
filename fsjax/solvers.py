"""The integrators and the linear algebra of their steps, as modules to pass to `fsjax.solve`
(`solver=`) or to diffrax directly.

- Rosenbrock-Wanner methods with a stiffly accurate dense output: `Rodas5P` (the default),
  `Rodas4`, on the base `AbstractRosenbrock` (a tableau in each solver's file).
- `make_solver(method, rtol, atol)`: a `SOLVERS` name -> the solver fsjax runs (implicit
  Runge-Kutta methods get `StepMatrixNewton`); `SolverSettings`: a `solver:` section's
  integrator, tolerances and save grid.
- Step matrices `I - c J` for the stiff stages: `DenseStepMatrix`, `WoodburyStepMatrix` (the
  mean-field Jacobian's structure, `AbstractSystem.jacobian_parts`), `AutoStepMatrix` (picks by
  size and structure), on `AbstractStepMatrix`.
- What a solver needs from a system (`AbstractSystem`) and what a solver may offer
  (`AbstractDenseOutputSolver.accurate_dense_output`).
"""

from ._solve.base import (
    AbstractDenseOutputSolver as AbstractDenseOutputSolver,
    AbstractSystem as AbstractSystem,
)
from ._solve.newton import StepMatrixNewton as StepMatrixNewton
from ._solve.rosenbrock import (
    AbstractRosenbrock as AbstractRosenbrock,
    Rodas4 as Rodas4,
    Rodas5P as Rodas5P,
)
from ._solve.settings import (
    SOLVERS as SOLVERS,
    SolverSettings as SolverSettings,
    make_solver as make_solver,
)
from ._solve.step_matrix import (
    AbstractStepMatrix as AbstractStepMatrix,
    DenseStepMatrix as DenseStepMatrix,
)
from ._solve.structured import (
    AutoStepMatrix as AutoStepMatrix,
    WoodburyStepMatrix as WoodburyStepMatrix,
)
