"""The benchmark harness: its NumPy references are the flow fsjax integrates, with the right
Jacobian, `python -m benchmarks run --quick` runs every section end to end and writes a
well-formed table, JSON file (with its commit, machine and load) and RESULTS.md region, and
every table of benchmarks/RESULTS.md is what `python -m benchmarks report` renders from the
results file it names. Its numbers are not checked: timings belong in benchmarks/RESULTS.md."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fsjax
from benchmarks import _harness, gpu, problems, roofline, tools
from benchmarks.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
KEY = f"{jax.default_backend()}-quick"
SECTIONS = {
    "ode",
    "particles",
    "sweep",
    "roofline",
    "engine",
    "network",
    "ensemble",
    "sensitivity",
    "structured_linalg",
    "gpu",
}


@pytest.mark.parametrize(
    "p", [problems.relu_particles(16), problems.tanh_particles(3, 1e-2)], ids=["relu", "tanh"]
)
def test_reference_is_fsjax_flow_with_its_jacobian(p):
    rhs, jac = problems.numpy_system(p)
    y = p.y0 + 0.1 * np.random.default_rng(0).standard_normal(p.y0.size)
    model = fsjax.MeanField(p.target, p.mu, 0.0, p.rate_a, p.rate_w)
    da, dpsi = model.vector_field(0.0, (jnp.asarray(y[: p.m]), jnp.asarray(y[p.m :])), None)
    np.testing.assert_allclose(rhs(0.0, y), np.concatenate([da, dpsi]), rtol=1e-12, atol=1e-14)
    step = 1e-6
    fd = np.stack(
        [(rhs(0.0, y + step * e) - rhs(0.0, y - step * e)) / (2 * step) for e in np.eye(y.size)], 1
    )
    np.testing.assert_allclose(jac(0.0, y), fd, rtol=0, atol=1e-8 * np.abs(fd).max())


PROBLEMS = pytest.mark.parametrize(
    "p", [problems.relu_particles(16), problems.tanh_particles(3, 1e-2)], ids=["relu", "tanh"]
)


def _states(p, n=3):
    """n random states near the problem's initial one."""
    rng = np.random.default_rng(1)
    return [p.y0 + 0.3 * rng.standard_normal(p.y0.size) for _ in range(n)]


# The same 17-term series summed in another order (powers against Horner): rounding only, a few
# ulps of the largest term, far below 1e-12 relative.
@PROBLEMS
def test_diffrax_as_written_term_is_the_numpy_flow(p):
    rhs, _ = problems.numpy_system(p)
    term = tools.diffrax_term(fsjax.MeanField(p.target, p.mu, 0.0, p.rate_a, p.rate_w))
    for y in _states(p):
        da, dpsi = term.vf(0.0, (jnp.asarray(y[: p.m]), jnp.asarray(y[p.m :])), None)
        np.testing.assert_allclose(np.concatenate([da, dpsi]), rhs(0.0, y), rtol=1e-12, atol=1e-14)


@PROBLEMS
def test_numbalsoda_right_hand_side_is_the_numpy_flow(p):
    if not problems.lsoda_available():
        pytest.skip(problems.LSODA_MISSING)
    rhs, _ = problems.numpy_system(p)
    compiled, _ = problems.lsoda_rhs()
    data = problems.lsoda_data(p)

    def ptr(x):
        return x.ctypes.data_as(ctypes.POINTER(ctypes.c_double))

    for y in _states(p):
        dy = np.full_like(y, np.nan)
        compiled.ctypes(0.0, ptr(y), ptr(dy), ptr(data))
        np.testing.assert_allclose(dy, rhs(0.0, y), rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_quick_benchmark_writes_table_json_and_results_section(tmp_path):
    md = tmp_path / "RESULTS.md"
    begin = f"<!-- BEGIN python -m benchmarks {KEY} -->"
    end = f"<!-- END python -m benchmarks {KEY} -->"
    # Hand-written notes must survive and a stale section must be replaced, not duplicated.
    md.write_text(f"# Results\n\nNotes kept.\n\n{begin}\nstale\n{end}\n\n## After\n")
    out = tmp_path / "results"
    args = ["run", "--quick", "--out", str(out), "--results-md", str(md)]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| target | goal | measured | met | note |" in proc.stdout
    assert "| section | case | tool | median |" in proc.stdout

    (path,) = out.glob(f"*-{KEY}.json")
    data = json.loads(path.read_text())
    assert data["command"].startswith("python -m benchmarks run --quick")
    env = data["environment"]
    assert {"host", "date", "device", "cpu", "memory", "platform", "versions"} <= set(env)
    assert len(env["commit"]["hash"]) == 40 and isinstance(env["commit"]["dirty"], bool)
    assert len(env["load_average_at_start"]) == len(env["load_average_at_end"]) == 3
    assert data["key"] == KEY and data["error_measure"] == problems.ERROR
    assert set(data["plans"]) == SECTIONS
    rows = data["rows"]
    assert {r["section"] for r in rows} == SECTIONS
    for row in rows:
        t = row["timing"]
        if t is None:
            assert row["note"].startswith("not ") and row["rate"] is None
            continue
        assert t["low"] <= t["median"] <= t["high"] and t["repeats"] >= 1
        assert row["rate"] > 0 and row["rate_unit"].endswith("/s")
        if row["ratio"] is not None:
            assert row["ratio"] > 0 and row["ratio_of"]
        if row["section"] in {"ode", "particles", "sweep"} and not row["peer"]:
            # Every fsjax solve finished: a failed one has an infinite error.
            assert row["extra"].get("failed", 0) == 0 and row["extra"].get("status", 0) == 0
            assert row["error"] is None or math.isfinite(row["error"])
    # The quick ladders are one tolerance a tool; every ODE peer is matched or says why not.
    ladder = [r for r in rows if r["peer"] and r["section"] in {"ode", "particles", "sweep"}]
    assert ladder and all(r["ratio_of"] for r in ladder if r["timing"] is not None)
    fresh = [r for r in rows if r["section"] == "particles" and "fresh" in r["case"]]
    assert fresh and all(r["extra"]["peak_rss_mib"] > 0 for r in fresh)
    for target in data["targets"]:
        assert target["met"] in (True, False, None) and target["bound"] > 0
        assert all(v is None or v > 0 for v in target["measured"].values())
    if jax.default_backend() != "gpu":
        (gpu,) = (r for r in rows if r["section"] == "gpu")
        assert gpu["timing"] is None and "not measured" in gpu["note"]

    text = md.read_text()
    assert text.count(begin) == 1 and text.count(end) == 1 and "stale" not in text
    assert "Notes kept." in text and "## After" in text
    assert "| target | goal | measured | met | note |" in text
    # The region is the report of the file the run wrote, and names its commit.
    region = _harness.regions(text)[KEY]
    assert region == _harness.report(data, _harness.display_name(path))
    assert f"measured at commit {env['commit']['hash'][:10]}" in region


def test_every_results_md_table_is_generated_from_the_results_file_it_names():
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    regions = _harness.regions(text)
    assert regions
    for key, region in regions.items():
        path = ROOT / _harness.source(region)
        data = json.loads(path.read_text())
        assert data["key"] == key
        assert region == _harness.report(data, _harness.display_name(path)), key
    # No table outside the generated regions: prose may quote numbers, tables come from files.
    outside = _harness.REGION.sub("", text)
    assert not [ln for ln in outside.splitlines() if ln.startswith("|")]


def test_report_check_names_a_stale_region_and_report_refreshes_it(tmp_path, capsys):
    md = tmp_path / "RESULTS.md"
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    key, region = next(iter(_harness.regions(text).items()))
    edited = region.replace("| yes |", "| **no** |", 1).replace(" s |", " ms |", 1)
    assert edited != region
    md.write_text(text.replace(region, edited))
    assert main(["report", "--check", "--results-md", str(md)]) == 1
    assert key in capsys.readouterr().err
    assert main(["report", "--results-md", str(md)]) == 0
    assert md.read_text() == text


def test_sweep_and_particle_arguments_built_from_arrays_are_the_problems():
    grid = {"eps": 1e-2, "t_final": 1e3, "n_save": 7}
    pairs = [
        (roofline.sweep_args(5, **grid), tools.fsjax_args(problems.sweep_grid(5, **grid))),
        (
            gpu.particle_args(3, 3, (1e-4, 1e-2), n_save=7),
            tools.fsjax_args(
                [problems.relu_particles(3, eps=e, n_save=7) for e in (1e-4, 1e-3, 1e-2)]
            ),
        ),
    ]
    for built, stacked in pairs:
        for x, y in zip(built, stacked, strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-15, atol=0)


def test_roofline_iterations_and_time_by_hand():
    # 1000 points of 50.5 steps on average, 80 at most, on 100 lanes.
    assert roofline.iterations(1000, 50.5, 80, 100, continuous=False) == 10 * 80
    assert roofline.iterations(1000, 50.5, 80, 100, continuous=True) == 505
    assert roofline.iterations(100, 50.5, 80, 100, continuous=True) == 80  # the slowest point
    device = roofline.Device("test", fp64=1e12, bandwidth=1e11)
    cost = {"flop_per_step": 2e3, "bytes_per_step": 1e4, "kernels": 10}
    # 1e6 lanes: 2e9 flop in 2 ms, 1e10 bytes in 100 ms, launches 10 * 1 us + 5 us.
    est = roofline.estimate(device, cost, 10**6, 7, launch_s=1e-6, loop_s=5e-6)
    assert est["bound"] == "bytes"
    np.testing.assert_allclose(est["seconds"], 7 * (0.1 + 15e-6), rtol=1e-12)
    est = roofline.estimate(device, cost, 1, 7, launch_s=1e-6, loop_s=5e-6)
    assert est["bound"] == "launches"
    np.testing.assert_allclose(est["seconds"], 7 * (1e-7 + 15e-6), rtol=1e-12)


@pytest.mark.slow
def test_gpu_section_runs_its_quick_plan_on_a_cpu_when_forced():
    """The gpu section's logic on this CPU: every measurement of the quick plan is measured
    (the sweep's step counts and flops from the step's cost), and with no budget left none
    is started and each row says so."""
    rows = gpu.run(dataclasses.replace(gpu.QUICK, cpu=True))
    assert rows and all(r.timing is not None for r in rows)
    assert {r.tool for r in rows} >= {"jax while_loop", "fsjax tsit5 step", "fsjax Trainer"}
    step = next(r for r in rows if r.tool == "fsjax tsit5 step")
    assert step.extra["flop_per_step"] > 0 and step.extra["kernels"] > 0
    solves = [r for r in rows if r.tool == "fsjax tsit5"]
    assert [r.sizes["points"] for r in solves] == [8, 8]
    for r in solves:
        assert r.extra["failed"] == 0 and 0 < r.extra["useful_step_fraction"] <= 1
    assert solves[0].extra["GFLOP/s"] > 0 and solves[0].ratio == solves[0].timing.median / 10
    spent = gpu.run(dataclasses.replace(gpu.QUICK, cpu=True, budget=0.0))
    assert len(spent) == 4 and all(r.timing is None for r in spent)
    assert all(r.note.startswith("not measured: expected") for r in spent)
