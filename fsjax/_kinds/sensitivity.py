"""`kind: sensitivity`: the onset, exit and depth of unlearning and their parameter gradients
(automatic, and central finite differences on request) at one point, with or without the
network the flow stands for, and the figure setting the automatic derivatives beside the
finite differences."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr
from pydantic import Field, model_validator

from .._analysis.diagnostics import EXIT_LEVEL, MEANINGS
from .._analysis.sensitivity import (
    NETWORK_ADVICE,
    QUANTITIES,
    _component,
    _labels,
    finite_differences,
    gradients,
    quantities,
)
from .._config import NetworkSizeConfig, _MayStandForNetwork, _Section
from .._point import parameters_from
from ..plots import figure, save
from .base import Kind

PARAMS = ("target", "init.a", "init.s", "epsilon", "mu")
# Parameters of the network the flow stands for: continuous parameters of its boundary floor.
NETWORK_PARAMS = ("network.lr", "network.batch", "network.dim")


class SensitivitySection(_Section):
    """Which quantities to differentiate with respect to which parameters (`mu` are the
    activation's Hermite coefficients); `fd` adds central finite differences with relative
    step `fd_step` (times |p|, or absolute where p = 0) beside the automatic derivatives."""

    quantities: list[Literal[QUANTITIES]] = Field(  # type: ignore[valid-type]
        list(QUANTITIES), description="Quantities to differentiate."
    )
    params: list[Literal[PARAMS + NETWORK_PARAMS]] = Field(  # type: ignore[valid-type]
        list(PARAMS),
        description="Parameter groups to differentiate with respect to (`mu`: the activation's "
        "Hermite coefficients; `network.lr`, `network.batch`, `network.dim`: the network the "
        "flow stands for, as continuous parameters of its boundary floor, which need a "
        "`network:` section).",
    )
    exit_level: float = Field(
        EXIT_LEVEL,
        gt=0,
        lt=1,
        description="The alignment below which the flow has left the boundary (`t_exit`).",
    )
    fd: bool = Field(
        False,
        description="Also write central finite differences beside the automatic derivatives.",
    )
    fd_step: float = Field(
        1e-3, gt=0, lt=0.1, description="Relative finite-difference step h / max(|p|, 1)."
    )


class SensitivityConfig(_MayStandForNetwork):
    """`kind: sensitivity`: onset, exit and depth of unlearning and their parameter gradients;
    with a `network:` section the flow stands for that network (the boundary floor on unless
    `boundary_floor: false`) and its `lr`, `batch`, `dim` can be differentiated by."""

    kind: Literal["sensitivity"] = Field(
        description="Onset, exit and depth of unlearning and their gradients (automatic, and "
        "optionally central finite differences)."
    )
    network: NetworkSizeConfig | None = Field(
        None,
        description="Optional: the network this flow stands for (sizes, step, precision); with "
        "it the boundary floor is on by default.",
    )
    sensitivity: SensitivitySection = Field(
        SensitivitySection(), description="What to differentiate, and how."
    )

    @model_validator(mode="after")
    def _network_params_need_network(self):
        asked = [p for p in self.sensitivity.params if p in NETWORK_PARAMS]
        if asked and self.network is None:
            raise ValueError(f"sensitivity.params: {asked[0]} is {NETWORK_ADVICE}")
        return self


def run_sensitivity(config: SensitivityConfig, *, workdir=None, resume=False) -> xr.Dataset:
    """Values, automatic gradients and (if asked) finite differences as one dataset; short,
    so `workdir` and `resume` are not used."""
    sec = config.sensitivity
    params, setup = parameters_from(config, sec.exit_level)
    labels = _labels(params, sec.params)
    values = np.asarray(quantities(params, setup))
    grads = gradients(params, setup)
    auto = np.stack([np.asarray(_component(grads, f, i)) for _, f, i in labels], axis=-1)
    auto[~np.isfinite(values)] = np.nan  # a constant NaN has zero derivative; say NaN instead
    fd = finite_differences(params, setup, labels, sec.fd_step) if sec.fd else None
    data = {}
    for q in sec.quantities:
        k = QUANTITIES.index(q)
        data[q] = ((), float(values[k]))
        data[f"grad_{q}"] = (("param",), auto[k])
        if fd is not None:
            data[f"fd_{q}"] = (("param",), fd[k])
    ds = xr.Dataset(data, coords={"param": [label for label, _, _ in labels]})
    for name in set(MEANINGS) & set(sec.quantities):
        ds[name].attrs["meaning"] = MEANINGS[name]
    return ds


def sensitivity_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """One panel per quantity: automatic derivatives (bars) and finite differences (dots)."""
    names = [q for q in QUANTITIES if f"grad_{q}" in ds]
    fig = figure(figsize=(10, 2.6 * len(names)))
    axes = fig.subplots(len(names), 1, squeeze=False)
    x = np.arange(ds.sizes["param"])
    for ax, q in zip(axes[:, 0], names, strict=True):
        ax.bar(x, ds[f"grad_{q}"].values, color="tab:blue", label="automatic")
        if f"fd_{q}" in ds:
            ax.plot(x, ds[f"fd_{q}"].values, "o", color="tab:red", ms=3, label="central FD")
        ax.set_yscale("symlog", linthresh=1e-6)
        ax.set_ylabel(f"d {q} / d param")
        ax.set_xticks(x, ds["param"].values, rotation=90, fontsize=7)
        ax.legend(fontsize=8)
    return [save(fig, Path(out) / "sensitivity.png")]


KIND = Kind(SensitivityConfig, run_sensitivity, (sensitivity_figures,))
