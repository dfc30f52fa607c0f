"""Ensembles of networks: a member's training does not depend on how many members share one
vmap (`fsjax._train.ensemble.vmap_members`: on a CPU by the size of their step arrays, all of
them on an accelerator)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import fsjax
from fsjax._train.ensemble import init_ensemble, train_ensemble, vmap_members
from fsjax._train.sgd import record_steps


def _train(vmap_width: int) -> dict:
    n = 3
    rate_a, rate_w = (float(r) for r in fsjax.layer_rates("second_layer", 0.05))
    lr = np.array([0.05, 0.1, 0.05])
    ensemble, state = init_ensemble(
        jnp.arange(n),
        lr,
        np.tile([0.0, 1.0, 0.0, 0.3], (n, 1)),
        np.zeros(n),
        np.array([0.3, 0.5, 0.7]),
        np.full(n, rate_a),
        np.full(n, rate_w),
        width=8,
        dim=4,
        batch=32,
        activation="tanh",
        hermite_order=8,
        dtype="float32",
        vmap_width=vmap_width,
    )
    assert ensemble.vmap_width == vmap_width
    return train_ensemble(ensemble, state, record_steps(40, 6))


def test_members_train_alike_looped_in_batches_and_in_one_vmap():
    """Looped one by one, in batches of 2 (with a remainder of 1) and in one vmap. A member's
    arithmetic is the same in each; only the batched matmuls may sum in another order, which
    `tests/test_network_sweep.py` bounds at 1e-5 relative in the order parameters (float32
    SGD over 300 steps; these 40 steps stay well inside it)."""
    # On a CPU the 16 members of the benchmark's two sizes: 1.2 MB of step arrays each (one
    # vmap), 20 MB each (a loop); an accelerator vmaps them all.
    assert vmap_members(16, 64, 32, 512, "float32", "cpu") == 16
    assert vmap_members(16, 256, 128, 2048, "float32", "cpu") == 1
    assert vmap_members(16, 256, 128, 2048, "float32", "gpu") == 16
    one_vmap = _train(3)
    for width in (1, 2):
        out = _train(width)
        np.testing.assert_array_equal(out["diverged_at"], one_vmap["diverged_at"])
        for name in ("s_mean", "a_mean", "risk"):
            np.testing.assert_allclose(out[name], one_vmap[name], rtol=1e-5, err_msg=name)
