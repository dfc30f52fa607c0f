"""Which integrator to default to: the same runs with each implicit method, in one process.

    python -m experiments.method_choice quickstart   # configs/quickstart.yaml per method
    python -m experiments.method_choice particles    # m-particle ReLU flow, per method and m

`quickstart` runs the dichotomy sweep with each method (wall time including the compile) and
prints how far the diagnostics of the others are from the first method's, and whether any
regime label differs. `particles` solves the slow-first-layer ReLU flow of the solver-core
benchmarks (c = (0.2, 0.6, 0.5, 0.3), eps = 1e-3, t to 1e5, s spread over [-0.6, 0.6],
a = 0.1, rtol 1e-8): first call (with the compile) and a second, compiled call, with the step
count and the final risk. Matched-accuracy comparisons with other tools are in `benchmarks/`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fsjax


def quickstart(methods: list[str]) -> None:
    base = fsjax.config_dict(fsjax.load_config("configs/quickstart.yaml"))
    runs = {}
    print("| method | wall s (incl. compile) | mean steps |\n|---|---|---|")
    for method in methods:
        base["solver"]["method"] = method
        start = time.perf_counter()
        runs[method] = ds = fsjax.run(fsjax.load_config(base))
        print(
            f"| {method} | {time.perf_counter() - start:.1f} | {float(ds.num_steps.mean()):.0f} |"
        )
    first, *others = methods
    for method in others:
        for name in ("kappa_max", "kappa_final", "unlearning"):
            diff = np.nanmax(np.abs(runs[method][name].values - runs[first][name].values))
            print(f"{method} vs {first}: max |d {name}| = {diff:.2g}")
        changed = int((runs[method]["regime"] != runs[first]["regime"]).sum())
        print(f"{method} vs {first}: regime differs at {changed} points")


def particles(methods: list[str], sizes: list[int]) -> None:
    print("| method | m | first call s | compiled s | steps | final risk |")
    print("|---|---|---|---|---|---|")
    for method in methods:
        for m in sizes:
            cfg = fsjax.load_config(
                {
                    "kind": "trajectory",
                    "model": {
                        "activation": "relu",
                        "target": [0.2, 0.6, 0.5, 0.3],
                        "particles": m,
                        "init": {"a": 0.1, "s": {"linspace": [-0.6, 0.6]}},
                    },
                    "dynamics": {"slow": "first_layer", "epsilon": 1e-3},
                    "solver": {"method": method, "t_first": 1.0, "t_final": 1e5, "n_save": 50},
                }
            )
            model = fsjax.build_mean_field(cfg.model, "first_layer", 1e-3)
            a0, s0 = fsjax.initial_particles(cfg.model)
            settings = fsjax.solvers.SolverSettings.from_config(cfg.solver)
            times = []
            for a in (a0, a0 * (1 + 1e-12)):  # the second call is compiled
                start = time.perf_counter()
                traj = settings.solve(model, a, s0)
                traj.a.block_until_ready()
                times.append(time.perf_counter() - start)
            risk = float(model.risk(traj.a[-1], traj.s[-1]))
            print(
                f"| {method} | {m} | {times[0]:.2f} | {times[1]:.3f} | {int(traj.num_steps)} "
                f"| {risk:.8f} |"
            )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=["quickstart", "particles"])
    parser.add_argument("--methods", nargs="+", default=["kvaerno5", "rodas5p"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 4096, 16384])
    args = parser.parse_args(argv)
    if args.study == "quickstart":
        quickstart(args.methods)
    else:
        particles(args.methods, args.sizes)


if __name__ == "__main__":
    main()
