"""`fsjax run/validate --set PATH=VALUE` and `fsjax --version`."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import fsjax
from fsjax._cli import main
from fsjax._overrides import apply_overrides

ROOT = Path(__file__).resolve().parents[1]

SWEEP = {
    "kind": "sweep",
    "model": {"target": [0, 1, 0, 0.3], "init": {"a": 0.5, "s": 0.01}},
    "dynamics": {"epsilon": 0.05},
    "sweep": {"axes": {"init.a": [0.5, 1.0], "target[3]": [0.1, 0.2]}, "chunk": 4},
}


def test_overrides_set_nested_keys_list_elements_and_dotted_axis_keys():
    out = apply_overrides(
        SWEEP,
        [
            "dynamics.epsilon=1e-3",
            "sweep.chunk=512",
            "model.target[3]=0.5",
            "sweep.axes.init.a={linspace: [0.1, 0.9, 3]}",
            "solver.rtol=1e-6",
        ],
    )
    assert out["dynamics"]["epsilon"] == 1e-3 and isinstance(out["dynamics"]["epsilon"], float)
    assert out["sweep"]["chunk"] == 512
    assert out["model"]["target"] == [0, 1, 0, 0.5]
    assert out["sweep"]["axes"]["init.a"] == {"linspace": [0.1, 0.9, 3]}
    assert out["solver"] == {"rtol": 1e-6}
    assert SWEEP["dynamics"]["epsilon"] == 0.05  # the input is not modified
    config = fsjax.load_config(out)
    assert config.sweep.chunk == 512 and config.dynamics.epsilon == 1e-3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dynamics.epsilon", "expected PATH=VALUE"),
        ("model.target[9]=1", "not a list with an element 9"),
        ("model.target.x=1", "model.target is a list, not a section"),
        ("dynamics.epsilon=[1", "not valid YAML"),
    ],
)
def test_bad_overrides_are_one_line(override, message):
    with pytest.raises(fsjax.ConfigError, match=message.replace("[", r"\[")):
        apply_overrides(SWEEP, [override])


TRAJECTORY = {
    "kind": "trajectory",
    "model": {"hermite_order": 8, "target": [0, 1, 0, 0.3], "init": {"a": 0.5, "s": 0.01}},
    "dynamics": {"epsilon": 0.05},
    "solver": {"t_first": 0.01, "t_final": 10.0, "n_save": 10},
}


@pytest.mark.slow
def test_cli_override_is_validated_and_written_into_the_resolved_config(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TRAJECTORY))
    assert main(["validate", str(path), "--set", "dynamics.epsilon=-1"]) == 2
    assert "dynamics.epsilon" in capsys.readouterr().err
    assert main(["validate", str(path), "--set", "dynamics.epsilonn=1"]) == 2
    assert "unknown key" in capsys.readouterr().err
    out = tmp_path / "out"
    args = ["run", str(path), "--out", str(out), "--set", "dynamics.epsilon=0.1"]
    assert main([*args, "--set", "solver.t_final=100"]) == 0
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["dynamics"]["epsilon"] == 0.1 and resolved["solver"]["t_final"] == 100.0
    # The override is part of the config a resume checks: another value is refused.
    assert main([*args, "--set", "solver.t_final=200", "--resume"]) == 2
    assert "different config" in capsys.readouterr().err


@pytest.mark.slow  # a subprocess
def test_version():
    done = subprocess.run(
        [sys.executable, "-m", "fsjax", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0 and done.stdout.strip() == f"fsjax {fsjax.__version__}"
