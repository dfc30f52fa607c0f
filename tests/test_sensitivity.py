"""`kind: sensitivity`: automatic derivatives of the onset, exit and depth of unlearning against
central finite differences at random parameter points and, for a flow that stands for a
network, with respect to the network's lr, batch and dim; bad input."""

import numpy as np
import pytest

import fsjax
from fsjax._analysis.sensitivity import (
    QUANTITIES,
    _component,
    _labels,
    finite_differences,
    gradients,
    quantities,
)
from fsjax._point import parameters_from


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


@pytest.mark.slow
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
    labels = _labels(params, fsjax.config.SensitivitySection().params)
    values = np.asarray(quantities(params, setup))
    # t_onset, kappa_final and unlearning exist at every point; t_exit only where the
    # alignment has fallen below the exit level by t_final (NaN otherwise, and so are its
    # derivatives and differences, which are then not compared).
    assert np.all(np.isfinite(values[:3]))
    exits = np.isfinite(values)
    grads = gradients(params, setup)
    auto = np.stack(
        [
            np.asarray(getattr(grads, f)[..., i] if i is not None else getattr(grads, f))
            for _, f, i in labels
        ],
        axis=-1,
    )
    # The error a central difference carries, entry by entry: truncation, O(h^2) relative to
    # the derivative with h = 1e-3 |p| (about 1e-6; the bar of 1e-4 relative leaves
    # room for the third derivatives), plus the solver's error delta in q carried over 2h,
    # delta / h. delta is bounded by the local error allowed per step, rtol |q| (atol is
    # smaller still), summed over every step without cancellation: n_steps rtol |q|. Entries
    # whose derivative is an exact zero (even orders, by the odd symmetry of tanh) are thus
    # held to the noise of the difference, not to a fraction of their own rounding.
    fd = finite_differences(params, setup, labels, 1e-3)
    steps = np.array([1e-3 * (abs(float(_value(params, f, i))) or 1.0) for _, f, i in labels])
    n_steps = int(_solve(params, setup).num_steps)
    noise = n_steps * setup.settings.rtol * np.abs(values)[:, None] / steps[None, :]
    auto, fd, noise = auto[exits], fd[exits], noise[exits]
    assert np.all(np.abs(auto - fd) <= 1e-4 * np.abs(fd) + noise), np.max(
        np.abs(auto - fd) / (1e-4 * np.abs(fd) + noise)
    )


def _value(params, field, index):
    x = getattr(params, field)
    return x if index is None else x[index]


def _solve(params, setup):
    """The forward solve behind `quantities`, for its step count."""
    point = setup.point
    rate_a, rate_w = fsjax.layer_rates(point.slow, params.epsilon)
    model = fsjax.MeanField(params.target, params.mu, point.noise, rate_a, rate_w)
    a0 = np.broadcast_to(params.init_a, (point.particles,))
    s0 = np.broadcast_to(params.init_s, (point.particles,))
    return setup.settings.solve(model, a0, s0)


@pytest.mark.slow
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


NETWORK = {"width": 128, "dim": 64, "batch": 2048, "lr": 0.05, "dtype": "float32"}


@pytest.mark.slow
def test_exit_derivatives_of_the_floored_flow_match_central_differences():
    """eps = 0.01, the flow standing for an n = 128, d = 64 float32 network: the floor moves
    the exit (the plain flow's is later, `boundary_floor: false`), and `t_exit`'s derivatives
    with respect to epsilon, init.a and the network's lr, batch and dim (forward mode) match
    central differences of the flow."""
    names = ["epsilon", "init.a", "network.lr", "network.batch", "network.dim"]
    sensitivity = {"params": names, "quantities": ["t_exit"]}
    cfg = config(1.0, 0.3, 0.5, 0.01, network=NETWORK, sensitivity=sensitivity)
    cfg = fsjax.load_config(
        fsjax.config_dict(cfg) | {"solver": fsjax.config_dict(cfg)["solver"] | {"t_final": 800}}
    )
    params, setup = parameters_from(cfg)
    labels = _labels(params, names)
    values = np.asarray(quantities(params, setup))
    k = QUANTITIES.index("t_exit")
    grads = gradients(params, setup)
    auto = np.array([float(_component(grads, f, i)[k]) for _, f, i in labels])
    fd = finite_differences(params, setup, labels, 1e-4)[k]
    # The error of the central difference: truncation O(h^2) relative (h = 1e-4 |p|: 1e-8),
    # plus the solver error of t_exit (a few rtol relative over the solve, rtol = 1e-11, i.e.
    # ~1e-8 of t_exit ~ 400) over 2h, ~1e-8 |t_exit| / (1e-4 |p|) absolute: the bar is the
    # issue's 1e-5 relative plus that noise.
    steps = np.array([1e-4 * abs(float(_component(params, f, i))) for _, f, i in labels])
    noise = 1e-8 * abs(values[k]) / steps
    # (Measured: all five within 3e-8 relative; d t_exit / d dim, 7e-4, is the least resolved.)
    assert np.all(np.abs(auto - fd) <= 1e-5 * np.abs(fd) + noise), (auto, fd)
    plain = fsjax.load_config(fsjax.config_dict(cfg) | {"boundary_floor": False})
    p_params, p_setup = parameters_from(plain)
    assert float(quantities(p_params, p_setup)[k]) > values[k] + 10


def test_network_parameter_without_a_network_is_one_line_naming_it():
    with pytest.raises(fsjax.ConfigError) as err:
        config(1.0, 0.3, 0.5, 0.05, sensitivity={"params": ["epsilon", "network.batch"]})
    message = str(err.value)
    assert "\n" not in message
    assert "network.batch" in message and "add a network: section" in message
