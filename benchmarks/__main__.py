"""fsjax against the tools users would otherwise pick, side by side in one process.

    python -m benchmarks run [--quick] [--section NAME ...] [--methods NAME ...]
                             [--out DIR] [--results-md PATH]
    python -m benchmarks report [FILE.json ...] [--results-md PATH] [--check]

Each section is a module of this package (its docstring says what is compared and how;
`--help` lists them). ODE sections run every implicit method of `fsjax.solvers.SOLVERS` unless
`--methods` names some. The run prints its targets and rows, writes
`<out>/<host>-<date>-<key>.json` (with the commit, machine and load) and rewrites its own
marked region of benchmarks/RESULTS.md; the key is the JAX backend, then `-quick` for
`--quick`, then the sections' names if not all run. `--quick` is a smoke test of the whole
pipeline; its numbers are not comparisons.

`report` renders the regions of RESULTS.md from results files: from the files given (each into
its key's region), or, with none given, every region again from the file it names. `--check`
changes nothing and fails if a region differs from what its file renders.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

import fsjax
from fsjax._cli import use_every_core

from . import (
    _harness as h,
    engine,
    gpu,
    network,
    ode,
    particles,
    roofline,
    sensitivity,
    structured_linalg,
    sweep,
)
from .problems import ERROR

HERE = Path(__file__).parent
SECTIONS = {
    s.name: s
    for s in (
        ode.SECTION,
        particles.SECTION,
        sweep.SECTION,
        roofline.SECTION,
        engine.SECTION,
        network.SECTION,
        network.ENSEMBLE_SECTION,
        sensitivity.SECTION,
        structured_linalg.SECTION,
        gpu.SECTION,
    )
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser(
        "run",
        help="run the benchmarks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="sections:\n" + "\n\n".join(s.doc for s in SECTIONS.values()),
    )
    run.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    run.add_argument(
        "--section", action="append", choices=list(SECTIONS), help="run only these (repeatable)"
    )
    run.add_argument(
        "--methods",
        nargs="+",
        choices=list(fsjax.solvers.SOLVERS),
        help="fsjax methods of ODE sections",
    )
    run.add_argument("--out", type=Path, default=HERE / "results", help="JSON directory")
    run.add_argument("--results-md", type=Path, default=HERE / "RESULTS.md")
    rep = sub.add_parser("report", help="render RESULTS.md's tables from results files")
    rep.add_argument(
        "files", nargs="*", type=Path, help="results files (default: each region's own file)"
    )
    rep.add_argument("--results-md", type=Path, default=HERE / "RESULTS.md")
    rep.add_argument(
        "--check", action="store_true", help="change nothing; fail if a region is stale"
    )
    args = parser.parse_args(argv)
    if args.cmd == "report":
        return report(args.files, args.results_md, args.check)
    names = list(dict.fromkeys(args.section or SECTIONS))
    command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    env = h.environment()
    rows, plans = [], {}
    for name in names:
        section = SECTIONS[name]
        plan = section.quick if args.quick else section.full
        if args.methods and "methods" in {f.name for f in dataclasses.fields(plan)}:
            plan = dataclasses.replace(plan, methods=tuple(args.methods))
        plans[name] = dataclasses.asdict(plan)
        rows += section.run(plan)
    env["load_average_at_end"] = h.load_average()
    checks = [t.check(rows) for name in names for t in SECTIONS[name].targets]
    key = env["backend"] + ("-quick" if args.quick else "")
    if len(names) < len(SECTIONS):
        key += "-" + "-".join(names)
    data = h.results_data(env, key, command, ERROR, rows, checks, plans)
    print(h.target_table(data["targets"]))
    print()
    print(h.table(rows))
    path = h.write_json(args.out, data)
    h.update_results_md(args.results_md, key, h.report(data, h.display_name(path)))
    print(f"\nwrote {path} and {args.results_md}")
    return 0


def report(files: list[Path], results_md: Path, check: bool) -> int:
    """Render each results file into its key's region of `results_md` (every region from its
    own file when `files` is empty); with `check`, only list the regions that differ."""
    text = results_md.read_text()
    current = h.regions(text)
    files = files or [h.ROOT / h.source(region) for region in current.values()]
    stale = []
    for path in files:
        data = json.loads(path.read_text())
        rendered = h.report(data, h.display_name(path))
        if current.get(data["key"]) == rendered:
            continue
        stale.append(data["key"])
        if not check:
            h.update_results_md(results_md, data["key"], rendered)
    if check and stale:
        print(f"stale regions of {results_md}: {', '.join(stale)}", file=sys.stderr)
        return 1
    print(f"{results_md}: {len(stale)} of {len(files)} regions {'stale' if check else 'rewritten'}")
    return 0


if __name__ == "__main__":
    # One lane loop per core, as `fsjax run` sweeps: the peers' per-machine rows assume them.
    use_every_core()
    sys.exit(main())
