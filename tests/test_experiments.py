"""The studies in experiments/ run through their command lines at tiny sizes and print sane
tables (the expected columns, finite numbers), import fsjax's public API only, and cite only
names that exist. Their numbers are not checked: the docs quote the full-size runs. The
studies whose tiny run is still dominated by compiling a sweep, a training loop and several
solves are marked slow."""

from __future__ import annotations

import ast
import importlib
import math
import re
from pathlib import Path

import pytest

import fsjax
from experiments import (
    boundary_exit,
    fastslow,
    method_choice,
    network_deviation,
    network_rperp,
    network_validation,
)

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted((ROOT / "experiments").glob("*.py"))


def rows(out: str, head: str) -> list[list[str]]:
    """The cells of the data rows of the markdown table whose header row starts with `head`."""
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(head))
    assert set(lines[start + 1]) <= set("|-")
    table = []
    for ln in lines[start + 2 :]:
        if not ln.startswith("|"):
            break
        table.append([c.strip() for c in ln.strip("|").split("|")])
    assert table, f"no rows under {head!r}"
    return table


def finite(cell: str) -> float:
    x = float(cell)
    assert math.isfinite(x), cell
    return x


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_study_imports_only_public_fsjax(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fsjax"):
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("fsjax._") for a in node.names)


@pytest.mark.parametrize("path", [*STUDIES, ROOT / "experiments" / "README.md"], ids=str)
def test_study_cites_names_that_exist(path):
    """Every `fsjax.x.y` a study or its README names is a module or attribute that exists."""
    for name in set(re.findall(r"\bfsjax(?:\.\w+)+", path.read_text())):
        obj, parts = fsjax, name.split(".")[1:]
        for i, part in enumerate(parts):
            if hasattr(obj, part):
                obj = getattr(obj, part)
            else:
                obj = importlib.import_module(".".join(["fsjax", *parts[: i + 1]]))


def test_method_choice_particles(capsys):
    method_choice.main(["particles", "--methods", "rodas5p", "--sizes", "4"])
    ((method, m, first, compiled, steps, risk),) = rows(capsys.readouterr().out, "| method | m |")
    assert (method, m) == ("rodas5p", "4") and int(steps) > 0
    assert finite(first) > 0 and finite(compiled) > 0 and finite(risk) >= 0


@pytest.mark.slow
def test_fastslow_figures(tmp_path, capsys):
    fastslow.main(["figures", "--out", str(tmp_path)])
    for name in ("a0_finite_equilibrium.png", "c3_strength.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    values = re.findall(r"(kappa_max|kappa_final|unlearning) (\S+),", capsys.readouterr().out)
    assert len(values) == 3 * 9 and all(math.isfinite(float(v)) for _, v in values)


def test_network_rperp_quick(capsys):
    network_rperp.main(["--quick"])
    table = rows(capsys.readouterr().out, "| B | t |")
    assert len(table) == 6
    for batch, t, measured, predicted in table:
        assert batch == "8" and finite(t) > 0 and finite(measured) >= 0 and finite(predicted) >= 0


@pytest.mark.slow
def test_network_deviation_quick(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    network_deviation.main(["run", "--quick", "--eps", "0.05"])
    network_deviation.main(["table", "--quick", "--eps", "0.05"])
    ((eps, d, n, b, seeds, *cells),) = rows(capsys.readouterr().out, "| eps | d |")
    assert (eps, d, n, b, seeds) == ("0.05", "8", "16", "64", "2")
    # Mean +- sd over the seeds of each deviation and exit time, or "-" where no seed's
    # alignment reached 0.99 (the exit columns of so short a run).
    for cell in cells[:3]:
        assert all(finite(x) >= 0 for x in cell.split(" +- "))
    assert all(cell == "-" or all(finite(x) >= 0 for x in cell.split(" +- ")) for cell in cells)


@pytest.mark.slow
def test_boundary_exit_quick(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    boundary_exit.main(["measure", "--quick"])
    boundary_exit.main(["table", "--quick"])
    ((case, eps, _, seeds, *cells),) = rows(capsys.readouterr().out, "| case | eps |")
    assert (case, eps, seeds) == ("quick", "0.01", "2")
    deviations = [finite(x) for x in cells[-2].split(" / ")]
    assert len(deviations) == 2 and all(d >= 0 for d in deviations)


@pytest.mark.slow
def test_network_validation_quick(tmp_path, capsys):
    network_validation.main(["--quick", "--out", str(tmp_path / "rows.json")])
    table = rows(capsys.readouterr().out, "| n | d | B |")
    assert [r[:3] for r in table] == [["16", "8", "256"]]
    assert all(finite(c) >= 0 for r in table for c in r[3:11])


@pytest.mark.slow
def test_fastslow_gradcheck_one_point(capsys):
    fastslow.main(["gradcheck", "--points", "1"])
    ((*_, rel_onset, rel_kappa, rel_unlearning),) = rows(capsys.readouterr().out, "| point |")
    assert all(0 <= finite(x) < 1 for x in (rel_onset, rel_kappa, rel_unlearning))
