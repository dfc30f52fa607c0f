"""Files that must never be seen half-written, and the fingerprints that tie run directories
to the config that made them."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None], suffix: str = ".tmp") -> Path:
    """`write(tmp)` to a temporary name beside `path`, then rename it into place: a kill at any
    moment leaves either the old file or the complete new one. `suffix` tells writers that
    share a directory apart (sweep processes use their process index)."""
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    write(tmp)
    os.replace(tmp, path)
    return path


def atomic_write_text(path: Path, text: str, suffix: str = ".tmp") -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text), suffix)


def write_netcdf(ds, path: Path, suffix: str = ".tmp") -> Path:
    """An xarray dataset as NetCDF (h5netcdf), written atomically."""
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"), suffix)


def fingerprint(data) -> str:
    """A stable digest of plain (JSON-able) data, such as the sections of a resolved config."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
