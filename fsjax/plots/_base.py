"""What every figure module shares: the Agg backend, saving, and axis scales."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def axis_scale(values) -> str:
    """log for positive axes spanning two decades or more (geomspace/logspace axes)."""
    v = np.asarray(values, dtype=float)
    return "log" if v.size > 2 and v.min() > 0 and v.max() / v.min() >= 100 else "linear"
