"""`kind: sensitivity`: the onset and depth of unlearning and their parameter gradients
(automatic, and central finite differences on request) at one point."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._analysis.sensitivity import (
    QUANTITIES,
    _component,
    _labels,
    finite_differences,
    gradients,
    parameters_from,
    quantities,
)
from .._config import SensitivityConfig


def run_sensitivity(config: SensitivityConfig, *, workdir=None, resume=False) -> xr.Dataset:
    """Values, automatic gradients and (if asked) finite differences as one dataset; short,
    so `workdir` and `resume` are not used."""
    params, setup = parameters_from(config)
    sec = config.sensitivity
    labels = _labels(params, sec.params)
    values = np.asarray(quantities(params, setup))
    grads = gradients(params, setup)
    auto = np.stack([np.asarray(_component(grads, f, i)) for _, f, i in labels], axis=-1)
    auto[~np.isfinite(values)] = np.nan  # a constant NaN has zero derivative; say NaN instead
    fd = finite_differences(params, setup, labels, sec.fd_step) if sec.fd else None
    data = {}
    for q in sec.quantities:
        k = QUANTITIES.index(q)
        data[q] = ((), float(values[k]))
        data[f"grad_{q}"] = (("param",), auto[k])
        if fd is not None:
            data[f"fd_{q}"] = (("param",), fd[k])
    ds = xr.Dataset(data, coords={"param": [label for label, _, _ in labels]})
    if "t_onset" in sec.quantities:
        ds["t_onset"].attrs["meaning"] = (
            "first + to - sign change of the alignment's rate (NaN: none before t_final)"
        )
    return ds
