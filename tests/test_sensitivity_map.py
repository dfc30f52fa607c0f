"""`kind: sensitivity_map`: gradients on the plane against central differences; config errors."""

import numpy as np
import pytest

import fsjax
from fsjax._analysis.sensitivity_map import axis_field, point
from fsjax._kinds.sensitivity_map import sensitivity_map_figures
from fsjax._point import parameters_from

CONFIG = {
    "kind": "sensitivity_map",
    "model": {"activation": "tanh", "hermite_order": 6, "target": [0, 1, 0, 0.3]},
    "dynamics": {"slow": "second_layer", "epsilon": 0.05},
    "solver": {"t_first": 1.0, "t_final": 400.0, "n_save": 20, "rtol": 1e-10, "atol": 1e-12},
    "map": {"axes": {"target[3]": [0.3], "init.a": [0.5]}, "quantities": ["t_onset"]},
}


@pytest.mark.slow
def test_map_gradient_matches_central_differences():
    config = fsjax.load_config(CONFIG)
    params, setup = parameters_from(config)
    fields = tuple(axis_field(p, 4) for p in config.map.axes)
    x = np.array([0.3, 0.5])
    values, grads = point(params, setup, fields, x)
    t_on = float(values[0])
    assert 1.0 < t_on < 400.0  # a peak inside the window
    for j in range(2):
        h = 1e-5
        # The values output of the same compiled function: no second compile.
        q = [
            float(point(params, setup, fields, x + sign * h * np.eye(2)[j])[0][0])
            for sign in (1, -1)
        ]
        fd = (q[0] - q[1]) / (2 * h)
        # At rtol 1e-10 the global error moves t_on (~1e2) by up to ~1e-6, i.e. the quotient
        # by ~1e-6 / 2h = 0.05: abs = 0.1; rel = 1e-3 covers the O(h^2) truncation.
        assert float(grads[0, j]) == pytest.approx(fd, rel=1e-3, abs=0.1)


def test_map_result_and_figure(tmp_path):
    ds = fsjax.run(CONFIG)
    assert ds["t_onset"].dims == ("target_3", "init_a")
    assert np.isfinite(ds["grad_t_onset_init_a"]).all()
    assert sensitivity_map_figures(ds, tmp_path)[0].stat().st_size > 0


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"target[3]": [0.1]}, "exactly two axes"),
        ({"target[3]": [0.1], "dynamics.epsilon": [0.1]}, "target[k] or init.a"),
        ({"target[3]": [0.1], "init.a[0]": [0.5]}, "target[k] or init.a"),
        ({"target[7]": [0.1], "init.a": [0.5]}, "k must be 0..3"),
    ],
)
def test_map_config_errors_name_the_axis(axes, message):
    with pytest.raises(fsjax.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fsjax.load_config(CONFIG | {"map": {"axes": axes}})
