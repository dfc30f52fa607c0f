"""Every shipped config, mutated as a new user might: a value of another type at a random key, a
key removed or added. Validating any of them either succeeds or raises fsjax's `ConfigError`
with one line that names the field; no other exception (TypeError, MemoryError, ...) escapes.
`kind` is mutated like any other key (a mapping or a list there once raised TypeError)."""

from __future__ import annotations

import copy
import random
import re
import zlib
from pathlib import Path

import pytest

import fsjax
from fsjax._config import read_yaml

CONFIGS = sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml"))
MUTATIONS = 1500  # over all configs
# Values of every type a YAML file can hold, and sizes no machine has memory for.
VALUES = [
    None,
    True,
    False,
    "",
    "tanh",
    "float64",
    "1e-3",
    0,
    1,
    -1,
    2,
    7,
    10**12,
    -(10**12),
    2**64,
    0.0,
    0.5,
    -0.5,
    1e300,
    -1e300,
    [],
    [0],
    [1, 2],
    [None],
    ["a", 1.5],
    [[1, 2], [3]],
    {},
    {"a": 1},
    {"linspace": [0, 1, 3]},
    {"geomspace": [1, 2, 10**12]},
    {"uniform": [0, 1]},
    {"normal": [0, 1], "seed": 1},
]
HUGE = [10**9, 10**12, 2**62]
# One line: the field (dotted path with [i] or .i for list items), a colon and the message.
ONE_LINE = re.compile(r"^[\w\[\].\-]+: [^\n]+$")


def _paths(data, prefix=()):
    """Every (path, value) below the top level, mappings and lists alike."""
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        path = (*prefix, key)
        yield path, value
        if isinstance(value, dict | list) and value:
            yield from _paths(value, path)


def _mutate(data: dict, rng: random.Random) -> dict:
    data = copy.deepcopy(data)
    paths = [path for path, _ in _paths(data)]
    sizes = [path for path, v in _paths(data) if isinstance(v, int) and not isinstance(v, bool)]
    action = rng.random()
    # One in five: a size (any integer) no machine has memory for.
    path = rng.choice(sizes if action < 0.2 and sizes else paths)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if action < 0.2 and sizes:
        parent[path[-1]] = rng.choice(HUGE)
    elif action < 0.7:
        parent[path[-1]] = copy.deepcopy(rng.choice(VALUES))
    elif action < 0.85 and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[rng.choice(["extra", "seed", "chunk", "axes", "steps"])] = rng.choice(VALUES)
    else:
        parent.append(copy.deepcopy(rng.choice(VALUES)))
    return data


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_mutated_configs_fail_with_one_line(path):
    original = read_yaml(path)[0]  # fsjax's YAML reading (1e6 is a number)
    fsjax.load_config(original)  # the shipped config itself is valid
    rng = random.Random(zlib.crc32(path.name.encode()))
    failures = []
    for _ in range(-(-MUTATIONS // len(CONFIGS))):
        data = _mutate(original, rng)
        try:
            fsjax.load_config(data)
        except fsjax.ConfigError as err:
            if not ONE_LINE.match(str(err)):
                failures.append(f"{data}: ConfigError not one line naming a field: {err}")
        except Exception as err:  # what this test is for: nothing but ConfigError
            failures.append(f"{data}: {type(err).__name__}: {err}"[:2000])
    assert not failures, "\n".join(failures)
