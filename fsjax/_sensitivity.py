r"""`kind: sensitivity`: the onset and depth of unlearning and their parameter gradients.

The quantities are `t_onset` (event-located, `fsjax._diagnostics.onset_time`), `kappa_final`
(alignment at `t_final`) and `unlearning` ($\kappa_\text{max} - \kappa_\text{final}$ with the
maximum over the save grid). They are differentiated in reverse mode through diffrax (the
solve by `RecursiveCheckpointAdjoint`; the event time by optimistix's implicit
differentiation of the root find, i.e. $dt_\text{on}/dp = -(\partial_p \rho)/(\dot\rho)$ at
$t_\text{on}$ with the state sensitivities carried by the solve) with respect to every target
coefficient $c_k$, `init.a`, `init.s`, `epsilon` and every activation coefficient $\mu_k$
(the activation is then the Hermite series of its coefficients). A single `init` value moves
all particles together; one per particle gives one parameter per particle. With `fd: true`
central differences $(q(p + h) - q(p - h))/2h$ are written beside them, with a relative step
$h = $ `fd_step` $\cdot|p|$ (`fd_step` itself where $p = 0$): $t_\text{on}$ scales like
$1/\varepsilon$ and $\log(1/s_0)$, so absolute steps are too coarse for small $\varepsilon$
and too fine (solver noise over $2h$) for $s_0$. Where the quantity is NaN (no peak: see
`onset_time`) so are its derivatives.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float

from . import hermite
from ._config import SENSITIVITY_QUANTITIES, SensitivityConfig, SolverConfig
from ._diagnostics import alignment, onset_time
from ._reduced import MeanField, layer_rates
from ._solve import make_solver, save_times, solve


class Parameters(eqx.Module):
    """The differentiable parameters of one reduced run (every field an array)."""

    target: Float[Array, " L"]
    mu: Float[Array, " L"]
    init_a: Float[Array, " na"]
    init_s: Float[Array, " ns"]
    epsilon: Float[Array, ""]


class Setup(eqx.Module):
    """Everything held fixed: which layer is slow, noise, particle count, the save grid and
    the integrator."""

    slow: str = eqx.field(static=True)
    particles: int = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    method: str = eqx.field(static=True)
    noise: Float[Array, ""]
    ts: Float[Array, " T"]


def parameters_from(config: SensitivityConfig) -> tuple[Parameters, Setup]:
    model, solver = config.model, config.solver
    order = max(model.hermite_order, len(model.target) - 1)
    mu = hermite.coefficients(model.activation, order)
    target = np.pad(np.asarray(model.target), (0, len(mu) - len(model.target)))
    params = Parameters(
        target=jnp.asarray(target),
        mu=jnp.asarray(mu),
        init_a=jnp.asarray(model.init.a),
        init_s=jnp.asarray(model.init.s),
        epsilon=jnp.asarray(config.dynamics.epsilon),
    )
    setup = _setup(config.dynamics.slow, model.particles, model.noise, solver)
    return params, setup


def _setup(slow: str, particles: int, noise: float, solver: SolverConfig) -> Setup:
    return Setup(
        slow=slow,
        particles=particles,
        max_steps=solver.max_steps,
        rtol=solver.rtol,
        atol=solver.atol,
        method=solver.method,
        noise=jnp.asarray(noise),
        ts=jnp.asarray(save_times(solver.t_first, solver.t_final, solver.n_save)),
    )


@eqx.filter_jit
def quantities(params: Parameters, setup: Setup) -> Float[Array, " 3"]:
    """(`t_onset`, `kappa_final`, `unlearning`) as one array, in `SENSITIVITY_QUANTITIES`
    order; pure, so `jax.jacrev` gives every gradient at once."""
    rate_a, rate_w = layer_rates(setup.slow, params.epsilon)
    model = MeanField(params.target, params.mu, setup.noise, rate_a, rate_w)
    a0 = jnp.broadcast_to(params.init_a, (setup.particles,))
    s0 = jnp.broadcast_to(params.init_s, (setup.particles,))
    solver = make_solver(setup.method, setup.rtol, setup.atol)
    kwargs = dict(solver=solver, rtol=setup.rtol, atol=setup.atol, max_steps=setup.max_steps)
    t_on = onset_time(model, a0, s0, t_final=setup.ts[-1], **kwargs)
    traj = solve(model, a0, s0, setup.ts, **kwargs)
    kappa = alignment(traj.a, traj.s)
    kappa_final = kappa[-1]
    return jnp.stack([t_on, kappa_final, jnp.max(kappa) - kappa_final])


def gradients(params: Parameters, setup: Setup) -> Parameters:
    """d(quantities)/d(params): each field gains a leading axis of length 3."""
    return jax.jacrev(quantities)(params, setup)


def _labels(params: Parameters, selected) -> list[tuple[str, str, int | None]]:
    """(label, field, index) of every scalar parameter in the selected groups."""
    groups = {
        "target": ("target", "target[{}]"),
        "mu": ("mu", "mu[{}]"),
        "init.a": ("init_a", "init.a[{}]"),
        "init.s": ("init_s", "init.s[{}]"),
        "epsilon": ("epsilon", "epsilon"),
    }
    out = []
    for name in selected:
        field, fmt = groups[name]
        size = getattr(params, field).size
        if field == "epsilon":
            out.append(("epsilon", field, None))
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
    """Central differences of `quantities`: array (3, len(labels))."""
    out = np.empty((3, len(labels)))
    for j, (_, field, index) in enumerate(labels):
        value = abs(float(_component(params, field, index)))
        h = step * (value if value > 0 else 1.0)
        up = quantities(_shifted(params, field, index, h), setup)
        down = quantities(_shifted(params, field, index, -h), setup)
        out[:, j] = np.asarray(up - down) / (2 * h)
    return out


def run_sensitivity(config: SensitivityConfig, *, workdir=None, resume=False) -> xr.Dataset:
    """Values, automatic gradients and (if asked) finite differences as one dataset; short,
    so `workdir` and `resume` are not used."""
    params, setup = parameters_from(config)
    sec = config.sensitivity
    labels = _labels(params, sec.params)
    values = np.asarray(quantities(params, setup))
    grads = gradients(params, setup)
    auto = np.stack([np.asarray(_component(grads, f, i)) for _, f, i in labels], axis=-1)
    auto[~np.isfinite(values)] = np.nan  # a constant NaN has zero derivative; say NaN instead
    fd = finite_differences(params, setup, labels, sec.fd_step) if sec.fd else None
    data = {}
    for q in sec.quantities:
        k = SENSITIVITY_QUANTITIES.index(q)
        data[q] = ((), float(values[k]))
        data[f"grad_{q}"] = (("param",), auto[k])
        if fd is not None:
            data[f"fd_{q}"] = (("param",), fd[k])
    ds = xr.Dataset(data, coords={"param": [label for label, _, _ in labels]})
    if "t_onset" in sec.quantities:
        ds["t_onset"].attrs["meaning"] = (
            "first + to - sign change of the alignment's rate (NaN: none before t_final)"
        )
    return ds


def sensitivity_figures(ds: xr.Dataset, out) -> list:
    """One panel per quantity: automatic derivatives (bars) and finite differences (dots)."""
    from pathlib import Path

    from ._plots import _save, plt

    names = [q for q in SENSITIVITY_QUANTITIES if f"grad_{q}" in ds]
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.6 * len(names)), squeeze=False)
    x = np.arange(ds.sizes["param"])
    for ax, q in zip(axes[:, 0], names, strict=True):
        ax.bar(x, ds[f"grad_{q}"].values, color="tab:blue", label="automatic")
        if f"fd_{q}" in ds:
            ax.plot(x, ds[f"fd_{q}"].values, "o", color="tab:red", ms=3, label="central FD")
        ax.set_yscale("symlog", linthresh=1e-6)
        ax.set_ylabel(f"d {q} / d param")
        ax.set_xticks(x, ds["param"].values, rotation=90, fontsize=7)
        ax.legend(fontsize=8)
    return [_save(fig, Path(out) / "sensitivity.png")]
