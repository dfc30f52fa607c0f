r"""Scalar diagnostics of a solved trajectory: peak alignment, onset and depth of unlearning,
late-time power laws.

**Alignment.** With $m$ particles the alignment is the $|a|$-weighted mean
$$\kappa = \frac{\sum_i |a_i| s_i}{\sum_i |a_i|},$$
the alignment of the network's output with the teacher direction as the second layer weighs
it; for $m = 1$ (or equal particles) $\kappa = s$. Its rate is
$$\dot\kappa = \sum_i w_i \dot s_i + \sum_i \frac{\operatorname{sign}(a_i)\,\dot a_i}{\sum_j|a_j|}
   \,(s_i - \kappa), \qquad w_i = |a_i|/\textstyle\sum_j |a_j| .$$

**Onset of unlearning** `t_onset`: the first time $\dot\kappa$ changes sign from + to -, located
by a `diffrax.Event` with an optimistix Newton root find (`onset_time`) and differentiable by
automatic differentiation (diffrax differentiates the root find implicitly). Near the boundary
$|s_i| = 1$ every $\dot s_i = \operatorname{sech}^2\psi_i\, g_i$ underflows, so the event
watches $\rho = \dot\kappa\, e^{-2\ell_*}$ with $\ell_i = \log\operatorname{sech}\psi_i$ and
$\ell_* = \max_i \ell_i$: a positive multiple of $\dot\kappa$ with the same sign, computed in
logarithms, which stays resolved however close to the boundary the particles are (for $m = 1$
it is exactly $g = \dot\psi$). `t_onset` is NaN when $\dot\kappa$ never goes from + to - before
the end of the solve (no peak: a monotone rise, or a solve that starts past its peak), or when
the solve failed.

**Onset at a network's resolution.** A flow that stands for a network (the boundary floor on)
may turn down on the boundary at a level of $1 - \kappa$ far below what the network's stored
weights resolve: a stored $1 - s$ moves in steps of the unit roundoff $u$ of `network.dtype`
(the spacing of the floats below 1), so the network sees no change there. With a
`resolution` $r > 0$ (`resolution_of` of the network's dtype) the onset is the first time at
which $\dot\kappa < 0$ *and* $1 - \kappa > r$: the + to - sign change of
$\max(\rho, r - (1 - \kappa))$, with $1 - \kappa = \sum_i w_i\,2/(1 + e^{2\psi_i})$ formed
without cancellation. An interior peak
($1 - \kappa > r$ there) keeps its sign-change onset; a peak on the boundary gives the time
the alignment falls to $1 - r$. $r = 0$ (the plain flow) is the sign change.

**Exit from the boundary** `t_exit`: the first time after the peak at which $\kappa$ falls
below `exit_level` (`EXIT_LEVEL` = 0.99 by default), NaN when the alignment never reaches the
level or never falls back below it before the end of the solve. `exit_event_time` locates it by
a `diffrax.Event` on $\kappa - $ `exit_level` with a Newton root find, to solver tolerance and
differentiable like `t_onset`; `exit_time` reads it off a save grid (to the grid spacing).

**Depth.** `kappa_max` (largest saved alignment, at `t_max`), `kappa_final` (the last saved
value), `unlearning = kappa_max - kappa_final`.

**Late-time power laws.** Least-squares slopes of $\log \bar{|a|}$ and $\log|\kappa|$ against
$\log t$ ($\bar{|a|}$ the mean $|a_i|$) over the fit window, the saved times in
$[t_\text{final}\,10^{-\text{fit\_decades}}, t_\text{final}]$: `exponent_a`, `exponent_s`, with
their coefficients of determination `fit_r2_a`, `fit_r2_s` and the drift of the slope across
the window (`drift_a`, `drift_s`: slope on the window's second half minus slope on its first
half, in log time; near zero once the power law is asymptotic).

**Regime** (integer code, names in `REGIMES`):
- `0 none`: `unlearning <= 0.01 * kappa_max` (the alignment keeps 99% of its peak);
- `2 complete`: otherwise, if `exponent_s <= -0.01` (the alignment still decays as a power law
  at the end of the solve, so it heads to zero);
- `1 partial`: otherwise (the alignment decayed, then settled at a positive value);
- `-1 undetermined`: the solve failed or the alignment is not finite.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike, Float

from .._model.base import AbstractReducedModel
from .._model.corrections import unit_roundoff
from .._results import RESULTS
from .._solve.settings import SolverSettings
from .._solve.solve import Trajectory, integrate

REGIMES = {-1: "undetermined", 0: "none", 1: "partial", 2: "complete"}
DIAGNOSTIC_NAMES = (
    "kappa_max",
    "t_max",
    "t_onset",
    "t_exit",
    "kappa_final",
    "unlearning",
    "regime",
    "exponent_a",
    "exponent_s",
    "fit_r2_a",
    "fit_r2_s",
    "drift_a",
    "drift_s",
)
NONE_FRACTION = 0.01
COMPLETE_EXPONENT = -0.01
FIT_DECADES = 1.0
GRID_NOISE = 1e-9
EXIT_LEVEL = 0.99
# What the event-located times mean, for the datasets that record them.
MEANINGS = {
    "t_onset": "first time the alignment falls with 1 - kappa above the resolution of the "
    "network the flow stands for (the plain flow: first + to - sign change of its rate); NaN: "
    "none before t_final",
    "t_exit": "first time after the peak at which the alignment falls below the exit level "
    "(0.99 unless set); NaN: none before t_final",
}


def alignment(a: Float[Array, "... m"], s: Float[Array, "... m"]) -> Float[Array, "..."]:
    """The $|a|$-weighted mean alignment $\\kappa$ (the plain mean if every $a_i$ is zero)."""
    w = jnp.abs(a)
    total = jnp.sum(w, axis=-1)
    weighted = jnp.sum(w * s, axis=-1) / jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, weighted, jnp.mean(s, axis=-1))


def _log_sech(psi):
    """$\\log\\operatorname{sech}\\psi$, finite for any finite psi."""
    x = jnp.abs(psi)
    return jnp.log(2.0) - x - jnp.log1p(jnp.exp(-2.0 * x))


def scaled_alignment_rate(
    model: AbstractReducedModel, a: Float[Array, " m"], psi: Float[Array, " m"], *more
):
    r"""$\rho = \dot\kappa\,e^{-2\ell_*}$ (see the module docstring) at $(a, s = \tanh\psi)$
    and the model's further coordinates `more`, if any.

    $s_i - \kappa = \sum_j w_j (s_i - s_j)$ and $s_i - s_j = \sinh(\psi_i - \psi_j)
    \operatorname{sech}\psi_i \operatorname{sech}\psi_j$, so every term carries sech factors
    that are scaled by $e^{-2\ell_*}$ in logarithms before they are formed."""
    da, g, *_ = model.vector_field(None, (a, psi, *more), None)
    ell = _log_sech(psi)
    top = jnp.max(ell)
    absa = jnp.abs(a)
    total = jnp.sum(absa)
    safe = jnp.where(total > 0, total, 1.0)
    w = jnp.where(total > 0, absa / safe, 1.0 / a.shape[-1])
    fast = jnp.sum(w * jnp.exp(2.0 * (ell - top)) * g)
    diff = psi[:, None] - psi[None, :]
    pair = ell[:, None] + ell[None, :] - 2.0 * top
    sinh_scaled = 0.5 * (jnp.exp(pair + diff) - jnp.exp(pair - diff))
    slow = jnp.sum(jnp.sign(a) * da * (sinh_scaled @ w)) / safe
    return fast + jnp.where(total > 0, slow, 0.0)


def alignment_rate(model: AbstractReducedModel, a: Float[Array, " m"], s: Float[Array, " m"]):
    """$\\dot\\kappa$ in the original coordinates (underflows to zero at $|s_i| = 1$; use
    `scaled_alignment_rate` for its sign there)."""
    return jax.jvp(alignment, (a, s), model.velocity(a, s))[1]


def resolution_of(dtype: str | None) -> float:
    """The resolution of $1 - s$ of a network with weights in `dtype`: its unit roundoff $u$
    (`fsjax._model.corrections.unit_roundoff`; a stored $1 - s$ is a multiple of the spacing
    of the floats just below 1, and below $u/2$ it is 0); 0 for None, the plain flow, which
    resolves everything."""
    return 0.0 if dtype is None else unit_roundoff(dtype)


def _gap(a: Float[Array, " m"], psi: Float[Array, " m"]) -> Float[Array, ""]:
    r"""$1 - \kappa = \sum_i w_i\,(1 - \tanh\psi_i)$ with $1 - \tanh\psi =
    2/(1 + e^{2\psi})$: no cancellation however close to 1 the alignments are."""
    absa = jnp.abs(a)
    total = jnp.sum(absa)
    w = jnp.where(total > 0, absa / jnp.where(total > 0, total, 1.0), 1.0 / a.shape[-1])
    return jnp.sum(w * 2.0 * jax.nn.sigmoid(-2.0 * psi))


def onset_indicator(model: AbstractReducedModel, a, psi, *more, resolution: float = 0.0):
    r"""Positive before the onset, negative after: $\rho$ (`scaled_alignment_rate`), or with
    a `resolution` $r > 0$, $\max(\rho, r - (1 - \kappa))$ (module docstring)."""
    rate = scaled_alignment_rate(model, a, psi, *more)
    if resolution > 0:
        return jnp.maximum(rate, resolution - _gap(a, psi))
    return rate


def _event_solve(model, a0, s0, cond, *, t_final, solver, rtol, atol, max_steps, adjoint):
    """The solve from (a0, s0) stopped at the first + to - sign change of `cond(y)`, located by
    a diffrax event and an optimistix Newton root find on the step's dense output: (time,
    state there, whether the event occurred)."""
    # The root tolerance sits below the step controller's, so that locating the event never
    # limits the accuracy of the time.
    event = diffrax.Event(
        lambda t, y, args, **kwargs: cond(y),
        root_finder=optx.Newton(rtol=rtol * 1e-2, atol=atol * 1e-2),
        direction=False,
    )
    sol = integrate(
        model,
        a0,
        s0,
        t1=t_final,
        saveat=diffrax.SaveAt(t1=True),
        solver=solver,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        adjoint=adjoint,
        event=event,
    )
    occurred = (sol.result == diffrax.RESULTS.event_occurred) & sol.event_mask
    return sol.ts[-1], jax.tree.map(lambda x: x[-1], sol.ys), occurred


@eqx.filter_jit
def onset_time(
    model: AbstractReducedModel,
    a0: Float[ArrayLike, " m"],
    s0: Float[ArrayLike, " m"],
    *,
    t_final: float,
    solver: diffrax.AbstractSolver,
    rtol: float,
    atol: float,
    max_steps: int = 200_000,
    adjoint: diffrax.AbstractAdjoint | None = None,
    resolution: float = 0.0,
) -> Float[Array, ""]:
    r"""`t_onset`: the first + to - sign change of $\dot\kappa$ in (0, `t_final`] (with a
    `resolution` $r > 0$, of `onset_indicator`: the alignment is falling and $1 - \kappa > r$),
    located by a diffrax event and an optimistix Newton root find on the step's dense output;
    NaN when there is none, when the crossing is a rounding flip at a converged state (its rate
    of change is below `GRID_NOISE` relative to the initial rate, per unit log time) or the
    solve failed. Pure: jit, vmap and differentiate it (the derivative of the event time comes
    from implicit differentiation of the root find). A rounding flip ends the search: a
    converged state has no later peak."""
    rate = lambda y: onset_indicator(model, *y, resolution=resolution)  # noqa: E731
    t_on, y_on, occurred = _event_solve(
        model,
        a0,
        s0,
        rate,
        t_final=t_final,
        solver=solver,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        adjoint=adjoint,
    )
    rate_dot = jax.jvp(rate, (y_on,), (model.vector_field(t_on, y_on, None),))[1]
    # A genuine peak has rate' * t_on of the order of the rates themselves; at a converged
    # state the rate is zero up to rounding and its sign flips are not peaks.
    y0 = model.initial_state(a0, s0)
    genuine = -rate_dot * t_on > GRID_NOISE * jnp.abs(rate(y0))
    return jnp.where(occurred & genuine, t_on, jnp.nan)


@eqx.filter_jit
def exit_event_time(
    model: AbstractReducedModel,
    a0: Float[ArrayLike, " m"],
    s0: Float[ArrayLike, " m"],
    *,
    t_final: float,
    solver: diffrax.AbstractSolver,
    rtol: float,
    atol: float,
    max_steps: int = 200_000,
    adjoint: diffrax.AbstractAdjoint | None = None,
    level: float = EXIT_LEVEL,
) -> Float[Array, ""]:
    r"""`t_exit`: the first time in (0, `t_final`] at which $\kappa$ falls below `level` (a +
    to - sign change of $\kappa -$ `level`, so after the alignment has been above it: after
    the peak), located like `onset_time`'s event; NaN when there is none or the solve failed.
    Pure: jit, vmap and differentiate it. `exit_time` is the same time on a save grid."""

    def above(y):
        a, psi, *_ = y
        return (1.0 - level) - _gap(a, psi)  # kappa - level, without cancellation near 1

    t_exit, _, occurred = _event_solve(
        model,
        a0,
        s0,
        above,
        t_final=t_final,
        solver=solver,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        adjoint=adjoint,
    )
    return jnp.where(occurred, t_exit, jnp.nan)


def event_times(
    model: AbstractReducedModel,
    a0: Float[ArrayLike, " m"],
    s0: Float[ArrayLike, " m"],
    settings: SolverSettings,
    *,
    resolution: float = 0.0,
    exit_level: float = EXIT_LEVEL,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """(`t_onset`, `t_exit`) of the solve from (a0, s0) with `settings`, each located by its
    event (`onset_time` at `resolution`, `exit_event_time` at `exit_level`) up to the settings'
    final time."""
    options = dict(settings.options, t_final=settings.t_final, adjoint=adjoint)
    t_onset = onset_time(model, a0, s0, resolution=resolution, **options)
    return t_onset, exit_event_time(model, a0, s0, level=exit_level, **options)


def _fit(logt, logy, mask):
    """Weighted least squares slope of logy on logt over `mask`; (slope, r2)."""
    w = mask.astype(logt.dtype)
    n = jnp.maximum(jnp.sum(w), 1.0)
    tm = jnp.sum(w * logt) / n
    ym = jnp.sum(w * logy) / n
    dt, dy = (logt - tm) * w, (logy - ym) * w
    sxx, sxy, syy = jnp.sum(dt * dt), jnp.sum(dt * dy), jnp.sum(dy * dy)
    slope = sxy / jnp.where(sxx > 0, sxx, jnp.nan)
    res = jnp.sum((dy - slope * dt) ** 2)
    r2 = jnp.where(syy > 0, 1.0 - res / jnp.where(syy > 0, syy, 1.0), 1.0)
    return slope, r2


def _power_law(logt, logy, window):
    slope, r2 = _fit(logt, logy, window)
    mid = 0.5 * (jnp.min(jnp.where(window, logt, jnp.inf)) + logt[-1])
    first, _ = _fit(logt, logy, window & (logt <= mid))
    second, _ = _fit(logt, logy, window & (logt >= mid))
    return slope, r2, second - first


def grid_onset(
    model: AbstractReducedModel, traj: Trajectory, resolution: float = 0.0
) -> Float[Array, ""]:
    r"""`t_onset` from the save grid alone: the first + to - change of the sign of
    $\dot\kappa$ (of `onset_indicator` with a `resolution`; evaluated exactly from the vector
    field at the saved states), refined by linear interpolation; NaN where there is none. Rates
    within `GRID_NOISE` of the largest saved rate count as zero, so that rounding at a converged
    state (where the rate is zero up to float64 noise) is not read as a peak. Accurate to the
    grid spacing only: `onset_time` locates the onset to solver tolerance."""
    s = jnp.clip(traj.s, -1.0 + 1e-16, 1.0 - 1e-16)
    rate = jax.vmap(lambda *y: onset_indicator(model, *y, resolution=resolution))(
        traj.a, jnp.arctanh(s), *traj.more
    )
    floor = GRID_NOISE * jnp.max(jnp.abs(jnp.where(jnp.isfinite(rate), rate, 0.0)))
    sign = jnp.where(rate > floor, 1, jnp.where(rate < -floor, -1, 0))

    def last_positive(carry, x):
        last_sign, last_i = carry
        i, sg = x
        crossed = (last_sign == 1) & (sg == -1)
        new = (jnp.where(sg != 0, sg, last_sign), jnp.where(sg == 1, i, last_i))
        return new, (crossed, last_i)

    idx = jnp.arange(rate.shape[0])
    _, (crossed, before) = jax.lax.scan(last_positive, (0, 0), (idx, sign))
    j = jnp.argmax(crossed)
    i = before[j]
    frac = rate[i] / (rate[i] - rate[j])
    t = traj.ts[i] + frac * (traj.ts[j] - traj.ts[i])
    return jnp.where(jnp.any(crossed), t, jnp.nan)


def exit_time(
    ts: Float[Array, " n"], kappa: Float[Array, " n"], level: float = EXIT_LEVEL
) -> Float[Array, ""]:
    """The exit from the boundary on a save grid: the first time after the peak of `kappa` at
    which it falls below `level`, by linear interpolation between saves. NaN when the peak
    stays below `level` (the trajectory never reached the boundary) or `kappa` never falls
    below it afterwards. Accurate to the grid spacing: on log-spaced records late saves are
    far apart, so time exits on a uniform grid (`network.record_spacing: uniform`)."""
    ts, kappa = jnp.asarray(ts), jnp.asarray(kappa)
    good = jnp.isfinite(kappa)
    i_max = jnp.argmax(jnp.where(good, kappa, -jnp.inf))
    below = (jnp.arange(kappa.shape[0]) > i_max) & good & (kappa < level)
    j = jnp.argmax(below)
    i = jnp.maximum(j - 1, 0)
    t = ts[i] + (level - kappa[i]) * (ts[j] - ts[i]) / (kappa[j] - kappa[i])
    return jnp.where(jnp.any(below) & (kappa[i_max] >= level), t, jnp.nan)


def diagnose(
    model: AbstractReducedModel,
    traj: Trajectory,
    *,
    t_onset: Float[ArrayLike, ""] | None = None,
    t_exit: Float[ArrayLike, ""] | None = None,
    fit_decades: float = FIT_DECADES,
    resolution: float = 0.0,
    exit_level: float = EXIT_LEVEL,
) -> dict[str, Array]:
    """Every diagnostic in `DIAGNOSTIC_NAMES` as a scalar array (pure; jit and vmap it).

    `t_onset` and `t_exit` are taken as given (from `onset_time` and `exit_event_time`, to
    solver tolerance) or, when None, located on the save grid by `grid_onset` (at
    `resolution`) and `exit_time` (at `exit_level`). The power-law fits use the saved times in
    `[t_final * 10**-fit_decades, t_final]`."""
    kappa = alignment(traj.a, traj.s)
    finite = jnp.all(jnp.isfinite(kappa)) & (traj.status == RESULTS.successful)
    i_max = jnp.argmax(jnp.where(jnp.isfinite(kappa), kappa, -jnp.inf))
    kappa_max = kappa[i_max]
    kappa_final = kappa[-1]
    unlearning = kappa_max - kappa_final
    logt = jnp.log(traj.ts)
    window = logt >= logt[-1] - fit_decades * jnp.log(10.0)
    mean_a = jnp.mean(jnp.abs(traj.a), axis=-1)
    exponent_a, r2_a, drift_a = _power_law(logt, jnp.log(mean_a), window)
    exponent_s, r2_s, drift_s = _power_law(logt, jnp.log(jnp.abs(kappa)), window)
    if t_onset is None:
        t_onset = grid_onset(model, traj, resolution)
    if t_exit is None:
        t_exit = exit_time(traj.ts, kappa, exit_level)
    regime = jnp.where(
        unlearning <= NONE_FRACTION * jnp.abs(kappa_max),
        0,
        jnp.where(exponent_s <= COMPLETE_EXPONENT, 2, 1),
    )
    nan = jnp.asarray(jnp.nan)
    out = {
        "kappa_max": kappa_max,
        "t_max": traj.ts[i_max],
        "t_onset": jnp.asarray(t_onset, dtype=float),
        "t_exit": jnp.asarray(t_exit, dtype=float),
        "kappa_final": kappa_final,
        "unlearning": unlearning,
        "regime": jnp.where(finite, regime, -1).astype(jnp.int32),
        "exponent_a": exponent_a,
        "exponent_s": exponent_s,
        "fit_r2_a": r2_a,
        "fit_r2_s": r2_s,
        "drift_a": drift_a,
        "drift_s": drift_s,
    }
    return {k: v if k == "regime" else jnp.where(finite, v, nan) for k, v in out.items()}


def with_diagnostics(ds, diagnostics: dict[str, Array]):
    """Attach scalar diagnostics to a one-trajectory dataset, naming the regime codes."""
    out = ds.assign({k: ((), float(v)) for k, v in diagnostics.items() if k != "regime"})
    out["regime"] = ((), int(diagnostics["regime"]))
    out["regime"].attrs["meaning"] = ", ".join(f"{k}: {v}" for k, v in REGIMES.items())
    for name, meaning in MEANINGS.items():
        out[name].attrs["meaning"] = meaning
    return out
