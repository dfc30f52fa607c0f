"""Write docs/config.md, the reference of every config key, from the pydantic models.

    python docs/gen_config_reference.py           # rewrite docs/config.md
    python docs/gen_config_reference.py --check   # exit 1 if docs/config.md is out of date

Types, defaults, bounds and allowed values are read from the models in `fsjax._config`; only
the one-line meanings below are written by hand. A field without a meaning here is an error,
so a new config key cannot go undocumented (tests/test_docs.py runs `--check`).
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path

import annotated_types as at
import pydantic
from pydantic_core import PydanticUndefined

from fsjax import hermite
from fsjax._kinds import KINDS
from fsjax._model import axes as _axes

OUT = Path(__file__).resolve().parent / "config.md"

_ACTIVATIONS = ", ".join(f"`{n}`" for n in hermite.ACTIVATION_NAMES)
_SWEEPABLE = ", ".join(f"`{p}`" for p in _axes.SWEEPABLE)

_FLOOR = (
    "Add the floor a network's rows keep under on the boundary s = 1 (rounding of the rows, "
    "batch noise through the second layer's spread) to the reduced flow, so that it leaves "
    "the boundary when the network does; unset: on wherever the config names a network "
    "(`true` without a `network:` section is an error). See docs/theory-notes.md."
)

MEANINGS = {
    "TrajectoryConfig": "One solve of the reduced mean-field ODE, with its diagnostics.",
    "NetworkConfig": "Online large-batch SGD on a wide two-layer network.",
    "CompareConfig": "A network under SGD against the reduced flow started at its initial "
    "order parameters.",
    "SweepConfig": "The reduced ODE over a grid (or zip) of config values, one compiled "
    "batch per chunk.",
    "SensitivityConfig": "Onset and depth of unlearning and their gradients (automatic, and "
    "optionally central finite differences).",
    "PhasePortraitConfig": "The critical manifold of the 2-D slow-second-layer system with "
    "trajectories for several eps.",
    "SensitivityMapConfig": "The onset of unlearning and its gradients over a plane of two "
    "parameters (`target[k]`, `init.a`).",
    # sections
    "ModelConfig.activation": f"Activation sigma: one of {_ACTIVATIONS}, `{{hermite: [mu_0, "
    "mu_1, ...]}` (its Hermite coefficients) or `{polynomial: [p_0, p_1, ...]}` "
    "(sigma(z) = sum p_j z^j).",
    "ModelConfig.hermite_order": "Highest Hermite order of the activation series kept in the "
    "reduced model.",
    "ModelConfig.target": "Data Hermite coefficients `[c_0, c_1, ..., c_K]` of f*(z) = sum "
    "c_k h_k(z) (finite numbers).",
    "ModelConfig.noise": "Label-noise standard deviation tau.",
    "ModelConfig.particles": "Number of particles m of the reduced model (for `network`, "
    "`compare`: 1 or `network.width`).",
    "ModelConfig.init": "Initial particles (section `init`).",
    "InitConfig.a": "Initial second-layer weight a_i: one number for all particles, a list "
    "of `particles` numbers, or a distribution placing them: `{uniform: [lo, hi]}`, "
    "`{normal: [mean, std]}` (random, drawn with `seed`), `{linspace: [lo, hi]}` (evenly "
    "spaced, ends included), `{normal_quantiles: [mean, std]}` (the Gaussian's quantiles at "
    "(i + 1/2)/m: a deterministic sample of the distribution). A network run places "
    "`network.width` values.",
    "InitConfig.s": "Initial alignment s_i, each strictly in (-1, 1), given like `a`; a "
    "distribution that places a value outside (-1, 1) is refused.",
    "InitConfig.seed": "Seed of the random distributions of `a` and `s` (each on its own "
    "stream; the same seed gives the same particles everywhere).",
    "DynamicsConfig.slow": "Which layer is slow: `second_layer` gives (lam_a, lam_w) = (eps, "
    "1), `first_layer` gives (1, eps).",
    "DynamicsConfig.epsilon": "Time-scale ratio eps.",
    "SolverConfig.method": "Integrator (Kvaerno: implicit Runge-Kutta, for stiff fast-slow "
    "problems; Rodas: linearly implicit Rosenbrock, one Jacobian per step, for many particles "
    "and sweeps; Tsit5/Dopri: explicit). See docs/concepts.md.",
    "SolverConfig.t_first": "First saved time (saves are log-spaced; the solve starts at 0).",
    "SolverConfig.t_final": "Last saved time; must exceed `t_first`.",
    "SolverConfig.n_save": "Number of saved times.",
    "SolverConfig.rtol": "Relative tolerance of the step-size controller.",
    "SolverConfig.atol": "Absolute tolerance of the step-size controller.",
    "SolverConfig.max_steps": "Step budget; a solve that runs out reports status 1 and NaN.",
    "NetworkSectionConfig.width": "Number of hidden neurons n.",
    "NetworkSectionConfig.dim": "Input dimension d.",
    "NetworkSectionConfig.batch": "Fresh samples per SGD step B.",
    "NetworkSectionConfig.lr": "SGD step eta; training time is t = steps * lr.",
    "NetworkSectionConfig.steps": "Number of SGD steps.",
    "NetworkSectionConfig.seed": "PRNG seed of the initialisation and the data stream.",
    "NetworkSectionConfig.dtype": "Floating-point precision of the network.",
    "NetworkSectionConfig.record": "Number of record points (step 0 and the last step included).",
    "NetworkSectionConfig.record_spacing": "`log`: step 0 and log-spaced steps (trajectories "
    "over decades); `uniform`: evenly spaced steps, which time an event such as the exit from "
    "the boundary (`t_exit`) to one record step.",
    "NetworkSectionConfig.mc_samples": "Held-out samples for the Monte Carlo risk check (0: "
    "off). A network sweep records the closed-form risk only: there it must be 0 (its "
    "default).",
    "NetworkSizeConfig.width": "Number of hidden neurons n of the network the flow stands for.",
    "NetworkSizeConfig.dim": "Its input dimension d.",
    "NetworkSizeConfig.batch": "Its batch B (fresh samples per SGD step).",
    "NetworkSizeConfig.lr": "Its SGD step eta.",
    "NetworkSizeConfig.dtype": "Floating-point precision of its weights.",
    "TrajectoryConfig.network": "Optional: the network this flow stands for (sizes, step, "
    "precision); with it the boundary floor is on by default.",
    "TrajectoryConfig.boundary_floor": _FLOOR,
    "CompareConfig.boundary_floor": _FLOOR,
    "SweepConfig.boundary_floor": _FLOOR,
    "CompareConfig.t_min": "Deviations between network and reduced flow are measured over "
    "t >= t_min.",
    "CompareConfig.finite_width": "Add the O(1/n) self-interaction of each neuron to the "
    "reduced flow (see docs/network.md).",
    "CompareConfig.finite_batch": "Finite-batch drift of the reduced flow: `none`, `theory` "
    "(THEORY.md section 6; does not help) or `shared` (batch noise shared across neurons; "
    "see docs/network.md).",
    "SweepSection.axes": "Map from a field path to its values: a list, or `{SPACING: [start, "
    "stop, num]}` with SPACING one of `linspace`, `logspace`, `geomspace`. Sweepable paths: "
    + _SWEEPABLE
    + ".",
    "SweepSection.mode": "`grid`: every combination of the axes; `zip`: values paired in "
    "order (equal lengths).",
    "SweepSection.chunk": "Points per compiled batch (networks per batch in a network sweep).",
    "SweepSection.seeds": "Networks per point in a network sweep, seeded `network.seed`, "
    "`network.seed + 1`, ... (a `seed` coordinate); 1 without a `network:` section.",
    "SweepConfig.network": "Optional: train a network of these sizes at every point and seed "
    "and compare it with the reduced flow from its initial order parameters (axes may then "
    "include `network.lr` and the shape-changing `network.width`, `network.dim`, "
    "`network.batch`; see docs/network.md).",
    "SweepSection.balance": "`neighbours`: order points by the measured cost of their "
    "nearest first-pass samples (see docs/sweeps.md); `none`: grid order. A network sweep "
    "trains every network for `network.steps`, so it has nothing to balance: there it must "
    "be `none` (its default).",
    "SensitivitySection.quantities": "Quantities to differentiate.",
    "SensitivitySection.params": "Parameter groups to differentiate with respect to (`mu`: "
    "the activation's Hermite coefficients).",
    "SensitivitySection.fd": "Also write central finite differences beside the automatic "
    "derivatives.",
    "SensitivitySection.fd_step": "Relative finite-difference step h / max(|p|, 1).",
    "MapSection.axes": "Exactly two axes, each `target[k]` or `init.a`, with values given like "
    "sweep axes (a list or `{SPACING: [start, stop, num]}`).",
    "MapSection.quantities": "Quantities to map with their derivatives along both axes.",
    "PortraitSection.epsilons": "One full trajectory per eps, each in (0, 1).",
    "PortraitSection.a_range": "Interval [a_min, a_max] of second-layer weights over which "
    "the manifold is traced.",
    "PortraitSection.n_a": "Number of a values on which the manifold is traced.",
}
SECTION_TITLES = {
    "ModelConfig": "model",
    "InitConfig": "model.init",
    "DynamicsConfig": "dynamics",
    "SolverConfig": "solver",
    "NetworkSectionConfig": "network",
    "NetworkSizeConfig": "trajectory.network",
    "SweepSection": "sweep",
    "SensitivitySection": "sensitivity",
    "PortraitSection": "portrait",
    "MapSection": "map",
}
_BOUNDS = ((at.Gt, "gt", ">"), (at.Ge, "ge", ">="), (at.Lt, "lt", "<"), (at.Le, "le", "<="))


def _is_section(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


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
        return f"section [`{SECTION_TITLES[tp.__name__]}`](#{_anchor(tp)})", ""
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
    return "section-" + SECTION_TITLES[model.__name__].replace(".", "")


def _rows(model, skip=("kind",)) -> list[str]:
    rows = ["| key | type | default | allowed values | meaning |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        key = f"{model.__name__}.{name}"
        if key not in MEANINGS and _is_section(field.annotation):
            MEANINGS[key] = f"The `{SECTION_TITLES[field.annotation.__name__]}` section."
        if key not in MEANINGS:
            raise KeyError(f"docs/gen_config_reference.py: add a meaning for {key}")
        tp, allowed = _type(field.annotation)
        allowed = ", ".join(filter(None, [allowed, *_bounds(field.metadata)]))
        meaning = MEANINGS[key].replace("|", "\\|")  # a bare | would end the table cell
        rows.append(f"| `{name}` | {tp} | {_default(field)} | {allowed} | {meaning} |")
    return rows


def _sections(model, seen: list) -> None:
    for field in model.model_fields.values():
        # An optional section (`X | None`) is listed like a required one.
        for tp in (field.annotation, *typing.get_args(field.annotation)):
            if _is_section(tp) and tp not in seen:
                seen.append(tp)
                _sections(tp, seen)


def reference() -> str:
    kinds = [kind.config for kind in KINDS.values()]
    lines = [
        "# Config reference",
        "",
        "<!-- Generated by `python docs/gen_config_reference.py` from the pydantic models in",
        "fsjax/_config.py; do not edit by hand (tests/test_docs.py checks it is up to date). -->",
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
    for kind_cls, kind in zip(kinds, KINDS, strict=True):
        lines += [f"### `kind: {kind}`", "", MEANINGS[kind_cls.__name__], ""]
        lines += [*_rows(kind_cls), ""]
    seen: list = []
    for kind_cls in kinds:
        _sections(kind_cls, seen)
    lines += ["## Sections", ""]
    for section in sorted(seen, key=lambda s: list(SECTION_TITLES).index(s.__name__)):
        lines += [f'<a id="{_anchor(section)}"></a>', ""]
        lines += [f"### `{SECTION_TITLES[section.__name__]}`", ""]
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
