r"""`sensitivity`: the cost of a gradient of the onset of unlearning against its forward solve.

`t_onset(c_3, a_0, \varepsilon)` is `fsjax.onset_time` on tanh, $c = (0, 1, 0, c_3)$, slow
second layer, one particle from $s_0 = 0.01$ (THEORY.md section 7's case at eps = 0.05). The
forward pass is the event-terminated solve with each method of the plan (`--methods`); the
gradient is `jax.grad` through it (reverse mode: diffrax's checkpointed adjoint through the
solve and implicit differentiation of the event's root find), all three partial derivatives
in one pass, at one point and vmapped over points, and beside it `jax.jacfwd` with
`diffrax.ForwardMode()` (forward mode: one tangent per parameter carried through the solve).
The adjoint's checkpoint count sets the recomputation: diffrax's default sizes it from
`max_steps`; a fixed count near the number of steps taken is compared. Central finite
differences check the gradient. configs/sensitivity.yaml through `fsjax._analysis.sensitivity`
adds the 21-parameter gradient of t_onset and the Jacobian of all four quantities in reverse
and in forward mode (`fsjax._analysis.sensitivity.jacobian` picks the latter there), at the
config's tolerances with each method. The same config standing for a network (`NETWORK`: the
boundary floor on, whose second-layer spread is one more solve) adds the gradient of `t_exit`
and the Jacobian with respect to its 21 parameters and the network's lr, batch and dim (24),
in forward mode, against that config's forward pass: the issue's bar is 5x up to 48
parameters.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

import fsjax
from fsjax import hermite
from fsjax._analysis.sensitivity import QUANTITIES

from . import _harness as h, tools

S0 = 0.01
POINT = (0.3, 0.5, 0.05)  # (c3, a0, eps)
ADJOINTS = {
    "default": None,
    "checkpoints=64": diffrax.RecursiveCheckpointAdjoint(checkpoints=64),
}
CONFIG = Path(__file__).parents[1] / "configs/sensitivity.yaml"
# The network the `network` case's flow stands for (docs/network.md's n = 128, d = 64).
NETWORK = {"width": 128, "dim": 64, "batch": 2048, "lr": 0.05, "dtype": "float32"}


@dataclasses.dataclass(frozen=True)
class Plan:
    methods: tuple[str, ...] = tools.STIFF
    adjoints: tuple[str, ...] = tuple(ADJOINTS)
    batch: int = 64  # points of the vmapped case (0: none)
    config: bool = True  # the configs/sensitivity.yaml case
    network: bool = True  # the same config standing for a network
    finite_differences: bool = True
    repeats: int = 12


QUICK = Plan(
    methods=("rodas5p",),
    adjoints=("default",),
    batch=0,
    config=False,
    network=False,
    finite_differences=False,
    repeats=4,
)


def onset(params, *, method: str = "rodas5p", rtol: float = 1e-8, adjoint=None):
    """t_onset at params = (c3, a0, eps), solved with `method`."""
    mu = jnp.asarray(hermite.coefficients("tanh", 16))
    c3, a0, eps = params
    target = jnp.zeros_like(mu).at[1].set(1.0).at[3].set(c3)
    rate_a, rate_w = fsjax.layer_rates("second_layer", eps)
    model = fsjax.MeanField(target, mu, 0.0, rate_a, rate_w)
    atol = rtol * 1e-2
    return fsjax.onset_time(
        model,
        a0[None],
        jnp.array([S0]),
        t_final=1e4 / eps,
        solver=fsjax.solvers.make_solver(method, rtol, atol),
        rtol=rtol,
        atol=atol,
        adjoint=adjoint,
    )


def finite_difference_error(grad, method: str, h: float = 1e-5) -> float:
    """Largest relative difference between `grad` at POINT and central differences."""
    x = jnp.asarray(POINT)
    g = grad(x)
    f = jax.jit(functools.partial(onset, method=method))
    fd = jnp.stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in jnp.eye(3)])
    return float(jnp.max(jnp.abs(g - fd) / jnp.abs(fd)))


def pair(case: str, fns: dict, args, repeats: int, count: int, unit: str, setting=None):
    """Rows of a forward function (the first of `fns`) and the others, each with its ratio of
    median times to the forward's."""
    rows = []
    setting = setting or {}
    for name, fn in fns.items():
        h.log(f"sensitivity {case}: {name} {setting}")
        row, _ = h.timed_row(
            "sensitivity",
            case,
            name,
            lambda fn=fn: jax.block_until_ready(fn(*args)),
            repeats,
            count=count,
            unit=unit,
            setting=setting,
        )
        rows.append(row)
    for row in rows[1:]:
        row.ratio = row.timing.median / rows[0].timing.median
        row.ratio_of = "median time over the forward's"
    return rows


def run(plan: Plan) -> list[h.Row]:
    rows = []
    x = jnp.asarray(POINT)
    for method in plan.methods:
        for name in plan.adjoints:
            fwd = jax.jit(functools.partial(onset, method=method, adjoint=ADJOINTS[name]))
            grad = jax.jit(jax.grad(fwd))
            case = f"t_onset c3=0.3 a0=0.5 eps=0.05, adjoint {name}"
            fns = {"forward onset_time": fwd, "grad onset_time (3 params)": grad}
            if ADJOINTS[name] is None:  # forward mode has no checkpoints to vary
                forward_mode = functools.partial(
                    onset, method=method, adjoint=diffrax.ForwardMode()
                )
                fns["grad onset_time (3 params), forward mode"] = jax.jit(jax.jacfwd(forward_mode))
            new = pair(case, fns, (x,), plan.repeats, 1, "calls/s", {"method": method})
            new[0].extra["t_onset"] = float(fwd(x))
            if plan.finite_differences and ADJOINTS[name] is None:
                for row, fn in zip(new[1:], list(fns.values())[1:], strict=True):
                    row.error = finite_difference_error(fn, method)
                    row.note = "error: max relative difference to central differences"
            rows += new
    if plan.config:
        from fsjax import gradients, parameters_from, quantities

        params, config_setup = parameters_from(fsjax.load_config(CONFIG))
        settings = config_setup.settings
        forward_mode = diffrax.ForwardMode()
        fns = {
            "forward quantities()": quantities,
            "grad t_onset (21 params)": eqx.filter_jit(jax.grad(lambda p, s: quantities(p, s)[0])),
            "grad t_onset (21 params), forward mode": eqx.filter_jit(
                jax.jacfwd(lambda p, s: quantities(p, s, forward_mode)[0])
            ),
            "jacobian of all four (21 params)": eqx.filter_jit(jax.jacrev(quantities)),
            "jacobian of all four (21 params), forward mode = gradients()": eqx.filter_jit(
                gradients
            ),
        }
        case = "configs/sensitivity.yaml (rtol 1e-11; forward = t_onset solve + save-grid solve)"
        for method in plan.methods:  # the config's tolerances, each method in turn
            solver = fsjax.solvers.make_solver(method, settings.rtol, settings.atol)
            setup = eqx.tree_at(lambda s: s.settings.solver, config_setup, solver)
            setting = {"method": method}
            rows += pair(case, fns, (params, setup), plan.repeats, 1, "calls/s", setting)
    if plan.network:
        from fsjax import gradients, parameters_from, quantities

        data = fsjax.config_dict(fsjax.load_config(CONFIG)) | {"network": NETWORK}
        params, setup = parameters_from(fsjax.load_config(data))
        exit_index = QUANTITIES.index("t_exit")
        forward_mode = diffrax.ForwardMode()
        fns = {
            "forward quantities()": quantities,
            "grad t_exit (24 params), forward mode": eqx.filter_jit(
                jax.jacfwd(lambda p, s: quantities(p, s, forward_mode)[exit_index])
            ),
            "jacobian of all four (24 params), forward mode = gradients()": eqx.filter_jit(
                gradients
            ),
        }
        case = (
            "configs/sensitivity.yaml standing for an n = 128, d = 64 float32 network "
            "(boundary floor; forward = spread, t_onset, t_exit and save-grid solves)"
        )
        rows += pair(case, fns, (params, setup), plan.repeats, 1, "calls/s", {"method": "rodas5p"})
    if plan.batch:
        c3 = jnp.linspace(0.1, 0.5, plan.batch)
        a0 = jnp.linspace(0.3, 0.8, plan.batch)[::-1]
        pts = jnp.stack([c3, a0, jnp.full(plan.batch, POINT[2])], axis=1)
        case = f"t_onset vmapped over {plan.batch} points, adjoint default"
        for method in plan.methods:
            one = functools.partial(onset, method=method)
            fns = {
                "forward onset_time": jax.jit(jax.vmap(one)),
                "grad onset_time (3 params)": jax.jit(jax.vmap(jax.grad(one))),
            }
            repeats = max(1, plan.repeats // 4)
            rows += pair(case, fns, (pts,), repeats, plan.batch, "points/s", {"method": method})
    return rows


TARGETS = (
    h.Target(
        "gradient of t_onset",
        "the forward solve's time",
        lambda r: r.section == "sensitivity" and r.tool.startswith("grad"),
        5.0,
        at_least=False,
    ),
)
SECTION = h.Section("sensitivity", __doc__.split("\n\n")[0], run, Plan(), QUICK, TARGETS)
