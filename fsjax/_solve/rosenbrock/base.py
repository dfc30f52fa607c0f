r"""Linearly implicit Rosenbrock-Wanner (ROW) methods as diffrax solvers.

An $s$-stage ROW method for $y' = f(t, y)$ with step $h$ linearises the implicit stages about
the step's start: with $J = \partial f/\partial y$ and $f_t = \partial f/\partial t$ at
$(t_0, y_0)$, it solves, in the transformed variables of Hairer & Wanner (Solving ODEs II,
Sec. IV.7) used by their RODAS code and by OrdinaryDiffEq.jl, for $i = 1..s$

$$\Big(\frac{I}{h\gamma} - J\Big) u_i
  = f\Big(t_0 + c_i h,\; y_0 + \sum_{j<i} a_{ij} u_j\Big) + \sum_{j<i} \frac{C_{ij}}{h} u_j
    + h\, d_i f_t ,$$

then $y_1 = y_0 + \sum_i b_i u_i$, with the local error estimate
$\sum_i e_i u_i = y_1 - \hat y_1$ ($e = b - \hat b$) against an embedded solution of one
order less. Multiplied by $h\gamma$, each stage is
$M u_i = \gamma\,(h f_i + \sum_j C_{ij} u_j + h^2 d_i f_t)$ with the step matrix
$M = I - h\gamma J$: one Jacobian and one factorisation per step
(`fsjax._solve.step_matrix`), then $s$ solves and $s$ evaluations of $f$; no Newton iteration,
so no convergence failure to reject a step for.

With the classical coefficients $\alpha_{ij}$, $\gamma_{ij}$ ($\Gamma$ lower triangular with
diagonal $\gamma$) and weights $\bar b$: $a = \alpha\Gamma^{-1}$,
$C = \mathrm{diag}(\gamma^{-1}) - \Gamma^{-1}$, $b^\top = \bar b^\top\Gamma^{-1}$,
$c_i = \sum_j \alpha_{ij}$ and $d_i = \sum_j \gamma_{ij}$.

Rodas-type methods are stiffly accurate: the last stage's argument is the embedded solution and
$y_1$ is that plus $u_s$ ($b = (a_{s1}, \dots, a_{s,s-1}, 1)$, error estimate $u_s$), so
$R(\infty) = 0$. Their continuous extension (`RosenbrockInterpolation`) is
$y(t_0 + \theta h) = (1-\theta) y_0 + \theta\big(y_1 + (1-\theta)\sum_r \theta^r k_r\big)$
with $k_r = \sum_j H_{rj} u_j$.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from ..base import AbstractDenseOutputSolver
from ..step_matrix import AbstractStepMatrix
from ..structured import AutoStepMatrix

if TYPE_CHECKING:
    from typing import ClassVar as AbstractClassVar
else:
    from equinox import AbstractClassVar


def lower_triangular(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """The $s \\times s$ strictly lower-triangular matrix whose row $i$ (from the second) holds
    `rows[i - 1]`, the $i$ entries left of the diagonal."""
    s = len(rows) + 1
    out = np.zeros((s, s))
    for i, row in enumerate(rows, start=1):
        if len(row) != i:
            raise ValueError(f"row {i} of a lower-triangular tableau needs {i} entries")
        out[i, :i] = row
    return out


class RosenbrockTableau(eqx.Module):
    """The coefficients of a ROW method in the W-transformed form of the module docstring:
    `a`, `C` ($s \\times s$, strictly lower triangular), `gamma`, the weights `b`, the error
    weights `b_error` ($b - \\hat b$), the nodes `c`, the $f_t$ coefficients `d` and the
    dense-output rows `H` ($R \\times s$)."""

    a: np.ndarray
    C: np.ndarray
    gamma: float
    b: np.ndarray
    b_error: np.ndarray
    c: np.ndarray
    d: np.ndarray
    H: np.ndarray

    def __check_init__(self):
        s = self.b.shape[0]
        for name in ("a", "C"):
            m = getattr(self, name)
            if m.shape != (s, s) or np.any(np.triu(m) != 0):
                raise ValueError(f"{name} must be strictly lower triangular, {s} x {s}")
        if not self.b_error.shape == self.c.shape == self.d.shape == (s,):
            raise ValueError("b, b_error, c and d need one entry per stage")
        if self.c[0] != 0:
            raise ValueError("the first stage sits at the step's start: c[0] must be 0")
        if self.H.ndim != 2 or self.H.shape[1] != s:
            raise ValueError("H needs one column per stage")

    @classmethod
    def stiffly_accurate(cls, a_lower, C_lower, gamma, c, d, H) -> "RosenbrockTableau":
        """A Rodas-type tableau: $b$ is the last row of $a$ with $b_s = 1$, so $y_1$ is the
        last stage's argument plus $u_s$, and the error estimate is $u_s$."""
        a, C = lower_triangular(a_lower), lower_triangular(C_lower)
        last = np.eye(a.shape[0])[-1]
        return cls(
            a=a,
            C=C,
            gamma=float(gamma),
            b=a[-1] + last,
            b_error=last,
            c=np.asarray(c, dtype=float),
            d=np.asarray(d, dtype=float),
            H=np.asarray(H, dtype=float),
        )


def _combine(base, coeffs, vectors):
    """`base + sum_j coeffs[j] * vectors[j]` over pytrees, the tableau's zeros skipped at trace
    time."""
    for w, v in zip(coeffs, vectors, strict=True):
        if w != 0:
            base = jtu.tree_map(lambda x, y, w=float(w): x + w * y, base, v)
    return base


def _weighted(coeffs, vectors):
    """`sum_j coeffs[j] * vectors[j]` over pytrees (at least one coefficient is nonzero)."""
    first = next(j for j, w in enumerate(coeffs) if w != 0)
    w = float(coeffs[first])
    start = vectors[first] if w == 1 else jtu.tree_map(lambda y: w * y, vectors[first])
    return _combine(start, coeffs[first + 1 :], vectors[first + 1 :])


class RosenbrockInterpolation(diffrax.AbstractLocalInterpolation):
    r"""The stiffly accurate continuous extension of a Rodas step over $[t_0, t_1]$:
    $y(t_0 + \theta h) = (1-\theta) y_0 + \theta\big(y_1 + (1-\theta)\sum_r \theta^r k_r\big)$,
    `k` stacking the $k_r$ along a leading axis. Exact at both ends; it serves
    `SaveAt(ts=...)` between steps and the root finds of `diffrax.Event`."""

    t0: ArrayLike
    t1: ArrayLike
    y0: PyTree[Array]
    y1: PyTree[Array]
    k: PyTree[Array]

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is not None:
            return jtu.tree_map(jnp.subtract, self.evaluate(t1), self.evaluate(t0))
        span = self.t1 - self.t0
        # A zero-length step (t0 == t1) interpolates to y0, not to 0/0.
        theta = jnp.where(span == 0, 0.0, (t0 - self.t0) / jnp.where(span == 0, 1.0, span))

        def leaf(y0, y1, k):
            inner = k[-1]
            for kr in k[-2::-1]:
                inner = kr + theta * inner
            return (1 - theta) * y0 + theta * (y1 + (1 - theta) * inner)

        return jtu.tree_map(leaf, self.y0, self.y1, self.k)


class AbstractRosenbrock(diffrax.AbstractAdaptiveSolver, AbstractDenseOutputSolver):
    """A ROW method from its `tableau` (module docstring), for `diffrax.ODETerm`s. The step
    matrix $I - h\\gamma J$ is formed and factorised by `step_matrix` (default
    `AutoStepMatrix`: the Woodbury solve for many particles of a `MeanField`, dense
    elimination otherwise). Non-autonomous fields are handled exactly: $f_t$ comes from
    a forward-mode derivative in $t$, which costs nothing for autonomous ones. A step that
    meets a non-finite value carries it into its error estimate, so the step controller
    rejects it; a solve that cannot recover ends with a non-success `diffrax.RESULTS`."""

    tableau: AbstractClassVar[RosenbrockTableau]
    term_structure: ClassVar = diffrax.ODETerm
    interpolation_cls: ClassVar = RosenbrockInterpolation
    # The stiffly accurate dense output stays within 1.5-5x of the steps' accuracy (2-D
    # sweep, rtol 1e-6 to 1e-8), so `fsjax.solve` interpolates save times (`solve.py`).
    accurate_dense_output: ClassVar[bool] = True

    step_matrix: AbstractStepMatrix = AutoStepMatrix()

    def init(self, terms, t0, t1, y0, args):
        del terms, t0, t1, y0, args
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        tab = self.tableau
        dt = t1 - t0
        # The control, not t1 - t0, scales f: diffrax's wrapped terms flip its sign when
        # integrating backwards in time.
        h = terms.contr(t0, t1)
        vf = terms.vf
        matrix = self.step_matrix.factor(vf, t0, y0, args, tab.gamma * h)
        # The first stage evaluates f at (t0, y0) (c_1 = 0), where f_t is taken.
        f0, f_t = jax.jvp(lambda t: vf(t, y0, args), (t0,), (jnp.ones_like(t0),))
        us = []
        for i in range(tab.b.shape[0]):
            if i == 0:
                f_i = f0
            else:
                f_i = vf(t0 + tab.c[i] * dt, _combine(y0, tab.a[i, :i], us), args)
            # gamma * (h f_i + sum_j C_ij u_j + h dt d_i f_t)
            rhs = jtu.tree_map(lambda f: (tab.gamma * h) * f, f_i)
            rhs = _combine(rhs, tab.gamma * tab.C[i, :i], us)
            if tab.d[i] != 0:
                w = tab.gamma * tab.d[i] * h * dt
                rhs = jtu.tree_map(lambda r, ft, w=w: r + w * ft, rhs, f_t)
            us.append(self.step_matrix.solve(matrix, rhs))
        y1 = _combine(y0, tab.b, us)
        y_error = _weighted(tab.b_error, us)
        k = [_weighted(row, us) for row in tab.H]
        dense_info = dict(y0=y0, y1=y1, k=jtu.tree_map(lambda *kr: jnp.stack(kr), *k))
        return y1, y_error, dense_info, None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
