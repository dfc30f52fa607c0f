"""Sizes that cannot fit are refused when the config is validated, from an estimate, before
anything of that size is allocated: the error names the field, the estimate and the largest
value that fits, and that value does fit."""

from __future__ import annotations

import copy
import re

import pytest

import fsjax
from fsjax import _sizes

# The smallest sizes: a field's largest value that fits is then not held back by another's.
TRAJECTORY = {
    "kind": "trajectory",
    "model": {"target": [0, 1, 0, 0.3], "particles": 1},
    "solver": {"n_save": 2},
}
LONG = copy.deepcopy(TRAJECTORY) | {"solver": {"n_save": 100_000}}
NETWORK = {
    "kind": "network",
    "model": {"target": [0, 1, 0, 0.3]},
    "network": {
        "width": 1,
        "dim": 1,
        "batch": 1,
        "lr": 0.01,
        "steps": 10,
        "record": 2,
        "mc_samples": 0,
    },
}


def _with(config: dict, section: str, **values) -> dict:
    config = copy.deepcopy(config)
    config[section] |= values
    return config


def test_particles_of_seven_tebibytes_are_refused():
    """The size that raised MemoryError allocating 7 TiB of initial values."""
    config = _with(TRAJECTORY, "model", particles=10**12)
    with pytest.raises(fsjax.ConfigError, match=r"^model: particles = 1000000000000 .*GiB"):
        fsjax.load_config(config)


@pytest.mark.parametrize(
    ("base", "section", "field", "value", "where"),
    [
        (TRAJECTORY, "model", "particles", 10**9, "model: particles"),
        (LONG, "model", "particles", 10**5, "config: model.particles"),  # x n_save
        (TRAJECTORY, "solver", "n_save", 10**9, "solver: n_save"),
        (NETWORK, "network", "width", 10**9, "network: width"),
        (NETWORK, "network", "batch", 10**9, "network: batch"),
        (NETWORK, "network", "dim", 10**9, "network: dim"),
        (NETWORK, "network", "mc_samples", 10**9, "network: mc_samples"),
        (NETWORK, "network", "record", 10**9, "network: record"),
    ],
)
def test_largest_size_that_fits(monkeypatch, base, section, field, value, where):
    """On a machine of 1 GiB: the largest value the error names validates, and one more is
    refused with it."""
    monkeypatch.setattr(_sizes, "machine_bytes", lambda: 2**30)
    with pytest.raises(fsjax.ConfigError) as error:
        fsjax.load_config(_with(base, section, **{field: value}))
    message = str(error.value)
    assert message.startswith(f"{where} = {value}") and "GiB" in message, message
    largest = int(re.search(r"the largest that fits is (\d+)$", message).group(1))
    fsjax.load_config(_with(base, section, **{field: largest}))
    with pytest.raises(fsjax.ConfigError, match=f"the largest that fits is {largest}$"):
        fsjax.load_config(_with(base, section, **{field: largest + 1}))


def test_sweep_chunk(monkeypatch):
    monkeypatch.setattr(_sizes, "machine_bytes", lambda: 2**30)
    config = {
        "kind": "sweep",
        "model": {"target": [0, 1, 0, 0.3], "particles": 100},
        "solver": {"n_save": 400},
        "sweep": {"axes": {"init.a": [0.5, 1.0]}, "chunk": 10**6},
    }
    # 100 particles at 400 saves: 1440 * 100 + 8 * 400 * 201 bytes a point.
    largest = 2**30 // (1440 * 100 + 8 * 400 * 201)
    with pytest.raises(fsjax.ConfigError, match=f"sweep.chunk = 1000000 .*fits is {largest}$"):
        fsjax.load_config(config)


def test_a_sweep_plan_that_cannot_fit_names_the_points_that_do(monkeypatch):
    """The plan holds 8 * (2 * axes + 4) bytes a point: at 1 MiB, 2 axes fit 16,384 points."""
    monkeypatch.setattr(_sizes, "machine_bytes", lambda: 2**20)
    sweep = {
        "kind": "sweep",
        "model": {"target": [0, 1, 0, 0.3]},
        "solver": {"n_save": 2},
        "sweep": {
            "axes": {"init.a": {"linspace": [0.1, 1, 100]}, "target[3]": [0.1] * 200},
            "chunk": 1,
        },
    }
    with pytest.raises(fsjax.ConfigError, match=r"^sweep: points = 20000 .* fits is 16384$"):
        fsjax.load_config(sweep)
    sweep["sweep"]["axes"]["target[3]"] = [0.1] * 163  # 16,300 points
    fsjax.load_config(sweep)
