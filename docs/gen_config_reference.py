"""Write docs/config.md, the reference of every config key, from the pydantic models.

    python docs/gen_config_reference.py           # rewrite docs/config.md
    python docs/gen_config_reference.py --check   # exit 1 if docs/config.md is out of date

Everything is read from the config classes of the kinds in `fsjax._kinds.KINDS` and the
sections they hold: types, defaults, bounds and allowed values from the annotations, each
meaning from the field's `description` (a kind's from its `kind` field's). A field without a
description is an error, so a new config key cannot go undocumented (tests/test_docs.py checks
that docs/config.md is up to date). A section is titled by its key (`model.init`), prefixed by
its kind where one kind alone has it and another section shares its key (`trajectory.network`).
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections import defaultdict
from pathlib import Path

import annotated_types as at
import pydantic
from pydantic_core import PydanticUndefined

from fsjax._kinds import KINDS

OUT = Path(__file__).resolve().parent / "config.md"

_BOUNDS = ((at.Gt, "gt", ">"), (at.Ge, "ge", ">="), (at.Lt, "lt", "<"), (at.Le, "le", "<="))


def _is_section(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _section_fields(model):
    """(key, section class) of each field of `model` that is a section (`X | None` included)."""
    for name, field in model.model_fields.items():
        for tp in (field.annotation, *typing.get_args(field.annotation)):
            if _is_section(tp):
                yield name, tp


def _titles() -> dict[type, str]:
    """Every section class -> its title, in the order of the reference: the sections several
    kinds share first, then each kind's own, both in the order they are met."""
    keys: dict[type, str] = {}
    users: dict[type, list[str]] = defaultdict(list)

    def walk(model, prefix, kind):
        for name, tp in _section_fields(model):
            keys.setdefault(tp, prefix + name)
            if kind not in users[tp]:
                users[tp].append(kind)
            walk(tp, f"{prefix}{name}.", kind)

    for kind in KINDS.values():
        walk(kind.config, "", kind.name)
    titles = {}
    for tp, key in keys.items():
        shared = any(other is not tp and k == key for other, k in keys.items())
        alone = len(users[tp]) == 1
        # Of the section classes that share a key, the one with the most fields keeps it; the
        # others are qualified by their kind, or by the list of kinds that use them.
        rivals = [other for other, k in keys.items() if k == key]
        if not shared or tp is max(rivals, key=lambda c: len(c.model_fields)):
            titles[tp] = key
        else:
            titles[tp] = f"{users[tp][0]}.{key}" if alone else f"{key} ({', '.join(users[tp])})"
    return dict(sorted(titles.items(), key=lambda item: len(users[item[0]]) == 1))


TITLES = _titles()


def _bounds(metadata) -> list[str]:
    out = []
    for item in metadata:
        for cls, attr, sym in _BOUNDS:
            if isinstance(item, cls):
                out.append(f"{sym} {getattr(item, attr):g}")
    return out


def _type(tp) -> tuple[str, str]:
    """(type, allowed values) of an annotation."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "string", ", ".join(f"`{a}`" for a in args)
    if origin is typing.Annotated:
        name, allowed = _type(args[0])
        bounds = _bounds(a for extra in args[1:] for a in getattr(extra, "metadata", [extra]))
        return name, ", ".join(filter(None, [allowed, *bounds]))
    if origin is list:
        name, allowed = _type(args[0])
        return f"list of {name}", (f"each {allowed}" if allowed else "")
    if origin is dict:
        return "mapping", ""
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        name, allowed = _type(next(a for a in args if a is not type(None)))
        return f"optional {name}", allowed
    if _is_section(tp):
        return f"section [`{TITLES[tp]}`](#{_anchor(tp)})", ""
    if tp is typing.Any:
        return "see meaning", ""
    return {bool: "bool", int: "int", float: "float", str: "string"}[tp], ""


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is PydanticUndefined or isinstance(value, pydantic.BaseModel):
        return "section defaults"
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    if isinstance(value, tuple | list):
        return "`[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _anchor(model) -> str:
    return "section-" + re.sub(r"[^a-z0-9_]", "", TITLES[model].replace(", ", "-"))


def _description(model, name: str) -> str:
    text = model.model_fields[name].description
    if not text:
        raise KeyError(f"{model.__name__}.{name}: give the field a Field(description=...)")
    return text


def _rows(model, skip=("kind",)) -> list[str]:
    rows = ["| key | type | default | allowed values | meaning |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        tp, allowed = _type(field.annotation)
        allowed = ", ".join(filter(None, [allowed, *_bounds(field.metadata)]))
        meaning = _description(model, name).replace("|", "\\|")  # a bare | would end the cell
        rows.append(f"| `{name}` | {tp} | {_default(field)} | {allowed} | {meaning} |")
    return rows


def reference() -> str:
    lines = [
        "# Config reference",
        "",
        "<!-- Generated by `python docs/gen_config_reference.py` from the config classes of the",
        "kinds (fsjax/_kinds/) and the shared sections (fsjax/_config.py); do not edit by hand",
        "(tests/test_docs.py checks it is up to date). -->",
        "",
        "A config is a YAML file (or a dict) with a `kind` and the sections that kind uses.",
        "Unknown keys, wrong types (`1` where a float is expected is fine, `'1'` is not) and",
        "non-finite numbers are errors; `fsjax validate CONFIG` reports the first one with its",
        "field path and line. YAML exponents without a dot (`1e-8`) are read as floats.",
        "`fsjax run` writes the resolved config, defaults included, to `OUT/config.yaml`.",
        "",
        "## Kinds",
        "",
    ]
    for name, kind in KINDS.items():
        lines += [f"### `kind: {name}`", "", _description(kind.config, "kind"), ""]
        lines += [*_rows(kind.config), ""]
    lines += ["## Sections", ""]
    for section, title in TITLES.items():
        lines += [f'<a id="{_anchor(section)}"></a>', ""]
        lines += [f"### `{title}`", ""]
        lines += [*_rows(section), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = reference()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date; run python docs/gen_config_reference.py")
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
