"""Dotted overrides of a config's data, as the command line's `--set PATH=VALUE` gives them.

`PATH` walks the config's mappings by key (`dynamics.epsilon`, `sweep.chunk`); a key that
itself holds dots, as sweep axis paths do (`sweep.axes.init.a`), is matched whole where the
mapping has it. `NAME[k]` sets element k of a list (`model.target[3]`). `VALUE` is read as
YAML (`1e-3` is a number, `[0.1, 0.2]` a list, `{linspace: [0, 1, 5]}` a mapping), so an
override is validated exactly like the same value written in the file.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from ._config import _Loader
from ._errors import ConfigError

_INDEXED = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<index>\d+)\]$")


def parse_override(text: str) -> tuple[str, Any]:
    """`"PATH=VALUE"` -> (PATH, the YAML value)."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set {text!r}: expected PATH=VALUE, e.g. dynamics.epsilon=1e-3")
    try:
        return path.strip(), yaml.load(value, Loader=_Loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {path}: VALUE is not valid YAML: {err}") from None


def apply_overrides(data: Mapping, overrides: Iterable[str]) -> dict:
    """A copy of `data` with every `PATH=VALUE` of `overrides` set, in order."""
    out = copy.deepcopy(dict(data))
    for text in overrides:
        path, value = parse_override(text)
        _set(out, path, value)
    return out


def _set(node: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    where = []
    while parts:
        # The longest run of parts that the mapping holds as one key (axis paths hold dots).
        n = next((n for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in node), 1)
        key, parts = ".".join(parts[:n]), parts[n:]
        where.append(key)
        indexed = _INDEXED.match(key)
        if indexed and key not in node:
            name, index = indexed["name"], int(indexed["index"])
            items = node.get(name)
            if not isinstance(items, list) or index >= len(items):
                size = len(items) if isinstance(items, list) else "no"
                raise ConfigError(
                    f"--set {path}: {name} is not a list with an element {index} ({size} elements)"
                )
            if parts:
                raise ConfigError(f"--set {path}: {key} holds a number, not a section")
            items[index] = value
            return
        if not parts:
            node[key] = value
            return
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"--set {path}: {'.'.join(where)} is a {type(child).__name__}, not a section"
            )
        node = child
