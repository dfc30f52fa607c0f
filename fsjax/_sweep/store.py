"""Chunk persistence for sweeps, written so that a kill at any moment loses at most the chunks in
flight and a resumed sweep recomputes exactly those.

**`GridStore`** (a sweep with an output directory, of the reduced dynamics or of networks): one
chunked, labelled Zarr store, `DIR/results.zarr`, for the whole sweep, laid out in full before
the first chunk is written. Every result is one array along a `slot` dimension, `chunk` slots
for each chunk of the run, and any further dims of its own (a network's `time`); chunk j of
the run (in `names`, the run order) owns slots `[j * chunk, j * chunk + len)`, exactly one
zarr chunk, so processes writing their own chunks never touch the same file, and memory holds
one chunk's results at a time. A chunk's points are not contiguous on the grid (load balancing
orders them by predicted cost; a network sweep groups them by size), so each slot also stores
its point's flat C-order grid `index` (-1 where nothing is written). The grid coordinates, the
dataset attrs and, in the root attribute `fsjax_store`, the config fingerprint, grid dims and
shape are written up front. A chunk is finished when its
marker `done/<name>/zarr.json` exists (an empty zarr group whose attributes hold its slots, the
attrs given to `write` and the CRC-32 of each of its zarr chunk files); the marker is written
atomically after the data, so a chunk killed mid-write has none and is recomputed. A chunk
whose files no longer match their checksums (overwritten by a full disk or a bad copy) counts
as not finished: a resumed sweep recomputes it, and `open_grid` reads its points as lost
(`LOST`), names it and returns every other chunk. `open_grid` shows the store on the grid,
lazily; `xarray.open_zarr(DIR/results.zarr)` reads the slots as they are.

**`ChunkStore`**: the same interface in memory, for sweeps run without an output directory.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from xarray.backends import BackendArray
from xarray.core import indexing
from zarr.errors import ZarrUserWarning

from .._errors import FsjaxError
from .._io import atomic_write_text
from .._results import RESULTS

STORE = "results.zarr"
_META = "fsjax_store"
_DONE = "done"
# The status of the points of a damaged chunk (-1, not run yet, is the fill value).
LOST = int(RESULTS.chunk_lost)


class _Chunks:
    def wait_for(self, names: list[str], poll_s: float = 1.0) -> None:
        """Block until every named chunk exists (chunks written by other processes)."""
        while not all(self.has(n) for n in names):
            time.sleep(poll_s)


class GridStore(_Chunks):
    """Finished chunks by name in the Zarr store `root`: `write(name, {"index": int array,
    <result>: array, ...}, attrs)` with one row per point; a chunk of `names` holds at most
    `chunk` points. `grid` holds the grid's coordinates (dims `dims`) and the dataset attrs;
    `inner_dims` names the further axes of results with more than one (in order)."""

    def __init__(
        self,
        root: Path,
        fingerprint: str,
        *,
        resume: bool,
        process: int = 0,
        grid: xr.Dataset,
        dims: tuple[str, ...],
        names: list[str],
        chunk: int,
        inner_dims: tuple[str, ...] = (),
    ):
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.grid, self.dims, self.chunk = grid, tuple(dims), chunk
        self.inner_dims = tuple(inner_dims)
        self._start = {name: j * chunk for j, name in enumerate(names)}
        self._arrays = None
        # Chunks whose files were checked against their marker (`has`), and those that failed.
        self._intact: set[str] = set()
        self._damaged: set[str] = set()
        # Temporary names carry the process index: processes sharing the directory never
        # remove or replace each other's files in flight.
        self._tmp = f".{process}.tmp"
        # Laid out when this process was killed, before the rename.
        shutil.rmtree(self._staging(), ignore_errors=True)
        if self.root.exists():
            self._check(resume=resume)
            for stale in (self.root / _DONE).glob(f"*/zarr.json{self._tmp}"):
                stale.unlink()

    def _check(self, *, resume: bool) -> None:
        if not resume:
            raise FsjaxError(
                f"{self.root} already holds sweep chunks; resume it or remove it first"
            )
        if _meta(self.root).get("fingerprint") != self.fingerprint:
            raise FsjaxError(
                f"{self.root} holds chunks of a different sweep config; "
                "run it with its own config or start over with --force"
            )

    def _staging(self) -> Path:
        return self.root.with_name(self.root.name + self._tmp)

    def _marker(self, name: str) -> Path:
        return self.root / _DONE / name / "zarr.json"

    def has(self, name: str) -> bool:
        """Whether the chunk is finished: its marker exists and its files match their checksums
        (checked once; a damaged chunk is checked again until it is rewritten)."""
        if name in self._intact:
            return True
        if not self._marker(name).exists():
            return False
        damage = _damage(self.root, self._results(), self._marker(name))
        if damage is None:
            self._intact.add(name)
        elif name not in self._damaged:
            self._damaged.add(name)
            message = f"{self.root}: chunk {name} is damaged ({damage}); recomputing it"
            warnings.warn(message, stacklevel=2)
        return damage is None

    def write(self, name: str, results: dict[str, np.ndarray], attrs: dict) -> None:
        if not self.root.exists():
            self._create(results)
        arrays = self._results()
        start = self._start[name]
        stop = start + len(results["index"])
        # The index goes last: for readers of the raw store, a slot with its index set holds
        # all its results. Old files go first: a partial chunk is merged with what is on disk,
        # which for a damaged chunk cannot be decoded.
        keys = sorted(results, key=lambda k: k != "index")
        for key in keys:
            _chunk_file(self.root, arrays[key], start).unlink(missing_ok=True)
        for key in reversed(keys):
            arrays[key][start:stop] = np.asarray(results[key])
        marker = self._marker(name)
        marker.parent.mkdir(exist_ok=True)
        crc = {key: _crc32(_chunk_file(self.root, arrays[key], start)) for key in keys}
        attributes = {"slots": [start, stop], "attrs": attrs, "crc32": crc}
        doc = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
        atomic_write_text(marker, json.dumps(doc), self._tmp)
        self._intact.add(name)

    def read(self, name: str) -> tuple[dict[str, np.ndarray], dict]:
        start, stop, attrs = _done(self._marker(name))
        return {k: array[start:stop] for k, array in self._results().items()}, attrs

    def _results(self) -> dict[str, zarr.Array]:
        """The `index` and the results, opened once (a lookup reads the array's metadata)."""
        if self._arrays is None:
            self._arrays = _results(zarr.open_group(self.root, mode="r+"))
        return self._arrays

    def _create(self, results: dict[str, np.ndarray]) -> None:
        """Lay out the whole store under a temporary name, then rename it into place: other
        processes may do the same at once, and the first rename wins."""
        tmp = self._staging()
        shape = [self.grid.sizes[d] for d in self.dims]
        meta = {
            "fingerprint": self.fingerprint,
            "dims": list(self.dims),
            "shape": shape,
            "variables": [k for k in results if k != "index"],
        }
        # CF `coordinates`: xarray reads coordinates off the grid dims (zip mode's) as such.
        aux = " ".join(str(name) for name in self.grid.coords if name not in self.grid.dims)
        attrs = dict(self.grid.attrs) | {_META: meta, "coordinates": aux}
        group = zarr.open_group(tmp, mode="w", zarr_format=3, attributes=attrs)
        for name, var in self.grid.variables.items():
            group.create_array(name, data=var.values, dimension_names=var.dims)
        slots = self.chunk * len(self._start)
        for name, value in results.items():
            value = np.asarray(value)
            group.create_array(
                name,
                shape=(slots, *value.shape[1:]),
                chunks=(self.chunk, *value.shape[1:]),
                dtype=value.dtype,
                fill_value=np.nan if np.issubdtype(value.dtype, np.floating) else -1,
                dimension_names=("slot", *self.inner_dims[: value.ndim - 1]),
            )
        group.create_group(_DONE)
        with warnings.catch_warnings():
            # Consolidated metadata is not in the Zarr v3 spec yet; xarray reads it without
            # listing the store, which also keeps the `done` markers out of its way.
            warnings.simplefilter("ignore", ZarrUserWarning)
            zarr.consolidate_metadata(tmp)
        try:
            os.rename(tmp, self.root)
        except OSError:
            if not self.root.exists():
                raise
            shutil.rmtree(tmp)
            self._check(resume=True)


def _meta(root: Path) -> dict:
    """The `fsjax_store` attribute of a store (empty for anything else)."""
    path = Path(root) / "zarr.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text()).get("attributes", {}).get(_META, {})


def _done(marker: Path) -> tuple[int, int, dict]:
    attributes = json.loads(marker.read_text())["attributes"]
    start, stop = attributes["slots"]
    return start, stop, attributes["attrs"]


def _chunk_file(root: Path, array: zarr.Array, start: int) -> Path:
    """The file of the zarr chunk of `array` that holds slot `start` (one chunk of the run)."""
    coords = (start // array.chunks[0],) + (0,) * (array.ndim - 1)
    return root / array.path / array.metadata.encode_chunk_key(coords)


def _crc32(path: Path) -> int | None:
    """The CRC-32 of a chunk file; None where there is none (zarr writes no file for a chunk
    that holds only fill values)."""
    return zlib.crc32(path.read_bytes()) if path.exists() else None


def _results(group: zarr.Group) -> dict[str, zarr.Array]:
    """A store's `index` and results arrays by name, in that order."""
    arrays = dict(group.arrays())
    return {k: arrays[k] for k in ("index", *group.attrs[_META]["variables"])}


def _damage(root: Path, arrays: dict[str, zarr.Array], marker: Path) -> str | None:
    """What is wrong with a finished chunk's files (None: nothing): an unreadable marker, a
    file whose CRC-32 is not the one its marker holds or, for markers written before the
    checksums, a result that cannot be decoded."""
    try:
        attributes = json.loads(marker.read_text())["attributes"]
        start, stop = attributes["slots"]
        crc = attributes.get("crc32")
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its marker cannot be read: {error!r}"
    if crc is None:
        for key, array in arrays.items():
            try:
                array[start:stop]
            except Exception as error:  # whatever the codec raises on garbage
                return f"{key} cannot be decoded: {error!r}"
        return None
    for key, expected in crc.items():
        if _crc32(_chunk_file(root, arrays[key], start)) != expected:
            return f"{key} does not match its checksum"
    return None


class _GridArray(BackendArray):
    """One result of a `GridStore` on the grid (shape `grid`), followed by its own further
    axes: a grid point reads the slot that holds it (`slot_of[flat index]`; -1 where no
    finished chunk does: the array's fill value; `LOST` where a damaged chunk did: `lost`)."""

    def __init__(self, array: zarr.Array, slot_of: np.ndarray, grid: tuple[int, ...], lost):
        self.array, self.slot_of, self.grid, self.lost = array, slot_of, grid, lost
        self.shape = (*grid, *array.shape[1:])
        self.dtype = np.dtype(array.dtype)

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._outer
        )

    def _outer(self, key: tuple) -> np.ndarray:
        n = len(self.grid)
        slots = self.slot_of.reshape(self.grid)
        for axis in reversed(range(n)):  # last axis first: an integer drops its axis
            slots = slots[(slice(None),) * axis + (key[axis],)]
        inner = tuple(key[n:])
        inner_shape = np.empty(self.shape[n:], dtype=bool)[inner].shape
        flat = slots.ravel()
        held = flat >= 0
        out = np.full((flat.size, *inner_shape), self.array.fill_value, self.dtype)
        out[flat == LOST] = self.lost
        if held.any():
            wanted, where = np.unique(flat[held], return_inverse=True)
            if wanted[-1] - wanted[0] + 1 == wanted.size:  # a run of slots: one slice
                rows = slice(int(wanted[0]), int(wanted[-1]) + 1)
            else:
                rows = wanted
            out[held] = self.array.get_orthogonal_selection((rows, *inner))[where]
        return out.reshape(slots.shape + inner_shape)


def open_grid(root: Path) -> tuple[xr.Dataset, list[dict]]:
    """A `GridStore` as a dataset on its grid, and the attrs of its finished chunks. Variables
    are lazy: indexing one reads only the points it selects. Points that no finished chunk
    holds read as NaN, -1 for integers (a sweep's `status` -1: not run yet). Opening checks
    every finished chunk's files against their checksums (reading each file once) and reads
    the `index` of every slot (8 bytes a slot) to map grid points to slots. The points of a
    damaged chunk read as NaN (-1 for integers) with `status` `LOST`; the attribute
    `damaged_chunks` (JSON) and a warning name those chunks."""
    root = Path(root)
    if not _meta(root):
        raise FsjaxError(f"{root} is not a sweep's results store")
    group = zarr.open_group(root, mode="r")
    attrs = dict(group.attrs)
    meta = attrs.pop(_META)
    del attrs["coordinates"]
    done, damaged = [], {}
    markers = sorted((root / _DONE).glob("*/zarr.json"))
    results = _results(group)
    for marker in markers:
        damage = _damage(root, results, marker)
        if damage is None:
            done.append(_done(marker))
        else:
            damaged[marker.parent.name] = (marker, damage)
    dims, shape = tuple(meta["dims"]), tuple(meta["shape"])
    slot_of = np.full(math.prod(shape), -1, dtype=np.int64)
    index = results["index"]
    if damaged:
        for start, stop, _ in done:  # chunk by chunk: a damaged index cannot be read whole
            slot_of[index[start:stop]] = np.arange(start, stop)
        _mark_lost(index, slot_of, [marker for marker, _ in damaged.values()], len(markers))
        meanings = json.loads(attrs.get("status_meanings", "{}"))
        attrs["status_meanings"] = json.dumps(meanings | {str(LOST): RESULTS.chunk_lost.message})
        attrs["damaged_chunks"] = json.dumps(sorted(damaged))
        listed = "; ".join(f"{name}: {damage}" for name, (_, damage) in damaged.items())
        warnings.warn(
            f"{root}: {len(damaged)} damaged chunks read as NaN with status {LOST} "
            f"({listed}); resume the sweep to recompute them",
            stacklevel=3,
        )
    else:
        rows = index[:]
        held = np.zeros(rows.size, dtype=bool)
        for start, stop, _ in done:
            held[start:stop] = True
        slots = np.flatnonzero(held)
        slot_of[rows[slots]] = slots
    coords, data = {}, {}
    for name, array in group.arrays():
        names = array.metadata.dimension_names
        if name in meta["variables"]:
            lost = LOST if name == "status" else array.fill_value
            lazy = indexing.LazilyIndexedArray(_GridArray(array, slot_of, shape, lost))
            data[name] = ((*dims, *names[1:]), lazy)
        elif name != "index":
            coords[name] = (names, array[...])
    return xr.Dataset(data, coords=coords, attrs=attrs), [a for *_, a in done]


def _mark_lost(index: zarr.Array, slot_of: np.ndarray, damaged: list[Path], finished: int):
    """Set `slot_of` to `LOST` at the points of the `damaged` chunks' markers: those their
    index names where it can still be read, and, when every chunk of the run is finished,
    every point no intact chunk holds."""
    for marker in damaged:
        try:
            start, stop, _ = _done(marker)
            points = index[start:stop]
        except Exception:  # an unreadable marker or index; whatever the codec raises
            continue
        if np.all((points >= 0) & (points < slot_of.size)):
            slot_of[points[slot_of[points] < 0]] = LOST
    if finished == index.shape[0] // index.chunks[0]:
        slot_of[slot_of == -1] = LOST


class ChunkStore(_Chunks):
    """Finished chunks by name, in memory: `{"index": int array, <result>: array, ...}` plus
    attrs."""

    def __init__(self):
        self._chunks: dict[str, tuple[dict[str, np.ndarray], dict]] = {}

    def has(self, name: str) -> bool:
        return name in self._chunks

    def write(self, name: str, results: dict[str, np.ndarray], attrs: dict) -> None:
        self._chunks[name] = (results, attrs)

    def read(self, name: str) -> tuple[dict[str, np.ndarray], dict]:
        return self._chunks[name]
