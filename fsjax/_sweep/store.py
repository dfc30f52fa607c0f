"""Chunk persistence for sweeps: one NetCDF file per finished chunk, written atomically.

Layout of `DIR/chunks/`: `manifest.json` (the fingerprint of the config the chunks belong to)
and `<name>.nc` per finished chunk, each holding the per-point results along a `point`
dimension with the points' flat grid `index`. A chunk is written to `<name>.nc.<process>.tmp`,
then renamed, so a file under its final name is always complete and a kill at any moment loses
at most the chunk in flight. The store is plain xarray-readable NetCDF:
`xr.concat([xr.open_dataset(p) for p in sorted(DIR.glob("chunks/*.nc"))], "point")`.
Without a directory the store keeps the chunks in memory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import xarray as xr

from .._errors import FsjaxError
from .._io import atomic_write_text, write_netcdf

MANIFEST = "manifest.json"


class ChunkStore:
    """Finished chunks by name: `{"index": int array, <result>: array, ...}` plus attrs."""

    def __init__(self, root: Path | None, fingerprint: str, *, resume: bool, process: int = 0):
        self.root = Path(root) if root is not None else None
        self._memory: dict[str, tuple[dict[str, np.ndarray], dict]] = {}
        # Temporary names carry the process index: processes sharing the directory never
        # remove or replace each other's chunks in flight.
        self._tmp = f".{process}.tmp"
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(f"*{self._tmp}"):  # in flight when this process was killed
            stale.unlink()
        manifest = self.root / MANIFEST
        if manifest.exists():
            found = json.loads(manifest.read_text()).get("fingerprint")
            if not resume:
                raise FsjaxError(
                    f"{self.root} already holds sweep chunks; resume it or remove it first"
                )
            if found != fingerprint:
                raise FsjaxError(
                    f"{self.root} holds chunks of a different sweep config; "
                    "run it with its own config or start over with --force"
                )
        else:
            atomic_write_text(manifest, json.dumps({"fingerprint": fingerprint}), self._tmp)

    def _path(self, name: str) -> Path:
        return self.root / f"{name}.nc"

    def has(self, name: str) -> bool:
        return name in self._memory if self.root is None else self._path(name).exists()

    def write(self, name: str, results: dict[str, np.ndarray], attrs: dict) -> None:
        if self.root is None:
            self._memory[name] = (results, attrs)
            return
        ds = xr.Dataset({k: ("point", np.asarray(v)) for k, v in results.items()}, attrs=attrs)
        write_netcdf(ds, self._path(name), self._tmp)

    def read(self, name: str) -> tuple[dict[str, np.ndarray], dict]:
        if self.root is None:
            return self._memory[name]
        with xr.open_dataset(self._path(name), engine="h5netcdf") as ds:
            return {k: ds[k].values for k in ds.data_vars}, dict(ds.attrs)

    def wait_for(self, names: list[str], poll_s: float = 1.0) -> None:
        """Block until every named chunk exists (chunks written by other processes)."""
        while not all(self.has(n) for n in names):
            time.sleep(poll_s)
