"""`kind: network`: online large-batch SGD on a wide two-layer network (`fsjax._train.sgd`
trains it), and its risk, alignment and second-layer figure."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import xarray as xr
from pydantic import Field

from .._config import DYNAMICS, MODEL, DynamicsConfig, ModelConfig, NetworkSectionConfig, _Section
from .._train.sgd import train_network
from ..plots import figure, save
from .base import Kind


class NetworkConfig(_Section):
    """`kind: network`: online large-batch SGD on a wide two-layer network."""

    kind: Literal["network"] = Field(
        description="Online large-batch SGD on a wide two-layer network."
    )
    model: ModelConfig = Field(description=MODEL)
    dynamics: DynamicsConfig = Field(DynamicsConfig(), description=DYNAMICS)
    network: NetworkSectionConfig = Field(description="The network and how it is trained.")


def network_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """Risk (closed form, with the Monte Carlo check as dots), alignments and second layer."""
    out = Path(out)
    t = ds["time"].values[1:]  # t = 0 has no place on a log axis
    fig = figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    axes[0].loglog(t, ds["risk"].values[1:], "k", label="risk (closed form)")
    if "risk_mc" in ds:
        axes[0].loglog(t, ds["risk_mc"].values[1:], "k.", ms=3, label="risk (Monte Carlo)")
    axes[0].loglog(t, ds["risk_perp"].values[1:], lw=1, label=r"$R_\perp$")
    for name, ax in zip(("s", "a"), axes[1:], strict=True):
        ax.semilogx(t, ds[name].values[1:], lw=0.5, alpha=0.4)
        ax.semilogx(t, ds[f"{name}_mean"].values[1:], "k", lw=2, label="mean")
        ax.set_ylabel(f"${name}_j$")
    for ax in axes:
        ax.set_xlabel("time t = steps * lr")
        ax.legend(fontsize=8)
    return [save(fig, out / "network.png")]


KIND = Kind(NetworkConfig, train_network, (network_figures,))
