"""The kinds of config, one file each, and their registry.

A kind's file (`trajectory.py`, ...) holds its config class and the sections only it uses, its
runner `(config, *, workdir, resume) -> xarray.Dataset` and its figure functions
`(dataset, out_dir) -> list[Path]`, and ends with `KIND = Kind(config, runner, figures)`.
Registering it is one line in `KINDS` below: the config union that `load_config` validates
against, the runner `fsjax.run` calls, the figures the command line draws and the kinds of the
config reference (docs/config.md) are all read from there.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import pydantic
from pydantic import Field

from .._config import describe, read_yaml
from .._errors import ConfigError
from . import compare, network, phase_portrait, sensitivity, sensitivity_map, sweep, trajectory
from .base import Kind

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        trajectory.KIND,
        network.KIND,
        compare.KIND,
        sweep.KIND,
        sensitivity.KIND,
        phase_portrait.KIND,
        sensitivity_map.KIND,
    )
}

Config = Annotated[
    typing.Union[tuple(kind.config for kind in KINDS.values())],  # noqa: UP007
    Field(discriminator="kind"),
]
_ADAPTER = pydantic.TypeAdapter(Config)


def load_config(source: str | Path | Mapping) -> Config:
    """Validate a config given as a YAML path or a dict; raise `ConfigError` on bad input."""
    text = None
    if isinstance(source, str | Path):
        data, text = read_yaml(source)
    else:
        data = dict(source)
    if not isinstance(data, Mapping):
        raise ConfigError("config must be a mapping with a `kind` key")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(f"kind: must be one of {', '.join(KINDS)}; got {kind!r}")
    try:
        return _ADAPTER.validate_python(data)
    except pydantic.ValidationError as err:
        raise ConfigError(describe(err, text, KINDS)) from None
