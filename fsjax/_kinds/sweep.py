"""`kind: sweep`: the reduced dynamics over a grid (`fsjax._sweep.engine`) or, with a
`network:` section, ensembles of networks against it (`fsjax._sweep.network`)."""

from __future__ import annotations

import xarray as xr

from .._config import SweepConfig
from .._sweep.engine import run_sweep as run_reduced_sweep
from .._sweep.network import run_network_sweep


def run_sweep(config: SweepConfig, *, workdir=None, resume=False) -> xr.Dataset:
    if config.network is None:
        return run_reduced_sweep(config, workdir=workdir, resume=resume)
    return run_network_sweep(config, workdir=workdir, resume=resume)
