"""`fsjax.open`: the results of a run directory as an `xarray.Dataset`, without loading them."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from ._errors import FsjaxError
from ._sweep.engine import open_sweep
from ._sweep.store import STORE

RESULTS = (STORE, "results.nc")


def open(path: str | Path) -> xr.Dataset:
    """Open a run directory (`fsjax run --out DIR`, `fsjax.run(..., workdir=DIR)`) or one of its
    result files. A sweep's `results.zarr` comes on the sweep's grid, lazily: indexing a
    variable reads only the points it selects, and the points of an unfinished sweep have
    `status` -1 and NaN results. A chunk damaged on disk is named in a warning and in the
    attribute `damaged_chunks`; its points have `status` -2 and NaN results, and resuming the
    run recomputes it. `results.nc` (the other kinds, and small sweeps' copy) opens
    lazily through xarray. A directory with both opens its `results.zarr`."""
    path = Path(path)
    if path.is_dir() and path.suffix != ".zarr":
        found = [path / name for name in RESULTS if (path / name).exists()]
        if not found:
            raise FsjaxError(f"{path} holds no {' or '.join(RESULTS)}; is it a run directory?")
        path = found[0]
    if path.suffix == ".zarr":
        return open_sweep(path)
    if path.suffix == ".nc" and path.is_file():
        return xr.open_dataset(path, engine="h5netcdf")
    raise FsjaxError(f"{path}: expected a run directory, a results.zarr or a results.nc")
