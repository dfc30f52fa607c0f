"""Rows, targets, sections and result files for `python -m benchmarks`.

A measurement is a `Row`: one tool at one setting on one case, its wall time over repeats
(median and min-max spread), the first call timed on its own, a throughput, an error where one
applies, a `ratio` to what `ratio_of` names, and further measured numbers in `extra`. Every
timed row comes from `timed_row`. A `Target` is a goal on the ratios of the rows it selects;
its `Check` is what one run measured. A `Section` is one named part of the harness: a function
from its plan (full or quick) to rows, and its targets. `write_json` writes
`<out>/<host>-<date>-<key>.json`; `update_results_md` rewrites only its own marked section of
benchmarks/RESULTS.md, so the file's hand-written notes and other sections stay as they are.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


@dataclasses.dataclass
class Row:
    section: str
    case: str
    tool: str
    setting: dict = dataclasses.field(default_factory=dict)  # the tool's: rtol, threads, ...
    timing: Timing | None = None  # None: not measured (`note` says why)
    first_call: float | None = None
    rate: float | None = None
    rate_unit: str = ""
    error: float | None = None
    ratio: float | None = None
    ratio_of: str = ""
    peer: bool = False  # a tool other than fsjax
    sizes: dict = dataclasses.field(default_factory=dict)  # the problem's
    extra: dict = dataclasses.field(default_factory=dict)  # further measured numbers
    note: str = ""

    @property
    def tool_setting(self) -> str:
        return " ".join([self.tool, *(f"{k} {_fmt(v)}" for k, v in self.setting.items())])

    @property
    def label(self) -> str:
        return f"{self.case}, {self.tool_setting}"


def log(message: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(fn, repeats: int) -> tuple[Timing, Any]:
    """Wall time of `fn()` (which must wait for its own results) over `repeats` calls, and the
    result of the last call."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), min(times), max(times), repeats), out


def timed_row(
    section: str,
    case: str,
    tool: str,
    fn: Callable[[], Any],
    repeats: int,
    *,
    count: float = 1,
    unit: str = "calls/s",
    warmup: Callable[[], Any] | None = None,
    cold: bool = False,
    **fields,
) -> tuple[Row, Any]:
    """A row timing `fn()` over `repeats` calls, its rate `count` per median call, and the
    result of the last call. A first call, timed on its own as `first_call` (the compile when
    the function or shape is new in the run), comes before: of `warmup` where a cheaper call
    compiles the same function, and none for `cold` tools (nothing to compile)."""
    first = None
    if not cold:
        start = time.perf_counter()
        (warmup or fn)()
        first = time.perf_counter() - start
    timing, out = measure(fn, repeats)
    row = Row(section, case, tool, timing=timing, first_call=first, **fields)
    row.rate, row.rate_unit = count / timing.median, unit
    return row, out


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    goal: str  # what the ratio is
    bound: float
    at_least: bool
    measured: dict  # row label -> ratio (None: no ratio, e.g. no fsjax setting as accurate)
    met: bool | None  # None: not measured
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Target:
    """Every row that `select` picks must have a ratio (`goal` says of what) of at least
    (`at_least`) or at most `bound`."""

    name: str
    goal: str
    select: Callable[[Row], bool]
    bound: float
    at_least: bool = True

    def check(self, rows: list[Row]) -> Check:
        chosen = [r for r in rows if self.select(r) and r.timing is not None]
        head = (self.name, self.goal, self.bound, self.at_least)
        if not chosen:
            return Check(*head, {}, None, "no row measured in this run")
        ok = [
            r.ratio is not None
            and (r.ratio >= self.bound if self.at_least else r.ratio <= self.bound)
            for r in chosen
        ]
        return Check(*head, {r.label: r.ratio for r in chosen}, all(ok))


@dataclasses.dataclass(frozen=True)
class Section:
    """One part of the harness: `run(plan)` returns its rows, with `full` or `quick` as plan."""

    name: str
    doc: str
    run: Callable[[Any], list[Row]]
    full: Any
    quick: Any
    targets: tuple[Target, ...] = ()


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
        return "failed" if math.isinf(x) else f"{x:.3g}"
    return str(x)


def table(rows: list[Row]) -> str:
    """Markdown table of the rows, in the given order."""
    head = "| section | case | tool | median | min-max | first call | rate | error | ratio | note |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        t = r.timing
        median = _fmt_time(t.median) if t else "not measured"
        spread = f"{_fmt_time(t.low)} - {_fmt_time(t.high)} (n={t.repeats})" if t else ""
        first = _fmt_time(r.first_call) if r.first_call is not None else ""
        rate = f"{_fmt(r.rate)} {r.rate_unit}" if r.rate is not None else ""
        ratio = f"{r.ratio:.3g}x" if r.ratio is not None else ""
        note = "; ".join(
            x
            for x in (
                r.ratio_of and f"ratio: {r.ratio_of}",
                ", ".join(f"{k} {_fmt(v)}" for k, v in r.extra.items()),
                r.note,
            )
            if x
        )
        lines.append(
            f"| {r.section} | {r.case} | {r.tool_setting} | {median} | {spread} | {first} | {rate} "
            f"| {_fmt(r.error)} | {ratio} | {note} |"
        )
    return "\n".join(lines)


def target_table(checks: list[Check]) -> str:
    lines = ["| target | goal | measured | met | note |", "|---|---|---|---|---|"]
    for c in checks:
        met = {True: "yes", False: "**no**", None: "not measured"}[c.met]
        measured = ", ".join(
            f"{'none' if v is None else f'{v:.3g}x'} ({k})" for k, v in c.measured.items()
        )
        goal = f"{'>=' if c.at_least else '<='} {c.bound:g}x {c.goal}"
        lines.append(f"| {c.name} | {goal} | {measured} | {met} | {c.note} |")
    return "\n".join(lines)


def report(env: dict, command: str, rows: list[Row], checks: list[Check], key: str, about: str):
    """The markdown section for RESULTS.md; `about` explains the error measure."""
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
            f"function and shape are new in the run). {about}",
            "",
            target_table(checks),
            "",
            table(rows),
        ]
    )


def write_json(out_dir: Path, env: dict, key: str, command: str, rows, checks, plans) -> Path:
    """`<out_dir>/<host>-<date>-<key>.json` (a later run of the same key that day replaces it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    day = env["date"].split()[0]
    path = out_dir / re.sub(r"[^A-Za-z0-9_.-]", "_", f"{env['host']}-{day}-{key}.json")
    data = {
        "environment": env,
        "command": command,
        "plans": plans,
        "targets": [dataclasses.asdict(c) for c in checks],
        "rows": [dataclasses.asdict(r) for r in rows],
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
