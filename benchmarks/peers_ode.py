r"""The reduced ODE in fsjax and in the tools a user would otherwise pick: scipy's `solve_ivp`
(Radau, BDF, LSODA) and SUNDIALS CVODE (BDF, dense direct solver) through scikit-sundae.

Every tool integrates the same system in the same coordinates as `fsjax.MeanField`: the state
is $(a_i, \psi_i)$ with $s_i = \tanh\psi_i$,

$$\dot a_i = \lambda_a \sum_k \mu_k s_i^k r_k,\qquad
  \dot\psi_i = \lambda_w a_i \sum_k k\mu_k s_i^{k-1} r_k,\qquad
  r_k = c_k - \mu_k \tfrac1m\textstyle\sum_j a_j s_j^k ,$$

written out here in NumPy with its analytic Jacobian (the peers get the Jacobian, as a careful
user would give it), independently of fsjax's code. Accuracy is measured against scipy's Radau
at rtol 1e-12, atol 1e-14 as

$$\text{err} = \max_{t, i}\ \max\big(|s_i - s_i^\text{ref}|,\ |a_i - a_i^\text{ref}| /
  \max(1, |a_i^\text{ref}|)\big)$$

over the save times (the second layer can grow without bound, hence the relative part). A
tool whose solve fails gets an infinite error.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import fsjax
from fsjax import hermite

SCIPY_METHODS = ("Radau", "BDF", "LSODA")
REFERENCE_RTOL, REFERENCE_ATOL = 1e-12, 1e-14
# atol = ATOL_RATIO * rtol for every tool, as in benchmarks/bench_ode.py.
ATOL_RATIO = 1e-2

try:
    from sksundae.cvode import CVODE
except ImportError:  # the [bench] extra is not installed
    CVODE = None


@dataclasses.dataclass(frozen=True)
class Problem:
    """One point: tanh, c = (0, 1, 0, c3), slow second layer at `eps`, particles (a0, s0)."""

    c3: float
    eps: float
    a0: np.ndarray
    s0: np.ndarray
    ts: np.ndarray

    @property
    def mu(self) -> np.ndarray:
        return np.asarray(hermite.coefficients("tanh", 16))

    @property
    def target(self) -> np.ndarray:
        c = np.zeros(self.mu.size)
        c[1], c[3] = 1.0, self.c3
        return c

    @property
    def y0(self) -> np.ndarray:
        return np.concatenate([self.a0, np.arctanh(self.s0)])


def problem(m: int, eps: float, *, c3: float = 0.3, a0: float = 0.5, n_save: int = 50) -> Problem:
    """m particles with alignments spread over [0.005, 0.05] (one particle: 0.01), saved at
    `n_save` log-spaced times from 1e-2 to 1e3 / eps (past the onset of unlearning)."""
    s0 = np.array([0.01]) if m == 1 else np.linspace(0.005, 0.05, m)
    ts = fsjax.save_times(1e-2, 1e3 / eps, n_save)
    return Problem(c3, eps, np.full(m, a0), s0, ts)


def sweep_points(n: int, eps: float, *, m: int = 1, n_save: int = 50) -> list[Problem]:
    """An n-point grid over c3 in [-0.3, 0.3] and a0 in [0.1, 3]."""
    n_c = max(round(float(np.sqrt(n / 5))), 1)
    n_a = int(np.ceil(n / n_c))
    c3, a0 = np.meshgrid(np.linspace(-0.3, 0.3, n_c), np.linspace(0.1, 3.0, n_a), indexing="ij")
    return [
        problem(m, eps, c3=float(c), a0=float(a), n_save=n_save)
        for c, a in zip(c3.ravel()[:n], a0.ravel()[:n], strict=True)
    ]


def numpy_system(p: Problem):
    """(rhs, jac) of the flow in (a, psi) for scipy and CVODE."""
    mu, c = p.mu, p.target
    rate_a, rate_w = p.eps, 1.0
    m = p.a0.size
    k = np.arange(mu.size)

    def parts(y):
        a, psi = y[:m], y[m:]
        s = np.tanh(psi)
        pw = np.cumprod(
            np.concatenate([np.ones((m, 1)), np.repeat(s[:, None], mu.size - 1, 1)], 1), 1
        )
        dp = k * np.pad(pw[:, :-1], ((0, 0), (1, 0)))  # k s^(k-1)
        d2p = k * np.pad(dp[:, :-1], ((0, 0), (1, 0)))  # k (k-1) s^(k-2)
        r = c - mu * (a @ pw) / m
        return a, s, pw, dp, d2p, mu * r

    def rhs(t, y):
        a, _, pw, dp, _, mur = parts(y)
        return np.concatenate([rate_a * (pw @ mur), rate_w * a * (dp @ mur)])

    def jac(t, y):
        a, s, pw, dp, d2p, mur = parts(y)
        sech2 = 1 - s * s
        dr_da = -(mu[:, None] * pw.T) / m  # (L, m)
        dr_dpsi = -(mu[:, None] * dp.T) * (a * sech2)[None, :] / m
        pm, dpm = pw * mu, dp * mu
        out = np.empty((2 * m, 2 * m))
        out[:m, :m] = rate_a * pm @ dr_da
        out[:m, m:] = rate_a * (pm @ dr_dpsi + np.diag((dp @ mur) * sech2))
        out[m:, :m] = rate_w * (a[:, None] * (dpm @ dr_da) + np.diag(dp @ mur))
        out[m:, m:] = rate_w * a[:, None] * (dpm @ dr_dpsi + np.diag((d2p @ mur) * sech2))
        return out

    return rhs, jac


def _split(p: Problem, y: np.ndarray):
    """(a, s) of shape (T, m) from a (2m, T) state history."""
    m = p.a0.size
    return y[:m].T, np.tanh(y[m:]).T


def scipy_solve(p: Problem, method: str, rtol: float, atol: float):
    """(a, s, ok) from `solve_ivp`; LSODA gets the Jacobian too."""
    rhs, jac = numpy_system(p)
    sol = solve_ivp(
        rhs, (0.0, p.ts[-1]), p.y0, method=method, t_eval=p.ts, jac=jac, rtol=rtol, atol=atol
    )
    if not sol.success or sol.y.shape[1] != p.ts.size:
        return None, None, False
    return (*_split(p, sol.y), True)


def cvode_solve(p: Problem, rtol: float, atol: float):
    """(a, s, ok) from SUNDIALS CVODE (BDF, dense direct solver, analytic Jacobian)."""
    rhs, jac = numpy_system(p)

    def rhsfn(t, y, yp):
        yp[:] = rhs(t, y)

    def jacfn(t, y, yp, jj):
        jj[:, :] = jac(t, y)

    solver = CVODE(rhsfn, jacfn=jacfn, method="BDF", rtol=rtol, atol=atol, max_num_steps=1_000_000)
    sol = solver.solve(np.concatenate([[0.0], p.ts]), p.y0)
    if not sol.success:
        return None, None, False
    return (*_split(p, sol.y[1:].T), True)


def reference(p: Problem, tool: str = "Radau"):
    """The tight-tolerance solution: scipy Radau, or CVODE where Radau is too slow (many
    particles: scipy's Radau takes ~70 s at m = 64)."""
    if tool == "CVODE":
        a, s, ok = cvode_solve(p, REFERENCE_RTOL, REFERENCE_ATOL)
    else:
        a, s, ok = scipy_solve(p, tool, REFERENCE_RTOL, REFERENCE_ATOL)
    if not ok:
        raise RuntimeError(f"the reference solve failed at {p}")
    return a, s


def error(a, s, ref) -> float:
    """The error measure of the module docstring (inf for a failed or non-finite solve)."""
    if a is None:
        return float("inf")
    a, s = np.asarray(a), np.asarray(s)
    ra, rs = ref
    err = np.maximum(np.abs(s - rs), np.abs(a - ra) / np.maximum(1.0, np.abs(ra)))
    return float(np.max(err)) if np.all(np.isfinite(err)) else float("inf")


@functools.cache
def fsjax_solver(rtol: float, *, batched: bool, method: str = "kvaerno5"):
    """A jitted fsjax solve of (c3, eps, a0, s0, ts) -> (a, s, status, num_steps), vmapped
    over points (not over ts) when `batched`: the public `fsjax.solve` on a `fsjax.MeanField`.
    Cached, and every value an argument, so each tolerance compiles once per shape."""
    mu = jnp.asarray(hermite.coefficients("tanh", 16))
    atol = rtol * ATOL_RATIO
    solver = fsjax.make_solver(method, rtol, atol)

    def one(c3, eps, a0, s0, ts):
        target = jnp.zeros_like(mu).at[1].set(1.0).at[3].set(c3)
        rate_a, rate_w = fsjax.layer_rates("second_layer", eps)
        model = fsjax.MeanField(target, mu, 0.0, rate_a, rate_w)
        traj = fsjax.solve(
            model, a0, s0, ts, solver=solver, rtol=rtol, atol=atol, max_steps=1_000_000
        )
        return traj.a, traj.s, traj.status, traj.num_steps

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, None)) if batched else one)


def fsjax_args(points: list[Problem]):
    """Stacked (c3, eps, a0, s0) and the shared ts for a batched `fsjax_solver`."""
    stacked = (
        jnp.asarray(np.stack([getattr(p, f) for p in points])) for f in ("c3", "eps", "a0", "s0")
    )
    return (*stacked, jnp.asarray(points[0].ts))


def peer_solve(tool: str, p: Problem, rtol: float):
    """(a, s, ok) from peer `tool` ('Radau', 'BDF', 'LSODA' or 'CVODE')."""
    if tool == "CVODE":
        return cvode_solve(p, rtol, rtol * ATOL_RATIO)
    return scipy_solve(p, tool, rtol, rtol * ATOL_RATIO)


def peer_tools() -> list[str]:
    return [*SCIPY_METHODS, "CVODE"] if CVODE is not None else list(SCIPY_METHODS)


def time_loop(fn, items) -> tuple[float, list]:
    """Wall time of running `fn` over `items` one after another, and the results."""
    start = time.perf_counter()
    out = [fn(x) for x in items]
    return time.perf_counter() - start, out
