"""Config validation, the Python entry point and the command line, good input and bad."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

import fsjax
from fsjax._cli import main

ROOT = Path(__file__).resolve().parents[1]

SMALL = {
    "kind": "trajectory",
    "model": {
        "activation": "tanh",
        "hermite_order": 8,
        "target": [0, 1, 0, 0.3],
        "init": {"a": 0.5, "s": 0.01},
    },
    "dynamics": {"slow": "second_layer", "epsilon": 0.05},
    "solver": {"t_first": 0.01, "t_final": 100.0, "n_save": 30},
}


def test_config_round_trip():
    config = fsjax.load_config(SMALL)
    again = fsjax.load_config(fsjax.config_dict(config))
    assert again == config
    assert config.solver.rtol == 1e-8 and config.model.particles == 1


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(SMALL).replace("t_final: 100.0", "t_final: 1e2"))
    assert fsjax.load_config(path).solver.t_final == 100.0


def test_run_returns_labelled_dataset():
    ds = fsjax.run(SMALL)
    assert set(ds.coords) == {"time", "particle", "order"}
    assert ds["a"].dims == ("time", "particle") and ds["risk_k"].dims == ("time", "order")
    assert int(ds["status"]) == 0
    np.testing.assert_allclose(ds["risk"], ds["risk_k"].sum("order"), rtol=1e-12)
    assert fsjax.load_config(yaml.safe_load(ds.attrs["config"])) == fsjax.load_config(SMALL)


@pytest.mark.slow
def test_particle_lists():
    cfg = {
        **SMALL,
        "model": {**SMALL["model"], "particles": 3, "init": {"a": [0.5, 0.6, 0.7], "s": 0.02}},
    }
    ds = fsjax.run(cfg)
    assert ds.sizes["particle"] == 3
    np.testing.assert_allclose(ds["a"].isel(time=0), [0.5, 0.6, 0.7], atol=1e-3)


def _init(m, **init):
    model = fsjax.load_config({**SMALL, "model": {**SMALL["model"], "particles": m, "init": init}})
    return fsjax.initial_particles(model.model)


def test_particle_distributions():
    a, s = _init(5, a={"linspace": [0.1, 0.5]}, s={"normal_quantiles": [0.0, 0.2]})
    np.testing.assert_allclose(a, [0.1, 0.2, 0.3, 0.4, 0.5])
    # Quantiles at (i + 1/2)/m: symmetric about the mean, the middle one at it.
    np.testing.assert_allclose(s, -s[::-1], atol=1e-15)
    assert s[2] == 0.0 and s[0] < s[1] < 0


def test_random_particles_are_reproducible_and_follow_their_law():
    m = 10_000
    a, s = _init(m, a={"normal": [0.5, 0.1]}, s={"uniform": [-0.6, 0.6]})
    again = _init(m, a={"normal": [0.5, 0.1]}, s={"uniform": [-0.6, 0.6]})
    np.testing.assert_array_equal(a, again[0])
    other = _init(m, a={"normal": [0.5, 0.1]}, s={"uniform": [-0.6, 0.6]}, seed=1)
    assert not np.array_equal(a, other[0])
    # Sample moments within 5 standard errors: std/sqrt(m) for the mean, std/sqrt(2m) for std.
    assert abs(a.mean() - 0.5) < 5 * 0.1 / np.sqrt(m)
    assert abs(a.std() - 0.1) < 5 * 0.1 / np.sqrt(2 * m)
    assert s.min() >= -0.6 and s.max() <= 0.6
    assert abs(s.mean()) < 5 * (1.2 / np.sqrt(12)) / np.sqrt(m)
    # a and s are drawn from streams of their own: the same law for both gives other values.
    same = _init(m, a={"uniform": [-0.6, 0.6]}, s={"uniform": [-0.6, 0.6]})
    assert not np.array_equal(same[0], same[1])


@pytest.mark.slow
def test_distribution_round_trips_and_runs():
    cfg = {
        **SMALL,
        "model": {
            **SMALL["model"],
            "particles": 4,
            "init": {"a": {"linspace": [0.4, 0.7]}, "s": 0.01},
        },
    }
    config = fsjax.load_config(cfg)
    assert fsjax.load_config(fsjax.config_dict(config)) == config
    ds = fsjax.run(config)
    # As in test_particle_lists: a moves by O(eps t) = O(5e-4) before the first save.
    np.testing.assert_allclose(ds["a"].isel(time=0), [0.4, 0.5, 0.6, 0.7], atol=1e-3)


def test_cli_writes_results_and_refuses_to_overwrite(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    ds = xr.open_dataset(out / "results.nc")
    assert ds["s"].shape == (30, 1)
    assert fsjax.load_config(out / "config.yaml") == fsjax.load_config(SMALL)
    assert (out / "risk.png").stat().st_size > 0 and (out / "particles.png").stat().st_size > 0
    before = (out / "results.nc").stat().st_mtime_ns
    assert main(["run", str(config), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "results.nc").stat().st_mtime_ns == before
    assert main(["run", str(config), "--out", str(out), "--force"]) == 0


def bad(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


GOOD_YAML = yaml.safe_dump(SMALL, sort_keys=False)

BAD_INPUTS = {
    "unknown key": (
        GOOD_YAML.replace("hermite_order: 8", "hermite_order: 8\n  nois: 0.1"),
        "model.nois: unknown key",
    ),
    "wrong type": (GOOD_YAML.replace("n_save: 30", "n_save: many"), "solver.n_save"),
    "unknown activation": (
        GOOD_YAML.replace("activation: tanh", "activation: softsign"),
        "model.activation: unknown activation 'softsign'; allowed: relu",
    ),
    "empty target": (
        GOOD_YAML.replace("target:\n  - 0\n  - 1\n  - 0\n  - 0.3", "target: []"),
        "model.target: target must not be empty",
    ),
    "non-numeric target": (GOOD_YAML.replace("  - 0.3", "  - x"), "model.target"),
    "eps zero": (GOOD_YAML.replace("epsilon: 0.05", "epsilon: 0"), "dynamics.epsilon"),
    "negative eps": (GOOD_YAML.replace("epsilon: 0.05", "epsilon: -1.0e-3"), "dynamics.epsilon"),
    "t order": (GOOD_YAML.replace("t_final: 100.0", "t_final: 0.001"), "t_final (0.001) must"),
    "nan": (GOOD_YAML.replace("epsilon: 0.05", "epsilon: .nan"), "dynamics.epsilon"),
    "s out of range": (GOOD_YAML.replace("s: 0.01", "s: 1.5"), "model.init.s"),
    "unknown slow layer": (
        GOOD_YAML.replace("slow: second_layer", "slow: middle"),
        "dynamics.slow: got 'middle'",
    ),
    "unknown distribution": (
        GOOD_YAML.replace("a: 0.5", "a: {gamma: [1, 2]}"),
        "model.init.a: a must be a number, a list or one of {uniform: [lo, hi]}",
    ),
    "distribution arity": (
        GOOD_YAML.replace("a: 0.5", "a: {uniform: [1]}"),
        "model.init.a: uniform takes two numbers",
    ),
    "negative std": (
        GOOD_YAML.replace("s: 0.01", "s: {normal: [0, -0.1]}"),
        "model.init.s: normal: std must be positive",
    ),
    "s distribution out of range": (
        GOOD_YAML.replace("s: 0.01", "s: {linspace: [-1.5, 0.5]}"),
        "init.s: linspace [-1.5, 0.5] with seed 0 places values outside (-1, 1)",
    ),
    "yaml syntax": ("kind: trajectory\nmodel: {target: [0, 1\n", "YAML syntax error (line"),
    "unknown kind": (GOOD_YAML.replace("kind: trajectory", "kind: movie"), "kind: must be one"),
    "kind a mapping": (
        GOOD_YAML.replace("kind: trajectory", "kind: {trajectory: 1}"),
        "kind: must be one of trajectory, network, compare, sweep",
    ),
    "kind a list": (
        GOOD_YAML.replace("kind: trajectory", "kind: [trajectory]"),
        "kind: must be one of trajectory, network, compare, sweep",
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line(tmp_path, capsys, name):
    text, expected = BAD_INPUTS[name]
    assert text != GOOD_YAML
    code = main(["run", str(bad(tmp_path, text)), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_input_names_the_line(tmp_path, capsys):
    text = GOOD_YAML.replace("epsilon: 0.05", "epsilon: -0.05")
    line = 1 + text.splitlines().index(next(x for x in text.splitlines() if "epsilon" in x))
    main(["validate", str(bad(tmp_path, text))])
    assert f"(line {line})" in capsys.readouterr().err


def test_missing_file(capsys):
    assert main(["run", "no/such/config.yaml"]) == 2
    assert "config file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_end_to_end(tmp_path):
    """`python -m fsjax`, as a user runs it without the console script on PATH, on a shipped
    config at reduced size."""
    cfg = yaml.safe_load((ROOT / "configs" / "trajectory.yaml").read_text())
    cfg["solver"].update(t_final=50.0, n_save=20)
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "fsjax", "run", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "results.nc").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "fsjax", "run", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
