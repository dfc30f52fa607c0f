"""Exit from the boundary s = 1 of networks trained in each arithmetic, against the floored flow
of the same arithmetic (`network.dtype`, `network.matmul_precision`; docs/network.md,
"Arithmetic").

erf, c = (0, 1, 0, 0.3), a0 = 0.5, slow second layer, lr = 0.05; the networks of a size preset
(`--size`: `small` n = 64, d = 32, B = 1024; `issue` n = 128, d = 64, B = 2048) are trained as
one ensemble per arithmetic (seeds 0, 1, ...) and recorded every 4 time units, up to 10%
past the floored flow's exit. Arithmetics: float64 networks, float32 networks with float32,
TF32 and bfloat16 products (on a CPU the last two are emulated: `fsjax._model.network`), and
bfloat16 networks. Each network is compared with the floored flow started at its own step-0
means: exit (first time after the peak with mean s below 0.99) and the largest deviation of
the mean alignment over t in [1, last record].

    python -m experiments.precision measure [--size small] [--eps 2e-3 1e-3] [--modes ...]
    python -m experiments.precision table [--size small]  # and docs/figures/precision_exit.png

`measure` caches each (size, eps, arithmetic) under runs/precision/ and prints its SGD cost
(6 B d n FLOP a step and network) before it runs; `--quick` trains a tiny case in seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import fsjax
from fsjax import init_ensemble, layer_rates, point, product_format
from fsjax.solvers import SolverSettings

TARGET = (0.0, 1.0, 0.0, 0.3)
A0 = 0.5
LR = 0.05
ACTIVATION = "erf"
OUT = Path("runs/precision")
FIGURE = Path("docs/figures/precision_exit.png")
RECORD_EVERY = 4.0  # time units between records
SIZES = {"small": (64, 32, 1024), "issue": (128, 64, 2048), "quick": (16, 16, 256)}
# label: (network.dtype, network.matmul_precision)
MODES = {
    "float64": ("float64", "default"),
    "float32": ("float32", "float32"),
    "tf32": ("float32", "tensorfloat32"),
    "bf16": ("float32", "bfloat16"),
    "bf16 weights": ("bfloat16", "default"),
}


def config(eps, size, mode, s0=0.0, t_final=None):
    """The `kind: trajectory` config of the floored flow that stands for these networks."""
    n, d, b = SIZES[size]
    dtype, precision = MODES[mode]
    network = dict(width=n, dim=d, batch=b, lr=LR, dtype=dtype, matmul_precision=precision)
    return fsjax.load_config(
        {
            "kind": "trajectory",
            "model": {"activation": ACTIVATION, "target": list(TARGET), "init": {"a": A0, "s": s0}},
            "dynamics": {"slow": "second_layer", "epsilon": eps},
            "network": network,
            "solver": {"rtol": 1e-9, "atol": 1e-11, "t_first": 1.0, "t_final": t_final or 6 / eps},
        }
    )


def flow(cfg, ts):
    """Mean alignment of the floored flow of `cfg` at times `ts`."""
    p = point(cfg)
    settings = SolverSettings.from_config(cfg.solver)
    return np.asarray(settings.solve(p.model(), *p.initial(), ts=jnp.asarray(ts)).s[:, 0])


def flow_exit(eps, size, mode, s0=0.0) -> float:
    ts = np.arange(0.0, 6 / eps, 1.0)
    return float(fsjax.exit_time(ts, flow(config(eps, size, mode, s0), ts)))


def measure(size, eps_list, modes, seeds) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    n, d, b = SIZES[size]
    for eps in eps_list:
        for mode in modes:
            path = OUT / f"{size}_{eps:g}_{mode.replace(' ', '_')}.npz"
            if path.exists():
                continue
            dtype, precision = MODES[mode]
            t_stop = 1.1 * flow_exit(eps, size, mode)
            every = round(RECORD_EVERY / LR)
            marks = np.arange(0, round(t_stop / LR) + every, every)
            print(f"{path.name}: {6 * b * d * n * seeds * marks[-1]:.2e} FLOP ...", flush=True)
            start = time.perf_counter()
            rate_a, rate_w = (float(r) for r in layer_rates("second_layer", eps))
            ensemble, state = init_ensemble(
                jnp.arange(seeds),
                jnp.full(seeds, LR),
                jnp.tile(jnp.asarray(TARGET), (seeds, 1)),
                jnp.zeros(seeds),
                jnp.full(seeds, A0),
                jnp.full(seeds, rate_a),
                jnp.full(seeds, rate_w),
                width=n,
                dim=d,
                batch=b,
                activation=ACTIVATION,
                hermite_order=16,
                dtype=dtype,
                products=product_format(dtype, precision),
            )
            records = []
            for mark in marks:
                if mark > int(state.step[0]):
                    state = ensemble.advance(state, jnp.asarray(int(mark) - int(state.step[0])))
                records.append({k: np.asarray(v) for k, v in ensemble.observe(state).items()})
            rec = {k: np.stack([r[k] for r in records], axis=1) for k in records[0]}
            wall = time.perf_counter() - start
            np.savez(path, t=marks * LR, wall=wall, spec=json.dumps([size, eps, mode]), **rec)
            exits = [float(fsjax.exit_time(marks * LR, s)) for s in rec["s_mean"]]
            print(f"  {wall:.0f} s, exits {np.round(exits, 1)}", flush=True)


def rows(size):
    """(eps, mode, network exits, flow exits, max |dev s| per network) of every cached run."""
    out = []
    for path in sorted(OUT.glob(f"{size}_*.npz")):
        rec = np.load(path)
        _, eps, mode = json.loads(str(rec["spec"]))
        t = rec["t"]
        net_exits, flow_exits, devs = [], [], []
        for s_net in rec["s_mean"]:
            net_exits.append(float(fsjax.exit_time(t, s_net)))
            s_mf = flow(config(eps, size, mode, float(s_net[0]), t_final=t[-1]), t)
            flow_exits.append(float(fsjax.exit_time(t, s_mf)))
            devs.append(float(np.max(np.abs((s_net - s_mf)[t >= 1]))))
        out.append((eps, mode, np.array(net_exits), np.array(flow_exits), np.array(devs)))
    return sorted(out, key=lambda r: (-r[0], list(MODES).index(r[1])))


def table(size, out: Path = FIGURE) -> None:
    """The markdown table of every cached run of `size`, and its figure at `out`."""
    data = rows(size)
    n, d, b = SIZES[size]
    print(f"erf, n = {n}, d = {d}, B = {b}, lr = {LR}; records every {RECORD_EVERY:g}\n")
    print(
        "| eps | arithmetic | seeds | exit: networks | floored flow | difference | max abs dev s |"
    )
    print("|---|---|---|---|---|---|---|")
    for eps, mode, net, mf, dev in data:
        diff = (np.mean(net) - np.mean(mf)) / np.mean(mf)
        print(
            f"| {eps:g} | {mode} | {len(net)} | {np.mean(net):.1f} +- {np.std(net):.1f} | "
            f"{np.mean(mf):.1f} | {100 * diff:+.2f}% | {np.max(dev):.4f} |",
            flush=True,
        )
    figure(data, size, out)


def figure(data, size, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, mode in enumerate(MODES):
        mine = [r for r in data if r[1] == mode]
        if not mine:
            continue
        eps = np.array([r[0] for r in mine])
        color = f"C{i}"
        ax.plot(eps, [np.mean(r[3]) for r in mine], "-", color=color, label=f"{mode} flow")
        for r in mine:
            ax.plot([r[0]] * len(r[2]), r[2], "o", color=color, mfc="none")
        ax.plot([], [], "o", color=color, mfc="none", label=f"{mode} networks")
    n, d, b = SIZES[size]
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="eps",
        ylabel="exit time t (mean s below 0.99)",
        title=f"erf, n = {n}, d = {d}, B = {b}, lr = {LR}: networks and floored flows",
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("measure", "table"))
    parser.add_argument("--size", choices=tuple(SIZES), default="small")
    parser.add_argument("--eps", nargs="*", type=float, default=[3e-3, 2e-3, 1e-3])
    parser.add_argument("--modes", nargs="*", choices=tuple(MODES), default=list(MODES)[:4])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one tiny case, in seconds")
    parser.add_argument("--out", type=Path, default=FIGURE, help="the table's figure")
    args = parser.parse_args(argv)
    size = "quick" if args.quick else args.size
    if args.what == "measure":
        eps = [1e-2] if args.quick else args.eps
        measure(size, eps, args.modes[:2] if args.quick else args.modes, args.seeds)
    else:
        table(size, args.out)


if __name__ == "__main__":
    main()
