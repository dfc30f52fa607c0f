"""The kind registry: each kind is one file registered by one line (and docs/extending.md's
recipe for adding one works as written), the sweep's two modes are dispatched in one place,
and importing the figures leaves matplotlib's backend alone."""

import importlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import xarray as xr
import yaml

import fsjax
from fsjax._kinds import KINDS, sweep
from fsjax._kinds.base import Kind

ROOT = Path(__file__).resolve().parents[1]
KIND_FILES = sorted(
    p.stem for p in (ROOT / "fsjax" / "_kinds").glob("*.py") if p.stem not in ("__init__", "base")
)
MODEL = {"activation": "tanh", "target": [0, 1, 0, 0.3], "init": {"a": 0.5}}


def test_every_kind_file_is_registered_once_under_its_name():
    assert sorted(KINDS) == KIND_FILES
    for name in KIND_FILES:
        kind = importlib.import_module(f"fsjax._kinds.{name}").KIND
        assert isinstance(kind, Kind) and KINDS[name] is kind and kind.name == name


def test_public_run_sweep_runs_what_kind_sweep_runs():
    assert fsjax.run_sweep is KINDS["sweep"].run is sweep.run_sweep


@pytest.mark.parametrize("network", [None, {"width": 8, "dim": 8, "batch": 8, "lr": 0.1}])
def test_sweep_runner_and_figures_dispatch_through_one_name(monkeypatch, tmp_path, network):
    """The runner reads the config, the figures the config a dataset records; both must reach
    the same engine and its figures (fakes stand in for them, so nothing is solved)."""
    data = {"kind": "sweep", "model": MODEL, "sweep": {"axes": {"init.a": [0.3, 0.6]}}}
    if network:
        data["network"] = network | {"steps": 10}
    config = fsjax.load_config(data)
    expected = "reduced" if network is None else "network"
    for name in sweep.ENGINES:
        fake = sweep._Engine(
            lambda config, name=name, **_: xr.Dataset(
                attrs={"ran": name, "config": yaml.safe_dump(fsjax.config_dict(config))}
            ),
            lambda ds, out, name=name: [name],
        )
        monkeypatch.setitem(sweep.ENGINES, name, fake)
    ds = fsjax.run(config)
    assert ds.attrs["ran"] == expected
    assert KINDS["sweep"].figures[0](ds, tmp_path) == [expected]


def test_kind_that_is_not_a_name_is_one_config_error():
    for kind in ({"sweep": 1}, ["sweep"], None):
        with pytest.raises(fsjax.ConfigError, match=r"^kind: must be one of trajectory, "):
            fsjax.load_config({"kind": kind, "model": MODEL})


def _python(code: str, env: dict | None = None, cwd=None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=os.environ | (env or {}),
        cwd=cwd,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


BACKEND_CHECK = """
import matplotlib
import fsjax.plots
import matplotlib.pyplot as plt
import xarray as xr
from fsjax._kinds.sensitivity import sensitivity_figures

ds = xr.Dataset({"grad_t_onset": ("param", [1.0, -2.0])}, coords={"param": ["x", "y"]})
(path,) = sensitivity_figures(ds, OUT)
assert open(path, "rb").read(4) == b"\\x89PNG" and plt.get_fignums() == []
print(matplotlib.get_backend())
"""


@pytest.mark.slow
def test_importing_the_figures_keeps_matplotlibs_backend(tmp_path):
    """In a fresh process, since a backend once switched stays switched: `svg` is a
    non-interactive backend other than Agg; a figure is still written as a PNG under it, and
    pyplot holds none of fsjax's figures afterwards."""
    code = BACKEND_CHECK.replace("OUT", repr(str(tmp_path)))
    assert _python(code, env={"MPLBACKEND": "svg"}).strip() == "svg"


def _extending_example() -> tuple[str, str]:
    """The kind file and the registration line that docs/extending.md's "Add a kind" shows."""
    text = (ROOT / "docs" / "extending.md").read_text()
    section = text[text.index("## Add a kind") :]
    # The registration line is a `text` block: a formatter would turn a lone `x.KIND,` into
    # a tuple.
    blocks = re.findall(r"^```(?:python|text)\n(.*?)^```", section, re.S | re.M)
    return blocks[0], blocks[1]


@pytest.mark.slow
def test_adding_a_kind_is_one_file_and_one_line(tmp_path):
    """docs/extending.md's recipe, followed in a copy of the package: its kind file, its line
    in KINDS and its module's name in the import; then the kind validates, runs, draws its
    figure from the command line and appears in the config reference."""
    source, line = _extending_example()
    shutil.copytree(
        ROOT / "fsjax", tmp_path / "fsjax", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "fsjax" / "_kinds" / "initial_risk.py").write_text(source)
    registry = tmp_path / "fsjax" / "_kinds" / "__init__.py"
    text = registry.read_text()
    last = "        sensitivity_map.KIND,\n"
    text = text.replace(last, last + line).replace(
        "sweep, trajectory\n", "sweep, trajectory, initial_risk\n"
    )
    registry.write_text(text)
    cfg = {
        "kind": "initial_risk",
        "model": {"activation": "linear", "target": [0, 1], "init": {"a": 0.5, "s": 0.3}},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code = f"""
        import sys
        import fsjax
        from fsjax._cli import main
        assert fsjax.__file__.startswith({str(tmp_path)!r})
        ds = fsjax.run("c.yaml")
        print(float(ds["risk"]))
        try:
            fsjax.load_config({{**{cfg!r}, "orders": 0}})
        except fsjax.ConfigError as err:
            print(err)
        assert main(["run", "c.yaml", "--out", "o"]) == 0
        sys.path.insert(0, "docs")
        import gen_config_reference
        print("kind: initial_risk" in gen_config_reference.reference())
    """
    out = _python(code, env={"PYTHONPATH": str(tmp_path)}, cwd=tmp_path).splitlines()
    # The infinite-width risk of one particle with a linear activation and target z:
    # R = (c_1 - a s)^2 / 2 (THEORY.md section 2), here (1 - 0.15)^2 / 2, to rounding.
    assert float(out[0]) == pytest.approx((1 - 0.5 * 0.3) ** 2 / 2, rel=1e-12)
    assert out[1].startswith("orders: ")
    assert (tmp_path / "o" / "initial_risk.png").stat().st_size > 0
    assert out[-1] == "True"
