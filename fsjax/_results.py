"""The one table of result codes: how a solve, a network or a sweep point ended.

In the style of diffrax's `RESULTS`, one member per outcome with a message each, but as an
`enum.IntEnum`: a result travels through `jit` and `vmap` as a plain int32 array (a
`Trajectory`'s or a sweep point's `status`) and is stored as that integer, with the table's
messages in the dataset's `status_meaning`/`status_meanings` attributes (`STATUS_MEANINGS`).
The codes are fixed, so stored results keep their meaning; a new outcome takes a new code.
"""

from __future__ import annotations

import enum


class RESULTS(enum.IntEnum):
    """Result codes; `RESULTS(code).message` says what a stored code means."""

    message: str

    def __new__(cls, code: int, message: str):
        item = int.__new__(cls, code)
        item._value_ = code
        item.message = message
        return item

    # A point whose chunk is damaged on disk (`fsjax._sweep.store`); `--resume` recomputes it.
    chunk_lost = -2, "lost: its chunk is damaged on disk; resume the sweep to recompute it"
    # The fill value of integer results in a sweep store (`fsjax._sweep.store`).
    not_run = -1, "not run yet"
    successful = 0, "success"
    max_steps_reached = 1, "max_steps reached before t_final"
    solver_failed = (
        2,
        "solver failure (step size collapse, non-finite state or nonlinear solve)",
    )
    network_diverged = 3, "the network diverged"


STATUS_MEANINGS: dict[int, str] = {int(r): r.message for r in RESULTS}
