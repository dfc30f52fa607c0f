r"""The benchmark problems and their references, written independently of fsjax.

A `Problem` is one initial-value problem of the reduced flow that `fsjax.MeanField` integrates:
$m$ particles $(a_i, \psi_i)$ with $s_i = \tanh\psi_i$,

$$\dot a_i = \lambda_a \sum_k \mu_k s_i^k r_k,\qquad
  \dot\psi_i = \lambda_w a_i \sum_k k\mu_k s_i^{k-1} r_k,\qquad
  r_k = c_k - \mu_k \tfrac1m\textstyle\sum_j a_j s_j^k .$$

`numpy_system` writes its right-hand side and analytic Jacobian out in NumPy (the peers get the
Jacobian, as a careful user would give it), `peer_solve` runs scipy's `solve_ivp` (Radau, BDF,
LSODA) or SUNDIALS CVODE (BDF, dense direct solver, through scikit-sundae) on it: these call a
Python right-hand side at every evaluation. `lsoda_solve` is the compiled peer: LSODA in
Fortran (numbalsoda) with the right-hand side compiled by numba (`lsoda_rhs`, written out
again in plain loops), no Python in the loop. `reference` is the tight-tolerance solution
every tool is measured against, by

$$\text{err} = \max_{t, i}\ \max\big(|s_i - s_i^\text{ref}|,\ |a_i - a_i^\text{ref}| /
  \max(1, |a_i^\text{ref}|)\big)$$

over the save times (the second layer can grow without bound, hence the relative part). A
failed solve gets an infinite error.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time

import numpy as np
from scipy.integrate import solve_ivp

import fsjax
from fsjax import hermite

SCIPY_METHODS = ("Radau", "BDF", "LSODA")
REFERENCE_RTOL, REFERENCE_ATOL = 1e-12, 1e-14
# atol = ATOL_RATIO * rtol for every tool.
ATOL_RATIO = 1e-2
ERROR = (
    "Error: max over save times and particles of |s - s_ref| and |a - a_ref| / max(1, |a_ref|) "
    f"against a reference solve at rtol {REFERENCE_RTOL:g}, atol {REFERENCE_ATOL:g} (the "
    "'reference' size of each row; scipy Radau unless stated)."
)

try:
    from sksundae.cvode import CVODE
except ImportError:  # the [bench] extra is not installed
    CVODE = None

PEERS = (*SCIPY_METHODS, "CVODE") if CVODE is not None else SCIPY_METHODS
LSODA_MISSING = (
    "numbalsoda rows skipped: numbalsoda is not installed; it builds with a Fortran compiler: "
    "apt-get install gfortran, then pip install numba numbalsoda (the [bench] extra)"
)


@dataclasses.dataclass(frozen=True)
class Problem:
    """Target c_k and activation mu_k (of one length), layer rates, particles, save times."""

    target: np.ndarray
    mu: np.ndarray
    rate_a: float
    rate_w: float
    a0: np.ndarray
    s0: np.ndarray
    ts: np.ndarray

    @property
    def m(self) -> int:
        return self.a0.size

    @property
    def y0(self) -> np.ndarray:
        return np.concatenate([self.a0, np.arctanh(self.s0)])


def _problem(activation, target, slow, eps, a0, s0, ts) -> Problem:
    mu = np.asarray(hermite.coefficients(activation, 16))
    c = np.zeros(mu.size)
    c[: len(target)] = target
    rate_a, rate_w = (float(r) for r in fsjax.layer_rates(slow, eps))
    return Problem(c, mu, rate_a, rate_w, np.asarray(a0, float), np.asarray(s0, float), ts)


def tanh_particles(m: int, eps: float, *, c3=0.3, a0=0.5, t_final=None, n_save=50) -> Problem:
    """tanh, c = (0, 1, 0, c3), slow second layer: m particles with alignments spread over
    [0.005, 0.05] (one particle: 0.01), saved at `n_save` log-spaced times from 1e-2 to
    `t_final` (default 1e3 / eps, past the onset of unlearning)."""
    s0 = np.array([0.01]) if m == 1 else np.linspace(0.005, 0.05, m)
    ts = fsjax.save_times(1e-2, t_final or 1e3 / eps, n_save)
    return _problem("tanh", [0, 1, 0, c3], "second_layer", eps, np.full(m, a0), s0, ts)


def relu_particles(m: int, *, eps=1e-3, t_final=1e5, n_save=50) -> Problem:
    """ReLU, c = (0.2, 0.6, 0.5, 0.3), slow first layer: m particles with a = 0.1 and
    alignments spread over [-0.6, 0.6], saved at log-spaced times from 1e-2 to `t_final`."""
    ts = fsjax.save_times(1e-2, t_final, n_save)
    s0 = np.linspace(-0.6, 0.6, m)
    return _problem("relu", [0.2, 0.6, 0.5, 0.3], "first_layer", eps, np.full(m, 0.1), s0, ts)


def relu_groups(m: int, **kw) -> Problem:
    """`relu_particles` with its m (even) particles in two identical groups, at s = -0.3 and
    0.5 (a = 0.1): the particle mean is that of the two, so m = 2 is the same flow."""
    p = relu_particles(2, **kw)
    s0 = np.repeat([-0.3, 0.5], m // 2)
    return dataclasses.replace(p, a0=np.full(s0.size, 0.1), s0=s0)


def sweep_values(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(c3, a0) at the n points of the 2-D sweep's grid over c3 in [-0.3, 0.3] and a0 in
    [0.1, 3]."""
    n_c = max(round(float(np.sqrt(n / 5))), 1)
    n_a = int(np.ceil(n / n_c))
    c3, a0 = np.meshgrid(np.linspace(-0.3, 0.3, n_c), np.linspace(0.1, 3.0, n_a), indexing="ij")
    return c3.ravel()[:n], a0.ravel()[:n]


def sweep_grid(n: int, *, eps=1e-3, t_final=1e7, n_save=100) -> list[Problem]:
    """The 2-D sweep: one tanh particle (`tanh_particles`) from s0 = 0.01 at each of the n
    points of `sweep_values`."""
    return [
        tanh_particles(1, eps, c3=float(c), a0=float(a), t_final=t_final, n_save=n_save)
        for c, a in zip(*sweep_values(n), strict=True)
    ]


def eps_grid(n: int, *, eps=(1e-4, 1e-1), t_final=1e7, n_save=100) -> list[Problem]:
    """A 2-D sweep over time-scale ratios: one tanh particle (`tanh_particles`, a0 = 0.5) at
    the n points of a grid of eps log-spaced over `eps` by c3 in [-0.3, 0.3], eps the fast
    axis; its points' step counts spread several-fold."""
    n_c = max(round(float(np.sqrt(n / 16))), 1)
    n_e = int(np.ceil(n / n_c))
    c3, e = np.meshgrid(np.linspace(-0.3, 0.3, n_c), np.geomspace(*eps, n_e), indexing="ij")
    return [
        tanh_particles(1, float(x), c3=float(c), t_final=t_final, n_save=n_save)
        for c, x in zip(c3.ravel()[:n], e.ravel()[:n], strict=True)
    ]


def numpy_system(p: Problem):
    """(rhs, jac) of the flow in y = (a, psi), in scipy's signature f(t, y)."""
    mu, c, m = p.mu, p.target, p.m
    k = np.arange(mu.size)

    def parts(y):
        a, s = y[:m], np.tanh(y[m:])
        pw = np.cumprod(
            np.concatenate([np.ones((m, 1)), np.repeat(s[:, None], k.size - 1, 1)], 1), 1
        )
        dp = k * np.pad(pw[:, :-1], ((0, 0), (1, 0)))  # k s^(k-1)
        d2p = k * np.pad(dp[:, :-1], ((0, 0), (1, 0)))  # k (k-1) s^(k-2)
        mur = mu * (c - mu * (a @ pw) / m)
        return a, s, pw, dp, d2p, mur

    def rhs(t, y):
        a, _, pw, dp, _, mur = parts(y)
        return np.concatenate([p.rate_a * (pw @ mur), p.rate_w * a * (dp @ mur)])

    def jac(t, y):
        a, s, pw, dp, d2p, mur = parts(y)
        sech2 = 1 - s * s
        dr_da = -(mu[:, None] * pw.T) / m  # (L, m)
        dr_dpsi = -(mu[:, None] * dp.T) * (a * sech2)[None, :] / m
        pm, dpm = pw * mu, dp * mu
        out = np.empty((2 * m, 2 * m))
        out[:m, :m] = p.rate_a * pm @ dr_da
        out[:m, m:] = p.rate_a * (pm @ dr_dpsi + np.diag((dp @ mur) * sech2))
        out[m:, :m] = p.rate_w * (a[:, None] * (dpm @ dr_da) + np.diag(dp @ mur))
        out[m:, m:] = p.rate_w * a[:, None] * (dpm @ dr_dpsi + np.diag((d2p @ mur) * sech2))
        return out

    return rhs, jac


def _split(p: Problem, y: np.ndarray):
    """(a, s) of shape (T, m) from a (2m, T) state history."""
    return y[: p.m].T, np.tanh(y[p.m :]).T


def _scipy(p: Problem, method: str, rtol: float, atol: float):
    rhs, jac = numpy_system(p)
    sol = solve_ivp(
        rhs, (0.0, p.ts[-1]), p.y0, method=method, t_eval=p.ts, jac=jac, rtol=rtol, atol=atol
    )
    if not sol.success or sol.y.shape[1] != p.ts.size:
        return None, None
    return _split(p, sol.y)


def _cvode(p: Problem, rtol: float, atol: float):
    rhs, jac = numpy_system(p)

    def rhsfn(t, y, yp):
        yp[:] = rhs(t, y)

    def jacfn(t, y, yp, jj):
        jj[:, :] = jac(t, y)

    solver = CVODE(rhsfn, jacfn=jacfn, method="BDF", rtol=rtol, atol=atol, max_num_steps=1_000_000)
    sol = solver.solve(np.concatenate([[0.0], p.ts]), p.y0)
    if not sol.success:
        return None, None
    return _split(p, sol.y[1:].T)


@functools.cache
def lsoda_available() -> bool:
    """Whether numbalsoda (and numba) import; where not, print `LSODA_MISSING` once."""
    try:
        import numba  # noqa: F401
        import numbalsoda  # noqa: F401
    except (ImportError, OSError):
        print(LSODA_MISSING, file=sys.stderr)
        return False
    return True


def lsoda_data(p: Problem) -> np.ndarray:
    """The parameter array `lsoda_rhs` reads: m, L, rate_a, rate_w, mu (L), c (L), then
    scratch for mu_k r_k (L) and s (m)."""
    n = p.mu.size
    head = [p.m, n, p.rate_a, p.rate_w]
    return np.concatenate([head, p.mu, p.target, np.zeros(n + p.m)]).astype(np.float64)


@functools.cache
def lsoda_rhs():
    """(address, seconds): the numba-compiled right-hand side of the flow in y = (a, psi) in
    numbalsoda's signature f(t, y, dy, data) with `lsoda_data` as data, and the seconds numba
    took to compile it and numbalsoda's driver (excluded from the timed solves)."""
    import numba
    from numba import types
    from numbalsoda import lsoda

    sig = types.void(
        types.double,
        types.CPointer(types.double),
        types.CPointer(types.double),
        types.CPointer(types.double),
    )

    def rhs(t, y, dy, p):
        m, n = int(p[0]), int(p[1])
        rate_a, rate_w = p[2], p[3]
        mu, c, v, s = 4, 4 + n, 4 + 2 * n, 4 + 3 * n  # offsets into p
        for k in range(n):
            p[v + k] = 0.0
        for j in range(m):  # sum_j a_j s_j^k
            sj = np.tanh(y[m + j])
            p[s + j] = sj
            pw = y[j]
            for k in range(n):
                p[v + k] += pw
                pw *= sj
        for k in range(n):  # mu_k r_k
            p[v + k] = p[mu + k] * (p[c + k] - p[mu + k] * p[v + k] / m)
        for i in range(m):  # sum_k v_k s^k and its derivative in s, by Horner
            si, f, g = p[s + i], 0.0, 0.0
            for k in range(n - 1, -1, -1):
                g = g * si + f
                f = f * si + p[v + k]
            dy[i] = rate_a * f
            dy[m + i] = rate_w * y[i] * g

    start = time.perf_counter()
    compiled = numba.cfunc(sig)(rhs)
    q = tanh_particles(1, 1.0, t_final=1.0, n_save=2)  # compiles numbalsoda's njit driver
    lsoda(compiled.address, q.y0, np.concatenate([[0.0], q.ts]), lsoda_data(q), 1e-6, 1e-8, 100)
    return compiled, time.perf_counter() - start


def lsoda_solve(p: Problem, rtol: float, atol: float | None = None):
    """(a, s) of shape (T, m) from numbalsoda's LSODA with `lsoda_rhs` (its Jacobian by finite
    differences: numbalsoda takes none); (None, None) if it failed."""
    from numbalsoda import lsoda

    atol = rtol * ATOL_RATIO if atol is None else atol
    t_eval = np.concatenate([[0.0], p.ts])
    y, ok = lsoda(lsoda_rhs()[0].address, p.y0, t_eval, lsoda_data(p), rtol, atol, 1_000_000)
    return _split(p, y[1:].T) if ok else (None, None)


def peer_solve(tool: str, p: Problem, rtol: float, atol: float | None = None):
    """(a, s) of shape (T, m) from peer `tool` (one of `PEERS`); (None, None) if it failed."""
    atol = rtol * ATOL_RATIO if atol is None else atol
    return _cvode(p, rtol, atol) if tool == "CVODE" else _scipy(p, tool, rtol, atol)


def reference(p: Problem, tool: str = "Radau"):
    """The tight-tolerance solution by `tool` (CVODE where Radau is too slow: many particles)."""
    a, s = peer_solve(tool, p, REFERENCE_RTOL, REFERENCE_ATOL)
    if a is None:
        raise RuntimeError(f"the {tool} reference solve failed at {p}")
    return a, s


def error(a, s, ref) -> float:
    """The error measure of the module docstring (inf for a failed or non-finite solve)."""
    if a is None:
        return float("inf")
    ra, rs = ref
    a, s = np.asarray(a), np.asarray(s)
    err = np.maximum(np.abs(s - rs), np.abs(a - ra) / np.maximum(1.0, np.abs(ra)))
    return float(np.max(err)) if np.all(np.isfinite(err)) else float("inf")
