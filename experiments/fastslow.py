"""Measurements behind docs/fastslow.md: late-time exponents, onset scaling with eps, the
distance of full solutions from the reduced slow flow, the a0 / nonlinearity figures, and
automatic against finite-difference derivatives. (The cost of a gradient against a forward
solve is the `sensitivity` section of `python -m benchmarks run`.)

    python -m experiments.fastslow exponents|onset|tikhonov|figures|gradcheck [--out DIR]
                                   [--points N]

Each part prints a markdown table; `figures` writes PNGs to --out (default docs/figures);
`gradcheck` checks --points random points (default 6).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import fsjax
from fsjax import MeanField, gradients, hermite, parameters_from, quantities

TANH = hermite.coefficients("tanh", 16)
CRELU = hermite.coefficients("relu", 16)
CRELU[0] = 0.0  # centred ReLU: the constant part would pin the second layer
TOL = {"rtol": 1e-10, "atol": 1e-12}
SOLVER = fsjax.solvers.make_solver("kvaerno5", **TOL)


def model(mu, c, eps):
    return MeanField(jnp.asarray(c, dtype=float), mu, 0.0, eps, 1.0)


def exponents():
    """Late-time fits at eps = 0.01 over two windows (t in [1e6, 1e7] and [1e7, 1e8])."""
    cases = [
        ("tanh (p=3)", TANH, [0, 1, 0, 0.0], "c_p = 0", 1 / 6),
        ("tanh (p=3)", TANH, [0, 1, 0, 0.3], "mu_p c_p < 0", 1 / 4),
        ("tanh (p=3)", TANH, [0, 1, 0, -0.3], "mu_p c_p > 0", 0.0),
        ("centred ReLU (p=2)", CRELU, [0, 1, 0.0], "c_p = 0", 1 / 4),
        ("centred ReLU (p=2)", CRELU, [0, 1, -0.3], "mu_p c_p < 0", 1 / 3),
        ("centred ReLU (p=2)", CRELU, [0, 1, 0.3], "mu_p c_p > 0", 0.0),
    ]
    print(
        "| activation | target | case | window t | exponent_a | exponent_s | predicted |"
        " drift_s | regime |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, mu, c, case, pred in cases:
        m = model(mu, c, 0.01)
        for t_final in (1e7, 1e8):
            ts = fsjax.save_times(1e-2, t_final, 600)
            traj = fsjax.solve(m, [0.5], [0.01], ts, solver=SOLVER, max_steps=400_000, **TOL)
            d = fsjax.diagnose(m, traj, fit_decades=1.0)
            print(
                f"| {name} | {c} | {case} | [{t_final / 10:.0e}, {t_final:.0e}] | "
                f"{float(d['exponent_a']):.4f} | {float(d['exponent_s']):.4f} | {pred:.4f} | "
                f"{float(d['drift_s']):.1e} | {fsjax.REGIMES[int(d['regime'])]} |"
            )


def onset():
    """t_onset for eps in 1e-1 .. 1e-5 and the slow time of the contact T_c."""
    m0 = model(TANH, [0, 1, 0, 0.3], 1e-3)
    T_c = fsjax.slow_flow(m0, 0.5, 0.01, np.array([10.0]), entry_exit=False).T_exit
    eps = 10.0 ** np.arange(-1, -5.01, -0.5)
    t_on = []
    for e in eps:
        m = model(TANH, [0, 1, 0, 0.3], e)
        t = fsjax.onset_time(m, [0.5], [0.01], t_final=20 * T_c / e, solver=SOLVER, **TOL)
        t_on.append(float(t))
    t_on = np.asarray(t_on)
    print(f"contact (boundary s = 1 stops attracting) at slow time T_c = {T_c:.6f}")
    print("| eps | t_onset | eps * t_onset | eps * t_onset - T_c |")
    print("|---|---|---|---|")
    for e, t in zip(eps, t_on, strict=True):
        print(f"| {e:.1e} | {t:.6g} | {e * t:.6f} | {e * t - T_c:+.2e} |")
    slope = np.polyfit(np.log(eps), np.log(t_on), 1)[0]
    small = np.polyfit(np.log(eps[2:]), np.log(t_on[2:]), 1)[0]
    print(
        f"log-log slope of t_onset vs eps over [1e-5, 1e-1]: {slope:.5f}; "
        f"over [1e-5, 1e-2]: {small:.5f}"
    )


def tikhonov():
    """Max distance of the full solution from the reduced slow flow (both rules)."""
    m0 = model(TANH, [0, 1, 0, 0.3], 1e-3)
    T = np.linspace(0.25, 20.0, 400)
    delayed = fsjax.slow_flow(m0, 0.5, 0.01, T, entry_exit=True)
    textbook = fsjax.slow_flow(m0, 0.5, 0.01, T, entry_exit=False)
    T_c, T_x = textbook.T_exit, delayed.T_exit
    print(f"reduced flow: contact T_c = {T_c:.5f}, entry-exit T_exit = {T_x:.5f}")
    print(
        "| eps | full-flow exit T (s < 0.99) | boundary phase [0.25, T_c] max abs err a / s |"
        " interior phase [T_exit + 0.5, 20] max abs err a / s (entry-exit) |"
        " same, textbook flow | max abs err s on [T_c, T_exit] (textbook) |"
    )
    print("|---|---|---|---|---|---|")
    for eps in (1e-1, 1e-2, 1e-3, 1e-4):
        m = model(TANH, [0, 1, 0, 0.3], eps)
        full = fsjax.solve(m, [0.5], [0.01], T / eps, solver=SOLVER, **TOL)
        a, s = np.asarray(full.a[:, 0]), np.asarray(full.s[:, 0])
        exit_T = T[np.argmax((s < 0.99) & (T > T_c))]
        b = T <= T_c
        i = T >= T_x + 0.5
        gap = (T >= T_c) & (T <= T_x)

        def err(x, y, mask):
            return np.max(np.abs(x[mask] - y[mask]))

        print(
            f"| {eps:.0e} | {exit_T:.3f} | {err(a, delayed.a, b):.2e} / {err(s, delayed.s, b):.2e}"
            f" | {err(a, delayed.a, i):.2e} / {err(s, delayed.s, i):.2e}"
            f" | {err(a, textbook.a, i):.2e} / {err(s, textbook.s, i):.2e}"
            f" | {err(s, textbook.s, gap):.2e} |"
        )


def figures(out: Path):
    """Alignment vs time: (1) a0 in the finite-equilibrium case, (2) strength of c_3 in the
    mu_p c_p < 0 case (tanh, eps = 0.01)."""
    out.mkdir(parents=True, exist_ok=True)
    ts = fsjax.save_times(1e-2, 1e6, 500)
    panels = [
        (
            "a0_finite_equilibrium.png",
            "c = (0, 1, 0, -0.3): mu_3 c_3 > 0, finite equilibrium",
            [("a0", a0, [0, 1, 0, -0.3], a0) for a0 in (0.5, 1.5, 1.65, 1.72, 1.85)],
        ),
        (
            "c3_strength.png",
            "c = (0, 1, 0, c_3), c_3 > 0: mu_3 c_3 < 0, complete unlearning",
            [("c_3", c3, [0, 1, 0, c3], 0.5) for c3 in (0.1, 0.3, 0.6, 1.0)],
        ),
    ]
    for fname, title, runs in panels:
        fig = Figure(figsize=(6.5, 4))
        ax = fig.subplots()
        print(f"{fname}:")
        for label, value, c, a0 in runs:
            m = model(TANH, c, 0.01)
            traj = fsjax.solve(m, [a0], [0.01], ts, solver=SOLVER, **TOL)
            d = fsjax.diagnose(m, traj)
            ax.semilogx(ts, np.asarray(traj.s[:, 0]), label=f"{label} = {value:g}")
            print(
                f"  {label} = {value:g}: kappa_max {float(d['kappa_max']):.4f}, kappa_final "
                f"{float(d['kappa_final']):.4f}, unlearning {float(d['unlearning']):.4f}, "
                f"regime {fsjax.REGIMES[int(d['regime'])]}"
            )
        ax.set_xlabel("time t (eps = 0.01, tanh)")
        ax.set_ylabel("alignment s")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=120)


def central_differences(params, setup, step: float = 1e-3):
    """`gradients` and central differences of `quantities` (step `step` relative to each
    nonzero parameter, absolute at zero), each (quantities, every scalar parameter); the
    network's parameters, None for a plain flow, are not among them."""
    g = gradients(params, setup)
    auto, fd = [], []
    for field in (f.name for f in dataclasses.fields(params)):
        x = getattr(params, field)
        if x is None:
            continue
        for i in np.ndindex(x.shape):
            h = step * (abs(float(x[i])) or 1.0)

            def shifted(delta, field=field, x=x, i=i):
                return eqx.tree_at(lambda p: getattr(p, field), params, x.at[i].add(delta))

            up, down = quantities(shifted(h), setup), quantities(shifted(-h), setup)
            fd.append(np.asarray(up - down) / (2 * h))
            auto.append(np.asarray(getattr(g, field))[(slice(None), *i)])
    return np.stack(auto, axis=-1), np.stack(fd, axis=-1)


def gradcheck(points: int = 6):
    """Automatic vs central-difference derivatives of all three quantities at random points
    (tanh, hermite_order 8, c = (0, c_1, 0, c_3) plus random small c_5, every parameter)."""
    rng = np.random.default_rng(2024)
    print(
        "| point | c_1 | c_3 | c_5 | a0 | s0 | eps | t_onset | max rel err t_onset |"
        " max rel err kappa_final | max rel err unlearning |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in range(points):
        c1, c3, c5 = rng.uniform(0.6, 1.4), rng.uniform(0.05, 0.6), rng.uniform(-0.1, 0.1)
        a0, s0, eps = rng.uniform(0.2, 0.8), rng.uniform(0.005, 0.05), 10 ** rng.uniform(-3, -1)
        cfg = fsjax.load_config(
            {
                "kind": "sensitivity",
                "model": {
                    "activation": "tanh",
                    "hermite_order": 8,
                    "target": [0, c1, 0, c3, 0, c5],
                    "init": {"a": a0, "s": s0},
                },
                "dynamics": {"epsilon": eps},
                "solver": {
                    "t_first": 1.0,
                    "t_final": 20.0 / eps,
                    "n_save": 100,
                    "rtol": 1e-11,
                    "atol": 1e-12,
                },
            }
        )
        params, setup = parameters_from(cfg)
        values = np.asarray(quantities(params, setup))
        auto, fd = central_differences(params, setup)
        scale = np.maximum(np.abs(fd), 1e-6 * np.max(np.abs(fd), axis=1, keepdims=True))
        rel = np.max(np.abs(auto - fd) / scale, axis=1)
        print(
            f"| {k} | {c1:.3f} | {c3:.3f} | {c5:+.3f} | {a0:.3f} | {s0:.3f} | {eps:.2e} | "
            f"{values[0]:.6g} | {rel[0]:.1e} | {rel[1]:.1e} | {rel[2]:.1e} |"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["exponents", "onset", "tikhonov", "figures", "gradcheck"])
    parser.add_argument("--out", default="docs/figures")
    parser.add_argument("--points", type=int, default=6, help="gradcheck's random points")
    args = parser.parse_args(argv)
    if args.part == "figures":
        figures(Path(args.out))
    elif args.part == "gradcheck":
        gradcheck(args.points)
    else:
        globals()[args.part]()


if __name__ == "__main__":
    main()
