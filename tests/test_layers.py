"""fsjax's modules import only downward: the layer order, written down here once.

A module may import from its own layer or a lower one. The order runs from the numerics that
know nothing of configs to the entry points that read them; a new module goes into the lowest
layer whose imports it needs (docs/extending.md).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fsjax"

# Bottom to top; an entry names a module or subpackage of fsjax (without the `fsjax.` prefix).
LAYERS = (
    ("_errors", "_io", "_results", "_sizes", "hermite"),  # foundations
    ("_solve",),  # solvers, step matrices, the one diffeqsolve call
    ("_model",),  # reduced models, network, corrections, the parameter point and its axes
    ("_analysis",),  # diagnostics, manifold, sensitivities, comparisons
    ("_train",),  # SGD on networks and ensembles
    ("_config", "_overrides"),  # the config schema's shared sections, --set overrides
    ("_point",),  # config -> parameter point
    ("_sweep",),  # sweep engines and the chunk store
    ("plots",),  # reusable figure pieces
    ("_kinds",),  # one file per kind: config class, runner, figures
    ("_run", "_open", "_cli", "__main__", "config", "solvers", "__init__"),  # entry points
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """The layer entry a dotted module name (relative to fsjax) belongs to."""
    return module.split(".")[0] or "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module relative to fsjax) of every fsjax import in `path`."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    package = parts[:-1]  # a module's package; an __init__ is its own package
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            names = [node.module] if node.module else [a.name for a in node.names]
            found += [(node.lineno, ".".join([*base, n])) for n in names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fsjax"):
            found.append((node.lineno, node.module.removeprefix("fsjax").lstrip(".")))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.removeprefix("fsjax").lstrip("."))
                for a in node.names
                if a.name == "fsjax" or a.name.startswith("fsjax.")
            ]
    return found


def test_every_module_has_a_layer():
    units = {
        _unit(".".join(p.relative_to(PACKAGE).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")
    }
    assert units <= set(RANK), f"modules without a layer: {sorted(units - set(RANK))}"


def test_imports_only_downward():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mine = _unit(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        for line, module in _imports(path):
            theirs = _unit(module)
            if theirs in RANK and RANK[theirs] > RANK[mine]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)
