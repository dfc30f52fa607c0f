"""Network vs reduced flow: deviation against size, and the finite-batch drift of THEORY.md
section 6 against networks with small batches.

The case of THEORY.md section 7 (tanh, c = (0, 1, 0, 0.3), lr = 0.02, eps = 0.05, a0 = 0.5,
40,000 steps, t up to 800) at other sizes. Each network is trained once; the reduced flow is
solved from its initial mean order parameters: plain, with the finite-width self-interaction,
and with each finite-batch drift, `theory` and `shared` (`fsjax.NetworkMeanField`'s
`batch_model`).

    python -m experiments.network_validation [--out runs/network_validation.json] [--quick]

Prints a markdown table; `--quick` runs only the smallest size, briefly (a smoke test).
About 4e12 FLOP of SGD in all (a few minutes on two CPU cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import fsjax
from fsjax import compare_dataset, train_network

# (table, width n, dim d, batch B): joint growth of n and d at B/d = 32, then B/d at the
# section-7 sizes n = 256, d = 128 (B = 4096 is configs/compare_theory7.yaml).
CASES = [
    ("size", 16, 8, 256),
    ("size", 32, 16, 512),
    ("size", 64, 32, 1024),
    ("size", 128, 64, 2048),
    ("batch", 256, 128, 8),
    ("batch", 256, 128, 32),
    ("batch", 256, 128, 256),
]


def config(width, dim, batch, *, finite_batch="none", finite_width=False, steps=40_000, seed=0):
    return fsjax.load_config(
        {
            "kind": "compare",
            "model": {"activation": "tanh", "target": [0, 1, 0, 0.3], "init": {"a": 0.5}},
            "dynamics": {"slow": "second_layer", "epsilon": 0.05},
            "network": {
                "width": width,
                "dim": dim,
                "batch": batch,
                "lr": 0.02,
                "steps": steps,
                "seed": seed,
                "record": 80,
                "mc_samples": 0,
            },
            "t_min": 1.0,
            "finite_batch": finite_batch,
            "finite_width": finite_width,
        }
    )


def measure(width, dim, batch, steps):
    plain_cfg = config(width, dim, batch, steps=steps)
    start = time.perf_counter()
    net = train_network(plain_cfg)
    seconds = time.perf_counter() - start
    plain = compare_dataset(plain_cfg, net)
    theory = compare_dataset(config(width, dim, batch, finite_batch="theory", steps=steps), net)
    shared = compare_dataset(config(width, dim, batch, finite_batch="shared", steps=steps), net)
    widthed = compare_dataset(config(width, dim, batch, finite_width=True, steps=steps), net)
    return {
        "width": width,
        "dim": dim,
        "batch": batch,
        "steps": steps,
        "seconds": round(seconds, 1),
        "dev_s": float(plain["max_abs_dev_s"]),
        "dev_a": float(plain["max_abs_dev_a"]),
        "dev_s_theory": float(theory["max_abs_dev_s"]),
        "dev_a_theory": float(theory["max_abs_dev_a"]),
        "dev_s_shared": float(shared["max_abs_dev_s"]),
        "dev_a_shared": float(shared["max_abs_dev_a"]),
        "dev_s_finite_width": float(widthed["max_abs_dev_s"]),
        "dev_a_finite_width": float(widthed["max_abs_dev_a"]),
        "s_final_net": float(plain["s_mean_net"][-1]),
        "s_final_mf": float(plain["s_mean_mf"][-1]),
        "s_final_mf_theory": float(theory["s_mean_mf"][-1]),
        "s_final_mf_shared": float(shared["s_mean_mf"][-1]),
        "a_final_net": float(plain["a_mean_net"][-1]),
        "a_final_mf": float(plain["a_mean_mf"][-1]),
        "a_final_mf_shared": float(shared["a_mean_mf"][-1]),
        "max_risk_perp": float(np.max(plain["risk_perp_net"].values)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/network_validation.json")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    cases = CASES[:1] if args.quick else CASES
    rows = []
    for table, width, dim, batch in cases:
        row = {"table": table, **measure(width, dim, batch, 2_000 if args.quick else 40_000)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    columns = [
        ("n", "width", "d"),
        ("d", "dim", "d"),
        ("B", "batch", "d"),
        ("dev s", "dev_s", ".4f"),
        ("dev a", "dev_a", ".4f"),
        ("dev s +width", "dev_s_finite_width", ".4f"),
        ("dev a +width", "dev_a_finite_width", ".4f"),
        ("dev s +theory", "dev_s_theory", ".4f"),
        ("dev a +theory", "dev_a_theory", ".4f"),
        ("dev s +shared", "dev_s_shared", ".4f"),
        ("dev a +shared", "dev_a_shared", ".4f"),
        ("s(800) net", "s_final_net", ".4f"),
        ("flow", "s_final_mf", ".4f"),
        ("+theory", "s_final_mf_theory", ".4f"),
        ("+shared", "s_final_mf_shared", ".4f"),
        ("a(800) net", "a_final_net", ".3f"),
        ("flow", "a_final_mf", ".3f"),
        ("+shared", "a_final_mf_shared", ".3f"),
        ("max R_perp", "max_risk_perp", ".1e"),
    ]
    print("\n| " + " | ".join(c[0] for c in columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(format(r[key], fmt) for _, key, fmt in columns) + " |")


if __name__ == "__main__":
    main()
