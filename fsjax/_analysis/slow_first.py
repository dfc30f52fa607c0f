r"""The fast-slow structure of the slow-first-layer system (THEORY.md section 8).

With $\lambda_a = 1$, $\lambda_w = \varepsilon$ the second layer is fast and the alignments are
slow. The risk is quadratic in $a$: with the feature matrix $\Phi_{ki}(s) = \mu_k s_i^k$
($(L+1)\times m$), $R = \frac12|c - \Phi a/m|^2 + \tau^2/2$ and the fast flow is linear,

$$\dot a = \lambda_a h(a, s),\qquad h = \Phi^\top r = \Phi^\top c - G a,\qquad
  G(s) = \Phi^\top\Phi/m ,$$

whose rates are the eigenvalues of the **Gram matrix** $G$, $G_{ij} = \frac1m\sum_k \mu_k^2
s_i^k s_j^k$. The fast flow never moves $a$ along the null space of $\Phi$ ($h$ lies in the
range of $\Phi^\top$), so from $a$ it converges to the least-squares fit

$$a^*(s; a) = a + G^+ h(a, s) ,$$

the **critical manifold** (always attracting: its Hessian is $G \succeq 0$). Where $\Phi$ has
full column rank this is $a^*(s) = m(\Phi^\top\Phi)^{-1}\Phi^\top c$, whatever $a$ was. Where it
does not (`degeneracy`: coincident alignments, an alignment at 0 with $\mu_0 = 0$, more
particles than non-zero activation coefficients, or a Gram matrix singular otherwise) the
manifold has flat directions and the fit keeps $a$'s null-space component.

**Slow flow** (slow time $T = \varepsilon t$, $\varepsilon = \lambda_w/\lambda_a$): by the
envelope theorem the alignments follow the projected gradient of $R^*(s) = \min_a R$,
$d\psi_i/dT = g_i(a^*, s)/\varepsilon$ in $s = \tanh\psi$ (`MeanField.drift`). The second layer
follows the manifold, $G\,da/dT = \partial_s h\cdot ds/dT$ with $da/dT$ in the range of $G$
(the full flow's $\dot a = h$ always is), which is $da^*/dT$ where $G$ is invertible and
carries the flat directions where it is not, as long as the rank stays constant. `slow_flow`
integrates $(a, \psi)$ and projects $a$ onto the manifold at every evaluation.

**Validity**: the fast flow relaxes with the rates $\lambda_a\,\mathrm{eig}(G)$; the reduction
needs them large against the slow rate $\varepsilon$, i.e. `separation` $=
\varepsilon/\lambda_{\min}^{+}(G) \ll 1$ along the path. With small alignments the high-order
features are small ($\mu_k s^k$), so $G$'s smallest non-zero eigenvalues can fall far below
$\varepsilon$: those directions are then fitted on times $1/\lambda$ set by the second layer,
not by $\varepsilon$ (the case of configs/gallery/slow_first_eps1e-6.yaml).

**Learning times**: `learning_times` reads, from any sampled risk components $R_k(t)$ (full
flow, slow flow, network), the first time each falls below `fraction` of its start;
`predicted_times` takes them from the slow flow, in slow time.
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
from .._model.mean_field import MeanField, powers
from .manifold import _slow_solve

#: relative eigenvalue of the Gram matrix below which a direction counts as null
RCOND = 1e-10
#: eigenvalue of the Gram matrix, relative to one particle's largest, sum_k mu_k^2, at which
#: the slow flow stops: it is reaching the degenerate set
STOP = 1e-6
NEWTON_TOL = 1e-12


def require_slow_first_layer(model: MeanField) -> None:
    """The reduction here needs $\\lambda_w < \\lambda_a$ (a slow first layer)."""
    rate_a, rate_w = float(model.rate_a), float(model.rate_w)
    if not rate_w < rate_a:
        raise FsjaxError(
            "the slow-first-layer analysis needs a slow first layer "
            f"(dynamics.slow: first_layer, epsilon < 1); got rate_a = {rate_a:g}, "
            f"rate_w = {rate_w:g}"
        )


def features(model: MeanField, s: Float[Array, " m"]) -> Float[Array, "L m"]:
    """$\\Phi_{ki} = \\mu_k s_i^k$."""
    return model.mu[:, None] * powers(s, model.orders).T


def gram(model: MeanField, s: Float[Array, " m"]) -> Float[Array, "m m"]:
    """$G = \\Phi^\\top\\Phi/m$: the fast flow's rate matrix."""
    phi = features(model, s)
    return phi.T @ phi / s.shape[-1]


def fit_residual(model: MeanField, a, s) -> Float[Array, " m"]:
    """$h = \\Phi^\\top r$, so that $\\dot a = \\lambda_a h$ (zero on the critical manifold)."""
    return model.drift(a, s)[0] / model.rate_a


def _pinv(g, rcond):
    """$G^+$ with eigenvalues below `rcond` times the largest taken as zero, and the rank."""
    lam, v = jnp.linalg.eigh(g)
    keep = lam > rcond * jnp.max(lam)
    inv = jnp.where(keep, 1 / jnp.where(keep, lam, 1.0), 0.0)
    return (v * inv) @ v.T, jnp.sum(keep)


class SecondLayerFit(eqx.Module):
    """The fast layer's end point at fixed alignments: the least-squares fit."""

    a: Float[Array, " m"]  # a*(s; a)
    rates: Float[Array, " m"]  # eigenvalues of G, ascending: the fast relaxation rates
    rank: Array  # the number of eigenvalues above RCOND times the largest


def second_layer_fit(model: MeanField, s, a=None, rcond: float = RCOND) -> SecondLayerFit:
    """$a^*(s; a) = a + G^+ h(a, s)$ ($a = 0$ if not given: the minimum-norm fit). Pure."""
    s = jnp.asarray(s, dtype=float)
    a = jnp.zeros_like(s) if a is None else jnp.asarray(a, dtype=float)
    g = gram(model, s)
    ginv, rank = _pinv(g, rcond)
    return SecondLayerFit(
        a=a + ginv @ fit_residual(model, a, s), rates=jnp.linalg.eigvalsh(g), rank=rank
    )


def degeneracy(model: MeanField, s, rcond: float = RCOND) -> str | None:
    """Why the critical manifold at alignments `s` has flat directions (None if it has none):
    the features $\\mu_k s_i^k$ do not have full column rank at `rcond`."""
    s = np.asarray(s, dtype=float)
    rank = int(second_layer_fit(model, s, rcond=rcond).rank)
    if rank == s.size:
        return None
    return _cause(model, s, rcond**0.5) or (
        f"singular Gram matrix (rank {rank} < m = {s.size} at rcond {rcond:g})"
    )


def _cause(model: MeanField, s: np.ndarray, near: float) -> str | None:
    """The named causes of a rank loss, alignments within `near` counting as equal."""
    m = s.size
    mu = np.asarray(model.mu)
    i, j = np.triu_indices(m, 1)
    close = near * np.maximum(1, np.abs(s[i]))
    same = np.abs(s[i] - s[j]) <= close
    if same.any():
        k = int(np.argmax(same))
        return f"coincident alignments s_{i[k]} = s_{j[k]} = {s[i[k]]:g}"
    parity = np.unique(np.nonzero(mu)[0] % 2)
    opposite = np.abs(s[i] + s[j]) <= close
    if parity.size == 1 and opposite.any():  # columns of an odd or even series are parallel
        k = int(np.argmax(opposite))
        return (
            f"opposite alignments s_{i[k]} = -s_{j[k]} = {s[i[k]]:g} with only "
            f"{('even', 'odd')[parity[0]]} activation coefficients (parallel features)"
        )
    zero = np.abs(s) <= near
    if mu[0] == 0 and zero.any():
        return f"alignment s_{int(np.argmax(zero))} = {s[zero][0]:g} with mu_0 = 0 (a zero feature)"
    n_mu = int(np.sum(mu != 0))
    if m > n_mu:
        return f"more particles (m = {m}) than non-zero activation coefficients ({n_mu})"
    return None


def slow_vector_field(T, y, args):
    """$(da/dT, d\\psi/dT)$ on the critical manifold (see the module docstring)."""
    model, rcond, _ = args
    a, psi = y
    s = jnp.tanh(psi)
    ginv, _ = _pinv(gram(model, s), rcond)
    a = a + ginv @ fit_residual(model, a, s)
    eps = model.rate_w / model.rate_a
    dpsi = model.drift(a, s)[1] / eps
    ds = (1 - s**2) * dpsi
    _, dh = jax.jvp(lambda s_: fit_residual(model, a, s_), (s,), (ds,))
    return ginv @ dh, dpsi


class SlowFirstTrajectory(eqx.Module):
    """The slow-first-layer reduced flow on the slow-time grid `T` (T = eps t)."""

    T: np.ndarray
    a: np.ndarray  # (T, m) on the critical manifold
    s: np.ndarray  # (T, m)
    components: np.ndarray  # (T, L) risk components R_k
    rank: np.ndarray  # (T,) rank of the features along the path
    separation: np.ndarray  # (T,) eps / (smallest non-zero fast rate): the reduction needs << 1
    degeneracy: str | None  # at the start, or where the flow reaches the degenerate set
    T_degenerate: float  # slow time the flow stops at the degenerate set or fails (NaN: neither)


def slow_flow_first(model: MeanField, a0, s0, T, *, rcond: float = RCOND) -> SlowFirstTrajectory:
    """The reduced slow flow from the network's $(a_0, s_0)$, saved at slow times `T`.

    The fast transient is exact: the fit $a^*(s_0; a_0)$. A degenerate start is followed with
    the flat directions carried (and named in `degeneracy`). Where the smallest kept fast rate
    falls to `STOP` (e.g. two particles merging: $a^*$ diverges there and
    the full flow's fast rate along $a_i - a_j$ vanishes), the reduction is singular: the solve
    stops by an event, `T_degenerate` says when and `degeneracy` names the point; so it does
    where the rank changes or the solve fails. Later values are NaN."""
    require_slow_first_layer(model)
    T = np.asarray(T, dtype=float)
    s0 = jnp.asarray(s0, dtype=float)
    if not bool(jnp.all(jnp.abs(s0) < 1)):
        raise FsjaxError(f"init.s must lie in (-1, 1) for the slow flow; got {np.asarray(s0)}")
    fit = second_layer_fit(model, s0, jnp.asarray(a0, dtype=float) + 0 * s0, rcond)
    y0 = (fit.a, jnp.arctanh(s0))
    m, rank0 = s0.shape[-1], int(fit.rank)
    # The event's time need not be sharp: it marks where the reduction stops holding.
    event = diffrax.Event(_degenerate_cond, optx.Newton(rtol=1e-8, atol=1e-8), direction=False)
    sol = _slow_solve(slow_vector_field, y0, 0.0, T[-1], (model, rcond, m - rank0), event)
    T_end = float(sol.ts[-1])  # where it stopped: T[-1], the event, or a failure
    reached = T <= T_end
    ys = jax.vmap(sol.evaluate)(jnp.asarray(np.minimum(T, T_end)))
    a, s = (np.where(reached[:, None], np.asarray(y), np.nan) for y in ys)
    s = np.tanh(s)
    fits = jax.vmap(lambda s_, a_: second_layer_fit(model, s_, a_, rcond))(
        jnp.asarray(np.nan_to_num(s)), jnp.asarray(np.nan_to_num(a))
    )
    rank = np.asarray(fits.rank)
    changed = reached & (rank != rank0)
    if changed.any():  # the rule for the flat directions jumps: stop there
        T_end, reached = T[np.argmax(changed)], T < T[np.argmax(changed)]
    a = np.where(reached[:, None], np.asarray(fits.a), np.nan)
    s = np.where(reached[:, None], s, np.nan)
    comp = np.asarray(jax.vmap(model.risk_components)(jnp.asarray(a), jnp.asarray(s)))
    rates = np.asarray(fits.rates)
    first = np.minimum(rates.shape[-1] - rank, rates.shape[-1] - 1)[:, None]
    smallest = np.where(reached & (rank > 0), np.take_along_axis(rates, first, -1)[:, 0], np.nan)
    eps = float(model.rate_w / model.rate_a)
    named = degeneracy(model, s0, rcond)
    s_end = np.tanh(np.asarray(sol.ys[1][-1]))
    if bool(sol.event_mask):
        named = f"{_cause(model, s_end, STOP**0.5) or 'singular Gram matrix'} at T = {T_end:g}"
    elif changed.any():
        named = f"rank of the features changes from {rank0} at T = {T_end:g}" + (
            f" (at the start: {named})" if named else ""
        )
    elif sol.result != diffrax.RESULTS.successful:
        named = f"slow solve stopped at T = {T_end:g}: {sol.result}" + (
            f" (at the start: {named})" if named else ""
        )
    else:
        T_end = np.nan
    return SlowFirstTrajectory(
        T=T,
        a=a,
        s=s,
        components=comp,
        rank=rank,
        separation=eps / smallest,
        degeneracy=named,
        T_degenerate=T_end,
    )


def _degenerate_cond(t, y, args, **kwargs):
    """Zero where the smallest kept eigenvalue of $G$ falls to `STOP` times $\\sum_k\\mu_k^2$
    (that of one particle at $s = 1$; relative to $G$'s own largest, one particle's zero
    feature would never show)."""
    model, _, first = args
    lam = jnp.linalg.eigvalsh(gram(model, jnp.tanh(y[1])))
    return jnp.log(lam[first] / jnp.sum(model.mu**2) / STOP)


def slow_velocity_first(model: MeanField, s, a=None, rcond: float = RCOND):
    """$ds/dT$ on the critical manifold at alignments `s` (the fit from `a`, default 0)."""
    s = jnp.asarray(s, dtype=float)
    fit = second_layer_fit(model, s, a, rcond)
    eps = model.rate_w / model.rate_a
    return (1 - s**2) * model.drift(fit.a, s)[1] / eps


class SlowFixedPoint(eqx.Module):
    """A zero of the slow flow $ds/dT$ and its linear stability."""

    s: np.ndarray
    a: np.ndarray
    eigenvalues: np.ndarray  # of d(ds/dT)/ds, through a*(s)
    stable: bool  # every eigenvalue has a negative real part
    converged: bool


def slow_fixed_point(model: MeanField, s_guess, rcond: float = RCOND) -> SlowFixedPoint:
    """Solve $ds/dT = 0$ by optimistix Newton from `s_guess` (e.g. the end of a slow flow).
    Boundary points $s_i = \\pm1$ are zeros too (the factor $1 - s_i^2$). Refused where the
    features lose rank: there $a^*$ and hence the slow flow depend on the flat directions."""
    require_slow_first_layer(model)
    s_guess = jnp.asarray(s_guess, dtype=float)
    v = lambda s, _=None: slow_velocity_first(model, s, rcond=rcond)  # noqa: E731
    sol = optx.root_find(
        v, optx.Newton(rtol=NEWTON_TOL, atol=NEWTON_TOL), s_guess, max_steps=64, throw=False
    )
    s = np.asarray(sol.value)
    named = degeneracy(model, s, rcond)
    if named:
        raise FsjaxError(f"slow fixed point at a degenerate point of the manifold: {named}")
    eig = np.linalg.eigvals(np.asarray(jax.jacfwd(v)(jnp.asarray(s))))
    return SlowFixedPoint(
        s=s,
        a=np.asarray(second_layer_fit(model, s, rcond=rcond).a),
        eigenvalues=eig,
        stable=bool(np.all(eig.real < 0)),
        converged=bool(sol.result == optx.RESULTS.successful) and bool(np.all(np.abs(s) <= 1)),
    )


def learning_times(t, components, fraction: float = 0.01, start=None) -> np.ndarray:
    """For each component k, the first time at which `components[:, k]` falls to `fraction`
    of `start[k]` (default: its first value), interpolated linearly in (log t, log R)
    between the saves; 0 if it starts there, NaN if it never gets there or starts at 0."""
    t, comp = np.asarray(t, dtype=float), np.asarray(components, dtype=float)
    start = comp[0] if start is None else np.asarray(start, dtype=float)
    out = np.full(comp.shape[-1], np.nan)
    for k in range(comp.shape[-1]):
        level = fraction * start[k]
        below = np.nonzero(comp[:, k] <= level)[0]
        if start[k] <= 0 or below.size == 0:
            continue
        j = below[0]
        if j == 0:
            out[k] = 0.0 if t[0] <= 0 else t[0]
            continue
        r0, r1 = np.log(comp[j - 1, k]), np.log(max(comp[j, k], 1e-300))
        t0, t1 = np.log(max(t[j - 1], 1e-300)), np.log(t[j])
        if t[j - 1] <= 0:  # no logarithm of time at the origin: linear in t
            out[k] = t[j - 1] + (t[j] - t[j - 1]) * (r0 - np.log(level)) / (r0 - r1)
        else:
            out[k] = np.exp(t0 + (t1 - t0) * (r0 - np.log(level)) / (r0 - r1))
    return out


def plateau_levels(t, risk, times) -> np.ndarray:
    """The risk on the plateaus between successive learning times: its value at the
    geometric mean of each pair of consecutive (finite, positive, sorted) `times`."""
    times = np.sort(np.asarray(times)[np.isfinite(times) & (np.asarray(times) > 0)])
    mid = np.sqrt(times[:-1] * times[1:])
    return np.interp(np.log(mid), np.log(np.asarray(t)), np.asarray(risk))


def predicted_times(model: MeanField, a0, s0, T, fraction: float = 0.01, rcond: float = RCOND):
    """Slow times $T_k$ at which the slow flow brings $R_k$ below `fraction` of its value at
    the network's start $(a_0, s_0)$; $T_k = 0$: learned by the fast fit itself (in a time
    of order 1/rate, not 1/eps). The full flow's times are $t_k \\approx T_k/\\varepsilon$.
    Returns `(T_k, trajectory)`."""
    s0 = jnp.asarray(s0, dtype=float)
    start = np.asarray(model.risk_components(jnp.asarray(a0, dtype=float) + 0 * s0, s0))
    traj = slow_flow_first(model, a0, s0, np.concatenate([[0.0], np.asarray(T, dtype=float)]))
    return learning_times(traj.T, traj.components, fraction, start), traj
