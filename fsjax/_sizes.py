"""Memory estimates of what a config asks for, checked when it is validated: a size that cannot
fit in this machine's memory is refused before anything of that size is allocated, with the
estimate and the largest size that fits.

The estimates are of the working set a run holds at once, so a refused size could never run.
They are held against the machine's whole memory, which does not change between validations;
the run-time check of networks and ensemble chunks (`fsjax._train.sgd.check_memory`) holds the
same estimates (`network_bytes`, `held_out_bytes`) against the memory free at that moment
(`available_memory`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax

# Bytes per element of each `network.dtype`.
ITEMSIZE = {"bfloat16": 2, "float32": 4, "float64": 8}
# XLA's memory for the reduced solve's compiled call, per particle, at every m from 64 to
# 16,384 (benchmarks/RESULTS.md, structured step matrix); O(m L) at L = 16.
SOLVE_BYTES_PER_PARTICLE = 1440


def machine_bytes() -> int:
    """The host's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def available_memory() -> tuple[int, str]:
    """Bytes the default JAX device can hold, and its name: the accelerator's memory limit, or
    on CPU the host's currently available memory."""
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]), f"{device.platform} memory"
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        return int(info["MemAvailable"].split()[0]) * 1024, "available host memory"
    except (OSError, KeyError, ValueError):
        return machine_bytes(), "host memory"


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def trajectory_bytes(particles: int, n_save: int) -> int:
    """One reduced solve of `particles` particles saved at `n_save` times: the compiled call
    and the float64 trajectory (t, and a and s of every particle, at each save)."""
    return particles * SOLVE_BYTES_PER_PARTICLE + 8 * n_save * (1 + 2 * particles)


def step_bytes(width: int, dim: int, batch: int, itemsize: int) -> int:
    """Bytes one SGD step holds at once: the batch (B d), the pre-activations and their
    activations, derivatives and backpropagated errors (4 B n), and the weights, gradient and
    update (4 n d); doubled for XLA's temporaries."""
    return 2 * itemsize * (batch * dim + 4 * batch * width + 4 * width * dim)


def network_bytes(width: int, dim: int, batch: int, itemsize: int) -> int:
    """One network's SGD step (`step_bytes`) and its closed-form risk (the float64 Gram matrix
    and kernel, 2 n^2, and rows, n d)."""
    return step_bytes(width, dim, batch, itemsize) + 8 * (2 * width**2 + width * dim)


def held_out_bytes(samples: int, width: int, dim: int) -> int:
    """The Monte Carlo risk's float64 held-out set and its activations (the estimate of
    `fsjax._train.sgd.check_memory`)."""
    return 8 * 2 * samples * (dim + 2 * width)


def dataset_bytes(samples: int, width: int, dim: int, itemsize: int) -> int:
    """A fixed training set (`network.samples`): its inputs and labels in the network's dtype,
    and the float64 copy and activations its training risk is evaluated on
    (`held_out_bytes`)."""
    return itemsize * samples * (dim + 1) + held_out_bytes(samples, width, dim)


def records_bytes(records: int, width: int) -> int:
    """A trained network's float64 records: s and a of every neuron and six risks each."""
    return 8 * records * (2 * width + 6)


def check_fits(field: str, value: int, need: Callable[[int], int], given: str = "") -> None:
    """A `ValueError` naming `field` when `need(value)` bytes (`need` growing with the value)
    exceed the machine's memory, with the estimate and the largest value that fits; `given`
    names the other sizes the estimate holds fixed."""
    have = machine_bytes()
    if need(value) <= have:
        return
    lo, hi = 0, value  # need(lo) fits or lo = 0; need(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if need(mid) <= have else (lo, mid)
    fits = f"the largest that fits is {lo}" if lo else "no value fits"
    raise ValueError(
        f"{field} = {value}{given} needs about {gib(need(value))} but this machine has "
        f"{gib(have)}; {fits}"
    )
