"""The `fsjax` command line: `fsjax run CONFIG [--set PATH=VALUE ...] [--out DIR] [--resume |
--force]`, `fsjax validate CONFIG [--set PATH=VALUE ...]`, `fsjax --version`. User errors
print one line and exit 2; no tracebacks."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import jax
import numpy as np
import yaml

from . import __version__, plots
from ._config import config_dict, read_yaml
from ._errors import FsjaxError
from ._io import write_netcdf
from ._kinds import KINDS, load_config
from ._overrides import apply_overrides
from ._run import run
from ._sweep.store import STORE

# Sweeps up to this many points also write their results as results.nc.
NETCDF_MAX_POINTS = 100_000


def prepare_out_dir(out: Path, *, resume: bool, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if force:
            shutil.rmtree(out)
        elif not resume:
            raise FsjaxError(
                f"output directory {out} exists and is not empty; "
                "pass --resume to continue it or --force to replace it"
            )
    out.mkdir(parents=True, exist_ok=True)


def _load(args):
    """The config file with the `--set` overrides applied, validated as one config."""
    if not args.set:
        return load_config(args.config)
    data, _ = read_yaml(args.config)
    if not isinstance(data, dict):
        raise FsjaxError(f"{args.config}: a config must be a mapping with a `kind` key")
    return load_config(apply_overrides(data, args.set))


def _cmd_run(args) -> int:
    config = _load(args)
    if args.distributed:
        # Multi-host sweeps: every process runs this command; see docs/sweeps.md.
        jax.distributed.initialize()
    out = Path(args.out) if args.out else Path("out") / Path(args.config).stem
    prepare_out_dir(out, resume=args.resume, force=args.force)
    text = yaml.safe_dump(config_dict(config), sort_keys=False)
    if args.resume and (out / "config.yaml").exists() and (out / "config.yaml").read_text() != text:
        raise FsjaxError(
            f"{out / 'config.yaml'} holds a different config; resume with that one or use --force"
        )
    (out / "config.yaml").write_text(text)
    start = time.perf_counter()
    ds = run(config, workdir=out, resume=args.resume)
    if jax.process_index() != 0:  # process 0 writes the results of a multi-process run
        return 0
    # A sweep's results are already in its store, which `ds` reads lazily; results.nc is a
    # single-file copy of them for small sweeps, and the only results file of other kinds.
    written = [out / STORE] if (out / STORE).exists() else []
    if not written or math.prod(ds.sizes.values()) <= NETCDF_MAX_POINTS:
        written.append(write_netcdf(ds, out / "results.nc"))
    print(f"fsjax: {config.kind} finished in {time.perf_counter() - start:.1f} s")
    _print_status(ds)
    figures = plots.draw(KINDS[config.kind].figures, ds, out)
    for path in [*written, out / "config.yaml", *figures]:
        print(f"  wrote {path}")
    return 0


def _print_status(ds) -> None:
    """How many points ended in each status, for results with more than one point."""
    if "status" not in ds or ds["status"].size < 2:
        return
    meanings = json.loads(ds.attrs.get("status_meanings", "{}"))
    codes, counts = np.unique(ds["status"].values, return_counts=True)
    parts = [
        f"{n} {meanings.get(str(int(c)), f'status {int(c)}')}"
        for c, n in zip(codes, counts, strict=True)
    ]
    print(f"fsjax: status of {ds['status'].size} points: " + ", ".join(parts))


def _cmd_validate(args) -> int:
    config = _load(args)
    print(f"fsjax: {args.config} is a valid `{config.kind}` config")
    return 0


def use_every_core() -> None:
    """One CPU device per core, unless `XLA_FLAGS` already sets a count: sweeps run one lane
    loop per device (`fsjax._sweep.engine.solve_queues`) and network sweeps split their
    ensembles over devices, so on a CPU this is how they use the machine's cores (a lane
    loop on one device is one thread). Only a process's entry point may call it, before JAX
    starts its backend (`entry`); accelerators are unaffected (it counts the host's
    devices)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        count = f"--xla_force_host_platform_device_count={os.cpu_count() or 1}"
        os.environ["XLA_FLAGS"] = f"{flags} {count}".strip()


def entry() -> int:
    """The process's entry point (the `fsjax` console script, `python -m fsjax`): `main` on
    the command line, with every CPU core a device (`use_every_core`). `main` itself leaves
    the environment alone, so that a program calling it keeps its own."""
    use_every_core()
    return main()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fsjax", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fsjax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    overrides = argparse.ArgumentParser(add_help=False)
    overrides.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override one config value (dotted path, YAML value; repeatable), e.g. "
        "--set dynamics.epsilon=1e-3 --set sweep.chunk=512; validated like the file and "
        "written into the resolved config.yaml",
    )
    p_run = sub.add_parser(
        "run",
        parents=[overrides],
        help="run a config and write results.nc, config.yaml, figures",
    )
    p_run.add_argument("config", help="YAML config file")
    p_run.add_argument("--out", help="output directory (default: out/<config name>)")
    group = p_run.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue an interrupted run")
    group.add_argument("--force", action="store_true", help="replace an existing output directory")
    p_run.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() first (multi-host sweeps; see docs/sweeps.md)",
    )
    p_run.set_defaults(func=_cmd_run)
    p_val = sub.add_parser(
        "validate", parents=[overrides], help="check a config without running it"
    )
    p_val.add_argument("config")
    p_val.set_defaults(func=_cmd_validate)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FsjaxError as err:
        print(f"fsjax: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
