r"""The points of a sweep and the order they run in.

**Points.** Each axis (see `fsjax._axes`) gives values to one field; `grid` mode runs their
Cartesian product (output dims named after the axes, C order), `zip` mode pairs them (one
`point` dim with the axes as coordinates). A point is a row of the `(N, n_axes)` value array.

**Load balance.** A vmapped adaptive solve runs as many steps as its slowest member, so a chunk
costs $B\max_j n_j$ steps for $\sum_j n_j$ useful ones. The *useful step fraction* is $\sum_j
n_j / \sum_{\text{chunks}} B \max_j n_j$. Step counts vary by a factor of five across a
dichotomy grid (configs/quickstart.yaml: 57 to 301, median 83 where the alignment is kept and
about 250 where it is unlearned), so grid order mixes cheap and dear points in every chunk.
`balance: neighbours` runs the sweep in two passes: first an evenly spread sample of about 1/16
of the points, then the rest sorted (dearest first) by the largest measured step count among
their 2^d nearest sampled neighbours (rank-normalised axis coordinates), so that each chunk
holds points of similar cost. The first pass is useful work, so the estimate costs nothing
extra. Chunk composition depends only on the config and on first-pass results, which are
deterministic: a resumed sweep recomputes exactly the chunks an uninterrupted one would.

The engine's lane loop (`fsjax._solve.lanes`) no longer runs a chunk in lockstep, so similar
costs within a chunk matter less; what the order still buys is its queue running dearest
first, so that the lanes' idle tail at the end of a chunk is spent on its cheapest points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .._model import axes as _axes

FIRST_PASS_FRACTION = 1 / 16
_QUERY_BLOCK = 2**16


@dataclass(frozen=True)
class SweepPlan:
    """The points of a sweep: `values[i]` is point i's row; `shape` the output grid."""

    dims: tuple[str, ...]
    coords: dict[str, np.ndarray]
    shape: tuple[int, ...]
    values: np.ndarray
    mode: str

    @property
    def size(self) -> int:
        return self.values.shape[0]


def sweep_plan(config) -> SweepPlan:
    axes = {_axes.axis_name(p): np.asarray(v) for p, v in config.sweep.axes.items()}
    if config.sweep.mode == "grid":
        mesh = np.meshgrid(*axes.values(), indexing="ij")
        values = np.stack([m.ravel() for m in mesh], axis=-1)
        shape = tuple(len(v) for v in axes.values())
        dims = tuple(axes)
    else:
        values = np.stack(list(axes.values()), axis=-1)
        shape, dims = (values.shape[0],), ("point",)
    return SweepPlan(dims, axes, shape, values, config.sweep.mode)


def first_pass(n: int, chunk: int, balance: str) -> np.ndarray:
    """Indices of the first pass: all points without balancing or when there are too few to
    sort; else an evenly spread sample of about `FIRST_PASS_FRACTION` of them, a whole
    number of chunks."""
    n_first = chunk * max(1, round(n * FIRST_PASS_FRACTION / chunk))
    if balance == "none" or n <= 2 * n_first:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, n_first)).astype(np.int64))


def second_pass(plan: SweepPlan, first: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """The remaining points, dearest first by the largest cost among their 2^d nearest
    first-pass neighbours in rank-normalised axis coordinates (each axis's values mapped to
    [0, 1] by rank, so that log-spaced and linear axes weigh alike)."""
    rest = np.setdiff1d(np.arange(plan.size), first)
    if rest.size == 0:
        return rest
    cols = []
    for j in range(plan.values.shape[1]):
        uniq, rank = np.unique(plan.values[:, j], return_inverse=True)
        cols.append(rank / max(len(uniq) - 1, 1))
    coords = np.stack(cols, axis=-1)
    # The dearest of the 2^d nearest samples (the corners of the enclosing sample cell): an
    # underestimate puts a dear point among cheap ones and makes the whole chunk dear, an
    # overestimate costs only that point's lane.
    k = min(2 ** coords.shape[1], first.size)
    tree = cKDTree(coords[first])
    predicted = np.empty(rest.size, dtype=cost.dtype)
    for lo in range(0, rest.size, _QUERY_BLOCK):  # in blocks: the neighbour lists stay small
        _, nearest = tree.query(coords[rest[lo : lo + _QUERY_BLOCK]], k=k)
        predicted[lo : lo + _QUERY_BLOCK] = cost[nearest.reshape(-1, k)].max(axis=1)
    # Dearest first: the last, partly padded chunk then holds the cheapest points.
    return rest[np.argsort(-predicted, kind="stable")]
