"""The derivative of the exit from the boundary against networks (docs/network.md, "The
gradient of the exit against networks").

    python -m experiments.exit_gradient measure [--param eps lr] [--dim 64] [--quick]
    python -m experiments.exit_gradient table [--param eps lr] [--dim 64] [--quick]

`measure` trains, with a network sweep, `SEEDS` networks (tanh, c = (0, 1, 0, 0.3), a0 = 0.5,
d = `--dim` (64 by default), n = 2d, B = 32d, float32; recorded on a uniform grid) at two
nearby values of one parameter, `eps` (1.9e-3 and 2.1e-3 at lr = 0.05) or `lr` (0.045 and 0.055
at eps = 2e-3), into `runs/exit_gradient/d<dim>/<param>/` (an interrupted run resumes); the SGD
cost of one pair is 8 networks x 6 B n d FLOP x 32,000 steps (2.6e13 FLOP at d = 64, 3.2e12 at
d = 32). `table` prints, per
parameter: the networks' mean exit (`t_exit`, mean s below 0.99 after its peak) +- the
standard deviation over seeds at both values; the measured shift of the mean with its standard
error (from the seed spread); and the shift the reduced flow predicts, `kind: sensitivity`
with the networks' `network:` section from their mean initial alignment, at the midpoint (its
`t_exit` and `d t_exit / d p` times the step), beside the flow's own exits at both values.
`--quick` runs one tiny size, 2 seeds and 200 steps into `runs/exit_gradient_quick/`: a smoke
test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import fsjax

OUT = Path("runs/exit_gradient")
SEEDS = 4
EPS, LR = 2e-3, 0.05
# The two values of each parameter; the derivative is taken at their midpoint.
PAIRS = {"eps": ("dynamics.epsilon", (1.9e-3, 2.1e-3)), "lr": ("network.lr", (0.045, 0.055))}
# Training time: past the exit (about 1440 at eps = 2e-3) at every pair's values.
T_TRAIN = 1600.0
RECORDS = 801
DIM = 64
NETWORK = {"lr": LR, "dtype": "float32"}
QUICK = {"network": {"width": 16, "dim": 8, "batch": 64}, "steps": 200, "seeds": 2}
MODEL = {"activation": "tanh", "target": [0, 1, 0, 0.3], "init": {"a": 0.5, "s": 0.01}}
SOLVER = {"method": "rodas5p", "rtol": 1e-10, "atol": 1e-12}


def network_section(dim: int, quick: bool) -> dict:
    """The networks' section: d = `dim`, n = 2d, B = 32d (the sizes of docs/network.md)."""
    sizes = QUICK["network"] if quick else {"width": 2 * dim, "dim": dim, "batch": 32 * dim}
    return NETWORK | sizes


def sweep_config(param: str, dim: int, quick: bool) -> dict:
    """The network sweep of one parameter's pair, trained to `T_TRAIN` at its smallest lr."""
    path, values = PAIRS[param]
    lr = min(values) if param == "lr" else LR
    steps = QUICK["steps"] if quick else int(np.ceil(T_TRAIN / lr))
    network = network_section(dim, quick) | {
        "steps": steps,
        "record": min(RECORDS, steps + 1),
        "record_spacing": "uniform",
    }
    seeds = QUICK["seeds"] if quick else SEEDS
    return {
        "kind": "sweep",
        "model": MODEL | {"init": {"a": MODEL["init"]["a"]}},
        "dynamics": {"slow": "second_layer", "epsilon": EPS},
        "network": network,
        "solver": SOLVER,
        "sweep": {"axes": {path: list(values)}, "seeds": seeds, "chunk": seeds},
    }


def sensitivity_config(param: str, value: float, dim: int, quick: bool, s0: float) -> dict:
    """`kind: sensitivity` of the flow standing for the networks, from their mean initial
    alignment `s0`, at `param` = `value`, with `t_exit` differentiated by that parameter."""
    eps = value if param == "eps" else EPS
    network = network_section(dim, quick) | ({"lr": value} if param == "lr" else {})
    return {
        "kind": "sensitivity",
        "model": MODEL | {"init": {"a": MODEL["init"]["a"], "s": s0}},
        "dynamics": {"slow": "second_layer", "epsilon": eps},
        "network": network,
        "solver": SOLVER | {"t_first": 1.0, "t_final": 2.0 * T_TRAIN, "n_save": 50},
        "sensitivity": {
            "quantities": ["t_exit"],
            "params": ["epsilon" if param == "eps" else "network.lr"],
        },
    }


def out_dir(param: str, dim: int, quick: bool) -> Path:
    return OUT.with_name(OUT.name + "_quick") / param if quick else OUT / f"d{dim}" / param


def measure(params, dim, quick) -> None:
    for param in params:
        workdir = out_dir(param, dim, quick)
        print(f"== {param} -> {workdir}", flush=True)
        fsjax.run(sweep_config(param, dim, quick), workdir=workdir, resume=workdir.exists())


def _mean_sd(x) -> str:
    return f"{np.mean(x):.1f} +- {np.std(x, ddof=1):.1f}"


def table(params, dim, quick) -> None:
    print(f"d = {dim}" if not quick else "quick")
    print(
        "| p | values | seeds | t_exit networks | shift: networks (+- s.e.) | flow t_exit "
        "at midpoint | d t_exit / d p | shift: derivative | flow t_exit at the values |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for param in params:
        workdir = out_dir(param, dim, quick)
        if not workdir.exists():
            continue
        ds = fsjax.open(workdir)
        exits = ds["t_exit"].values  # (value, seed)
        ok = np.all(np.isfinite(exits), axis=0)
        lo, hi = exits[0, ok], exits[1, ok]
        shift = hi.mean() - lo.mean()
        se = np.sqrt(lo.var(ddof=1) / lo.size + hi.var(ddof=1) / hi.size)
        (v0, v1) = PAIRS[param][1]
        # The rows start alike at both values (same seeds): one mean initial alignment.
        s0 = float(np.mean(ds["s_mean_net"].isel(time=0).values))
        mid = sensitivity(param, 0.5 * (v0 + v1), dim, quick, s0)
        flows = [sensitivity(param, v, dim, quick, s0)["t_exit"] for v in (v0, v1)]
        deriv = float(mid["grad_t_exit"].values[0])
        print(
            f"| {param} | {v0:g}, {v1:g} | {lo.size} | {_mean_sd(lo)}, {_mean_sd(hi)} "
            f"| {shift:.1f} +- {se:.1f} | {float(mid['t_exit']):.1f} | {deriv:.4g} "
            f"| {deriv * (v1 - v0):.1f} | {float(flows[0]):.1f}, {float(flows[1]):.1f} |",
            flush=True,
        )


def sensitivity(param: str, value: float, dim: int, quick: bool, s0: float):
    return fsjax.run(sensitivity_config(param, value, dim, quick, s0))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("measure", "train the networks (resumes)"), ("table", "print it")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--param", nargs="+", default=list(PAIRS), choices=list(PAIRS))
        p.add_argument("--dim", type=int, default=DIM, help="input dimension d (n = 2d, B = 32d)")
        p.add_argument("--quick", action="store_true", help="one tiny size: a smoke test")
    args = parser.parse_args(argv)
    if args.command == "measure":
        measure(args.param, args.dim, args.quick)
    else:
        table(args.param, args.dim, args.quick)


if __name__ == "__main__":
    main()
