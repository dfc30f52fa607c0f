"""kind: sweep with a network: section: ensembles of networks against the reduced flow; the
results store, resume after a kill, four host devices, two processes."""

from __future__ import annotations

import copy
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr
import yaml
from subprocesses import run_in_two_processes, run_on_host_devices

import fsjax
from fsjax import _sizes
from fsjax._cli import main
from fsjax._errors import ConfigError, FsjaxError
from fsjax._kinds import load_config
from fsjax._kinds.sweep import run_sweep, sweep_kind_figures
from fsjax._sweep.store import GridStore
from fsjax._train import sgd

MODEL = {"activation": "tanh", "target": [0, 1, 0, 0.3], "init": {"a": 0.5}}
NETWORK = {"width": 32, "dim": 16, "batch": 256, "lr": 0.05, "steps": 300, "record": 15}
# Tiny networks for the tests of running (store, kill, devices, processes): compile-bound.
TINY = {"width": 8, "dim": 4, "batch": 32, "lr": 0.05, "steps": 60, "record": 8}


def _config(axes, network=NETWORK, **sweep):
    return {
        "kind": "sweep",
        "model": MODEL,
        "dynamics": {"slow": "second_layer", "epsilon": 0.05},
        "network": network,
        "solver": {"method": "tsit5"},  # not stiff at these sizes; compiles fast
        "sweep": {"axes": axes, **sweep},
    }


def _run(cfg, **kwargs):
    return run_sweep(load_config(cfg), **kwargs)


@pytest.fixture(scope="module")
def two_seeds():
    return _run(_config({"init.a": [0.3, 0.5]}, seeds=2, chunk=3))


@pytest.mark.slow
def test_a_point_equals_the_network_run_alone_with_compare(two_seeds):
    """Point init.a = 0.5 with seed j against `kind: compare` with network.seed = j.

    The members follow the arithmetic of the network trained alone (same keys, same update in
    float32); only a batched matmul may reduce in another order. That rounds each gradient
    entry, a sum over B = 256 samples, differently by about sqrt(B) u = 16 * 6e-8 = 1e-6
    relative; it reaches the rows through a step eta lam_w n |grad| < 0.1 |w| here, so about
    1e-7 per step. The training does not amplify it (a 1e-6 perturbation of the rows shrinks
    to 4e-9 in the mean alignment over these 300 steps), so 300 steps add up to at most
    3e-5 coherently and sqrt(300) * 1e-7 = 2e-6 as a random walk: order parameters agree to
    1e-5 relative. (Measured on CPU: to the last float64 bit of the means.) The reduced flow
    starts from the network's step-0 means, which involve no reordered float32 sum, and is
    solved by the same solver at the same times: it agrees to float64 rounding, 1e-12."""
    for seed in (0, 1):
        alone = fsjax.run(
            {
                "kind": "compare",
                "model": MODEL,
                "dynamics": {"slow": "second_layer", "epsilon": 0.05},
                "network": NETWORK | {"seed": seed, "mc_samples": 0},
                "solver": {"method": "tsit5"},
            }
        )
        point = two_seeds.sel(init_a=0.5, seed=seed)
        np.testing.assert_allclose(point["t"].values, alone["time"].values, rtol=1e-15)
        for name in ("s_mean_net", "a_mean_net", "risk_net"):
            np.testing.assert_allclose(point[name].values, alone[name].values, rtol=1e-5)
        for name in ("s_mean_mf", "a_mean_mf", "risk_mf"):
            np.testing.assert_allclose(point[name].values, alone[name].values, rtol=1e-12)
        for name in ("max_abs_dev_s", "max_abs_dev_a"):
            # A deviation of two values that each carry 1e-5 relative error (both below 1).
            assert abs(float(point[name]) - float(alone[name])) < 2e-5
        assert int(point["status"]) == 0


@pytest.mark.slow
def test_seeds_differ_and_outputs_have_their_dims(two_seeds):
    ds = two_seeds
    assert ds["s_mean_net"].dims == ("init_a", "seed", "time")
    assert ds["max_abs_dev_s"].dims == ("init_a", "seed")
    assert list(ds["seed"].values) == [0, 1]
    s0 = ds["s_mean_net"].isel(time=0).values
    assert np.all(s0[:, 0] != s0[:, 1])  # other teacher and rows: another initial alignment
    # One seed shares its teacher and rows across points: step 0 is the same for both a0.
    assert np.all(s0[0] == s0[1])
    for name in ("kappa_max", "t_onset", "kappa_final", "unlearning", "unlearning_mf"):
        assert name in ds
    np.testing.assert_allclose(ds["unlearning"], ds["kappa_max"] - ds["kappa_final"])


@pytest.mark.slow
def test_a_diverging_lr_is_recorded_not_raised():
    ds = _run(_config({"network.lr": [0.05, 300.0]}, NETWORK | {"steps": 100, "record": 10}))
    ok, bad = ds.isel(network_lr=0, seed=0), ds.isel(network_lr=1, seed=0)
    assert int(ok["status"]) == 0 and int(ok["diverged_at"]) == -1
    assert int(bad["status"]) == fsjax.RESULTS.network_diverged and int(bad["diverged_at"]) > 0
    after = bad["step"].values >= int(bad["diverged_at"])
    assert np.all(np.isnan(bad["s_mean_net"].values[after]))
    assert np.all(np.isfinite(bad["s_mean_net"].values[~after]))
    for name in ("max_abs_dev_s", "unlearning", "kappa_max"):
        assert np.isnan(float(bad[name])) and np.isfinite(float(ok[name]))
    # Each point has its own time: t = step * lr.
    np.testing.assert_allclose(bad["t"].values, 300.0 * bad["step"].values)


def test_an_ensemble_chunk_too_large_for_memory_is_refused(monkeypatch):
    per_network = _sizes.network_bytes(32, 16, 256, 4)
    monkeypatch.setattr(sgd, "available_memory", lambda: (5 * per_network, "test memory"))
    with pytest.raises(FsjaxError) as err:
        _run(_config({"init.a": [0.3, 0.5, 0.7, 0.9]}, seeds=2, chunk=8))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("sweep.chunk: an ensemble chunk of 8 networks")
    assert "use sweep.chunk: 5 or less" in message
    sgd.check_memory(5, 32, 16, 256, "float32")  # the advice fits


@pytest.mark.slow
def test_resume_after_an_interrupted_run_is_identical(tmp_path, monkeypatch):
    """Chunks of two widths go into results.zarr; `fsjax.open` shows an interrupted run
    (unfinished networks have status -1 and NaN records) and the resumed run equals an
    uninterrupted one held in memory."""
    cfg = _config({"init.a": [0.3, 0.5], "network.width": [8, 16]}, seeds=2, chunk=3)
    cfg["network"] = NETWORK | {"steps": 60, "record": 8}
    whole = _run(cfg)
    write = GridStore.write
    calls = []

    def interrupted(self, name, results, attrs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(name)
        write(self, name, results, attrs)

    monkeypatch.setattr(GridStore, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, workdir=tmp_path)
    monkeypatch.setattr(GridStore, "write", write)
    assert calls == ["g000-000000", "g000-000001"]  # width 8: 4 networks in chunks of 3
    partial = fsjax.open(tmp_path)
    assert partial["s_mean_net"].dims == ("init_a", "network_width", "seed", "time")
    assert not partial["s_mean_net"]._in_memory
    unfinished = partial["status"] == -1
    assert (unfinished == (partial["network_width"] == 16)).all()
    assert np.isnan(partial["s_mean_net"].where(unfinished)).all()
    finished = partial.sel(network_width=8)
    xr.testing.assert_identical(
        finished.load().drop_attrs(), whole.sel(network_width=8).drop_attrs()
    )
    resumed = _run(cfg, workdir=tmp_path, resume=True)
    xr.testing.assert_identical(resumed, whole)
    xr.testing.assert_identical(fsjax.open(tmp_path / "results.zarr"), whole)
    # The width axis compiles one ensemble per width; each width's points match a sweep at
    # that width alone (same seeds, same keys).
    alone = copy.deepcopy(cfg)
    alone["network"]["width"] = 8
    alone["sweep"]["axes"] = {"init.a": [0.3, 0.5]}
    narrow = _run(alone)
    for name in ("s_mean_net", "a_mean_net", "s_mean_mf"):
        np.testing.assert_array_equal(whole[name].sel(network_width=8).values, narrow[name].values)


def _fsjax(*args):
    return [
        sys.executable,
        "-c",
        "import sys; from fsjax._cli import main; sys.exit(main())",
        *args,
    ]


@pytest.mark.slow
def test_cli_kill_and_resume(tmp_path):
    """SIGKILL a CLI network sweep after its first chunk; `--resume` finishes it, and the store
    and results.nc equal an uninterrupted run."""
    cfg = _config({"init.a": [0.3, 0.5, 0.7]}, TINY | {"steps": 2000}, seeds=2, chunk=1)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = tmp_path / "out"
    proc = subprocess.Popen(_fsjax("run", str(path), "--out", str(out)))
    done = out / "results.zarr" / "done"
    deadline = time.monotonic() + 120
    while not (done / "g000-000000" / "zarr.json").exists() and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (done / "g000-000000" / "zarr.json").exists() and not (out / "results.nc").exists()
    assert len(list(done.glob("*/zarr.json"))) < 6  # killed mid-run (measured: after 1 of 6)
    assert main(["run", str(path), "--out", str(out)]) == 2  # refuses without --resume
    assert main(["run", str(path), "--out", str(out), "--resume"]) == 0
    full = _run(cfg)
    xr.testing.assert_identical(fsjax.open(out), full)
    resumed = xr.load_dataset(out / "results.nc")
    xr.testing.assert_identical(resumed.drop_attrs(), full.drop_attrs())
    assert (out / "network_seeds.png").exists()


@pytest.mark.slow
def test_four_host_devices_equal_one():
    """Ensemble chunks sharded over 4 forced host devices (chunk 5, padded to 8) give the
    single-device results.

    Bounds. A member's SGD involves only its own arrays: sharding splits the members, not a
    member's sums, so the networks can differ only if the per-device batched matmuls reduce in
    another order, which the bound derived in
    `test_a_point_equals_the_network_run_alone_with_compare` covers: 1e-5 relative in the
    order parameters, 2e-5 in deviations, integer fields exact. The reduced flows start from
    the networks' step-0 means (no SGD in them) and are the same solves in lanes of other
    widths: float64 rounding, 1e-12 relative as in that test. Measured on this CPU: the
    networks bit for bit, the flows within 1.2e-15."""
    cfg = _config({"init.a": [0.3, 0.5, 0.7], "network.lr": [0.05, 0.1]}, TINY, seeds=2, chunk=5)
    script = textwrap.dedent(
        f"""
        import jax, numpy as np
        from fsjax._kinds import load_config
        from fsjax._sweep.network import run_network_sweep
        assert len(jax.devices()) == 4
        cfg = load_config({cfg!r})
        four = run_network_sweep(cfg)
        one = run_network_sweep(cfg, devices=jax.devices()[:1])
        assert four.attrs.pop("useful_step_fraction") == 12 / 24  # 3 chunks padded to 8
        assert one.attrs.pop("useful_step_fraction") == 12 / 15
        for k in four.data_vars:
            x, y = four[k].values, one[k].values
            if x.dtype.kind == "i":
                np.testing.assert_array_equal(x, y, err_msg=k)
            elif k.endswith("_mf"):
                np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=k)
            elif k.startswith("max_abs_dev"):
                np.testing.assert_allclose(x, y, rtol=0, atol=2e-5, err_msg=k)
            else:
                np.testing.assert_allclose(x, y, rtol=1e-5, err_msg=k)
        print("ok")
        """
    )
    run_on_host_devices(script)


@pytest.mark.slow
def test_two_processes_share_one_network_sweep(tmp_path):
    """Two `jax.distributed` processes on this host split the chunks through one directory;
    process 0's dataset equals a single-process run."""
    cfg = _config({"init.a": [0.3, 0.5]}, TINY, seeds=2, chunk=1)
    both = run_in_two_processes(cfg, tmp_path)
    # Four chunks of one network; process p wrote chunks j with j mod 2 = p.
    markers = sorted((tmp_path / "results.zarr" / "done").glob("*/zarr.json"))
    assert [m.parent.name for m in markers] == [f"g000-{j:06d}" for j in range(4)]
    xr.testing.assert_identical(both, _run(cfg))


LR_AXIS = {"network.lr": [0.01, 0.02]}


@pytest.mark.parametrize(
    ("axes", "network", "extra", "message"),
    [
        (LR_AXIS, None, {}, "axis 'network.lr' needs a network: section"),
        ({"network.steps": [10, 20]}, NETWORK, {}, "axis 'network.steps' cannot be swept"),
        ({"network.width": [16.5]}, NETWORK, {}, "values must be integers >= 1"),
        ({"network.lr": [0.0]}, NETWORK, {}, "values must be > 0"),
        ({"init.s": [0.1]}, NETWORK, {}, "init.s is not used"),
        (LR_AXIS, NETWORK, {"seeds": 0}, "sweep.seeds"),
        ({"init.a": [0.5]}, None, {"seeds": 2}, "needs a network: section"),
        (LR_AXIS, NETWORK, {"particles": 2}, "a network sweep compares the means"),
        (LR_AXIS, NETWORK, {"init": {"a": {"uniform": [0.1, 1.0]}}}, "give a number"),
        (LR_AXIS, NETWORK, {"balance": "neighbours"}, "sweep.balance = 'neighbours'"),
        (LR_AXIS, NETWORK | {"mc_samples": 4096}, {}, "network.mc_samples = 4096"),
        (LR_AXIS, NETWORK, {"flow": "overlap"}, "model.flow: overlap is not compared"),
    ],
)
def test_bad_network_sweeps_are_one_line_config_errors(axes, network, extra, message):
    sweep = {k: v for k, v in extra.items() if k in ("seeds", "balance")}
    cfg = _config(axes, network, **sweep)
    if network is None:
        del cfg["network"]
    cfg["model"] = MODEL | {k: v for k, v in extra.items() if k in ("particles", "init", "flow")}
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_figures_for_one_and_two_axes(two_seeds, tmp_path):
    paths = sweep_kind_figures(two_seeds, tmp_path)
    assert [p.name for p in paths] == ["network_seeds.png"]
    small = NETWORK | {"width": 8, "steps": 40, "record": 6}
    plane = _run(_config({"init.a": [0.3, 0.6], "target[3]": [0.0, 0.3]}, small))
    paths = sweep_kind_figures(plane, tmp_path)
    assert [p.name for p in paths] == ["network_phase.png", "network_deviation.png"]
    assert all(p.stat().st_size > 0 for p in paths)
