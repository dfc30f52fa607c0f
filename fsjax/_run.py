"""`fsjax.run`: one entry point from a config to an `xarray.Dataset`, for every `kind`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import xarray as xr
import yaml

from ._compare import run_compare
from ._config import Config, config_dict, load_config
from ._portrait import run_phase_portrait
from ._sensitivity import run_sensitivity
from ._sensitivity_map import run_sensitivity_map
from ._sgd import run_network
from ._sweep import run_sweep
from ._trajectory import run_trajectory

RUNNERS = {
    "trajectory": run_trajectory,
    "network": run_network,
    "compare": run_compare,
    "sweep": run_sweep,
    "sensitivity": run_sensitivity,
    "phase_portrait": run_phase_portrait,
    "sensitivity_map": run_sensitivity_map,
}


def run(
    config: str | Path | Mapping | Config,
    *,
    workdir: str | Path | None = None,
    resume: bool = False,
) -> xr.Dataset:
    """Run a config given as a YAML path, a dict of the same structure or a config object.

    Kinds with long work checkpoint into `workdir` and continue from it when `resume` is set.
    The returned dataset carries the resolved config as YAML in `attrs["config"]`."""
    if not hasattr(config, "kind") or isinstance(config, Mapping):
        config = load_config(config)
    workdir = Path(workdir) if workdir is not None else None
    ds = RUNNERS[config.kind](config, workdir=workdir, resume=resume)
    ds.attrs["config"] = yaml.safe_dump(config_dict(config), sort_keys=False)
    return ds
