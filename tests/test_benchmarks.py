"""`python -m benchmarks run --quick` runs end to end and writes a well-formed table, JSON file
and RESULTS.md section. Its numbers are not checked: timings belong in benchmarks/RESULTS.md."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "cpu-quick"


def test_quick_benchmark_writes_table_json_and_results_section(tmp_path):
    md = tmp_path / "RESULTS.md"
    begin = f"<!-- BEGIN python -m benchmarks {KEY} -->"
    end = f"<!-- END python -m benchmarks {KEY} -->"
    # Hand-written notes must survive and a stale section must be replaced, not duplicated.
    md.write_text(f"# Results\n\nNotes kept.\n\n{begin}\nstale\n{end}\n\n## After\n")
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "run",
            "--quick",
            "--out",
            str(out),
            "--results-md",
            str(md),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| section | case | tool | median |" in proc.stdout

    (path,) = out.glob("*.json")
    data = json.loads(path.read_text())
    assert data["command"].startswith("python -m benchmarks run --quick")
    assert {"host", "date", "device", "versions"} <= set(data["environment"])
    sections = {r["section"] for r in data["rows"]}
    assert {"ode single", "ode particles", "ode sweep", "network", "sensitivity", "gpu"} <= sections
    for row in data["rows"]:
        t = row["timing"]
        if t is not None:
            assert t["low"] <= t["median"] <= t["high"] and t["repeats"] >= 1
        if row["tool"].startswith("fsjax Kvaerno5") and row["section"].startswith("ode"):
            # Every fsjax solve finished: a failed one has an infinite error.
            assert math.isfinite(row["error"])
    assert all(t["met"] in (True, False, None) for t in data["targets"])
    gpu = [r for r in data["rows"] if r["section"] == "gpu"]
    assert gpu and gpu[0]["timing"] is None and "not measured" in gpu[0]["note"]

    text = md.read_text()
    assert text.count(begin) == 1 and text.count(end) == 1 and "stale" not in text
    assert "Notes kept." in text and "## After" in text
    assert "| target | goal | measured | met | note |" in text
