"""What every figure shares: figures made outside pyplot, saving, and axis scales.

No backend is chosen here, so importing fsjax.plots leaves matplotlib's settings as they were.
The figures the command line writes are `matplotlib.figure.Figure` objects (`figure`), which
`savefig` renders to a file under any backend, interactive or not, and which no window or
pyplot state ever holds. pyplot is used only where a panel function is called without axes,
for interactive use.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def figure(**kwargs) -> Figure:
    """A figure outside pyplot (`Figure(**kwargs)`, e.g. `figsize`), to be written by `save`."""
    return Figure(**kwargs)


def save(fig: Figure, path: Path) -> Path:
    """Write `fig` to `path` (the format from its suffix) and release it."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)  # a pyplot figure is forgotten by pyplot; any other is left to the collector
    return path


def axis_scale(values) -> str:
    """log for positive axes spanning two decades or more (geomspace/logspace axes)."""
    v = np.asarray(values, dtype=float)
    return "log" if v.size > 2 and v.min() > 0 and v.max() / v.min() >= 100 else "linear"
