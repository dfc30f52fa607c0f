"""Running a check in other processes: on forced host devices, or as two `jax.distributed`
processes sharing one output directory (the sweep and network-sweep tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import xarray as xr

TIMEOUT = 300  # seconds: a guard against a hang, not a speed check


def run_on_host_devices(script: str, devices: int = 4) -> None:
    """Run `script` (which prints "ok" when its checks pass) with `devices` forced host
    devices."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    res = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "ok" in res.stdout


def run_in_two_processes(config: dict, workdir, *, drop_attrs: bool = False) -> xr.Dataset:
    """`fsjax.run(config, workdir=workdir, resume=True)` in two `jax.distributed` processes on
    this host; returns process 0's dataset (without its attrs if `drop_attrs`)."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    out = os.path.join(str(workdir), "results.nc")
    script = textwrap.dedent(
        f"""
        import sys, jax
        jax.distributed.initialize("localhost:{port}", num_processes=2,
                                   process_id=int(sys.argv[1]))
        import fsjax
        ds = fsjax.run({config!r}, workdir={str(workdir)!r}, resume=True)
        if jax.process_index() == 0:
            ds = ds.drop_attrs() if {drop_attrs!r} else ds
            ds.to_netcdf({out!r}, engine="h5netcdf")
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(i)], stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err[-3000:]
    return xr.load_dataset(out)
