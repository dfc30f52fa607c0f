"""Timing, tables and result files for `python -m benchmarks`.

A measurement is a `Row`: one tool on one case, its wall time over repeats (median and min-max
spread), a throughput, an accuracy where one applies, and a note. A `Target` states one of the
issue's goals, the ratio measured in the same run, and whether it is met (None: not measured).
`write_json` writes `<out>/<host>-<date>.json`; `update_results_md` rewrites only its own
marked section of benchmarks/RESULTS.md, so the file's hand-written notes and other sections
stay as they are.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import re
import socket
import statistics
import sys
import time
from pathlib import Path

import jax

PACKAGES = (
    "jax",
    "jaxlib",
    "diffrax",
    "equinox",
    "optax",
    "numpy",
    "scipy",
    "torch",
    "scikit-sundae",
    "psutil",
)


@dataclasses.dataclass(frozen=True)
class Timing:
    median: float
    low: float
    high: float
    repeats: int


def measure(fn, repeats: int) -> Timing:
    """Wall time of `fn()` (which must wait for its own results) over `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), min(times), max(times), repeats)


def log(message: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def first_call(fn) -> tuple[float, object]:
    """Wall time and result of a first call (compilation, when new, plus one run)."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


@dataclasses.dataclass
class Row:
    section: str
    case: str
    tool: str
    timing: Timing | None
    rate: float | None = None
    rate_unit: str = ""
    error: float | None = None
    sizes: dict = dataclasses.field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["timing"] = dataclasses.asdict(self.timing) if self.timing else None
        return out


@dataclasses.dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None
    note: str = ""


def environment() -> dict:
    """Host, device, CPU and package versions."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        import psutil

        memory = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
        load = [round(x, 2) for x in psutil.getloadavg()]
    except ImportError:
        memory, load = "unknown", None
    device = jax.devices()[0]
    return {
        "host": socket.gethostname(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "backend": jax.default_backend(),
        "device": f"{device.platform}: {device.device_kind}",
        "devices": jax.device_count(),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "memory": memory,
        "load_average_at_start": load,
        "python": platform.python_version(),
        "versions": versions,
    }


def _fmt_time(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.0f} us"
    if t < 1:
        return f"{t * 1e3:.3g} ms"
    return f"{t:.3g} s"


def _fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        if math.isinf(x):
            return "failed"
        return f"{x:.3g}"
    return str(x)


def table(rows: list[Row]) -> str:
    """Markdown table of the rows, grouped in the given order."""
    head = "| section | case | tool | median | min-max | rate | error | note |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        t = r.timing
        median = _fmt_time(t.median) if t else "not measured"
        spread = f"{_fmt_time(t.low)} - {_fmt_time(t.high)} (n={t.repeats})" if t else ""
        rate = f"{_fmt(r.rate)} {r.rate_unit}" if r.rate is not None else ""
        tool = f"{r.tool} rtol {r.sizes['rtol']:g}" if "rtol" in r.sizes else r.tool
        lines.append(
            f"| {r.section} | {r.case} | {tool} | {median} | {spread} | {rate} "
            f"| {_fmt(r.error)} | {r.note} |"
        )
    return "\n".join(lines)


def target_table(targets: list[Target]) -> str:
    lines = ["| target | goal | measured | met | note |", "|---|---|---|---|---|"]
    for t in targets:
        met = {True: "yes", False: "**no**", None: "not measured"}[t.met]
        lines.append(f"| {t.name} | {t.goal} | {t.measured} | {met} | {t.note} |")
    return "\n".join(lines)


def report(env: dict, command: str, rows: list[Row], targets: list[Target], key: str) -> str:
    """The markdown section for RESULTS.md."""
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    return "\n".join(
        [
            f"### `python -m benchmarks` ({key}), {env['date']}",
            "",
            f"Command: `{command}`  ",
            f"Host: {env['host']}; device {env['device']}; CPU {env['cpu']} "
            f"({env['cpu_cores']} cores, load average at start {env['load_average_at_start']}); "
            f"memory {env['memory']}; Python {env['python']}  ",
            f"Versions: {versions}",
            "",
            "Times are medians over the repeats with the min-max spread, after a first call "
            "that is timed separately ('first call': it includes compilation when that "
            "function and shape are new in the run). Error: max over save times and particles "
            "of |s - s_ref| and |a - a_ref| / max(1, |a_ref|) against scipy Radau at rtol "
            "1e-12, atol 1e-14.",
            "",
            target_table(targets),
            "",
            table(rows),
        ]
    )


def write_json(out_dir: Path, env: dict, command: str, rows, targets, config: dict) -> Path:
    """`<out_dir>/<host>-<date>.json` (a later run on the same day replaces it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    day = env["date"].split()[0]
    path = out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', env['host'])}-{day}.json"
    data = {
        "environment": env,
        "command": command,
        "config": config,
        "targets": [dataclasses.asdict(t) for t in targets],
        "rows": [r.as_dict() for r in rows],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(x):
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")


def update_results_md(path: Path, key: str, text: str) -> None:
    """Replace the section marked with `key` in `path` (append it, or create the file)."""
    begin, end = (
        f"<!-- BEGIN python -m benchmarks {key} -->",
        f"<!-- END python -m benchmarks {key} -->",
    )
    block = f"{begin}\n{text}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    new = (
        pattern.sub(lambda _: block, old)
        if pattern.search(old)
        else old.rstrip() + "\n\n" + block + "\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
