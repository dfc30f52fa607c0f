"""The sweep's results store: `fsjax.open` and the raw Zarr store against the in-memory
dataset, lazy reads, memory that stays flat in the number of points, the limit on points, and a
sweep whose every point fails."""

from __future__ import annotations

import copy
import gc
import re
import tracemalloc

import numpy as np
import pytest
import xarray as xr
import yaml
import zarr
from test_sweep import BASE

import fsjax
from fsjax._cli import main
from fsjax._io import write_netcdf
from fsjax._model.axes import MAX_POINTS
from fsjax._sweep.store import GridStore, open_grid


def _failing(n_target: int, n_a: int) -> dict:
    """Every point stops at max_steps: cheap solves (one compile for the tests that use it)."""
    cfg = copy.deepcopy(BASE)
    cfg["solver"]["max_steps"] = 30
    cfg["sweep"] = {
        "axes": {
            "target[3]": {"linspace": [-0.3, 0.3, n_target]},
            "init.a": {"geomspace": [0.2, 2.0, n_a]},
        },
        "chunk": 64,
    }
    return cfg


def test_open_round_trip(tmp_path, monkeypatch):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 0
    ds = fsjax.open(out)
    assert not ds["kappa_final"]._in_memory  # lazy until read
    memory = fsjax.run(BASE)
    xr.testing.assert_identical(ds, memory)
    xr.testing.assert_identical(fsjax.open(out / "results.zarr"), memory)
    xr.testing.assert_identical(fsjax.open(out / "results.nc").load(), memory)

    # The raw store: one row per slot in run order, with its point's flat grid index.
    raw = xr.open_zarr(out / "results.zarr")
    assert raw["kappa_final"].dims == ("slot",)
    assert sorted(raw["index"].values) == list(range(12))
    order = np.argsort(raw["index"].values)
    for name in memory.data_vars:
        np.testing.assert_array_equal(raw[name].values[order], memory[name].values.ravel())

    # Indexing reads only the selected points from the store.
    read = []
    get = zarr.Array.get_orthogonal_selection
    getitem = zarr.Array.__getitem__

    def spy_get(self, selection, *args, **kwargs):
        values = get(self, selection, *args, **kwargs)
        read.append(np.size(values))
        return values

    def spy_getitem(self, selection):
        values = getitem(self, selection)
        read.append(np.size(values))
        return values

    monkeypatch.setattr(zarr.Array, "get_orthogonal_selection", spy_get)
    monkeypatch.setattr(zarr.Array, "__getitem__", spy_getitem)
    row = ds["kappa_final"].isel(target_3=2).values
    np.testing.assert_array_equal(row, memory["kappa_final"].isel(target_3=2).values)
    assert sum(read) == 4

    # Results of the other kinds: results.nc in a run directory.
    other = tmp_path / "other"
    other.mkdir()
    write_netcdf(xr.Dataset({"x": ("t", [1.0, 2.0])}), other / "results.nc")
    np.testing.assert_array_equal(fsjax.open(other)["x"].values, [1.0, 2.0])
    with pytest.raises(fsjax.FsjaxError, match=r"holds no results\.zarr or results\.nc"):
        fsjax.open(tmp_path)


def _grid_store(root, process, key="config"):
    grid = xr.Dataset(coords={"x": [0.0, 1.0, 2.0], "y": [10.0, 20.0]}, attrs={"note": "test"})
    names = ["a-000000", "b-000000"]
    return GridStore(
        root, key, resume=True, process=process, grid=grid, dims=("x", "y"), names=names, chunk=4
    )


def _chunk(index):
    index = np.asarray(index)
    return {"index": index, "v": index * 1.5, "n": index + 100}


def test_grid_store_two_writers(tmp_path):
    """Processes' stores on one root: they may lay it out at once (a later rename loses and
    its staging copy goes; one of another config is refused), each writes its own chunk, and
    the grid view sees both; points of unfinished chunks read as fill values."""
    root = tmp_path / "results.zarr"
    first, second = _grid_store(root, 0), _grid_store(root, 1)
    other = _grid_store(root, 2, key="another config")  # started at once, with another config
    first.write("a-000000", _chunk([5, 0, 3, 1]), {"steps": 1})
    second._create(_chunk([2, 4]))  # laid out at the same time as the first
    assert not (tmp_path / "results.zarr.1.tmp").exists()
    ds, done = open_grid(root)
    np.testing.assert_array_equal(ds["n"].values, [[100, 101], [-1, 103], [-1, 105]])
    assert np.isnan(ds["v"].values[1, 0]) and done == [{"steps": 1}]
    second.write("b-000000", _chunk([2, 4]), {"steps": 2})
    assert first.has("b-000000") and second.read("a-000000")[1] == {"steps": 1}
    results, _ = first.read("b-000000")
    np.testing.assert_array_equal(results["v"], [3.0, 6.0])
    ds, done = open_grid(root)
    np.testing.assert_array_equal(ds["v"].values, 1.5 * np.arange(6).reshape(3, 2))
    assert ds.attrs == {"note": "test"} and len(done) == 2
    xr.testing.assert_identical(ds.isel(x=[2, 0], y=1), ds.load().isel(x=[2, 0], y=1))
    with pytest.raises(fsjax.FsjaxError, match="different sweep config"):
        other._create(_chunk([0]))


@pytest.mark.slow
def test_memory_stays_flat_in_the_number_of_points(tmp_path, monkeypatch):
    """While 56 of 64 chunks are written, traced memory grows by less than 8 chunks' results
    (holding them all would take 56), and the returned dataset reads the store lazily."""
    cfg = _failing(64, 64)
    fsjax.run(_failing(4, 4))  # compile first: the tracing caches are not the engine's memory
    sizes, traced = [], {}
    write = GridStore.write

    def measured(self, name, results, attrs):
        write(self, name, results, attrs)
        sizes.append(sum(np.asarray(v).nbytes for v in results.values()))
        if len(sizes) in (8, 64):
            gc.collect()
            traced[len(sizes)] = tracemalloc.get_traced_memory()[0]

    monkeypatch.setattr(GridStore, "write", measured)
    tracemalloc.start()
    try:
        ds = fsjax.run(cfg, workdir=tmp_path)
    finally:
        tracemalloc.stop()
    assert len(sizes) == 64
    assert traced[64] - traced[8] < 8 * max(sizes)
    assert not ds["kappa_final"]._in_memory
    assert (ds["status"] == 1).all()


def test_huge_axis_is_a_config_error(tmp_path, capsys):
    """Counted, not allocated: an axis of 1e12 values and a grid of 1e10 points."""
    cfg = copy.deepcopy(BASE)
    cfg["sweep"]["axes"] = {"init.a": {"linspace": [0, 1, 1_000_000_000_000]}}
    with pytest.raises(fsjax.ConfigError, match=rf"init\.a.*1000000000000.*{MAX_POINTS}"):
        fsjax.load_config(cfg)
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1000000000000" in err
    cfg["sweep"]["axes"] = {
        "target[3]": {"linspace": [-0.3, 0.3, 100_000]},
        "init.a": {"linspace": [0.1, 1, 100_000]},
    }
    match = rf"10000000000 points, 100000 \(target\[3\]\) x 100000 \(init\.a\).*{MAX_POINTS}"
    with pytest.raises(fsjax.ConfigError, match=match):
        fsjax.load_config(cfg)


def test_all_failed_sweep_finishes(tmp_path, capsys):
    """Every point reaches max_steps: the run still exits 0 with its results, prints the status
    counts and skips the figure it cannot draw with one line."""
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(_failing(4, 4), sort_keys=False))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "status of 16 points: 16 max_steps reached" in printed
    skipped = [line for line in printed.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and re.match(r"fsjax: figure \w+ skipped: \w+: ", skipped[0])
    assert not (out / "dichotomy.png").exists()
    ds = fsjax.open(out)
    assert (ds["status"] == 1).all() and np.isnan(ds["kappa_final"]).all()
    assert (out / "results.nc").exists()
