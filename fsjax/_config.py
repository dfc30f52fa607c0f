"""The config schema: every section and every kind's config as a pydantic model that forbids
unknown keys and non-finite numbers, plus the YAML reading that reports errors by line.

The kinds' configs are joined into one tagged union by the kind registry (`fsjax._kinds`),
whose `load_config` turns any validation failure into one `ConfigError` naming the field, the
allowed values and, for YAML files, the line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import hermite
from ._analysis.sensitivity import QUANTITIES
from ._analysis.sensitivity_map import axis_field
from ._errors import ConfigError
from ._model import axes as _axes
from ._model.build import init_values
from ._model.mean_field import SlowLayer
from ._solve.settings import SOLVERS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


def _numbers(value: Any, what: str) -> tuple[float, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for x in items:
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise ValueError(f"{what} must be a number or a list of numbers; got {x!r}")
        if not math.isfinite(x):
            raise ValueError(f"{what} must be finite; got {x!r}")
        out.append(float(x))
    if not out:
        raise ValueError(f"{what} must not be empty")
    return tuple(out)


INIT_DISTRIBUTIONS = {
    "uniform": "[lo, hi]: independent uniform draws",
    "normal": "[mean, std]: independent Gaussian draws",
    "linspace": "[lo, hi]: evenly spaced, both ends included",
    "normal_quantiles": "[mean, std]: the Gaussian's quantiles at (i + 1/2)/m",
}


def _distribution(v: Mapping, what: str) -> dict[str, tuple[float, float]]:
    allowed = ", ".join(f"{{{k}: {d.split(':')[0]}}}" for k, d in INIT_DISTRIBUTIONS.items())
    if len(v) != 1 or next(iter(v)) not in INIT_DISTRIBUTIONS:
        raise ValueError(f"{what} must be a number, a list or one of {allowed}; got {dict(v)!r}")
    ((kind, spec),) = v.items()
    pair = _numbers(spec, f"{what}.{kind}")
    if len(pair) != 2:
        raise ValueError(f"{kind} takes two numbers {INIT_DISTRIBUTIONS[kind]}; got {spec!r}")
    lo, hi = pair
    if kind in ("normal", "normal_quantiles") and not hi > 0:
        raise ValueError(f"{kind}: std must be positive; got {hi!r}")
    if kind in ("uniform", "linspace") and not hi >= lo:
        raise ValueError(f"{kind}: hi must not be below lo; got {spec!r}")
    return {kind: pair}


class InitConfig(_Section):
    """Initial particles: one value for all `particles`, a list with one per particle, or a
    distribution placing `particles` values (`INIT_DISTRIBUTIONS`; random ones drawn with
    `seed`, see `fsjax._model.build.init_values`)."""

    # Defaults are not validated, so they are given in validated form (tuples).
    a: Any = (0.5,)
    s: Any = (0.01,)
    seed: Annotated[int, Field(ge=0)] = 0

    @field_validator("a", "s", mode="before")
    @classmethod
    def _values(cls, v, info):
        if isinstance(v, Mapping):
            return _distribution(v, info.field_name)
        values = _numbers(v, info.field_name)
        if info.field_name == "s" and not all(-1 < x < 1 for x in values):
            raise ValueError(f"s must lie strictly between -1 and 1; got {v!r}")
        return values


class ModelConfig(_Section):
    """Data, activation and particles: THEORY.md sections 1, 2 and 4."""

    activation: Any = "tanh"
    hermite_order: Annotated[int, Field(ge=1, le=64)] = 16
    target: Any
    noise: Annotated[float, Field(ge=0)] = 0.0
    particles: Annotated[int, Field(ge=1)] = 1
    init: InitConfig = InitConfig()

    @field_validator("activation", mode="before")
    @classmethod
    def _known_activation(cls, v):
        if isinstance(v, dict):
            v = {k: list(_numbers(x, f"activation.{k}")) for k, x in v.items()}
        hermite.activation(v)  # raises ValueError listing the allowed values
        return v

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, v):
        if not isinstance(v, list | tuple):
            raise ValueError(f"target must be a list of Hermite coefficients c_0..c_K; got {v!r}")
        return _numbers(v, "target")

    @model_validator(mode="after")
    def _init_lengths(self):
        for name in ("a", "s"):
            given = getattr(self.init, name)
            if isinstance(given, Mapping):
                continue
            if len(given) not in (1, self.particles):
                raise ValueError(
                    f"init.{name} has {len(given)} values but particles = {self.particles}; "
                    f"give one value or {self.particles}"
                )
        s = init_values(self.init, "s", self.particles)
        if not np.all(np.abs(s) < 1):
            ((kind, spec),) = self.init.s.items()
            raise ValueError(
                f"init.s: {kind} {list(spec)} with seed {self.init.seed} places values outside "
                "(-1, 1); narrow it"
            )
        return self


class DynamicsConfig(_Section):
    """Which layer is slow and by how much: (lambda_a, lambda_w) = (1, eps) or (eps, 1)."""

    slow: SlowLayer = "second_layer"
    epsilon: Annotated[float, Field(gt=0)] = 0.01


class SolverConfig(_Section):
    """Time grid (log-spaced saves from t_first to t_final) and integrator settings."""

    method: Literal[tuple(SOLVERS)] = "rodas5p"  # type: ignore[valid-type]
    t_first: Annotated[float, Field(gt=0)] = 1e-2
    t_final: Annotated[float, Field(gt=0)] = 1e6
    n_save: Annotated[int, Field(ge=2)] = 400
    rtol: Annotated[float, Field(gt=0, lt=1)] = 1e-8
    atol: Annotated[float, Field(gt=0)] = 1e-10
    max_steps: Annotated[int, Field(ge=1)] = 200_000

    @model_validator(mode="after")
    def _ordered(self):
        if not self.t_final > self.t_first:
            raise ValueError(
                f"t_final ({self.t_final}) must be greater than t_first ({self.t_first})"
            )
        return self


class _ReducedRun(_Section):
    """The sections of every kind that solves the reduced dynamics; each kind narrows `kind`
    to its own literal (an overridden field keeps its place, so `kind` stays first)."""

    kind: str
    model: ModelConfig
    dynamics: DynamicsConfig = DynamicsConfig()
    solver: SolverConfig = SolverConfig()


class NetworkSizeConfig(_Section):
    """The network a reduced flow stands for: sizes, SGD step `lr` and float precision (the
    `network:` section of `kind: trajectory`)."""

    width: Annotated[int, Field(ge=1)]
    dim: Annotated[int, Field(ge=1)]
    batch: Annotated[int, Field(ge=1)]
    lr: Annotated[float, Field(gt=0)]
    dtype: Literal["float32", "float64"] = "float32"


class NetworkSectionConfig(NetworkSizeConfig):
    """The `network:` section of the kinds that train: sizes, SGD step `lr` (t = steps * lr),
    float precision, steps, seed, number of record points and their spacing (`log`: step 0 and
    log-spaced steps, for trajectories over decades; `uniform`: evenly spaced, to time events
    such as the exit from the boundary to one record step), and held-out samples for the Monte
    Carlo risk check (0 turns it off)."""

    steps: Annotated[int, Field(ge=1)]
    seed: Annotated[int, Field(ge=0)] = 0
    record: Annotated[int, Field(ge=2)] = 100
    record_spacing: Literal["log", "uniform"] = "log"
    mc_samples: Annotated[int, Field(ge=0)] = 32768


def _check_boundary_floor(config):
    """`boundary_floor: true` needs the network whose rows it models."""
    if config.boundary_floor and config.network is None:
        raise ValueError(
            "boundary_floor: the floor needs the network the flow stands for (network.dim, "
            "network.batch, network.lr, network.dtype); add a network: section or set "
            "boundary_floor: false"
        )
    return config


class TrajectoryConfig(_ReducedRun):
    """`kind: trajectory`: one solve of the reduced dynamics; with a `network:` section it
    stands for that network, and `boundary_floor` (default: on with a network) adds the floor
    that the network's rows keep under on the boundary s = 1 (`fsjax._model.corrections`)."""

    kind: Literal["trajectory"]
    network: NetworkSizeConfig | None = None
    boundary_floor: bool | None = None

    @model_validator(mode="after")
    def _boundary_floor_needs_network(self):
        return _check_boundary_floor(self)


class NetworkConfig(_Section):
    """`kind: network`: online large-batch SGD on a wide two-layer network."""

    kind: Literal["network"]
    model: ModelConfig
    dynamics: DynamicsConfig = DynamicsConfig()
    network: NetworkSectionConfig


class CompareConfig(_Section):
    """`kind: compare`: the network and the reduced flow started at its initial order
    parameters (`model.particles` = 1: the means; = `network.width`: neuron by neuron),
    saved at its record times; deviations are measured over t >= `t_min`. `finite_width`
    adds the O(1/n) self-interaction, `finite_batch` a finite-batch drift (`theory`: THEORY.md
    section 6; `shared`: noise shared across neurons), `boundary_floor` (on by default) the
    floor the rows keep under on the boundary s = 1 to the reduced model
    (`fsjax._model.corrections`)."""

    kind: Literal["compare"]
    model: ModelConfig
    dynamics: DynamicsConfig = DynamicsConfig()
    network: NetworkSectionConfig
    solver: SolverConfig = SolverConfig()
    t_min: Annotated[float, Field(ge=0)] = 1.0
    finite_width: bool = False
    finite_batch: Literal["none", "theory", "shared"] = "none"
    boundary_floor: bool = True

    @model_validator(mode="after")
    def _particles(self):
        if self.model.particles not in (1, self.network.width):
            raise ValueError(
                f"model.particles = {self.model.particles} must be 1 (compare the means) or "
                f"network.width = {self.network.width} (compare neuron by neuron)"
            )
        return self


class SweepSection(_Section):
    """The `sweep:` section: `axes` maps a field path to its values (a list or
    `{linspace|logspace|geomspace: [start, stop, num]}`); `mode: grid` runs every combination,
    `zip` pairs the axes' values in order; `chunk` points go through each compiled batch;
    `balance: neighbours` orders the points by the measured cost of their nearest neighbour in
    a first pass (see `fsjax._sweep`), `none` keeps grid order. With a `network:` section,
    `seeds` networks (seeds `network.seed`, `network.seed + 1`, ...) are trained per point and
    `chunk` counts networks (see `fsjax._sweep.network`)."""

    axes: dict[str, Any]
    mode: Literal["grid", "zip"] = "grid"
    chunk: Annotated[int, Field(ge=1)] = 256
    balance: Literal["neighbours", "none"] = "neighbours"
    seeds: Annotated[int, Field(ge=1)] = 1

    @field_validator("axes", mode="before")
    @classmethod
    def _axes(cls, v):
        if not isinstance(v, Mapping) or not v:
            raise ValueError(
                "give at least one axis as `path: values`, e.g. `target[3]: [0.1, 0.2]`"
            )
        out = {}
        for path, spec in v.items():
            try:
                out[str(path)] = _axes.axis_values(spec)
            except ValueError as err:
                raise ValueError(f"axis {path!r}: {err}") from None
        return out

    @model_validator(mode="after")
    def _zip_lengths(self):
        lengths = {path: len(values) for path, values in self.axes.items()}
        if self.mode == "zip" and len(set(lengths.values())) > 1:
            raise ValueError(f"zip axes must have equal lengths; got {lengths}")
        _axes.check_size(self.axes, self.mode)
        return self


class SweepConfig(_ReducedRun):
    """`kind: sweep`: the reduced dynamics over a grid (or zip) of config values; with a
    `network:` section, ensembles of networks trained by SGD at every point, each against the
    reduced flow from its initial order parameters (`model.particles` = 1: the means), with
    the floor the networks' rows keep under on the boundary unless `boundary_floor: false`."""

    kind: Literal["sweep"]
    network: NetworkSectionConfig | None = None
    sweep: SweepSection
    boundary_floor: bool | None = None

    @model_validator(mode="after")
    def _boundary_floor_needs_network(self):
        return _check_boundary_floor(self)

    @field_validator("sweep")
    @classmethod
    def _sweepable(cls, sweep, info):
        model = info.data.get("model")
        network = info.data.get("network")
        if model is not None:  # otherwise the model's own error is reported
            names = {}
            for path, values in sweep.axes.items():
                field = _axes.resolve(
                    path,
                    n_target=len(model.target),
                    particles=model.particles,
                    network=network is not None,
                )
                _axes.check_values(path, field, values)
                for other, name in names.items():
                    same = other.field == field.field
                    if (same and None in (other.index, field.index)) or other == field:
                        raise ValueError(f"axes {name!r} and {path!r} set the same field")
                names[field] = path
            dims = [_axes.axis_name(p) for p in sweep.axes]
            if len(set(dims)) < len(dims):
                raise ValueError(f"axis names must differ; got {dims}")
        if network is None and sweep.seeds != 1:
            raise ValueError(
                f"seeds = {sweep.seeds} needs a network: section (the reduced flow has no seed)"
            )
        return sweep

    @model_validator(mode="before")
    @classmethod
    def _network_defaults(cls, data):
        """With a `network:` section the defaults are `sweep.balance: none` (every network
        trains for `network.steps`: there is no cost to balance) and `network.mc_samples: 0`
        (the sweep records the closed-form risk only)."""
        if isinstance(data, Mapping) and isinstance(data.get("network"), Mapping):
            data = dict(data, network={"mc_samples": 0, **data["network"]})
            if isinstance(data.get("sweep"), Mapping):
                data["sweep"] = {"balance": "none", **data["sweep"]}
        return data

    @model_validator(mode="after")
    def _network_particles(self):
        if self.network is not None and self.sweep.balance != "none":
            raise ValueError(
                f"sweep.balance = {self.sweep.balance!r}: every network of a sweep trains for "
                "network.steps, so there is no cost to balance; allowed: none (the default)"
            )
        if self.network is not None and self.network.mc_samples:
            raise ValueError(
                f"network.mc_samples = {self.network.mc_samples}: a network sweep records the "
                "closed-form risk only; allowed: 0 (the default)"
            )
        if self.network is not None and self.model.particles != 1:
            raise ValueError(
                f"model.particles = {self.model.particles}: a network sweep compares the means, "
                "set model.particles: 1"
            )
        if self.network is not None and isinstance(self.model.init.a, Mapping):
            raise ValueError(
                "model.init.a: a network sweep starts every neuron at one value; give a number"
            )
        return self


SENSITIVITY_QUANTITIES = QUANTITIES
SENSITIVITY_PARAMS = ("target", "init.a", "init.s", "epsilon", "mu")


class SensitivitySection(_Section):
    """Which quantities to differentiate with respect to which parameters (`mu` are the
    activation's Hermite coefficients); `fd` adds central finite differences with relative
    step `fd_step` (times |p|, or absolute where p = 0) beside the automatic derivatives."""

    quantities: list[Literal[SENSITIVITY_QUANTITIES]] = list(SENSITIVITY_QUANTITIES)  # type: ignore[valid-type]
    params: list[Literal[SENSITIVITY_PARAMS]] = list(SENSITIVITY_PARAMS)  # type: ignore[valid-type]
    fd: bool = False
    fd_step: Annotated[float, Field(gt=0, lt=0.1)] = 1e-3


class SensitivityConfig(_ReducedRun):
    """`kind: sensitivity`: onset and depth of unlearning and their parameter gradients."""

    kind: Literal["sensitivity"]
    sensitivity: SensitivitySection = SensitivitySection()


class PortraitSection(_Section):
    """Full trajectories for each of `epsilons` over the critical manifold, traced on `n_a`
    values of the second-layer weight in `a_range`."""

    epsilons: list[Annotated[float, Field(gt=0, lt=1)]] = [1e-1, 1e-2, 1e-3]
    a_range: list[float] = [0.05, 4.0]
    n_a: Annotated[int, Field(ge=3, le=2000)] = 200

    @model_validator(mode="after")
    def _ordered(self):
        if len(self.a_range) != 2 or not self.a_range[1] > self.a_range[0]:
            raise ValueError(f"a_range must be two increasing numbers; got {self.a_range}")
        return self


class PhasePortraitConfig(_ReducedRun):
    """`kind: phase_portrait`: the critical manifold of the 2-D slow-second-layer system."""

    kind: Literal["phase_portrait"]
    portrait: PortraitSection = PortraitSection()

    @model_validator(mode="after")
    def _two_dimensional(self):
        if self.dynamics.slow != "second_layer":
            raise ValueError(
                "a phase portrait needs a slow second layer; set dynamics.slow: second_layer"
            )
        if self.model.particles != 1:
            raise ValueError(
                f"a phase portrait is of the 2-D system; set model.particles: 1 "
                f"(got {self.model.particles})"
            )
        return self


class MapSection(_Section):
    """The `map:` section of `kind: sensitivity_map`: two axes, each `target[k]` or `init.a`,
    given like sweep axes (a list or `{linspace|logspace|geomspace: [start, stop, num]}`), and
    the quantities to map."""

    axes: dict[str, Any]
    quantities: list[Literal[SENSITIVITY_QUANTITIES]] = list(SENSITIVITY_QUANTITIES)  # type: ignore[valid-type]

    @field_validator("axes", mode="before")
    @classmethod
    def _two_axes(cls, v):
        if not isinstance(v, Mapping) or len(v) != 2:
            raise ValueError("give exactly two axes, e.g. `target[3]: [...]` and `init.a: [...]`")
        out = {}
        for path, spec in v.items():
            try:
                axis_field(str(path))
            except ValueError:
                raise ValueError(
                    f"axis {path!r}: a sensitivity map takes target[k] or init.a"
                ) from None
            try:
                out[str(path)] = _axes.axis_values(spec)
            except ValueError as err:
                raise ValueError(f"axis {path!r}: {err}") from None
        return out


class SensitivityMapConfig(_ReducedRun):
    """`kind: sensitivity_map`: onset of unlearning and its gradients over a plane."""

    kind: Literal["sensitivity_map"]
    map: MapSection

    @model_validator(mode="after")
    def _in_range(self):
        for path in self.map.axes:
            _axes.resolve(path, n_target=len(self.model.target), particles=self.model.particles)
        return self


class _Loader(yaml.SafeLoader):
    """PyYAML reads `1e-8` as a string (YAML 1.1); resolve exponent floats without a dot too."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(source: str | Path) -> tuple[Any, str]:
    """The data and text of a YAML file; a missing file or bad syntax is a `ConfigError`."""
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        return yaml.load(text, Loader=_Loader), text
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(
            f"{path}: YAML syntax error{where}: {getattr(err, 'problem', err)}"
        ) from None


def config_dict(config: BaseModel) -> dict:
    """The resolved config as plain data (round-trips through `load_config`)."""
    return config.model_dump(mode="json")


def describe(err: pydantic.ValidationError, text: str | None, kinds) -> str:
    """One line for a validation failure: field path, message and YAML line. The union's
    first location entry is the kind's tag (one of `kinds`); it is dropped."""
    first = err.errors()[0]
    loc = first["loc"][1:] if first["loc"] and first["loc"][0] in kinds else first["loc"]
    field = ".".join(str(p) for p in loc) or "config"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "literal_error":
        msg = f"got {first['input']!r}; {msg.lower()}"
    line = _line_of(text, loc) if text is not None else None
    return f"{field}: {msg}" + (f" (line {line})" if line else "")


def _line_of(text: str, loc: tuple) -> int | None:
    """1-based line of the deepest YAML node on the path `loc`."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
    return line
