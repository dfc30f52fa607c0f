"""The kind registry: for every `kind:` of config, its config class, its runner and its
figures, listed once. The config union that `load_config` validates against, the runner
`fsjax.run` calls and the figures the command line draws are all read from `KINDS`.

A runner takes `(config, *, workdir, resume)` and returns an `xarray.Dataset`; a figure
function takes `(dataset, out_dir)` and returns the paths it wrote (`fsjax.plots`).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pydantic
from pydantic import Field

from .. import plots
from .._config import (
    CompareConfig,
    NetworkConfig,
    PhasePortraitConfig,
    SensitivityConfig,
    SensitivityMapConfig,
    SweepConfig,
    TrajectoryConfig,
    describe,
    read_yaml,
)
from .._errors import ConfigError
from .._train.sgd import train_network
from .compare import run_compare
from .phase_portrait import run_phase_portrait
from .sensitivity import run_sensitivity
from .sensitivity_map import run_sensitivity_map
from .sweep import run_sweep
from .trajectory import run_trajectory


@dataclass(frozen=True)
class Kind:
    """One kind: the config class (whose `kind` literal names it), runner and figures."""

    config: type[pydantic.BaseModel]
    run: Callable
    figures: tuple[Callable, ...]

    @property
    def name(self) -> str:
        return typing.get_args(self.config.model_fields["kind"].annotation)[0]


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(TrajectoryConfig, run_trajectory, (plots.trajectory_figures,)),
        Kind(NetworkConfig, train_network, (plots.network_figures,)),
        Kind(CompareConfig, run_compare, (plots.compare_figures,)),
        Kind(SweepConfig, run_sweep, (plots.sweep_kind_figures,)),
        Kind(SensitivityConfig, run_sensitivity, (plots.sensitivity_figures,)),
        Kind(PhasePortraitConfig, run_phase_portrait, (plots.portrait_figures,)),
        Kind(SensitivityMapConfig, run_sensitivity_map, (plots.sensitivity_map_figures,)),
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
    if kind not in KINDS:
        raise ConfigError(f"kind: must be one of {', '.join(KINDS)}; got {kind!r}")
    try:
        return _ADAPTER.validate_python(data)
    except pydantic.ValidationError as err:
        raise ConfigError(describe(err, text, KINDS)) from None
