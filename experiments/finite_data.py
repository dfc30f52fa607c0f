"""Where the online reduced flow stops describing training on a finite dataset: one network
trained online and on fixed sets of N = (4, 16, 64, 256) d samples (`network.samples`), its
population and training risks against t beside the reduced flow.

The case of THEORY.md section 7 (tanh, c = (0, 1, 0, 0.3), eps = 0.05, a0 = 0.5, lr = 0.02)
with label noise 0.1, at n = 32, d = 64, B = 256 (the smallest set holds one batch), for
10,000 steps (t = 200). Every run has seed 0, so the same teacher and initial network: only
the data differ, and one reduced flow, solved from their common initial mean order parameters
(`fsjax.compare_dataset`), stands for all of them.

    python -m experiments.finite_data [--out docs/figures/finite_data.png] [--quick]

Prints a markdown table and writes the figure; about 1.6e11 FLOP of SGD in all (a few minutes
on two shared CPU cores); `--quick` trains a tiny network briefly (a smoke test).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import fsjax
from fsjax import compare_dataset, train_network

RATIOS = (4, 16, 64, 256)


def config(width, dim, batch, steps, samples=None):
    return fsjax.load_config(
        {
            "kind": "compare",
            "model": {
                "activation": "tanh",
                "target": [0, 1, 0, 0.3],
                "noise": 0.1,
                "init": {"a": 0.5},
            },
            "dynamics": {"slow": "second_layer", "epsilon": 0.05},
            "network": {
                "width": width,
                "dim": dim,
                "batch": batch,
                "lr": 0.02,
                "steps": steps,
                "samples": samples,
                "record": 40,
                "mc_samples": 0,
            },
            "t_min": 1.0,
        }
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/finite_data.png"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    width, dim, batch, steps = (8, 8, 32, 300) if args.quick else (32, 64, 256, 10_000)

    online_cfg = config(width, dim, batch, steps)
    online = compare_dataset(online_cfg, train_network(online_cfg))
    t, flow = online["time"].values, online["risk_mf"].values
    runs = [("online", online["risk_net"].values, None)]
    for ratio in RATIOS:
        net = train_network(config(width, dim, batch, steps, samples=ratio * dim))
        runs.append((str(ratio), net["risk"].values, net["risk_train"].values))

    late = t >= 1.0
    marks = [int(np.argmin(np.abs(t - x))) for x in (t[-1] / 100, t[-1] / 10, t[-1])]
    head = " | ".join(f"risk / train t={t[j]:.3g}" for j in marks)
    print(f"| N/d | passes | max rel dev from flow (t >= 1) | {head} |")
    print("|---|---|---|" + "---|" * len(marks))
    for name, risk, train in runs:
        passes = "-" if train is None else f"{steps * batch / (int(name) * dim):.0f}"
        dev = np.max(np.abs(risk - flow)[late] / flow[late])
        cells = " | ".join(
            f"{risk[j]:.4f} / " + ("-" if train is None else f"{train[j]:.4f}") for j in marks
        )
        print(f"| {name} | {passes} | {dev:.3f} | {cells} |", flush=True)
    print("| flow | - | - | " + " | ".join(f"{flow[j]:.4f}" for j in marks) + " |")

    # Left: the risks; right: their relative deviation from the flow, where the two part.
    fig = fsjax.plots.figure(figsize=(12, 4.5))
    ax, dev_ax = fig.subplots(1, 2)
    ax.loglog(t[1:], flow[1:], "k", lw=2.5, label="reduced flow (online)")
    for i, (name, risk, train) in enumerate(runs):
        label = "online" if train is None else f"N/d = {name}"
        for curve, style, kind in ((risk, "-", "population"), (train, "--", "training")):
            if curve is not None:
                ax.loglog(t[1:], curve[1:], color=f"C{i}", ls=style, label=f"{label}: {kind}")
                dev_ax.semilogx(t[1:], (curve / flow - 1)[1:], color=f"C{i}", ls=style)
    dev_ax.axhline(0, color="k", lw=2.5)
    ax.set_ylabel("risk")
    dev_ax.set_ylabel("risk / flow's risk - 1")
    for a in (ax, dev_ax):
        a.set_xlabel("time t = steps * lr")
    ax.set_title(f"tanh, n = {width}, d = {dim}, B = {batch}, label noise 0.1", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    print(f"wrote {fsjax.plots.save(fig, args.out)}")


if __name__ == "__main__":
    main()
