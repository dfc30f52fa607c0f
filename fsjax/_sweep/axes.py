"""Sweep axes: which config fields a sweep may vary, and the values it gives them.

An axis is a path to a numeric field of a config and a list of values. Only fields that enter
the reduced dynamics as array *data* can be swept, so that every point of a sweep runs through
one compiled, vmapped solve; fields that set array shapes or the compiled code (the activation,
`hermite_order`, `particles`, `dynamics.slow`, every `solver` field) cannot.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

SPACINGS = ("linspace", "logspace", "geomspace")
SWEEPABLE = (
    "target[k]",
    "init.a",
    "init.a[i]",
    "init.s",
    "init.s[i]",
    "model.noise",
    "dynamics.epsilon",
)
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


def _finite(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ValueError(f"axis values must be finite numbers; got {x!r}")
    return float(x)


def resolve(path: str, *, n_target: int, particles: int) -> AxisField:
    """The field an axis path names, or a `ValueError` saying why it cannot be swept.

    `model.` may be left out of model paths (`target[3]`, `init.a`, `noise`)."""
    match = _PATH.match(path)
    if not match:
        raise ValueError(f"axis {path!r} is not a field path; sweepable: {', '.join(SWEEPABLE)}")
    name, index = match.group(1), match.group(2)
    index = int(index) if index is not None else None
    parts = name.split(".")
    if parts[0] == "model":
        parts = parts[1:]
    dotted = ".".join(parts)
    if dotted == "target":
        if index is None:
            raise ValueError(
                f"axis {path!r}: give one coefficient, target[k], k = 0..{n_target - 1}"
            )
        if index >= n_target:
            raise ValueError(
                f"axis {path!r}: target has {n_target} coefficients, k must be 0..{n_target - 1}"
            )
        return AxisField("target", index)
    if dotted in ("init.a", "init.s"):
        if index is not None and index >= particles:
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
        raise ValueError(
            f"axis {path!r} cannot be swept: it sets {what}; sweepable: {', '.join(SWEEPABLE)}"
        )
    raise ValueError(f"axis {path!r}: no such numeric field; sweepable: {', '.join(SWEEPABLE)}")


def check_values(path: str, field: AxisField, values: tuple[float, ...]) -> None:
    """The constraints the config places on the field, applied to every value of its axis."""
    bad = {
        "s": [v for v in values if not -1 < v < 1],
        "noise": [v for v in values if v < 0],
        "epsilon": [v for v in values if v <= 0],
    }.get(field.field, [])
    if bad:
        rule = {"s": "lie strictly between -1 and 1", "noise": "be >= 0", "epsilon": "be > 0"}
        raise ValueError(f"axis {path!r}: values must {rule[field.field]}; got {bad[0]!r}")
