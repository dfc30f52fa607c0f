"""Rows, targets, sections, result files and their tables for `python -m benchmarks`.

A measurement is a `Row`: one tool at one setting on one case, its wall time over repeats
(median and min-max spread), the first call timed on its own, a throughput, an error where one
applies, a `ratio` to what `ratio_of` names, and further measured numbers in `extra`. Every
timed row comes from `timed_row`. A `Target` is a goal on the ratios of the rows it selects;
its `Check` is what one run measured. A `Section` is one named part of the harness: a function
from its plan (full or quick) to rows, and its targets. `write_json` writes
`<out>/<host>-<date>-<key>.json` with the run's commit, machine and load (`environment`);
`report` renders the markdown of one such file, and `update_results_md` rewrites only that
key's marked region of benchmarks/RESULTS.md, so the file's hand-written notes and other
regions stay as they are: every table there is `report` of one results file.
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
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

ROOT = Path(__file__).resolve().parents[1]
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
    "numba",
    "numbalsoda",
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


def git_commit() -> dict:
    """The commit of the checkout the harness runs from and whether its tree differs from it
    (tracked or untracked files), so a result names the code it measured."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return {"hash": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.CalledProcessError):
        return {"hash": None, "dirty": None}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: other jobs on the machine slow every tool."""
    return [round(x, 2) for x in os.getloadavg()]


def environment() -> dict:
    """Commit, host, device, CPU, memory, platform, load at the start and package versions."""
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
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = "unknown"
    device = jax.devices()[0]
    return {
        "commit": git_commit(),
        "host": socket.gethostname(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "backend": jax.default_backend(),
        "device": f"{device.platform}: {device.device_kind}",
        "devices": jax.device_count(),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "memory": memory,
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
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


def target_table(targets: list[dict]) -> str:
    """Markdown table of checks as a results file holds them (`dataclasses.asdict(Check)`).
    Files written before checks had `bound` hold the goal and the measured ratios as text."""
    lines = ["| target | goal | measured | met | note |", "|---|---|---|---|---|"]
    for c in targets:
        met = {True: "yes", False: "**no**", None: "not measured"}[c["met"]]
        measured, goal = c["measured"], c["goal"]
        if "bound" in c:
            measured = ", ".join(
                f"{'none' if v is None else f'{v:.3g}x'} ({k})" for k, v in measured.items()
            )
            goal = f"{'>=' if c['at_least'] else '<='} {c['bound']:g}x {goal}"
        lines.append(f"| {c['name']} | {goal} | {measured} | {met} | {c['note']} |")
    return "\n".join(lines)


def rows_of(data: dict) -> list[Row]:
    """The rows of a results file (fields a row has since gained take their defaults; files
    written before rows had `setting` hold a tool's rtol among the sizes)."""
    names = {f.name for f in dataclasses.fields(Row)} - {"timing", "setting"}
    rows = []
    for r in data["rows"]:
        legacy = {"rtol": r["sizes"]["rtol"]} if "rtol" in r["sizes"] else {}
        timing = r["timing"] and Timing(**r["timing"])
        fields = {k: v for k, v in r.items() if k in names}
        rows.append(Row(**fields, timing=timing, setting=r.get("setting", legacy)))
    return rows


def _load(values) -> str:
    return " ".join(f"{x:.2f}" for x in values) if values else "not recorded"


def provenance(data: dict, name: str) -> str:
    """Where the numbers of results file `name` come from: the commit, machine and load."""
    env = data["environment"]
    commit = env.get("commit")
    if commit and commit["hash"]:
        state = "with uncommitted changes" if commit["dirty"] else "clean tree"
        at = f"measured at commit {commit['hash'][:10]} ({state})"
    else:
        back = data["commit_backfilled_from_git_log"]
        at = (
            f"measured on a tree no later than commit {back['commit'][:10]}, which committed "
            f"this version of the file: at its parent {back['parent'][:10]} or with changes not "
            "yet committed (recorded from `git log`; the harness did not record the commit then)"
        )
    return "\n".join(
        [
            f"From `{name}`, {at}.  ",
            f"Command: `{data['command']}`  ",
            f"Machine: host {env['host']}; backend {env['backend']}, device {env['device']} "
            f"({env['devices']} device{'s' * (env['devices'] != 1)}); CPU {env['cpu']}, "
            f"{env['cpu_cores']} cores; memory {env['memory']}; "
            f"platform {env.get('platform', 'not recorded')}; Python {env['python']}  ",
            f"Load average (1, 5, 15 min): {_load(env['load_average_at_start'])} at the start, "
            f"{_load(env.get('load_average_at_end'))} at the end  ",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        ]
    )


def report(data: dict, name: str) -> str:
    """The markdown region of RESULTS.md for results file `name` holding `data`."""
    about = data.get("error_measure") or data["error_measure_backfilled_from_results_md"]
    return "\n".join(
        [
            f"### `python -m benchmarks` ({data['key']}), {data['environment']['date']}",
            "",
            provenance(data, name),
            "",
            "Times are medians over the repeats with the min-max spread, after a first call "
            "that is timed separately ('first call': it includes compilation when that "
            f"function and shape are new in the run). {about}",
            "",
            target_table(data["targets"]),
            "",
            table(rows_of(data)),
        ]
    )


def results_data(env: dict, key: str, command: str, about: str, rows, checks, plans) -> dict:
    """What a results file holds: `about` says how the rows' errors are measured."""
    return {
        "key": key,
        "environment": env,
        "command": command,
        "error_measure": about,
        "plans": plans,
        "targets": [dataclasses.asdict(c) for c in checks],
        "rows": [dataclasses.asdict(r) for r in rows],
    }


def write_json(out_dir: Path, data: dict) -> Path:
    """`<out_dir>/<host>-<date>-<key>.json` (a later run of the same key that day replaces it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    day = data["environment"]["date"].split()[0]
    name = f"{data['environment']['host']}-{day}-{data['key']}.json"
    path = out_dir / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def display_name(path: Path) -> str:
    """`path` relative to the repository root where it lies inside it, as RESULTS.md names it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _json_default(x):
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")


BEGIN, END = "<!-- BEGIN python -m benchmarks {} -->", "<!-- END python -m benchmarks {} -->"
REGION = re.compile(
    r"<!-- BEGIN python -m benchmarks (\S+) -->\n(.*?)\n<!-- END python -m benchmarks \1 -->", re.S
)
SOURCE = re.compile(r"^From `([^`]+\.json)`", re.M)


def regions(text: str) -> dict[str, str]:
    """The generated regions of a RESULTS.md text: key -> its markdown between the markers."""
    return {m[1]: m[2] for m in REGION.finditer(text)}


def source(region: str) -> str:
    """The results file a generated region names (as `report` writes it)."""
    return SOURCE.search(region)[1]


def update_results_md(path: Path, key: str, text: str) -> None:
    """Replace the region marked with `key` in `path` (append it, or create the file)."""
    begin, end = BEGIN.format(key), END.format(key)
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
