"""The off-index risk R_perp of networks with small batches against the `shared` finite-batch
model's prediction R_perp = a^2 K q / 2 = lr lam_w (d/B) a^2 P_sh / 4
(`fsjax.NetworkMeanField`, `batch_model="shared"`), evaluated at the network's own mean order
parameters.

    python -m experiments.network_rperp [--quick]

The networks of `experiments/network_validation.py` with B = 8 and 32 (about half a minute
each on two CPU cores; `--quick` trains one tiny network briefly, a smoke test). The measured
R_perp also holds the finite-n part (4.8e-4 at t = 800 for B = 4096), which the prediction
leaves out.
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from fsjax import NetworkMeanField, build_mean_field, train_network

from .network_validation import config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    # (width, dim, batches, steps); the quick network reaches t = 8 only, so every time
    # below reads its last record.
    width, dim, batches, steps = (16, 8, (8,), 400) if args.quick else (256, 128, (8, 32), 40_000)
    print("| B | t | R_perp network | predicted shared part |")
    print("|---|---|---|---|")
    for batch in batches:
        cfg = config(width, dim, batch, steps=steps)
        net = train_network(cfg)
        base = build_mean_field(cfg.model, cfg.dynamics.slow, cfg.dynamics.epsilon)
        strength = cfg.network.lr * cfg.network.dim / batch
        model = NetworkMeanField(base, "tanh", batch_noise=strength, batch_model="shared")
        powers = eqx.filter_jit(model.noise_power)
        times = net["time"].values
        for t in (20, 50, 100, 200, 400, 800):
            j = int(np.argmin(np.abs(times - t)))
            a = jnp.asarray([float(net["a_mean"][j])])
            s = jnp.asarray([float(net["s_mean"][j])])
            _, shared, _ = powers(a, s)
            rate_w = float(base.rate_w)
            predicted = strength * rate_w * float(a[0]) ** 2 * float(shared[0]) / 4
            measured = float(net["risk_perp"][j])
            print(f"| {batch} | {times[j]:.1f} | {measured:.2e} | {predicted:.2e} |", flush=True)


if __name__ == "__main__":
    main()
