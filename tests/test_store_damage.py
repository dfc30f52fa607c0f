"""A sweep store with chunk files overwritten, as a full disk or a bad copy leaves them:
`fsjax.open` returns every intact chunk and names the damaged ones, and a resumed sweep
recomputes exactly those, to the results of the undamaged run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from test_store import _chunk, _grid_store
from test_sweep import BASE

import fsjax
from fsjax._sweep.store import LOST, GridStore, open_grid


def _chunk_of(root, slot: int) -> tuple[str, np.ndarray]:
    """The name of the chunk written into `slot` and its points' flat grid indices, from the
    raw store (before any damage)."""
    for marker in (root / "done").glob("*/zarr.json"):
        start, stop = json.loads(marker.read_text())["attributes"]["slots"]
        if start <= slot < stop:
            return marker.parent.name, xr.open_zarr(root)["index"].values[start:stop]
    raise AssertionError(f"no chunk holds slot {slot}")


def test_damaged_chunks_are_named_and_recomputed(tmp_path, monkeypatch):
    memory = fsjax.run(BASE)
    fsjax.run(BASE, workdir=tmp_path)
    root = tmp_path / "results.zarr"
    # 12 points in chunks of 4: the zarr chunk c/j holds chunk j of the run.
    (first, first_points), (last, last_points) = _chunk_of(root, 4), _chunk_of(root, 8)
    (root / "kappa_final" / "c" / "1").write_bytes(b"\x28\xb5\x2f\xfd garbage" * 7)
    # The index of the other: its points are found as those no intact chunk holds.
    (root / "index" / "c" / "2").write_bytes(b"")

    with pytest.warns(UserWarning, match=f"2 damaged chunks.*{first}.*{last}"):
        ds = fsjax.open(tmp_path)
    assert json.loads(ds.attrs["damaged_chunks"]) == sorted([first, last])
    assert json.loads(ds.attrs["status_meanings"])[str(LOST)].startswith("lost")
    lost = np.zeros(12, dtype=bool)
    lost[np.concatenate([first_points, last_points])] = True
    lost = lost.reshape(ds["status"].shape)
    ds = ds.load()  # no chunk is decoded that does not match its checksum
    np.testing.assert_array_equal(ds["status"].values[lost], LOST)
    for name, values in ds.data_vars.items():
        np.testing.assert_array_equal(values.values[~lost], memory[name].values[~lost])
        if values.dtype.kind == "f":
            assert np.isnan(values.values[lost]).all()
        elif name != "status":
            np.testing.assert_array_equal(values.values[lost], -1)  # the integers' fill

    written = []
    write = GridStore.write
    monkeypatch.setattr(
        GridStore, "write", lambda self, name, *a: written.append(name) or write(self, name, *a)
    )
    with pytest.warns(UserWarning, match="is damaged"):
        resumed = fsjax.run(BASE, workdir=tmp_path, resume=True)
    assert sorted(written) == sorted([first, last])
    xr.testing.assert_identical(resumed, memory)  # same code and inputs: equal bit for bit


def test_markers_without_checksums_are_checked_by_decoding(tmp_path):
    """A store written before the checksums: a chunk that cannot be decoded is damaged, and
    rewriting it (a resumed sweep) makes it whole again."""
    root = tmp_path / "results.zarr"
    store = _grid_store(root, 0)
    store.write("a-000000", _chunk([5, 0, 3, 1]), {"steps": 1})
    store.write("b-000000", _chunk([2, 4]), {"steps": 2})
    for marker in (root / "done").glob("*/zarr.json"):
        doc = json.loads(marker.read_text())
        del doc["attributes"]["crc32"]
        marker.write_text(json.dumps(doc))
    (root / "v" / "c" / "1").write_bytes(b"not zstd")
    with pytest.warns(UserWarning, match=r"1 damaged chunks .*b-000000: v cannot be decoded"):
        ds, done = open_grid(root)
    np.testing.assert_array_equal(ds["n"].values, [[100, 101], [-1, 103], [-1, 105]])
    assert np.isnan(ds["v"].values[1:, 0]).all() and done == [{"steps": 1}]
    assert json.loads(ds.attrs["damaged_chunks"]) == ["b-000000"]

    resumed = _grid_store(root, 0)
    with pytest.warns(UserWarning, match="chunk b-000000 is damaged"):
        assert resumed.has("a-000000") and not resumed.has("b-000000")
    resumed.write("b-000000", _chunk([2, 4]), {"steps": 2})
    assert resumed.has("b-000000") and _grid_store(root, 1).has("b-000000")
    ds, done = open_grid(root)
    np.testing.assert_array_equal(ds["v"].values, 1.5 * np.arange(6).reshape(3, 2))
    assert "damaged_chunks" not in ds.attrs and len(done) == 2
