"""`kind: sensitivity`: automatic derivatives of the onset and depth of unlearning against
central finite differences at random parameter points; bad input."""

import numpy as np
import pytest

import fsjax
from fsjax._analysis.sensitivity import (
    _labels,
    finite_differences,
    gradients,
    parameters_from,
    quantities,
)


def config(c1, c3, a0, eps, **extra):
    return fsjax.load_config(
        {
            "kind": "sensitivity",
            "model": {
                "activation": "tanh",
                "hermite_order": 5,
                "target": [0.0, c1, 0.0, c3],
                "init": {"a": a0, "s": 0.01},
            },
            "dynamics": {"epsilon": eps},
            "solver": {
                "method": "tsit5",
                "t_first": 1.0,
                "t_final": 400.0,
                "n_save": 60,
                "rtol": 1e-11,
                "atol": 1e-12,
            },
            **extra,
        }
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_automatic_derivatives_match_central_differences(seed):
    rng = np.random.default_rng(seed)
    cfg = config(
        c1=rng.uniform(0.7, 1.3),
        c3=rng.uniform(0.1, 0.5),
        a0=rng.uniform(0.3, 0.7),
        eps=float(10 ** rng.uniform(-1.5, -1.0)),
    )
    params, setup = parameters_from(cfg)
    labels = _labels(params, fsjax.SensitivitySection().params)
    values = np.asarray(quantities(params, setup))
    assert np.all(np.isfinite(values))
    grads = gradients(params, setup)
    auto = np.stack(
        [
            np.asarray(getattr(grads, f)[..., i] if i is not None else getattr(grads, f))
            for _, f, i in labels
        ],
        axis=-1,
    )
    # Central differences with h = 1e-3 |p| carry O(1e-6) relative truncation error and solver
    # noise (rtol 1e-11) over 2h; the weakest dependence, t_onset ~ log(1/s0), sets the limit
    # (docs/fastslow.md measures <= 3.4e-5 on random points); the bar is 1e-4. Exact
    # zeros (even orders, by the odd symmetry of tanh) are compared against the row's scale.
    fd = finite_differences(params, setup, labels, 1e-3)
    scale = np.maximum(np.abs(fd), 1e-6 * np.max(np.abs(fd), axis=1, keepdims=True))
    assert np.max(np.abs(auto - fd) / scale) < 1e-4


def test_run_writes_values_gradients_and_differences():
    cfg = config(
        1.0,
        0.3,
        0.5,
        0.05,
        sensitivity={"params": ["init.a", "epsilon"], "quantities": ["t_onset"], "fd": True},
    )
    ds = fsjax.run(cfg)
    assert list(ds["param"].values) == ["init.a", "epsilon"]
    assert set(ds.data_vars) == {"t_onset", "grad_t_onset", "fd_t_onset"}
    np.testing.assert_allclose(ds["grad_t_onset"], ds["fd_t_onset"], rtol=1e-4)


def test_no_peak_gives_nan_onset_and_nan_gradient():
    # c_3 < 0 (mu_3 c_3 > 0): a finite equilibrium, reached without overshoot from a0 = 3.
    cfg = config(1.0, -0.3, 3.0, 0.05, sensitivity={"params": ["epsilon"]})
    ds = fsjax.run(cfg)
    assert np.isnan(ds["t_onset"]) and np.isnan(ds["grad_t_onset"]).all()
    assert np.isfinite(ds["grad_kappa_final"]).all()


def test_unknown_parameter_is_a_config_error():
    with pytest.raises(fsjax.ConfigError, match=r"sensitivity.params.0: got 'beta'.*'epsilon'"):
        config(1.0, 0.3, 0.5, 0.05, sensitivity={"params": ["beta"]})
