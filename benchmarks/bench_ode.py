"""Vmapped fsjax sweep of the 2-D reduced system vs scipy's Radau in a loop, side by side.

    python benchmarks/bench_ode.py [--points 1000] [--scipy-points 100] [--ref-points 40]

Points: a grid over target c_3 in [-0.3, 0.3] and a0 in [0.1, 3]; tanh, c = (0, 1, 0, c_3),
eps = 1e-3 (slow second layer), s0 = 0.01, t_final = 1e7, 100 log-spaced save times.
Accuracy: both are compared with Radau at rtol 1e-12 on `--ref-points` points spread over the
grid (max abs deviation of a and s over all save times). Speed: points per second after
compilation (compile time reported separately); scipy runs an evenly spread subset of the same
points one after another, with the analytic Jacobian. Each tool runs at several tolerances (a
work-precision curve) and the speed-up is read off at equal achieved error. The fraction of
useful steps is sum(num_steps) / (N * max num_steps): a vmapped adaptive solve runs all points
as long as the slowest.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import fsjax
from fsjax import hermite

EPS, T_FINAL, S0, N_SAVE = 1e-3, 1e7, 0.01, 100


def grid(n):
    n_c = max(round(np.sqrt(n * 0.6 / 2.9)), 1)
    n_a = int(np.ceil(n / n_c))
    c3, a0 = np.meshgrid(np.linspace(-0.3, 0.3, n_c), np.linspace(0.1, 3.0, n_a), indexing="ij")
    return c3.ravel()[:n], a0.ravel()[:n]


def fsjax_sweep(mu, ts, rtol):
    solver = fsjax.make_solver("kvaerno5", rtol, rtol * 1e-2)
    rate_a, rate_w = fsjax.layer_rates("second_layer", EPS)

    def one(c3, a0):
        target = jnp.zeros_like(jnp.asarray(mu)).at[1].set(1.0).at[3].set(c3)
        model = fsjax.MeanField(target, mu, 0.0, rate_a, rate_w)
        traj = fsjax.solve(
            model,
            a0[None],
            jnp.array([S0]),
            ts,
            solver=solver,
            rtol=rtol,
            atol=rtol * 1e-2,
            max_steps=100_000,
        )
        return traj.a[:, 0], traj.s[:, 0], traj.status, traj.num_steps

    return jax.jit(jax.vmap(one))


def scipy_rhs(mu, c3):
    k = np.arange(len(mu))
    c = np.zeros(len(mu))
    c[1], c[3] = 1.0, c3

    def parts(y):
        a, psi = y
        s = np.tanh(psi)
        p = s**k
        dp = k * np.concatenate([[0.0], p[:-1]])
        d2p = k * np.concatenate([[0.0], dp[:-1]])
        return a, s, p, dp, d2p, c - mu * a * p

    def rhs(t, y):
        a, _, p, dp, _, r = parts(y)
        return [EPS * p @ (mu * r), a * dp @ (mu * r)]

    def jac(t, y):
        a, s, p, dp, d2p, r = parts(y)
        ds_dpsi = 1 - s * s
        dr_da, dr_ds = -mu * p, -mu * a * dp
        return [
            [EPS * p @ (mu * dr_da), EPS * (dp @ (mu * r) + p @ (mu * dr_ds)) * ds_dpsi],
            [
                dp @ (mu * r) + a * dp @ (mu * dr_da),
                a * (d2p @ (mu * r) + dp @ (mu * dr_ds)) * ds_dpsi,
            ],
        ]

    return rhs, jac


def scipy_solve(mu, ts, c3, a0, rtol, atol):
    rhs, jac = scipy_rhs(mu, c3)
    sol = solve_ivp(
        rhs,
        (0, ts[-1]),
        [a0, np.arctanh(S0)],
        method="Radau",
        t_eval=ts,
        jac=jac,
        rtol=rtol,
        atol=atol,
    )
    return sol.y[0], np.tanh(sol.y[1]), sol.success


def work_precision(label, tols, solve_all, ref_idx, ref):
    """Points/s and max abs error (vs `ref` on `ref_idx`) at each tolerance."""
    rows = []
    for rtol in tols:
        seconds, (a, s, failed, extra) = solve_all(rtol)
        err = max(np.max(np.abs(a[ref_idx] - ref[0])), np.max(np.abs(s[ref_idx] - ref[1])))
        rows.append(
            {
                "tool": label,
                "rtol": rtol,
                "points": len(a),
                "seconds": seconds,
                "points_per_s": len(a) / seconds,
                "max_abs_error": float(err),
                "failed": int(failed),
                **extra,
            }
        )
        print(
            "  ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()
            ),
            flush=True,
        )
    return rows


def rate_at_error(rows, error):
    """Points/s at a given error, interpolated log-log between measured tolerances."""
    rows = sorted(rows, key=lambda r: r["max_abs_error"])
    errs = np.log([r["max_abs_error"] for r in rows])
    rates = np.log([r["points_per_s"] for r in rows])
    if not errs[0] <= np.log(error) <= errs[-1]:
        return None
    return float(np.exp(np.interp(np.log(error), errs, rates)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument(
        "--scipy-points",
        type=int,
        default=100,
        help="scipy solves this evenly spread subset (its rate is per point)",
    )
    parser.add_argument("--ref-points", type=int, default=40)
    parser.add_argument("--fsjax-rtols", type=float, nargs="+", default=[1e-8, 1e-9, 1e-10, 1e-11])
    parser.add_argument("--scipy-rtols", type=float, nargs="+", default=[1e-6, 1e-7, 1e-8])
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    mu = hermite.coefficients("tanh", 16)
    ts = fsjax.save_times(1e-2, T_FINAL, N_SAVE)
    c3, a0 = grid(args.points)
    sp_idx = np.linspace(0, args.points - 1, min(args.scipy_points, args.points)).astype(int)
    ref_pos = np.linspace(0, len(sp_idx) - 1, min(args.ref_points, len(sp_idx))).astype(int)
    ref_idx = sp_idx[ref_pos]
    ref = [
        np.array(x)
        for x in zip(
            *[scipy_solve(mu, ts, c3[i], a0[i], 1e-12, 1e-14)[:2] for i in ref_idx], strict=True
        )
    ]

    compile_s = {}

    def fsjax_all(rtol):
        sweep = fsjax_sweep(mu, ts, rtol)
        t0 = time.perf_counter()
        jax.block_until_ready(sweep(jnp.asarray(c3), jnp.asarray(a0)))
        compile_s[rtol] = time.perf_counter() - t0
        t0 = time.perf_counter()
        a, s, status, steps = jax.block_until_ready(sweep(jnp.asarray(c3), jnp.asarray(a0)))
        seconds = time.perf_counter() - t0
        steps = np.asarray(steps)
        extra = {
            "compile_plus_first_run_s": compile_s[rtol],
            "useful_step_fraction": float(steps.sum() / (len(steps) * steps.max())),
            "steps_max": int(steps.max()),
        }
        return seconds, (np.asarray(a), np.asarray(s), np.sum(np.asarray(status) != 0), extra)

    def scipy_all(rtol):
        t0 = time.perf_counter()
        out = [scipy_solve(mu, ts, c3[i], a0[i], rtol, rtol * 1e-2) for i in sp_idx]
        seconds = time.perf_counter() - t0
        a = np.full((args.points, len(ts)), np.nan)
        s = np.full((args.points, len(ts)), np.nan)
        a[sp_idx] = [o[0] for o in out]
        s[sp_idx] = [o[1] for o in out]
        failed = sum(not o[2] for o in out)
        # scipy's rate is per solved point: scale seconds to the subset it solved.
        return seconds * args.points / len(sp_idx), (a, s, failed, {"solved_points": len(sp_idx)})

    print(f"device={jax.devices()[0].device_kind} cpu={platform.machine()} points={args.points}")
    fs_rows = work_precision("fsjax-kvaerno5-vmap", args.fsjax_rtols, fsjax_all, ref_idx, ref)
    sp_rows = work_precision("scipy-radau-loop", args.scipy_rtols, scipy_all, ref_idx, ref)
    print("speed-up at matched accuracy (fsjax points/s interpolated at scipy's error):")
    matched = []
    for row in sp_rows:
        rate = rate_at_error(fs_rows, row["max_abs_error"])
        ratio = None if rate is None else rate / row["points_per_s"]
        matched.append({"scipy_rtol": row["rtol"], "error": row["max_abs_error"], "speedup": ratio})
        print(
            f"  scipy rtol={row['rtol']:.0e} error={row['max_abs_error']:.2e}: "
            + ("outside fsjax's measured range" if ratio is None else f"{ratio:.1f}x")
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"fsjax": fs_rows, "scipy": sp_rows, "matched": matched}, f, indent=2)


if __name__ == "__main__":
    main()
