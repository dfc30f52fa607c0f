"""`fsjax.deviations`, the one comparison of network records with the reduced flow, against
numpy written out directly."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import fsjax


def _records(rng, shape):
    ts = np.concatenate([[0.0], np.geomspace(0.01, 20.0, shape[0] - 1)])
    return ts, *(rng.normal(size=shape) for _ in range(4))


def _numpy(ts, x, y, t_min, reduce):
    late = np.abs(x - y)[ts >= t_min]
    return reduce(late) if late.size else np.nan


@pytest.mark.parametrize("shape", [(30,), (30, 5)])
def test_deviations_are_the_largest_late_gap(shape):
    """Exact: a max of absolute differences involves no rounding beyond the subtraction,
    which both sides do alike."""
    rng = np.random.default_rng(0)
    ts, s_net, a_net, s_flow, a_flow = _records(rng, shape)
    t_min = ts[12]  # inclusive: the record at exactly t_min counts
    s_net[12] += 100.0
    dev_s, dev_a = fsjax.deviations(ts, s_net, a_net, s_flow, a_flow, t_min)
    assert float(dev_s) == _numpy(ts, s_net, s_flow, t_min, np.max) > 50
    assert float(dev_a) == _numpy(ts, a_net, a_flow, t_min, np.max)
    early = np.where(ts < t_min)[0]
    s_net[early] = 1e9  # before t_min: ignored
    assert fsjax.deviations(ts, s_net, a_net, s_flow, a_flow, t_min)[0] == dev_s


def test_nan_records_propagate_or_are_omitted():
    rng = np.random.default_rng(1)
    ts, s_net, a_net, s_flow, a_flow = _records(rng, (20,))
    s_net[15:] = np.nan  # a network diverged at record 15
    a_flow[0] = np.nan  # before t_min: never counted
    t_min = 1.0
    dev_s, dev_a = fsjax.deviations(ts, s_net, a_net, s_flow, a_flow, t_min)
    assert np.isnan(float(dev_s)) and float(dev_a) == _numpy(ts, a_net, a_flow, t_min, np.max)
    dev_s, _ = fsjax.deviations(ts, s_net, a_net, s_flow, a_flow, t_min, nan_policy="omit")
    assert float(dev_s) == _numpy(ts, s_net, s_flow, t_min, np.nanmax)
    s_net[:] = np.nan
    dev_s, _ = fsjax.deviations(ts, s_net, a_net, s_flow, a_flow, t_min, nan_policy="omit")
    assert np.isnan(float(dev_s))
    with pytest.raises(ValueError, match="propagate, omit"):
        fsjax.deviations(ts, s_net, a_net, s_flow, a_flow, t_min, nan_policy="raise")


def test_no_time_after_t_min_gives_nan():
    ts, *rec = _records(np.random.default_rng(2), (10,))
    dev = fsjax.deviations(ts, *rec, t_min=ts[-1] * 2)
    assert np.isnan(dev).all()


def test_deviations_jit_and_vmap_over_networks():
    """Each network its own times (t = step * lr) and records, as in a network sweep."""
    rng = np.random.default_rng(3)
    ts = np.outer([0.5, 1.0, 2.0], np.arange(40.0))
    rec = [rng.normal(size=ts.shape) for _ in range(4)]
    batched = jax.jit(jax.vmap(fsjax.deviations, in_axes=(0, 0, 0, 0, 0, None)))(*(ts, *rec), 3.0)
    for i in range(3):
        alone = (_numpy(ts[i], rec[0][i], rec[2][i], 3.0, np.max),)
        alone += (_numpy(ts[i], rec[1][i], rec[3][i], 3.0, np.max),)
        np.testing.assert_array_equal([batched[0][i], batched[1][i]], alone)
