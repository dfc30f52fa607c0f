"""Axes: the one grammar of paths to a parameter point's fields, and the values they take.

An axis is a path to a numeric field of a config and a list of values; `resolve` parses the
path into the `AxisField` that `fsjax._model.point.Point.set_axis` writes, for sweeps and
sensitivity maps alike. Only fields that enter the reduced dynamics as array *data* can be
set, so that every point of a sweep runs through one compiled, vmapped solve; fields that set
array shapes or the compiled code (the activation, `hermite_order`, `particles`,
`dynamics.slow`, every `solver` field) cannot.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._sizes import check_fits

SPACINGS = ("linspace", "logspace", "geomspace")
# Points of one sweep at most: its plan holds about 100 bytes a point (the values of every
# axis, the run order, the load balance's neighbour queries), some 10 GB at this limit.
MAX_POINTS = 10**8
SWEEPABLE = (
    "target[k]",
    "init.a",
    "init.a[i]",
    "init.s",
    "init.s[i]",
    "model.noise",
    "dynamics.epsilon",
)
# With a `network:` section: the SGD step (data) and the sizes, which change array shapes and
# so compile one program per value (`fsjax._sweep.network`).
NETWORK_SWEEPABLE = ("network.lr", "network.width", "network.dim", "network.batch")
NETWORK_SIZES = ("width", "dim", "batch")
# Fields that exist but change shapes or code; named in the error so the user knows why.
_FIXED = {
    "activation": "the activation",
    "hermite_order": "the number of Hermite orders (an array shape)",
    "particles": "the number of particles (an array shape)",
    "slow": "which layer is slow (the compiled vector field)",
}
_SOLVER_FIELDS = ("method", "t_first", "t_final", "n_save", "rtol", "atol", "max_steps")
_PATH = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?:\[(\d+)\])?$")


@dataclass(frozen=True)
class AxisField:
    """Where an axis's values go: `field` is one of target, a, s, noise, epsilon; `index` is the
    target order or the particle (None: every particle)."""

    field: str
    index: int | None


def axis_name(path: str) -> str:
    """The output dimension of an axis: `target[3]` -> `target_3`, `init.a` -> `init_a`."""
    return re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")


def axis_values(spec: Any) -> tuple[float, ...]:
    """Values of an axis given as a list of numbers or as one of
    `{linspace: [start, stop, num]}`, `{geomspace: [start, stop, num]}` or
    `{logspace: [start_exponent, stop_exponent, num]}` (base 10), endpoints included."""
    if isinstance(spec, dict):
        if len(spec) != 1 or next(iter(spec)) not in SPACINGS:
            raise ValueError(
                f"an axis is a list of numbers or one of {{{', '.join(SPACINGS)}: "
                f"[start, stop, num]}}; got {spec!r}"
            )
        ((kind, args),) = spec.items()
        if not isinstance(args, list | tuple) or len(args) != 3:
            raise ValueError(f"{kind} takes [start, stop, num]; got {args!r}")
        start, stop, num = args
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ValueError(f"{kind}: num must be an integer >= 1; got {num!r}")
        if num > MAX_POINTS:
            raise ValueError(f"{kind}: num = {num} is over the limit of {MAX_POINTS} points")
        start, stop = _finite(start), _finite(stop)
        if kind == "geomspace" and (start == 0 or stop == 0 or (start > 0) != (stop > 0)):
            raise ValueError(f"geomspace needs nonzero start and stop of one sign; got {args!r}")
        values = getattr(np, kind)(start, stop, num)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{kind} {args!r} overflows")
        return tuple(float(v) for v in values)
    if not isinstance(spec, list | tuple):
        raise ValueError(f"an axis is a list of numbers or {{linspace|...: [...]}}; got {spec!r}")
    if not spec:
        raise ValueError("an axis must have at least one value; got an empty list")
    return tuple(_finite(v) for v in spec)


def plan_bytes(points: int, n_axes: int) -> int:
    """The sweep plan's working set (`fsjax._sweep.plan`): every point's axis values and their
    per-axis ranks, its order, first-pass cost, prediction and index (float64 or int64)."""
    return points * 8 * (2 * n_axes + 4)


def check_size(axes: Mapping[str, Sequence[float]], mode: str) -> None:
    """A `ValueError` naming each axis's length when a sweep over `axes` in `mode` (grid or
    zip) has more than `MAX_POINTS` points or a plan that cannot fit in memory (with the
    largest number of points that does), counted without allocating anything of that size."""
    lengths = {path: len(values) for path, values in axes.items()}
    n = math.prod(lengths.values()) if mode == "grid" else max(lengths.values())
    each = " x ".join(f"{k} ({path})" for path, k in lengths.items())
    if n > MAX_POINTS:
        raise ValueError(
            f"the {mode} has {n} points, {each}, over the limit of {MAX_POINTS} points "
            f"(their values alone would take {n * len(lengths) * 8 / 1e9:.3g} GB)"
        )
    check_fits("points", n, lambda k: plan_bytes(k, len(lengths)), f" ({each})")


def _finite(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ValueError(f"axis values must be finite numbers; got {x!r}")
    return float(x)


def resolve(
    path: str, *, n_target: int | None = None, particles: int | None = None, network: bool = False
) -> AxisField:
    """The field an axis path names, or a `ValueError` saying why it cannot be swept.

    `model.` may be left out of model paths (`target[3]`, `init.a`, `noise`); `network.*`
    paths need `network` (a sweep with a `network:` section). The index of `target[k]` is
    checked against `n_target` coefficients and that of `init.a[i]`, `init.s[i]` against
    `particles`, where given (a section validated before its model is known gives neither)."""
    sweepable = ", ".join(SWEEPABLE + (NETWORK_SWEEPABLE if network else ()))
    match = _PATH.match(path)
    if not match:
        raise ValueError(f"axis {path!r} is not a field path; sweepable: {sweepable}")
    name, index = match.group(1), match.group(2)
    index = int(index) if index is not None else None
    parts = name.split(".")
    if parts[0] == "network":
        if not network:
            raise ValueError(f"axis {path!r} needs a network: section in the sweep config")
        if index is None and len(parts) == 2 and f"network.{parts[1]}" in NETWORK_SWEEPABLE:
            return AxisField(parts[1], None)
        raise ValueError(f"axis {path!r} cannot be swept; sweepable: {sweepable}")
    if network and ".".join(p for p in parts if p != "model") == "init.s":
        raise ValueError(f"axis {path!r}: a network's rows are random, init.s is not used")
    if parts[0] == "model":
        parts = parts[1:]
    dotted = ".".join(parts)
    if dotted == "target":
        if index is None:
            k = "" if n_target is None else f", k = 0..{n_target - 1}"
            raise ValueError(f"axis {path!r}: give one coefficient, target[k]{k}")
        if n_target is not None and index >= n_target:
            raise ValueError(
                f"axis {path!r}: target has {n_target} coefficients, k must be 0..{n_target - 1}"
            )
        return AxisField("target", index)
    if dotted in ("init.a", "init.s"):
        if index is not None and particles is not None and index >= particles:
            raise ValueError(
                f"axis {path!r}: there are {particles} particles, i must be 0..{particles - 1}"
            )
        return AxisField(parts[1], index)
    if index is None and dotted in ("noise", "dynamics.epsilon"):
        return AxisField(parts[-1], None)
    if index is None and (
        dotted in _FIXED
        or dotted == "dynamics.slow"
        or (len(parts) == 2 and parts[0] == "solver" and parts[1] in _SOLVER_FIELDS)
    ):
        what = _FIXED.get(parts[-1], "the integrator settings (static in the compiled solve)")
        raise ValueError(f"axis {path!r} cannot be swept: it sets {what}; sweepable: {sweepable}")
    raise ValueError(f"axis {path!r}: no such numeric field; sweepable: {sweepable}")


def check_values(path: str, field: AxisField, values: tuple[float, ...]) -> None:
    """The constraints the config places on the field, applied to every value of its axis."""
    sizes = {f: [v for v in values if v < 1 or v != int(v)] for f in NETWORK_SIZES}
    bad = {
        "s": [v for v in values if not -1 < v < 1],
        "noise": [v for v in values if v < 0],
        "epsilon": [v for v in values if v <= 0],
        "lr": [v for v in values if v <= 0],
        **sizes,
    }.get(field.field, [])
    if bad:
        rule = {"s": "lie strictly between -1 and 1", "noise": "be >= 0", "epsilon": "be > 0"}
        rule |= {"lr": "be > 0"} | {f: "be integers >= 1" for f in NETWORK_SIZES}
        raise ValueError(f"axis {path!r}: values must {rule[field.field]}; got {bad[0]!r}")
