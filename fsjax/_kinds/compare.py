r"""`kind: compare`: the network under SGD against the reduced flow it claims to follow.

The reduced system starts at the network's initial order parameters: with `model.particles`
= 1 the 2-D system at the means $(\bar a, \bar s)$ of the network at step 0, with
`model.particles` = `network.width` one particle per neuron at its own $(a_j, s_j)$. It is
saved at the network's record times, and the deviations

$$\max_{t \ge t_\min} |\bar s_\text{net}(t) - \bar s_\text{mf}(t)|, \qquad
  \max_{t \ge t_\min} |\bar a_\text{net}(t) - \bar a_\text{mf}(t)|$$

are stored as `max_abs_dev_s` and `max_abs_dev_a`, and drawn by `compare_figures`.

Neuron by neuron the default flow is the exact overlap flow (`model.flow: overlap`, THEORY.md
section 9), started from the network's own initial overlaps: its rows drawn again from the
seed. With `model.flow: independent` (or a finite-size correction asked for) the reduced model
(`fsjax._point.build_model`) is the particle flow, and carries the floor the network's rows keep
under on the boundary s = 1 (`boundary_floor`, on by default: without it the flow stays on the
boundary far longer than a network can at small eps) and may carry the other finite-size
corrections of `fsjax._model.corrections` (`finite_width`, `finite_batch`); `docs/network.md`
reports how each fares against networks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import jax.numpy as jnp
import numpy as np
import xarray as xr
from pydantic import Field, model_validator

from .._analysis.compare import T_MIN, deviations
from .._config import (
    BOUNDARY_FLOOR,
    DYNAMICS,
    MODEL,
    SOLVER,
    DynamicsConfig,
    ModelConfig,
    NetworkSectionConfig,
    SolverConfig,
    StandsFor,
    _ReducedRun,
)
from .._model.build import init_values
from .._model.network import DTYPES, unit_rows
from .._model.overlap import orthogonal_overlaps
from .._point import point
from .._solve.settings import SolverSettings
from .._train.sgd import init_member, train_network
from ..plots import figure, save
from .base import Kind
from .trajectory import trajectory_dataset


class CompareConfig(_ReducedRun):
    """`kind: compare`: the network and the reduced flow started at its initial order
    parameters (`model.particles` = 1: the means; = `network.width`: neuron by neuron),
    saved at its record times; deviations are measured over t >= `t_min`. `model.flow` picks
    the flow (neuron by neuron the exact overlap flow by default). `finite_width`
    adds the O(1/n) self-interaction, `finite_batch` a finite-batch drift (`theory`: THEORY.md
    section 6; `shared`: noise shared across neurons), `boundary_floor` (on by default) the
    floor the rows keep under on the boundary s = 1 to the reduced model
    (`fsjax._model.corrections`)."""

    kind: Literal["compare"] = Field(
        description="A network under SGD against the reduced flow started at its initial "
        "order parameters."
    )
    model: ModelConfig = Field(description=MODEL)
    dynamics: DynamicsConfig = Field(DynamicsConfig(), description=DYNAMICS)
    network: NetworkSectionConfig = Field(description="The network and how it is trained.")
    solver: SolverConfig = Field(SolverConfig(), description=SOLVER)
    t_min: float = Field(
        T_MIN,
        ge=0,
        description="Deviations between network and reduced flow are measured over t >= t_min.",
    )
    finite_width: bool = Field(
        False,
        description="Add the O(1/n) self-interaction of each neuron to the reduced flow (see "
        "docs/network.md).",
    )
    finite_batch: Literal["none", "theory", "shared"] = Field(
        "none",
        description="Finite-batch drift of the reduced flow: `none`, `theory` (THEORY.md "
        "section 6; does not help) or `shared` (batch noise shared across neurons; see "
        "docs/network.md).",
    )
    boundary_floor: bool = Field(
        True, description=BOUNDARY_FLOOR + " Not used by `model.flow: overlap`."
    )

    def reduced_flow(self) -> str:
        """`model.flow`; unset, `overlap` when following the network neuron by neuron with no
        finite-size correction asked for."""
        if self.model.flow is not None:
            return self.model.flow
        plain = not self.finite_width and self.finite_batch == "none"
        return "overlap" if plain and self.model.particles == self.network.width else "independent"

    def stands_for(self) -> StandsFor:
        a = float(np.mean(init_values(self.model.init, "a", self.network.width)))
        floor = self.boundary_floor and self.reduced_flow() == "independent"
        return StandsFor(self.network, a, floor, self.finite_width, self.finite_batch)

    @model_validator(mode="after")
    def _particles(self):
        if self.model.particles not in (1, self.network.width):
            raise ValueError(
                f"model.particles = {self.model.particles} must be 1 (compare the means) or "
                f"network.width = {self.network.width} (compare neuron by neuron)"
            )
        return self

    @model_validator(mode="after")
    def _overlap_flow(self):
        if self.model.flow != "overlap":
            return self
        if self.model.particles != self.network.width:
            raise ValueError(
                f"model.flow: overlap follows the network neuron by neuron; set model.particles "
                f"= network.width = {self.network.width}"
            )
        if self.finite_width or self.finite_batch != "none":
            raise ValueError(
                "finite_width, finite_batch: corrections of the independent flow; model.flow: "
                "overlap is exact at any width; unset them or set model.flow: independent"
            )
        return self


def initial_overlaps(config) -> np.ndarray:
    """The packed correlations $P_{ij}(0)$ of the network's rows' parts orthogonal to the
    teacher direction (`fsjax._model.overlap`): the rows and teacher `train_network` starts
    from, drawn again from the seed (`init_member`), in float64 as the records are."""
    cfg, model = config.network, config.model
    teacher, net, _, _ = init_member(
        cfg.seed,
        cfg.width,
        cfg.dim,
        model.target,
        model.noise,
        init_values(model.init, "a", cfg.width),
        model.activation,
        DTYPES[cfg.dtype],
    )
    w = unit_rows(jnp.asarray(net.w, dtype=jnp.float64))
    beta = jnp.asarray(teacher.beta, dtype=jnp.float64)
    return np.asarray(orthogonal_overlaps(w, beta / jnp.linalg.norm(beta)))


def run_compare(config, *, workdir=None, resume=False) -> xr.Dataset:
    """Train the network, solve the reduced flow from its initial order parameters at its
    record times, and put both into one dataset with their deviations."""
    return compare_dataset(config, train_network(config, workdir=workdir, resume=resume))


def compare_dataset(config, net: xr.Dataset) -> xr.Dataset:
    """The reduced flow for a trained network's dataset `net` (from `train_network` with the
    same config), merged with it; several reduced variants can share one network run."""
    p = point(config)
    if p.flow == "overlap":
        p = dataclasses.replace(p, overlaps=initial_overlaps(config))
    model = p.model()
    a_net, s_net = net["a"].values, net["s"].values
    if config.model.particles == 1:
        a0, s0 = a_net[:1, :].mean(axis=1), s_net[:1, :].mean(axis=1)
    else:
        a0, s0 = a_net[0], s_net[0]
    times = net["time"].values
    traj = SolverSettings.from_config(config.solver).solve(model, a0, s0, ts=times)
    reduced = trajectory_dataset(model, traj)

    ds = net.rename({k: f"{k}_net" for k in net.data_vars if k not in ("target", "mu", "step")})
    for name in ("a", "s", "risk", "risk_k", "risk_perp"):
        if name in reduced:
            ds[f"{name}_mf"] = reduced[name]
    ds["s_mean_mf"] = reduced["s"].mean("particle")
    ds["a_mean_mf"] = reduced["a"].mean("particle")
    ds["status_mf"] = reduced["status"]
    mask = times >= config.t_min
    # NaN records (a failed solve's unreached times) are left out, as for the risk below.
    means = [ds[k].values for k in ("s_mean_net", "a_mean_net", "s_mean_mf", "a_mean_mf")]
    dev_s, dev_a = deviations(times, *means, config.t_min, nan_policy="omit")
    ds["max_abs_dev_s"], ds["max_abs_dev_a"] = float(dev_s), float(dev_a)
    ds["max_rel_dev_risk"] = float(
        np.nanmax((np.abs(ds["risk_net"] - ds["risk_mf"]) / ds["risk_mf"]).values[mask])
    )
    if config.model.particles > 1:
        neurons = (s_net, a_net, reduced["s"].values, reduced["a"].values)
        dev_s, dev_a = deviations(times, *neurons, config.t_min, nan_policy="omit")
        ds["max_abs_dev_s_neuron"], ds["max_abs_dev_a_neuron"] = float(dev_s), float(dev_a)
    ds.attrs["t_min"] = config.t_min
    ds.attrs["status_mf_meaning"] = reduced.attrs["status_meaning"]
    return ds


def compare_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """Network (dots) over the reduced flow (lines): mean alignment, mean second layer, risk."""
    out = Path(out)
    t = ds["time"].values[1:]
    fig = figure(figsize=(20, 4))
    axes = fig.subplots(1, 4)
    for ax, name, label in zip(
        axes[:3],
        ("s_mean", "a_mean", "risk"),
        ("mean alignment", "mean second layer", "risk"),
        strict=True,
    ):
        ax.plot(t, ds[f"{name}_mf"].values[1:], "C0", lw=2, label="reduced flow")
        ax.plot(t, ds[f"{name}_net"].values[1:], "C3.", ms=3, label="network")
        ax.set_xscale("log")
        ax.set_xlabel("time t")
        ax.set_ylabel(label)
    axes[2].set_yscale("log")
    axes[0].set_title(
        f"max |dev s| = {float(ds['max_abs_dev_s']):.2g}, "
        f"max |dev a| = {float(ds['max_abs_dev_a']):.2g} (t >= {ds.attrs['t_min']:g})",
        fontsize=9,
    )
    axes[0].legend(fontsize=8)
    # The first three risk components that are not zero, network (dots) over flow (lines), as
    # in seed 002 Fig. 4 (an odd activation and target leave the even ones at rounding level).
    scale = float(np.nanmax(ds["risk_mf"].values))
    shown = [
        k for k in ds["order"].values if np.nanmax(ds["risk_k_mf"].sel(order=k)) > 1e-9 * scale
    ]
    for i, k in enumerate(shown[:3]):
        axes[3].plot(t, ds["risk_k_mf"].sel(order=k).values[1:], f"C{i}", lw=2, label=f"$R_{k}$")
        axes[3].plot(t, ds["risk_k_net"].sel(order=k).values[1:], f"C{i}.", ms=3)
    axes[3].set(xscale="log", yscale="log", xlabel="time t", ylabel="risk components")
    axes[3].legend(fontsize=8)
    return [save(fig, out / "compare.png")]


KIND = Kind(CompareConfig, run_compare, (compare_figures,))
