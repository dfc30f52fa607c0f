r"""The onset, exit and depth of unlearning as pure functions of the parameters, and their
gradients.

The quantities are `t_onset` (event-located, `fsjax._analysis.diagnostics.onset_time`, at the
resolution of the network the flow stands for), `kappa_final` (alignment at `t_final`),
`unlearning` ($\kappa_\text{max} - \kappa_\text{final}$ with the maximum over the save grid)
and `t_exit` (the exit from the boundary, event-located by `exit_event_time` at the setup's
`exit_level`). They are differentiated through diffrax (the solves in forward or reverse mode,
`jacobian`; the event times by optimistix's implicit differentiation of the root find, i.e.
$dt_\text{on}/dp = -(\partial_p \rho)/(\dot\rho)$ at $t_\text{on}$ with the state
sensitivities carried by the solve) with respect to every target coefficient $c_k$, `init.a`,
`init.s`, `epsilon`, every activation coefficient $\mu_k$ (the activation is then the Hermite
series of its coefficients) and, where the flow stands for a network, that network's `lr`,
`batch` and `dim`: continuous parameters of its boundary floor (`fsjax._model.corrections`:
the rounding seed $\propto 1/\eta$, the spread seed $\propto \eta d/B$ and the second layer's
spread from rows started at $s \sim \mathcal N(0, 1/d)$). A single `init` value moves all
particles together; one per particle gives one parameter per particle. With `fd: true`
central differences $(q(p + h) - q(p - h))/2h$ are written beside them, with a relative step
$h = $ `fd_step` $\cdot|p|$ (`fd_step` itself where $p = 0$): $t_\text{on}$ scales like
$1/\varepsilon$ and $\log(1/s_0)$, so absolute steps are too coarse for small $\varepsilon$
and too fine (solver noise over $2h$) for $s_0$. Where the quantity is NaN (no peak: see
`onset_time`; no exit) so are its derivatives.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._model.point import Point
from .._solve.settings import SolverSettings
from .._solve.solve import solve
from .diagnostics import EXIT_LEVEL, alignment, event_times, resolution_of

# The order of the quantities in the array `quantities` returns.
QUANTITIES = ("t_onset", "kappa_final", "unlearning", "t_exit")
# The parameters of the network a flow stands for that its floor depends on continuously.
NETWORK_PARAMS = ("lr", "batch", "dim")
NETWORK_ADVICE = (
    "a parameter of the network the flow stands for; add a network: section (width, dim, "
    "batch, lr, dtype)"
)
# `jacobian` runs in forward mode up to this many scalar parameters, in reverse mode beyond.
FORWARD_MAX = 48


class Parameters(eqx.Module):
    """The differentiable parameters of one reduced run: the arrays of its `Point` that the
    quantities are differentiated by (`init_a`, `init_s` are the point's `a`, `s`; `lr`,
    `batch`, `dim` those of the network it stands for, None without one)."""

    target: Float[Array, " L"]
    mu: Float[Array, " L"]
    init_a: Float[Array, " na"]
    init_s: Float[Array, " ns"]
    epsilon: Float[Array, ""]
    lr: Float[Array, ""] | None = None
    batch: Float[Array, ""] | None = None
    dim: Float[Array, ""] | None = None

    @classmethod
    def of(cls, point: Point) -> Parameters:
        network = [getattr(point, f) for f in NETWORK_PARAMS]
        return cls(point.target, point.mu, point.a, point.s, point.epsilon, *network)

    def on(self, point: Point) -> Point:
        """`point` with these parameters in place of its own."""
        fields = lambda p: (p.target, p.mu, p.a, p.s, p.epsilon)  # noqa: E731
        values = (self.target, self.mu, self.init_a, self.init_s, self.epsilon)
        point = eqx.tree_at(fields, point, values)
        if self.lr is None:
            return point
        network = lambda p: tuple(getattr(p, f) for f in NETWORK_PARAMS)  # noqa: E731
        return eqx.tree_at(network, point, network(self))


class Setup(eqx.Module):
    """Everything held fixed: the point's other fields (slow layer, noise, particle count),
    the integrator with its save grid, and the alignment the exit is timed at."""

    point: Point
    settings: SolverSettings
    exit_level: float = eqx.field(default=EXIT_LEVEL, static=True)


class _SolvesWith(eqx.Module):
    """`SolverSettings` whose `solve` differentiates by `adjoint`: the point's floor solves
    its second layer's spread with it, and forward-mode differentiation needs every solve in
    `diffrax.ForwardMode`."""

    settings: SolverSettings
    adjoint: diffrax.AbstractAdjoint | None

    def solve(self, model, a0, s0, ts=None):
        ts = self.settings.ts if ts is None else ts
        return solve(model, a0, s0, ts, **self.settings.options, adjoint=self.adjoint)


def point_quantities(
    point: Point,
    settings: SolverSettings,
    adjoint: diffrax.AbstractAdjoint | None = None,
    exit_level: float = EXIT_LEVEL,
) -> Float[Array, " 4"]:
    """The `QUANTITIES` of `point` solved with `settings`; the onset at the resolution of the
    network the point stands for (`resolution_of` of its floor's dtype; none for the plain
    flow)."""
    if point.settings is not None:
        point = eqx.tree_at(lambda p: p.settings, point, _SolvesWith(point.settings, adjoint))
    model = point.model()
    a0, s0 = point.initial()
    t_on, t_exit = event_times(
        model,
        a0,
        s0,
        settings,
        resolution=resolution_of(point.floor_dtype),
        exit_level=exit_level,
        adjoint=adjoint,
    )
    traj = solve(model, a0, s0, settings.ts, **settings.options, adjoint=adjoint)
    kappa = alignment(traj.a, traj.s)
    kappa_final = kappa[-1]
    return jnp.stack([t_on, kappa_final, jnp.max(kappa) - kappa_final, t_exit])


@eqx.filter_jit
def quantities(
    params: Parameters, setup: Setup, adjoint: diffrax.AbstractAdjoint | None = None
) -> Float[Array, " 4"]:
    """The `QUANTITIES` as one array; pure, so one Jacobian gives every gradient at once.
    `adjoint` is how diffrax differentiates the solves (None: `RecursiveCheckpointAdjoint`,
    for reverse mode; `diffrax.ForwardMode()` for forward mode)."""
    return point_quantities(params.on(setup.point), setup.settings, adjoint, setup.exit_level)


def jacobian(fn, x):
    r"""The Jacobian of `fn(x, adjoint)` with respect to `x` (any pytree of arrays): forward
    mode for at most `FORWARD_MAX` scalars in `x`, reverse mode beyond.

    Both are exact derivatives of the same discrete solves; only the cost differs. Forward
    mode (`jax.jacfwd`, the solves with `diffrax.ForwardMode`) carries $n$ tangents, one per
    parameter, along with the solution in one vectorised pass: no checkpoints and no backward
    sweep, at a cost that grows with $n$ from about that of the solve. Reverse mode
    (`jax.jacrev`, `RecursiveCheckpointAdjoint`) runs one backward sweep per output (four),
    each recomputing steps from checkpoints, at a cost independent of $n$. For Rodas5P each
    tangent also differentiates the step's Jacobian (second derivatives of the field), so its
    cost grows fastest with $n$; Kvaerno5's implicit stages are differentiated by one linear
    solve each, which adds little to its Newton iterations. Measured on
    configs/sensitivity.yaml (benchmarks/RESULTS.md, "Solver-core targets with Rodas5P"):
    at 21 parameters forward mode takes about half the time of reverse mode with Rodas5P and
    less with Kvaerno5; with Rodas5P 63 tangents take about as long as the reverse Jacobian,
    hence the bound of 48."""
    count = sum(jnp.size(leaf) for leaf in jax.tree.leaves(x))
    if count <= FORWARD_MAX:
        return jax.jacfwd(lambda x: fn(x, diffrax.ForwardMode()))(x)
    return jax.jacrev(lambda x: fn(x, None))(x)


def gradients(params: Parameters, setup: Setup) -> Parameters:
    """d(quantities)/d(params): each field gains a leading axis of length 4; forward or
    reverse mode by the parameter count (`jacobian`)."""
    return jacobian(lambda p, adjoint: quantities(p, setup, adjoint), params)


def _labels(params: Parameters, selected) -> list[tuple[str, str, int | None]]:
    """(label, field, index) of every scalar parameter in the selected groups."""
    groups = {
        "target": ("target", "target[{}]"),
        "mu": ("mu", "mu[{}]"),
        "init.a": ("init_a", "init.a[{}]"),
        "init.s": ("init_s", "init.s[{}]"),
        "epsilon": ("epsilon", "epsilon"),
    } | {f"network.{f}": (f, f"network.{f}") for f in NETWORK_PARAMS}
    out = []
    for name in selected:
        field, fmt = groups[name]
        if getattr(params, field) is None:
            raise ValueError(f"{name}: {NETWORK_ADVICE}")
        size = getattr(params, field).size
        if field == "epsilon" or field in NETWORK_PARAMS:
            out.append((name, field, None))
        elif field.startswith("init") and size == 1:
            out.append((name, field, 0))
        else:
            out.extend((fmt.format(i), field, i) for i in range(size))
    return out


def _component(tree: Parameters, field: str, index: int | None) -> Array:
    x = getattr(tree, field)
    return x if index is None else x[..., index]


def _shifted(params: Parameters, field: str, index: int | None, delta: float) -> Parameters:
    x = getattr(params, field)
    new = x + delta if index is None else x.at[index].add(delta)
    return eqx.tree_at(lambda p: getattr(p, field), params, new)


def finite_differences(params: Parameters, setup: Setup, labels, step: float) -> np.ndarray:
    """Central differences of `quantities`: array (len(QUANTITIES), len(labels))."""
    out = np.empty((len(QUANTITIES), len(labels)))
    for j, (_, field, index) in enumerate(labels):
        value = abs(float(_component(params, field, index)))
        h = step * (value if value > 0 else 1.0)
        up = quantities(_shifted(params, field, index, h), setup)
        down = quantities(_shifted(params, field, index, -h), setup)
        out[:, j] = np.asarray(up - down) / (2 * h)
    return out
