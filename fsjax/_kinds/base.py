"""`Kind`: what the registry holds for one `kind:` of config."""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass

import pydantic


@dataclass(frozen=True)
class Kind:
    """One kind: the config class (whose `kind` literal names it), the runner
    `(config, *, workdir, resume) -> xarray.Dataset` and the figure functions
    `(dataset, out_dir) -> list[Path]`."""

    config: type[pydantic.BaseModel]
    run: Callable
    figures: tuple[Callable, ...]

    @property
    def name(self) -> str:
        return typing.get_args(self.config.model_fields["kind"].annotation)[0]
