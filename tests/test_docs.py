"""The documentation stays true: every config validates, the config reference is generated from
the current models, and every command marked runnable in README.md and docs/ runs.

Runnable commands are fenced blocks whose info string is `bash runnable` or `python runnable`.
They run in a scratch directory holding a copy of configs/ shrunk to a few solver saves, SGD
steps and sweep points (`shrink`), so that the commands are the real ones a reader types and the
whole file stays within about a minute of CPU.
"""

import copy
import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

import fsjax
from fsjax._config import _Loader

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
PAGES = sorted([*(ROOT / "docs").glob("*.md"), *ROOT.glob("README.md")])
BLOCK = re.compile(r"^```(bash|python) runnable\n(.*?)^```", re.S | re.M)


def runnable_blocks():
    out = []
    for page in PAGES:
        for match in BLOCK.finditer(page.read_text()):
            line = page.read_text()[: match.start()].count("\n") + 1
            out.append(pytest.param(match.group(1), match.group(2), id=f"{page.name}:{line}"))
    return out


def shrink(data: dict) -> dict:
    """The same config at toy size: the code paths of the full run, a fraction of the work."""
    data = copy.deepcopy(data)
    if data.get("kind") != "network":  # the one kind without a reduced-flow solve
        solver = data.setdefault("solver", {})
        solver["t_final"] = min(float(solver.get("t_final", 1e6)), 50.0)
        solver["t_first"] = min(float(solver.get("t_first", 1e-2)), 0.1)
        solver["n_save"] = min(int(solver.get("n_save", 400)), 20)
    if "network" in data:
        data["network"].update(steps=20, record=5)
        if data["kind"] != "sweep":  # a network sweep has no Monte Carlo risk check
            data["network"]["mc_samples"] = 512
        data["network"]["batch"] = min(data["network"]["batch"], 256)
        data["network"]["dim"] = min(data["network"]["dim"], 64)
    for section in ("sweep", "map"):
        if section in data:  # the first and last value of every axis
            axes = {p: fsjax._model.axes.axis_values(v) for p, v in data[section]["axes"].items()}
            data[section]["axes"] = {p: sorted({v[0], v[-1]}) for p, v in axes.items()}
    if "map" in data:  # one point: a compile of the reverse-mode solve is the dear part
        data["map"]["axes"] = {p: v[:1] for p, v in data["map"]["axes"].items()}
    if "portrait" in data:
        data["portrait"].update(epsilons=data["portrait"].get("epsilons", [0.1])[:1], n_a=20)
    if "sensitivity" in data:
        data["sensitivity"].update(params=["init.a"], fd=False)
    return data


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A working directory with configs/ shrunk."""
    root = tmp_path_factory.mktemp("docs")
    for path in CONFIGS:
        data = yaml.load(path.read_text(), Loader=_Loader)
        target = root / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(shrink(data), sort_keys=False))
    return root


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_validates_at_full_and_reduced_size(path):
    config = fsjax.load_config(path)
    assert config.kind in fsjax.config.KINDS
    data = yaml.load(path.read_text(), Loader=_Loader)
    assert fsjax.load_config(shrink(data)).kind == config.kind


def test_gallery_configs_state_their_runtime():
    for path in sorted((ROOT / "configs" / "gallery").glob("*.yaml")):
        assert re.search(r"(?i)runtime|measured", path.read_text()), path


def test_config_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("gen", ROOT / "docs" / "gen_config_reference.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "docs" / "config.md").read_text() == gen.reference(), (
        "docs/config.md is stale: run python docs/gen_config_reference.py"
    )


def test_api_page_names_every_public_name():
    text = (ROOT / "docs" / "api.md").read_text()
    public = [n for n in dir(fsjax) if not n.startswith("_") and n not in ("hermite", "jax")]
    missing = [n for n in public if not re.search(rf"\b{n}\b", text)]
    assert not missing, f"document these in docs/api.md: {missing}"


def test_runnable_blocks_are_found():
    assert len(runnable_blocks()) >= 3


@pytest.mark.slow
@pytest.mark.parametrize(("language", "code"), runnable_blocks())
def test_runnable_block_runs(language, code, scratch):
    cmd = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable]
    # The console script sits beside this interpreter; a venv that is not activated does not
    # put it on PATH, so the blocks find it there.
    scripts = sysconfig.get_path("scripts")
    env = os.environ | {"PATH": scripts + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run(
        cmd,
        env=env,
        input=code if language == "python" else None,
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
