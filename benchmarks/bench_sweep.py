"""Sweep throughput: points per second vs the number of points and vs the chunk size, peak RSS
vs the number of points, useful step fraction with and without neighbour ordering, and fsjax
against scipy's solve_ivp (Radau) looping over the same points, all in one run.

The workload is the 2-D slow-second-layer system of configs/quickstart.yaml (tanh,
c = (0, 1, 0, c_3), m = 1) over a (c_3, a0) grid. Run on CPU:

    python benchmarks/bench_sweep.py

(`--rss` sizes run in fresh processes for their peak RSS; 1e5 points take about 7 minutes on
2 cores) and on a GPU (adds the 1e6-point sweep at eps = 1e-3, t_final = 1e7):

    python benchmarks/bench_sweep.py --gpu
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
from scipy.integrate import solve_ivp

import fsjax
from fsjax._sweep.engine import run_sweep

BASE = {
    "kind": "sweep",
    "model": {"activation": "tanh", "hermite_order": 16, "target": [0, 1, 0, 0.3]},
    "dynamics": {"slow": "second_layer", "epsilon": 0.01},
    "solver": {"t_first": 1e-2, "t_final": 1e6, "n_save": 100, "rtol": 1e-8, "atol": 1e-10},
    "sweep": {"axes": {}, "chunk": 256, "balance": "neighbours"},
}


def config(n: int, *, chunk=256, balance="neighbours", eps=0.01, t_final=1e6):
    """An n-point (c_3, a0) grid, as square as n allows."""
    rows = int(np.sqrt(n))
    cfg = copy.deepcopy(BASE)
    cfg["dynamics"]["epsilon"] = eps
    cfg["solver"]["t_final"] = t_final
    cfg["sweep"].update(
        axes={
            "target[3]": {"linspace": [-0.6, 0.6, rows]},
            "init.a": {"geomspace": [0.05, 5.0, n // rows]},
        },
        chunk=chunk,
        balance=balance,
    )
    return fsjax.load_config(cfg)


def timed(cfg):
    # Compile on a 4-point sweep of the same chunk shape: the compiled chunk is shared.
    run_sweep(config(4, chunk=cfg.sweep.chunk, balance="none"), progress=False)
    start = time.perf_counter()
    ds = run_sweep(cfg, progress=False)
    return time.perf_counter() - start, ds


def radau(c3: float, a0: float, ts: np.ndarray, rtol: float, atol: float):
    """The same flow in (a, psi) coordinates, integrated by scipy's Radau."""
    model = fsjax.MeanField(np.array([0, 1, 0, c3]), fsjax.hermite.coefficients("tanh", 16))
    mu, c = np.asarray(model.mu), np.asarray(model.target)
    k = np.arange(mu.size)

    def rhs(t, y):
        a, s = y[0], np.tanh(y[1])
        p = s**k
        r = c - mu * a * p
        dp = k * np.concatenate([[0.0], p[:-1]])
        return [0.01 * np.dot(mu * p, r), a * np.dot(mu * dp, r)]

    sol = solve_ivp(rhs, (0, ts[-1]), [a0, np.arctanh(0.01)], "Radau", ts, rtol=rtol, atol=atol)
    return np.tanh(sol.y[1, -1])


def peak_rss_mib(n: int) -> dict:
    """Peak RSS, RSS at the end and throughput of a fresh process running an n-point sweep (the
    throughput excludes the compile: a 4-point warm-up sweep runs first)."""
    code = (
        "import resource, sys, time; sys.path.insert(0, 'benchmarks');"
        "from bench_sweep import config; from fsjax._sweep.engine import run_sweep;"
        "run_sweep(config(4, balance='none'), progress=False); t = time.perf_counter();"
        f"ds = run_sweep(config({n}), progress=False); dt = time.perf_counter() - t;"
        "rss = open('/proc/self/statm').read().split()[1];"
        "print(ds['kappa_final'].size / dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        "int(rss) * resource.getpagesize() // 1024)"
    )
    res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    rate, peak, end = res.stdout.split()[-3:]
    return {
        "peak_rss_mib": int(peak) / 1024,
        "rss_at_end_mib": int(end) / 1024,
        "points_per_s": float(rate),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 64, 256, 1024])
    parser.add_argument("--rss", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--radau-points", type=int, default=20)
    parser.add_argument("--radau-sweep", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gpu", action="store_true", help="add the 1e6-point GPU sweep")
    args = parser.parse_args()
    out = {"device": str(jax.devices()[0]), "cpus": os.cpu_count()}

    out["points"] = {}
    for n in args.points:
        dt, ds = timed(config(n))
        out["points"][ds["kappa_final"].size] = {
            "s": dt,
            "points_per_s": ds["kappa_final"].size / dt,
        }
    n_chunk = args.points[min(1, len(args.points) - 1)]
    out["chunk"] = {}
    for chunk in args.chunks:
        dt, ds = timed(config(n_chunk, chunk=chunk))
        out["chunk"][chunk] = {"s": dt, "points_per_s": ds["kappa_final"].size / dt}

    n_bal = args.points[-1]
    out["balance"] = {}
    for balance in ("none", "neighbours"):
        dt, ds = timed(config(n_bal, balance=balance))
        out["balance"][balance] = {
            "s": dt,
            "useful_step_fraction": ds.attrs["useful_step_fraction"],
        }

    # scipy Radau at the same tolerances on a subset of the points of a `--radau-sweep`-point
    # sweep. The machine may be shared, so the two alternate for `--rounds` rounds and each
    # keeps its fastest round.
    cfg = config(args.radau_sweep)
    ts = np.geomspace(1e-2, 1e6, 100)
    fsjax_rates, radau_rates = [], []
    for _ in range(args.rounds):
        dt, ds = timed(cfg)
        flat = ds.stack(p=ds["kappa_final"].dims)
        fsjax_rates.append(flat.sizes["p"] / dt)
        pick = np.linspace(0, flat.sizes["p"] - 1, args.radau_points).astype(int)
        start = time.perf_counter()
        s_radau = [
            radau(float(flat["target_3"][i]), float(flat["init_a"][i]), ts, 1e-8, 1e-10)
            for i in pick
        ]
        radau_rates.append(len(pick) / (time.perf_counter() - start))
    diff = np.abs(np.asarray(s_radau) - flat["kappa_final"].values[pick])
    out["radau"] = {
        "fsjax_points_per_s": max(fsjax_rates),
        "radau_points_per_s": max(radau_rates),
        "ratio": max(fsjax_rates) / max(radau_rates),
        "rounds": {"fsjax": fsjax_rates, "radau": radau_rates},
        "max_abs_diff_final_alignment": float(diff.max()),
    }

    out["fresh_process"] = {n: peak_rss_mib(n) for n in args.rss}

    if args.gpu:
        dt, ds = timed(config(10**6, chunk=2**15, eps=1e-3, t_final=1e7))
        out["gpu_1e6"] = {
            "s": dt,
            "points_per_s": ds["kappa_final"].size / dt,
            "failed": int((ds["status"] != 0).sum()),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
