r"""The critical manifold of the slow-second-layer system and its reduced slow flow.

With $\lambda_w = 1$, $\lambda_a = \varepsilon$ the alignments are fast and the second layer is
slow. Write $F_i(a, s) = m\,\partial R/\partial s_i = -a_i\sum_k k\mu_k s_i^{k-1} r_k$, so that
the fast flow is $\dot s_i = -(1 - s_i^2) F_i$ and $\dot\psi_i = -F_i$ in $s = \tanh\psi$.

**Critical manifold** (THEORY.md section 5): $C_0 = \{F = 0\}$, found at fixed $a$ by an
optimistix Newton solve; a point is attracting for the fast flow where the Hessian
$\partial F/\partial s$ is positive definite (for $m = 1$: $\partial^2 R/\partial s^2 > 0$) and
repelling where it has a negative eigenvalue. The **boundary branches** $s_i = \pm 1$ are
invariant for every $a$ (the factor $1 - s^2$); $s = \sigma$ attracts where $\sigma F(a,
\sigma) < 0$. For the 2-D system ($m = 1$), `branches` traces every interior root on a grid of
$a$, its stability, the **contacts** where an interior branch meets $s = \pm 1$ (there the
boundary exchanges stability with it: $F(a, \pm1) = 0$) and the **folds** where two interior
branches meet ($F = \partial_s F = 0$). $a = 0$ is a further, degenerate critical set ($F
\equiv 0$); it is not traced.

**Reduced slow flow** (slow time $T = \varepsilon t$): on an attracting interior branch $s =
h(a)$, $da/dT = \sum_k \mu_k h^k r_k$ (an index-1 DAE; `slow_flow` integrates $a$ and carries
$s$ with $ds/dT = -(\partial_a F/\partial_s F)\,da/dT$, projecting $s$ back onto $F = 0$ by
Newton at every evaluation). On the boundary branch $s = \sigma$ the flow is $da/dT =
\sum_k \mu_k\sigma^k r_k(a, \sigma)$ and the fast variable's logarithmic distance to the
boundary is $\psi = \Psi/\varepsilon$ with $d\Psi/dT = -\sigma F(a, \sigma)$. After the
boundary stops attracting (at a contact, where $F(a, \sigma)$ changes sign), $\Psi$ decreases
but stays positive for an O(1) slow time: the exact flow stays pinned to the boundary until
$\Psi$ returns to zero (the **entry-exit** or bifurcation delay) and then jumps, on the fast
scale, to the attracting interior branch. `slow_flow(..., entry_exit=True)` follows that rule;
`entry_exit=False` is the textbook reduction that leaves the boundary at the contact.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float

from .._errors import FsjaxError
from .._model.corrections import NetworkMeanField
from .._model.mean_field import MeanField

NEWTON_TOL = 1e-13


def require_slow_second_layer(model: MeanField) -> None:
    """The fast-slow reduction here needs $\\lambda_a < \\lambda_w$ (a slow second layer)."""
    rate_a, rate_w = float(model.rate_a), float(model.rate_w)
    if not rate_a < rate_w:
        raise FsjaxError(
            "the critical manifold and slow flow need a slow second layer "
            f"(dynamics.slow: second_layer, epsilon < 1); got rate_a = {rate_a:g}, "
            f"rate_w = {rate_w:g}"
        )


def fast_gradient(model: MeanField, a: Float[Array, " m"], s: Float[Array, " m"]):
    """$F_i = m\\,\\partial R/\\partial s_i$ (by automatic differentiation of the risk)."""
    return a.shape[-1] * jax.grad(model.risk, argnums=1)(a, s)


def fast_hessian(model: MeanField, a, s) -> Float[Array, "m m"]:
    """$\\partial F_i/\\partial s_j$: positive definite on attracting parts of $C_0$."""
    return jax.jacfwd(fast_gradient, argnums=2)(model, a, s)


class CriticalPoint(eqx.Module):
    """A Newton solution of $F(a, s) = 0$ at fixed $a$."""

    s: Float[Array, " m"]
    stable: Array
    converged: Array


def critical_point(model: MeanField, a, s_guess) -> CriticalPoint:
    """Solve $F(a, s) = 0$ for $s$ by optimistix Newton from `s_guess` (pure: jit/vmap it).
    `converged` is false when Newton fails or the root leaves $|s_i| < 1$."""
    a = jnp.asarray(a, dtype=float)
    sol = optx.root_find(
        lambda s, _: fast_gradient(model, a, s),
        optx.Newton(rtol=NEWTON_TOL, atol=NEWTON_TOL),
        jnp.asarray(s_guess, dtype=float),
        max_steps=64,
        throw=False,
    )
    s = sol.value
    eig = jnp.linalg.eigvalsh(fast_hessian(model, a, s))
    converged = (sol.result == optx.RESULTS.successful) & jnp.all(jnp.abs(s) < 1)
    return CriticalPoint(s=s, stable=jnp.all(eig > 0), converged=converged)


def boundary_attracting(model: MeanField, a, sign: float) -> Array:
    """Whether $s = \\sigma$ (`sign` = +1 or -1) attracts the fast flow at $a$ (m = 1)."""
    s = jnp.full_like(jnp.asarray(a, dtype=float), sign)
    return sign * fast_gradient(model, a, s) < 0


def _interior_roots(model: MeanField, a_values, n_scan: int) -> list[np.ndarray]:
    """All roots of $F(a, \\cdot)$ in (-1, 1) for each $a$ (m = 1): sign changes on a grid of
    `n_scan` points, each refined by Newton (one batched solve for all of them)."""
    a_values = np.atleast_1d(np.asarray(a_values, dtype=float))
    grid = np.linspace(-1, 1, n_scan + 2)[1:-1]
    f = np.asarray(_scan_f(model, jnp.asarray(a_values), jnp.asarray(grid)))
    rows, cols = np.nonzero(np.sign(f[:, :-1]) * np.sign(f[:, 1:]) < 0)
    if rows.size == 0:
        return [np.zeros(0) for _ in a_values]
    size = 1 << int(np.ceil(np.log2(rows.size)))  # padded batch: few distinct compilations
    a_b = np.resize(a_values[rows], size)
    s_b = np.resize(0.5 * (grid[cols] + grid[cols + 1]), size)
    cp = _newton_batch(model, jnp.asarray(a_b), jnp.asarray(s_b))
    ok = np.asarray(cp.converged)[: rows.size]
    roots = np.asarray(cp.s)[: rows.size, 0]
    return [np.sort(roots[(rows == i) & ok]) for i in range(a_values.size)]


@eqx.filter_jit
def _scan_f(model, a, grid):
    f = lambda a_, s_: fast_gradient(model, a_[None], s_[None])[0]  # noqa: E731
    return jax.vmap(lambda a_: jax.vmap(lambda s_: f(a_, s_))(grid))(a)


@eqx.filter_jit
def _newton_batch(model, a, s):
    return jax.vmap(lambda ai, si: critical_point(model, ai[None], si[None]))(a, s)


class Branches(eqx.Module):
    """The critical manifold of the 2-D system on a grid of $a$ (NaN-padded root table)."""

    a: np.ndarray  # (A,)
    s: np.ndarray  # (A, R) interior roots, ascending, NaN-padded
    stable: np.ndarray  # (A, R) attracting?
    upper_stable: np.ndarray  # (A,) does s = +1 attract?
    lower_stable: np.ndarray  # (A,) does s = -1 attract?
    contacts: np.ndarray  # (C, 2) (a, s = +-1) where an interior branch meets the boundary
    folds: np.ndarray  # (N, 2) (a, s) where two interior branches meet


def branches(model: MeanField, a_grid, n_scan: int = 2000) -> Branches:
    """Trace $C_0$ of the 2-D system over `a_grid` (see the module docstring)."""
    require_slow_second_layer(model)
    a_grid = np.asarray(a_grid, dtype=float)
    roots = _interior_roots(model, a_grid, n_scan)
    width = max([r.size for r in roots] + [1])
    table = np.full((a_grid.size, width), np.nan)
    for i, r in enumerate(roots):
        table[i, : r.size] = r
    aa = jnp.asarray(np.repeat(a_grid[:, None], width, 1))
    s_ok = jnp.asarray(np.nan_to_num(table))
    hess = jax.vmap(jax.vmap(lambda a, s: fast_hessian(model, a[None], s[None])[0, 0]))(aa, s_ok)
    stable = (np.asarray(hess) > 0) & np.isfinite(table)
    av = jnp.asarray(a_grid)
    upper = np.asarray(jax.vmap(lambda a: boundary_attracting(model, a[None], 1.0)[0])(av))
    lower = np.asarray(jax.vmap(lambda a: boundary_attracting(model, a[None], -1.0)[0])(av))
    return Branches(
        a=a_grid,
        s=table,
        stable=stable,
        upper_stable=upper,
        lower_stable=lower,
        contacts=_contacts(model, a_grid),
        folds=_folds(model, a_grid, roots),
    )


def _boundary_f(a, sign_model):
    """$F(a, \\sigma)$ for a scalar $a$ (the residual of a contact)."""
    sign, model = sign_model
    return fast_gradient(model, jnp.atleast_1d(a), jnp.atleast_1d(sign))[0]


def _contacts(model, a_grid) -> np.ndarray:
    """Solve $F(a, \\pm 1) = 0$ for $a$ by Newton from every sign change on the grid."""
    out = []
    for sign in (1.0, -1.0):
        args = (jnp.asarray(sign), model)
        f = np.asarray(jax.vmap(_boundary_f, (0, None))(jnp.asarray(a_grid), args))
        for i in np.nonzero(np.sign(f[:-1]) * np.sign(f[1:]) < 0)[0]:
            sol = optx.root_find(
                _boundary_f,
                optx.Newton(rtol=NEWTON_TOL, atol=NEWTON_TOL),
                jnp.asarray(0.5 * (a_grid[i] + a_grid[i + 1])),
                args,
                throw=False,
            )
            if sol.result == optx.RESULTS.successful:
                out.append((float(sol.value), sign))
    return np.asarray(out).reshape(-1, 2)


def _folds(model, a_grid, roots) -> np.ndarray:
    """Where the interior root count changes by two between grid points, solve
    $F = \\partial_s F = 0$ in $(a, s)$ by Newton from the closest pair of roots."""

    def system(y, _):
        a, s = y[0][None], y[1][None]
        return jnp.stack([fast_gradient(model, a, s)[0], fast_hessian(model, a, s)[0, 0]])

    out = []
    for i in range(a_grid.size - 1):
        left, right = roots[i], roots[i + 1]
        if abs(left.size - right.size) != 2:
            continue
        more = left if left.size > right.size else right
        gaps = np.diff(more)
        j = int(np.argmin(gaps))
        y0 = jnp.array([0.5 * (a_grid[i] + a_grid[i + 1]), 0.5 * (more[j] + more[j + 1])])
        sol = optx.root_find(system, optx.Newton(rtol=NEWTON_TOL, atol=NEWTON_TOL), y0, throw=False)
        a, s = np.asarray(sol.value)
        if sol.result == optx.RESULTS.successful and abs(s) < 1:
            out.append((a, s))
    return np.asarray(out).reshape(-1, 2)


def landing_branch(model: MeanField, a: float, s: float, n_scan: int = 2000) -> float:
    """Where the layer problem (fast flow at frozen $a$) from $s$ ends: the nearest interior
    root in the direction of motion, or the boundary $\\pm 1$ if there is none."""
    f = float(fast_gradient(model, jnp.array([a]), jnp.array([s]))[0])
    (roots,) = _interior_roots(model, a, n_scan)
    if f < 0:  # s increases
        ahead = roots[roots > s]
        return float(ahead.min()) if ahead.size else 1.0
    ahead = roots[roots < s]
    return float(ahead.max()) if ahead.size else -1.0


class SlowTrajectory(eqx.Module):
    """The reduced slow flow on the slow-time grid `T` (T = eps t)."""

    T: np.ndarray
    a: np.ndarray
    s: np.ndarray
    T_exit: float  # slow time the flow leaves the boundary branch (NaN: never on / never left)


def slow_velocity(model: MeanField, a, s):
    """$da/dT = \\dot a/\\varepsilon$ for one particle at $(a, s)$, $|s| \\le 1$, in the slow
    time $T = \\varepsilon t$ with $\\varepsilon = \\lambda_a/\\lambda_w$."""
    return model.drift(a[None], s[None])[0][0] / (model.rate_a / model.rate_w)


def _boundary_field(T, y, args):
    """On $s = \\sigma$: $(da/dT, d\\Psi/dT = -\\sigma F(a, \\sigma))$, and with the floor
    of a network (a `NetworkMeanField`) its pull on $\\psi = \\Psi/\\varepsilon$,
    $-\\frac14\\rho(a, \\sigma)\\sinh 2\\psi$ (`fsjax._model.corrections`)."""
    model, sign = args
    base = model.mean_field
    a, psi_slow = y
    da = slow_velocity(base, a, sign)
    dpsi = -sign * fast_gradient(base, a[None], sign[None])[0]
    if isinstance(model, NetworkMeanField):
        # On |s| = 1 the shared rows' relaxation slope sum_k k mu_k^2 s^(2k-1) is sign * sum.
        k = jnp.arange(base.orders)
        slope = sign * jnp.sum(k * base.mu**2)
        rho = model.floor_rate(a[None], sign[None], slope[None])[0]
        eps = base.rate_a / base.rate_w
        dpsi = dpsi - 0.25 * rho * jnp.sinh(2 * psi_slow / eps)
    return da, dpsi


def _exit_cond(t, y, args, **kwargs):
    return y[1]


def _contact_cond(t, y, args, **kwargs):
    model, sign = args
    return -sign * fast_gradient(model.mean_field, y[0][None], sign[None])[0]


def _project(model, a, s):
    """$s$ moved onto $F(a, \\cdot) = 0$ by optimistix Newton (the DAE's algebraic part)."""
    sol = optx.root_find(
        lambda s_, _: fast_gradient(model, a[None], s_[None])[0],
        optx.Newton(rtol=NEWTON_TOL, atol=NEWTON_TOL),
        s,
        max_steps=32,
        throw=False,
    )
    return sol.value


def _interior_field(T, y, args):
    """On $s = h(a)$: $da/dT$ and $ds/dT = -(\\partial_a F/\\partial_s F)\\,da/dT$ at the
    projected $s$."""
    model = args
    a, s = y
    s = _project(model, a, s)
    f = lambda a_, s_: fast_gradient(model, a_[None], s_[None])[0]  # noqa: E731
    f_a, f_s = jax.grad(f, (0, 1))(a, s)
    da = slow_velocity(model, a, s)
    return da, -f_a / f_s * da


def _slow_solve(field, y0, T0, T1, args, event=None):
    """A dense solve in slow time (evaluate it anywhere in [T0, its end]); the save grid is
    not part of the compiled program, so repeated calls with other grids reuse it."""
    return diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Dopri8(),
        T0,
        T1,
        None,
        y0,
        args=args,
        saveat=diffrax.SaveAt(t1=True, dense=True),
        stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-12),
        event=event,
        max_steps=100_000,
        throw=False,
    )


def _evaluate(sol, T):
    """The dense solution at the slow times `T` (NaN where the solve failed)."""
    ok = sol.result == diffrax.RESULTS.successful
    ok = ok | (sol.result == diffrax.RESULTS.event_occurred)
    ys = jax.vmap(sol.evaluate)(jnp.asarray(T))
    return [np.where(bool(ok), np.asarray(y), np.nan) for y in ys]


def slow_flow(
    model: MeanField | NetworkMeanField, a0: float, s0: float, T, *, entry_exit: bool = True
):
    """The reduced slow flow of the 2-D system from $(a_0, s_0)$, saved at slow times `T`.

    The fast transient is the layer problem at $a_0$ (`landing_branch`). On a boundary branch
    the flow follows it until $\\Psi$ returns to zero (`entry_exit=True`) or until the
    boundary stops attracting (`entry_exit=False`), then jumps to the interior branch below
    (or, without the delay, continues on the interior branch that meets the boundary at the
    contact) and follows it, $s$ projected by Newton at every evaluation. For a flow that
    stands for a network (a `NetworkMeanField`, as `fsjax.build_model` gives it from a config
    with a `network:` section) $\\Psi$ carries the network's boundary floor, which caps
    $\\psi$ at $O(\\log(g/\\rho))$ instead of $O(1/\\varepsilon)$: the floored entry-exit
    rule, whose exit follows the contact by $O(\\sqrt{\\varepsilon\\ln(1/\\rho)})$ in slow time
    (the interior branches are the plain flow's). Not jittable (the branch choices are made in
    Python); values after a failed interior solve are NaN.

    With a slow first layer ($\\lambda_w < \\lambda_a$) `a0`, `s0` are the m particles' values
    and the result is `slow_first.slow_flow_first`'s (`entry_exit` does not apply)."""
    if float(model.mean_field.rate_w) < float(model.mean_field.rate_a):
        from .slow_first import slow_flow_first  # it imports this module: import on use

        return slow_flow_first(model.mean_field, a0, s0, T)
    floored, model = model, model.mean_field
    require_slow_second_layer(model)
    T = np.asarray(T, dtype=float)
    a_out, s_out = np.full(T.shape, np.nan), np.full(T.shape, np.nan)
    land = landing_branch(model, a0, s0)
    a_now, T_now, T_exit = float(a0), 0.0, np.nan
    if abs(land) == 1.0:
        sign = jnp.asarray(land)
        cond = _exit_cond if entry_exit else _contact_cond
        event = diffrax.Event(cond, optx.Newton(rtol=NEWTON_TOL, atol=NEWTON_TOL), direction=False)
        # Psi starts at +0: the entry itself must not read as an exit.
        y0 = (jnp.asarray(a0, dtype=float), jnp.asarray(1e-300))
        sol = _slow_solve(_boundary_field, y0, 0.0, T[-1], (floored, sign), event)
        T_end = float(sol.ts[-1])
        on = T <= T_end
        a_out[on], s_out[on] = _evaluate(sol, T[on])[0], land
        if not bool(sol.event_mask):
            return SlowTrajectory(T=T, a=a_out, s=s_out, T_exit=np.nan)
        T_exit = T_now = T_end
        a_now = float(sol.ys[0][-1])
        # Without the delay the flow leaves at the contact, where the interior branch meets
        # the boundary; after the delay it jumps to the attracting interior branch below.
        land = landing_branch(model, a_now, land * (1 - 1e-12)) if entry_exit else land
        if entry_exit and abs(land) == 1.0:
            raise FsjaxError(f"no attracting interior branch below the boundary at a = {a_now}")
    later = T > T_now
    y0 = (jnp.asarray(a_now), jnp.asarray(land))
    sol = _slow_solve(_interior_field, y0, T_now, T[-1], model)
    a_i, s_i = _evaluate(sol, T[later])
    proj = np.asarray(_newton_batch(model, jnp.asarray(a_i), jnp.asarray(s_i)).s)[:, 0]
    a_out[later], s_out[later] = a_i, proj
    return SlowTrajectory(T=T, a=a_out, s=s_out, T_exit=T_exit)
