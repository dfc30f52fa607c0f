"""Deviation tables of networks against the reduced flow over eps and size (docs/network.md),
made with the network sweeps of `configs/deviation/`.

    python -m experiments.network_deviation run [--eps 0.05 0.01 0.001] [--max-dim 128]
    python -m experiments.network_deviation table [--eps ...]

With `--quick` (on both) each config runs at one tiny size, 2 seeds and 200 steps into
`runs/network_deviation_quick/`: a smoke test.

`run` runs the sweep of each config, its size axes (zipped d, n = 2d, B = 32d) cut to
d <= `--max-dim` when given, into `runs/network_deviation/eps<eps>/`; an interrupted run is
resumed, and a later run with a larger `--max-dim` needs a new directory (`--force`), as the
store belongs to its config. `table` prints one row per eps and size with the mean +- standard
deviation over seeds of: max |dev s| (t >= 1) against the flow the sweep compares with (with
the boundary floor at the point's sizes) and against the plain d -> infinity flow, solved here
from each network's step-0 means; max |dev a| against the floored flow; the exit from the
boundary (`fsjax.exit_time`: mean s below 0.99 after its peak) of the networks and of both
flows, NaN where s never reaches 0.99.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

import fsjax

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "deviation"
OUT = Path("runs/network_deviation")
EPS = ("0.05", "0.01", "0.001")
SIZES = ("network.dim", "network.width", "network.batch")
# The smoke test's size (d, n, B), steps, records and seeds.
QUICK = {"sizes": (8, 16, 64), "steps": 200, "record": 21, "seeds": 2}


def config(eps: str, max_dim: int | None = None, quick: bool = False) -> dict:
    """The config of one eps as a dict, its zipped size axes cut to d <= `max_dim`, or to the
    tiny `QUICK` run."""
    data = fsjax.config_dict(fsjax.load_config(CONFIGS / f"network_deviation_eps{eps}.yaml"))
    if quick:
        data["sweep"]["axes"] = {path: [v] for path, v in zip(SIZES, QUICK["sizes"], strict=True)}
        data["network"] |= {"steps": QUICK["steps"], "record": QUICK["record"]}
        data["sweep"] |= {"seeds": QUICK["seeds"], "chunk": QUICK["seeds"]}
    elif max_dim is not None:
        axes = data["sweep"]["axes"]
        keep = [i for i, d in enumerate(axes["network.dim"]) if d <= max_dim]
        if not keep:
            raise SystemExit(f"--max-dim {max_dim}: no size of {axes['network.dim']} is that small")
        for path in SIZES:
            axes[path] = [axes[path][i] for i in keep]
    return data


def out_dir(quick: bool) -> Path:
    return OUT.with_name(OUT.name + "_quick") if quick else OUT


def run(eps_list, max_dim, force, quick) -> None:
    for eps in eps_list:
        workdir = out_dir(quick) / f"eps{eps}"
        if force and workdir.exists():
            shutil.rmtree(workdir)
        print(f"== eps = {eps} -> {workdir}", flush=True)
        fsjax.run(config(eps, max_dim, quick), workdir=workdir, resume=workdir.exists())


def _mean_sd(x, fmt) -> str:
    x = np.asarray(x, dtype=float)
    if np.all(np.isnan(x)):
        return "-"
    x = x[~np.isnan(x)]
    if x.size == 1:
        return fmt.format(x[0])
    return f"{fmt.format(x.mean())} +- {fmt.format(x.std(ddof=1))}"


def table(eps_list, quick) -> None:
    solver = fsjax.solvers.make_solver("rodas5p", 1e-8, 1e-10)
    print(
        "| eps | d | n | B | seeds | max abs dev s: floored flow | plain flow "
        "| max abs dev a: floored flow | t_exit: networks | floored flow | plain flow |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for eps in eps_list:
        workdir = out_dir(quick) / f"eps{eps}"
        if not workdir.exists():
            continue
        ds = fsjax.open(workdir)
        cfg = fsjax.load_config(config(eps) | {"boundary_floor": False})
        plain = fsjax.build_model(cfg)
        for p in range(ds.sizes["point"]):  # the zipped sizes
            point = ds.isel(point=p)
            done = point["status"].values == 0
            if not done.any():
                continue
            point = point.isel(seed=np.flatnonzero(done))
            dev_plain, exit_plain = [], []
            for seed in range(point.sizes["seed"]):
                net = point.isel(seed=seed)
                t, s_net = net["t"].values, net["s_mean_net"].values
                a0, s0 = net["a_mean_net"].values[:1], s_net[:1]
                traj = fsjax.solve(plain, a0, s0, t, solver=solver, rtol=1e-8, atol=1e-10)
                s_plain = np.asarray(traj.s[:, 0])
                # The window of the sweep's own max_abs_dev_s, so the two columns compare.
                dev_plain.append(np.max(np.abs(s_plain - s_net)[t >= ds.attrs["t_min"]]))
                exit_plain.append(float(fsjax.exit_time(t, s_plain)))
            print(
                f"| {eps} | {int(point['network_dim'])} | {int(point['network_width'])} "
                f"| {int(point['network_batch'])} | {int(done.sum())} "
                f"| {_mean_sd(point['max_abs_dev_s'].values, '{:.4f}')} "
                f"| {_mean_sd(dev_plain, '{:.4f}')} "
                f"| {_mean_sd(point['max_abs_dev_a'].values, '{:.4f}')} "
                f"| {_mean_sd(point['t_exit'].values, '{:.1f}')} "
                f"| {_mean_sd(point['t_exit_mf'].values, '{:.1f}')} "
                f"| {_mean_sd(exit_plain, '{:.1f}')} |",
                flush=True,
            )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the sweeps (resumes)")
    run_p.add_argument("--eps", nargs="+", default=list(EPS), choices=EPS)
    run_p.add_argument("--max-dim", type=int, default=None)
    run_p.add_argument("--force", action="store_true", help="start the given eps afresh")
    table_p = sub.add_parser("table", help="print the table of what has run")
    table_p.add_argument("--eps", nargs="+", default=list(EPS), choices=EPS)
    for p in (run_p, table_p):
        p.add_argument("--quick", action="store_true", help="one tiny size: a smoke test")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.eps, args.max_dim, args.force, args.quick)
    else:
        table(args.eps, args.quick)


if __name__ == "__main__":
    main()
