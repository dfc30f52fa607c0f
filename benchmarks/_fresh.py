"""One call in a fresh Python process: what a process cannot measure of itself twice, its peak
memory (a high-water mark) and a first call's wall time with nothing compiled yet.

`fresh_row(..., "benchmarks.particles:large", timeout, m=4096)` runs this module as

    python -m benchmarks._fresh benchmarks.particles:large '{"m": 4096}'

which imports the function's module (and with it jax and fsjax), notes its resident memory,
calls the function (it returns {"seconds": its own wall time, ...further numbers}) and prints
that with the resident memory before the call, the peak and at the end, and, where the device
reports it (GPUs), the device's peak memory in use; the row holds them all.
"""

from __future__ import annotations

import importlib
import json
import resource
import subprocess
import sys
from pathlib import Path

from . import _harness as h

ROOT = Path(__file__).resolve().parents[1]


def fresh(target: str, timeout: float, **kwargs) -> dict:
    """The child's dict, or {"failed": why} if it ran past `timeout` seconds or exited with an
    error (killed for memory, say)."""
    cmd = [sys.executable, "-m", "benchmarks._fresh", target, json.dumps(kwargs)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"killed after {timeout:g} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        return {"failed": f"exit {proc.returncode}: {last}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fresh_row(
    section, case, tool, target, timeout, *, count=1, unit, setting, sizes, note, **kwargs
) -> h.Row:
    """A row of one call of `target` ("module:function") with `kwargs` in a fresh process:
    `count` per second of its time (one repeat), or not measured if it failed."""
    h.log(f"{section} {case}: {tool} in a fresh process")
    out = fresh(target, timeout, **kwargs)
    row = h.Row(section, case, tool, setting, sizes=sizes)
    if "failed" in out:
        row.note = f"not measured: {out['failed']}"
        return row
    t = out.pop("seconds")
    row.timing, row.rate, row.rate_unit = h.Timing(t, t, t, 1), count / t, unit
    row.extra, row.note = out, note
    return row


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def main(target: str, kwargs: str) -> None:
    module, name = target.split(":")
    fn = getattr(importlib.import_module(module), name)
    before = _rss_mib()
    out = fn(**json.loads(kwargs))
    out["rss_before_mib"] = before
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_at_end_mib"] = _rss_mib()
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
