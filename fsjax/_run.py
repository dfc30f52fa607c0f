"""`fsjax.run`: one entry point from a config to an `xarray.Dataset`, for every `kind`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import xarray as xr
import yaml

from ._config import config_dict
from ._kinds import KINDS, Config, load_config


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
    ds = KINDS[config.kind].run(config, workdir=workdir, resume=resume)
    ds.attrs["config"] = yaml.safe_dump(config_dict(config), sort_keys=False)
    return ds
