"""In-process stand-ins, for the fast tier, of the checks that start processes: `python -m fsjax`
exits with the command line's codes, `fsjax run` draws the network and compare figures
(otherwise drawn only by the docs' runnable blocks), and a tiny network sweep draws its own."""

import runpy
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

from fsjax._cli import main
from fsjax._kinds import load_config
from fsjax._kinds.sweep import run_sweep, sweep_kind_figures

ROOT = Path(__file__).resolve().parents[1]

# A network small enough to compile in seconds; the figures, not the numbers, are checked.
TINY = {
    "model": {"activation": "tanh", "target": [0, 1, 0, 0.3], "init": {"a": 0.5}},
    "dynamics": {"slow": "second_layer", "epsilon": 0.05},
    "network": {"width": 4, "dim": 4, "batch": 16, "lr": 0.05, "steps": 20, "record": 5},
}


@pytest.mark.parametrize(
    ("args", "code"),
    [(["validate", str(ROOT / "configs" / "trajectory.yaml")], 0), (["run", "nope.yaml"], 2)],
)
def test_module_entry_point_exits_with_the_command_line_code(monkeypatch, capsys, args, code):
    monkeypatch.setattr(sys, "argv", ["fsjax", *args])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("fsjax", run_name="__main__")
    assert exit_.value.code == code
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kind", "mc_samples", "figure"),
    [("network", 512, "network.png"), ("compare", 0, "compare.png")],
)
def test_cli_draws_the_network_figures(tmp_path, kind, mc_samples, figure):
    cfg = TINY | {"kind": kind}
    if kind == "compare":  # a network kind has no reduced-flow solve
        cfg["solver"] = {"method": "tsit5"}  # not stiff at this size; compiles fast
    cfg["network"] = TINY["network"] | {"mc_samples": mc_samples}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 0
    assert xr.open_dataset(out / "results.nc").sizes["time"] == 5
    assert (out / figure).stat().st_size > 0


def test_network_sweep_on_a_plane_draws_its_figures(tmp_path):
    cfg = TINY | {"kind": "sweep", "solver": {"method": "tsit5"}}
    cfg["sweep"] = {"axes": {"init.a": [0.3, 0.6], "target[3]": [0.0, 0.3]}}
    ds = run_sweep(load_config(cfg))
    assert ds.sizes["init_a"] == 2 and ds.sizes["target_3"] == 2
    assert (ds["status"] == 0).all()
    paths = sweep_kind_figures(ds, tmp_path)
    assert [p.name for p in paths] == ["network_phase.png", "network_deviation.png"]
    assert all(p.stat().st_size > 0 for p in paths)
