"""SGD throughput of the network against the machine's own matrix-multiply rate.

For each size (n, d, B) one run measures, side by side on the default JAX device:
- the float32 matmul rate of the step's two products, (B, d) @ (d, n) and (n, B) @ (B, d);
- the time to draw one float32 Gaussian batch (B, d), which every step must do;
- the jitted SGD loop (`Trainer.advance`), as steps/s and achieved FLOP/s at the
  conventional 6 B d n FLOPs per step (the loop itself needs 4 B d n: no input gradient).

    python benchmarks/bench_network.py [--sizes 256,128,4096 ...] [--steps N] [--repeat R]

Prints a markdown table; times are the best of `--repeat` rounds (default 5), the three
measurements interleaved in each round, to damp the noise of a shared machine. On a GPU
the default sizes include n, d in the thousands.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp

import fsjax  # noqa: F401  (enables float64 globally; the network asks for float32)
from fsjax._model.network import flops_per_step, init_network, init_teacher
from fsjax._train.sgd import Trainer, optimizer

CPU_SIZES = [(256, 128, 4096), (512, 256, 4096), (1024, 512, 2048), (64, 32, 1024)]
GPU_SIZES = [(256, 128, 4096), (1024, 1024, 16384), (2048, 2048, 32768), (4096, 4096, 32768)]


def interleaved_best(fns: dict, repeat: int) -> dict:
    """Best wall time of each zero-argument function, timed in turn `repeat` times so that all
    of them see the same varying load of a shared machine."""
    for fn in fns.values():
        jax.block_until_ready(fn())  # compile and warm up
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def measure(width, dim, batch, steps, repeat):
    """(matmul FLOP/s, seconds per Gaussian batch, SGD steps/s) for one size."""
    kx, kw = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (batch, dim), dtype=jnp.float32)
    w = jax.random.normal(kw, (width, dim), dtype=jnp.float32)

    @jax.jit
    def products(x, w):
        """`steps` dependent rounds of the step's two products (forward, weight gradient), so
        that the matmul timing spans as long a window as the SGD timing."""

        def body(_, w):
            return w + 1e-6 * ((x @ w.T).T @ x)

        return jax.lax.fori_loop(0, steps, body, w)

    draw = jax.jit(lambda k: jax.random.normal(k, (batch, dim), dtype=jnp.float32))
    kt, kn, ks = jax.random.split(jax.random.key(0), 3)
    teacher = init_teacher(kt, dim, [0, 1, 0, 0.3], 0.0, jnp.float32)
    net = init_network(kn, width, dim, 0.5, "tanh", jnp.float32)
    trainer = Trainer(teacher, optimizer(0.02, 0.05, 1.0, width), batch)
    state, n = trainer.init(net, ks), jnp.asarray(steps)
    best = interleaved_best(
        {
            "matmul": lambda: products(x, w),
            "sample": lambda: draw(ks),
            "sgd": lambda: trainer.advance(state, n),
        },
        repeat,
    )
    flop = 4.0 * batch * dim * width * steps
    return flop / best["matmul"], best["sample"], steps / best["sgd"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", help="n,d,B triples")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    device = jax.devices()[0]
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes]
    else:
        sizes = GPU_SIZES if device.platform == "gpu" else CPU_SIZES
    print(f"device: {device.platform} ({device.device_kind}), host {platform.processor() or '?'}")
    print(f"jax {jax.__version__}, steps per timing {args.steps}, best of {args.repeat}\n")
    print(
        "| n | d | B | matmul GFLOP/s | sample (B,d) ms | steps/s | ms/step "
        "| GFLOP/s (6Bdn) | fraction of matmul |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for width, dim, batch in sizes:
        peak, sample, rate = measure(width, dim, batch, args.steps, args.repeat)
        achieved = rate * flops_per_step(width, dim, batch)
        print(
            f"| {width} | {dim} | {batch} | {peak / 1e9:.1f} | {sample * 1e3:.2f} "
            f"| {rate:.1f} | {1e3 / rate:.2f} | {achieved / 1e9:.1f} | {achieved / peak:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
