"""`kind: network`: train and record one network (`fsjax._train.sgd` does the training)."""

from __future__ import annotations

import xarray as xr

from .._config import NetworkConfig
from .._train.sgd import train_network


def run_network(config: NetworkConfig, *, workdir=None, resume=False) -> xr.Dataset:
    return train_network(config, workdir=workdir, resume=resume)
