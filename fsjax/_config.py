"""The config sections that several kinds share, as pydantic models that forbid unknown keys
and non-finite numbers, plus the YAML reading that reports errors by line.

Each field's `description` is its meaning in the config reference (docs/config.md, written by
docs/gen_config_reference.py). A kind's own config class and its own sections live in the
kind's file under `fsjax/_kinds/`; the registry there joins them into one tagged union, whose
`load_config` turns any validation failure into one `ConfigError` naming the field, the allowed
values and, for YAML files, the line (`describe`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import hermite
from ._errors import ConfigError
from ._model.build import init_values
from ._model.mean_field import SlowLayer
from ._sizes import (
    ITEMSIZE,
    check_fits,
    dataset_bytes,
    held_out_bytes,
    network_bytes,
    records_bytes,
    trajectory_bytes,
)
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
    a: Any = Field(
        (0.5,),
        description="Initial second-layer weight a_i: one number for all particles, a list of "
        "`particles` numbers, or a distribution placing them: `{uniform: [lo, hi]}`, "
        "`{normal: [mean, std]}` (random, drawn with `seed`), `{linspace: [lo, hi]}` (evenly "
        "spaced, ends included), `{normal_quantiles: [mean, std]}` (the Gaussian's quantiles at "
        "(i + 1/2)/m: a deterministic sample of the distribution). A network run places "
        "`network.width` values.",
    )
    s: Any = Field(
        (0.01,),
        description="Initial alignment s_i, each strictly in (-1, 1), given like `a`; a "
        "distribution that places a value outside (-1, 1) is refused.",
    )
    seed: int = Field(
        0,
        ge=0,
        description="Seed of the random distributions of `a` and `s` (each on its own stream; "
        "the same seed gives the same particles everywhere).",
    )

    @field_validator("a", "s", mode="before")
    @classmethod
    def _values(cls, v, info):
        if isinstance(v, Mapping):
            return _distribution(v, info.field_name)
        values = _numbers(v, info.field_name)
        if info.field_name == "s" and not all(-1 < x < 1 for x in values):
            raise ValueError(f"s must lie strictly between -1 and 1; got {v!r}")
        return values


_ACTIVATIONS = ", ".join(f"`{n}`" for n in hermite.ACTIVATION_NAMES)


class ModelConfig(_Section):
    """Data, activation and particles: THEORY.md sections 1, 2 and 4."""

    activation: Any = Field(
        "tanh",
        description=f"Activation sigma: one of {_ACTIVATIONS}, `{{hermite: [mu_0, mu_1, ...]}}` "
        "(its Hermite coefficients) or `{polynomial: [p_0, p_1, ...]}` (sigma(z) = sum p_j z^j).",
    )
    hermite_order: int = Field(
        16,
        ge=1,
        le=64,
        description="Highest Hermite order of the activation series kept in the reduced model.",
    )
    target: Any = Field(
        description="Data Hermite coefficients `[c_0, c_1, ..., c_K]` of f*(z) = sum c_k h_k(z) "
        "(finite numbers)."
    )
    noise: float = Field(0.0, ge=0, description="Label-noise standard deviation tau.")
    particles: int = Field(
        1,
        ge=1,
        description="Number of particles m of the reduced model (for `network`, `compare`: 1 or "
        "`network.width`).",
    )
    init: InitConfig = Field(InitConfig(), description="Initial particles (section `init`).")
    flow: Literal["independent", "overlap"] | None = Field(
        None,
        description="The reduced flow: `independent` (Proposition 3 of seed 002: the rows' parts "
        "orthogonal to the teacher direction taken as mutually orthogonal; `compare`'s "
        "`finite_width` adds each neuron's self-interaction) or `overlap` (Proposition 2: the "
        "exact flow of `particles` neurons at any input dimension, carrying their overlaps "
        "Q_ij; THEORY.md section 9; started from orthogonal parts, or in `compare` from the "
        "network's own rows). Unset: `overlap` where `compare` follows a network neuron by "
        "neuron without finite-size corrections, `independent` otherwise.",
    )

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
        # Before the particles are placed: refused from the solve's estimate at the fewest saves.
        given = " (a reduced solve)"
        check_fits("particles", self.particles, lambda m: trajectory_bytes(m, 2), given)
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

    slow: SlowLayer = Field(
        "second_layer",
        description="Which layer is slow: `second_layer` gives (lam_a, lam_w) = (eps, 1), "
        "`first_layer` gives (1, eps).",
    )
    epsilon: float = Field(0.01, gt=0, description="Time-scale ratio eps.")


class SolverConfig(_Section):
    """Time grid (log-spaced saves from t_first to t_final) and integrator settings."""

    method: Literal[tuple(SOLVERS)] = Field(  # type: ignore[valid-type]
        "rodas5p",
        description="Integrator (Kvaerno: implicit Runge-Kutta, for stiff fast-slow problems; "
        "Rodas: linearly implicit Rosenbrock, one Jacobian per step, for many particles and "
        "sweeps; Tsit5/Dopri: explicit). See docs/concepts.md.",
    )
    t_first: float = Field(
        1e-2, gt=0, description="First saved time (saves are log-spaced; the solve starts at 0)."
    )
    t_final: float = Field(1e6, gt=0, description="Last saved time; must exceed `t_first`.")
    n_save: int = Field(400, ge=2, description="Number of saved times.")
    rtol: float = Field(
        1e-8, gt=0, lt=1, description="Relative tolerance of the step-size controller."
    )
    atol: float = Field(1e-10, gt=0, description="Absolute tolerance of the step-size controller.")
    max_steps: int = Field(
        200_000,
        ge=1,
        description="Step budget; a solve that runs out reports status 1 and NaN.",
    )

    @model_validator(mode="after")
    def _ordered(self):
        if not self.t_final > self.t_first:
            raise ValueError(
                f"t_final ({self.t_final}) must be greater than t_first ({self.t_first})"
            )
        check_fits("n_save", self.n_save, lambda n: trajectory_bytes(1, n), " (one particle)")
        return self


# The meanings of the section fields that every kind carries.
MODEL = "Data, activation and particles."
DYNAMICS = "Which layer is slow and by how much."
SOLVER = "Time grid and integrator."
MATMUL_PRECISION = (
    "Arithmetic of a float32 network's matrix products, forward and backward: `float32`; "
    "`tensorfloat32` or `bfloat16` (operands rounded to 10 or 7 mantissa bits, sums in "
    "float32: the GPU's TF32 unit or bfloat16 operands, emulated on a CPU); `default`: what "
    "the backend does (TF32 on NVIDIA GPUs of compute capability >= 8, bfloat16 on TPUs, "
    "float32 on CPUs). Sets the boundary floor's rounding seed. See docs/network.md."
)
BOUNDARY_FLOOR = (
    "Add the floor a network's rows keep under on the boundary s = 1 (rounding of the rows, "
    "batch noise through the second layer's spread) to the reduced flow, so that it leaves "
    "the boundary when the network does; unset: on wherever the config names a network "
    "(`true` without a `network:` section is an error). See docs/theory-notes.md."
)


class _ReducedRun(_Section):
    """The sections of every kind that solves the reduced dynamics; each kind narrows `kind`
    to its own literal (an overridden field keeps its place, so `kind` stays first)."""

    kind: str
    model: ModelConfig = Field(description=MODEL)
    dynamics: DynamicsConfig = Field(DynamicsConfig(), description=DYNAMICS)
    solver: SolverConfig = Field(SolverConfig(), description=SOLVER)

    @model_validator(mode="after")
    def _trajectory_fits(self):
        n_save, given = self.solver.n_save, f" at n_save = {self.solver.n_save}"
        m = self.model.particles
        check_fits("model.particles", m, lambda x: trajectory_bytes(x, n_save), given)
        return self

    def stands_for(self) -> StandsFor | None:
        """The network this flow stands for and the corrections it switches on (None: the
        plain d -> infinity flow). Kinds with a `network:` section say which."""
        return None

    def reduced_flow(self) -> str:
        """`model.flow`, its default resolved (`compare` resolves its own)."""
        return self.model.flow or "independent"


class StandsFor(NamedTuple):
    """The network a reduced flow stands for (`_ReducedRun.stands_for`): its section, the mean
    of its initial second layer (where the floor's spread starts), whether the boundary floor
    is on, and `compare`'s finite-size corrections."""

    network: NetworkSizeConfig
    network_a: float
    floor: bool
    finite_width: bool = False
    finite_batch: str = "none"


class NetworkSizeConfig(_Section):
    """The network a reduced flow stands for: sizes, SGD step `lr` and float precision (the
    `network:` section of `kind: trajectory`)."""

    width: int = Field(
        ge=1, description="Number of hidden neurons n of the network the flow stands for."
    )
    dim: int = Field(ge=1, description="Its input dimension d.")
    batch: int = Field(ge=1, description="Its batch B (fresh samples per SGD step).")
    lr: float = Field(gt=0, description="Its SGD step eta.")
    dtype: Literal["bfloat16", "float16", "float32", "float64"] = Field(
        "float32",
        description="Floating-point precision of its weights (float16 is refused: its "
        "per-sample gradients underflow).",
    )
    matmul_precision: Literal["default", "float32", "tensorfloat32", "bfloat16"] = Field(
        "default",
        description=MATMUL_PRECISION,
    )

    @field_validator("dtype")
    @classmethod
    def _no_float16(cls, dtype):
        if dtype == "float16":
            raise ValueError(
                "float16 is refused: a network's per-sample gradients e a sigma'(h) / (n B) fall "
                "below float16's smallest normal number (6.1e-5) for n B above ~1e4 and lose "
                "their bits, and this SGD does no loss scaling; choose bfloat16 (float32's "
                "range) or float32"
            )
        return dtype

    @model_validator(mode="after")
    def _products_of_the_dtype(self):
        if self.dtype == "float64" and self.matmul_precision not in ("default", "float32"):
            raise ValueError(
                f"matmul_precision: a float64 network multiplies in float64, not "
                f"{self.matmul_precision}; choose default, or dtype: float32 for "
                "reduced-precision products"
            )
        return self

    @model_validator(mode="after")
    def _fits(self):
        # The sizes in the order they multiply in: each named with the largest value that fits
        # given those before it.
        b, d, i = self.batch, self.dim, ITEMSIZE[self.dtype]
        check_fits("dim", d, lambda x: network_bytes(1, x, 1, i))
        check_fits("batch", b, lambda x: network_bytes(1, d, x, i), f" at dim = {d}")
        given = f" at dim = {d}, batch = {b}"
        check_fits("width", self.width, lambda x: network_bytes(x, d, b, i), given)
        return self


class NetworkSectionConfig(NetworkSizeConfig):
    """The `network:` section of the kinds that train: sizes, SGD step `lr` (t = steps * lr),
    float precision, steps, seed, number of record points and their spacing (`log`: step 0 and
    log-spaced steps, for trajectories over decades; `uniform`: evenly spaced, to time events
    such as the exit from the boundary to one record step), and held-out samples for the Monte
    Carlo risk check (0 turns it off)."""

    width: int = Field(ge=1, description="Number of hidden neurons n.")
    dim: int = Field(ge=1, description="Input dimension d.")
    batch: int = Field(ge=1, description="Fresh samples per SGD step B.")
    lr: float = Field(gt=0, description="SGD step eta; training time is t = steps * lr.")
    dtype: Literal["bfloat16", "float16", "float32", "float64"] = Field(
        "float32",
        description="Floating-point precision of the network's weights and activations "
        "(float16 is refused: its per-sample gradients underflow).",
    )
    steps: int = Field(ge=1, description="Number of SGD steps.")
    seed: int = Field(0, ge=0, description="PRNG seed of the initialisation and the data stream.")
    record: int = Field(
        100, ge=2, description="Number of record points (step 0 and the last step included)."
    )
    record_spacing: Literal["log", "uniform"] = Field(
        "log",
        description="`log`: step 0 and log-spaced steps (trajectories over decades); `uniform`: "
        "evenly spaced steps, which time an event such as the exit from the boundary "
        "(`t_exit`) to one record step.",
    )
    mc_samples: int = Field(
        32768,
        ge=0,
        description="Held-out samples for the Monte Carlo risk check (0: off). A network sweep "
        "records the closed-form risk only: there it must be 0 (its default).",
    )
    samples: int | None = Field(
        None,
        ge=1,
        description="Size N of a fixed training set drawn once from the teacher (inputs and "
        "noisy labels, from the network's seed), trained over for as many passes as `steps` "
        "implies, each pass in a fresh random order `batch` samples at a time (the last N mod "
        "batch of a pass's order sit that pass out); the training risk over the N samples is "
        "recorded beside the population risk. None: online SGD, a fresh batch every step (a "
        "network sweep trains online: there it must be None).",
    )

    @model_validator(mode="after")
    def _records_fit(self):
        width, dim = self.width, self.dim
        given = f" at width = {width}, dim = {dim}"
        check_fits("mc_samples", self.mc_samples, lambda x: held_out_bytes(x, width, dim), given)
        given = f" at width = {width}"
        check_fits("record", self.record, lambda x: records_bytes(x, width), given)
        if self.samples is not None:
            if self.samples < self.batch:
                raise ValueError(
                    f"samples = {self.samples} is below batch = {self.batch}: a pass needs at "
                    "least one batch; use samples >= batch, or none (online SGD)"
                )
            i, given = 4 if self.dtype == "float32" else 8, f" at width = {width}, dim = {dim}"
            need = lambda x: dataset_bytes(x, width, dim, i)  # noqa: E731
            check_fits("samples", self.samples, need, given)
        return self


class _MayStandForNetwork(_ReducedRun):
    """A reduced run whose flow may stand for a network: an optional `network:` section (each
    kind narrows its type and describes it) and `boundary_floor`, on by default with one."""

    network: NetworkSizeConfig | None = None
    boundary_floor: bool | None = Field(None, description=BOUNDARY_FLOOR)

    @model_validator(mode="after")
    def _overlap_flow_has_no_floor(self):
        if self.boundary_floor and self.model.flow == "overlap":
            raise ValueError(
                "boundary_floor: the floor corrects the independent flow; model.flow: overlap "
                "carries the rows' spread itself; set boundary_floor: false or unset it"
            )
        return self

    @model_validator(mode="after")
    def _boundary_floor_needs_network(self):
        if self.boundary_floor and self.network is None:
            raise ValueError(
                "boundary_floor: the floor needs the network the flow stands for (network.dim, "
                "network.batch, network.lr, network.dtype); add a network: section or set "
                "boundary_floor: false"
            )
        return self

    def network_a(self) -> float:
        """The mean of the network's initial second layer: its `width` values as the training
        draws them."""
        return float(np.mean(init_values(self.model.init, "a", self.network.width)))

    def stands_for(self) -> StandsFor | None:
        if self.network is None:
            return None
        floor = self.boundary_floor is not False and self.reduced_flow() == "independent"
        return StandsFor(self.network, self.network_a(), floor=floor)


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
