r"""`kind: compare`: the network under SGD against the reduced flow it claims to follow.

The reduced system starts at the network's initial order parameters: with `model.particles`
= 1 the 2-D system at the means $(\bar a, \bar s)$ of the network at step 0, with
`model.particles` = `network.width` one particle per neuron at its own $(a_j, s_j)$. It is
saved at the network's record times, and the deviations

$$\max_{t \ge t_\min} |\bar s_\text{net}(t) - \bar s_\text{mf}(t)|, \qquad
  \max_{t \ge t_\min} |\bar a_\text{net}(t) - \bar a_\text{mf}(t)|$$

are stored as `max_abs_dev_s` and `max_abs_dev_a`.

The reduced model (`fsjax._model.build.build_model`) carries the floor the network's rows keep
under on the boundary s = 1 (`boundary_floor`, on by default: without it the flow stays on the
boundary far longer than a network can at small eps) and may carry the other finite-size
corrections of `fsjax._model.corrections` (`finite_width`, `finite_batch`); `docs/network.md`
reports how each fares against networks.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._model.build import build_model
from .._solve.settings import SolverSettings
from .._train.sgd import train_network
from .trajectory import trajectory_dataset


def _deviation(x, y, mask) -> float:
    return float(np.nanmax(np.abs(np.asarray(x) - np.asarray(y))[mask]))


def run_compare(config, *, workdir=None, resume=False) -> xr.Dataset:
    """Train the network, solve the reduced flow from its initial order parameters at its
    record times, and put both into one dataset with their deviations."""
    return compare_dataset(config, train_network(config, workdir=workdir, resume=resume))


def compare_dataset(config, net: xr.Dataset) -> xr.Dataset:
    """The reduced flow for a trained network's dataset `net` (from `train_network` with the
    same config), merged with it; several reduced variants can share one network run."""
    model = build_model(config)
    a_net, s_net = net["a"].values, net["s"].values
    if config.model.particles == 1:
        a0, s0 = a_net[:1, :].mean(axis=1), s_net[:1, :].mean(axis=1)
    else:
        a0, s0 = a_net[0], s_net[0]
    times = net["time"].values
    traj = SolverSettings.from_config(config.solver).solve(model, a0, s0, ts=times)
    reduced = trajectory_dataset(model, traj)

    ds = net.rename({k: f"{k}_net" for k in net.data_vars if k not in ("target", "mu", "step")})
    for name in ("a", "s", "risk", "risk_k"):
        ds[f"{name}_mf"] = reduced[name]
    ds["s_mean_mf"] = reduced["s"].mean("particle")
    ds["a_mean_mf"] = reduced["a"].mean("particle")
    ds["status_mf"] = reduced["status"]
    mask = times >= config.t_min
    ds["max_abs_dev_s"] = _deviation(ds["s_mean_net"], ds["s_mean_mf"], mask)
    ds["max_abs_dev_a"] = _deviation(ds["a_mean_net"], ds["a_mean_mf"], mask)
    ds["max_rel_dev_risk"] = float(
        np.nanmax((np.abs(ds["risk_net"] - ds["risk_mf"]) / ds["risk_mf"]).values[mask])
    )
    if config.model.particles > 1:
        ds["max_abs_dev_s_neuron"] = _deviation(s_net, reduced["s"].values, mask)
        ds["max_abs_dev_a_neuron"] = _deviation(a_net, reduced["a"].values, mask)
    ds.attrs["t_min"] = config.t_min
    ds.attrs["status_mf_meaning"] = reduced.attrs["status_meaning"]
    return ds
