"""Arithmetic of the network (`network.dtype`, `network.matmul_precision`): the emulated
rounding of reduced-precision products, a network step in each arithmetic, the boundary
floor's product seed against its formula and its derivation, and bad input."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import fsjax
from fsjax._model.corrections import roundoff_rate, row_rounding_variance
from fsjax._model.network import (
    PRODUCT_BITS,
    backend_products,
    init_network,
    init_teacher,
    product_format,
    round_mantissa,
    rounded_matmul,
)
from fsjax._train.sgd import Trainer, optimizer


def _tf32_reference(x: np.ndarray) -> np.ndarray:
    """Round to 10 explicit mantissa bits, ties to even, by numpy: frexp's mantissa in [0.5, 1)
    scaled by 2^11 and rounded by np.round (round half to even)."""
    m, e = np.frexp(x.astype(np.float64))
    return np.ldexp(np.round(m * 2.0**11) / 2.0**11, e).astype(np.float32)


def _values(rng, size=20_000):
    """float32 values over many binades, with exact ties of both formats mixed in."""
    x = rng.normal(size=size) * np.exp(rng.normal(size=size) * 8)
    ties = 1.0 + np.arange(1, 9) * 2.0**-11, 1.0 + np.arange(1, 9) * 2.0**-8
    return np.concatenate([x, *ties, -np.concatenate(ties)]).astype(np.float32)


def test_emulated_rounding_matches_numpy_and_ml_dtypes():
    x = _values(np.random.default_rng(0))
    tf32 = np.asarray(round_mantissa(jnp.asarray(x), PRODUCT_BITS["tensorfloat32"]))
    np.testing.assert_array_equal(tf32, _tf32_reference(x))
    bf16 = np.asarray(round_mantissa(jnp.asarray(x), PRODUCT_BITS["bfloat16"]))
    np.testing.assert_array_equal(bf16, x.astype(ml_dtypes.bfloat16).astype(np.float32))
    assert float(round_mantissa(jnp.float32(1 + 2**-11), 10)) == 1.0  # tie to even: down
    assert float(round_mantissa(jnp.float32(1 + 3 * 2**-11), 10)) == 1 + 2**-9  # and up


@pytest.mark.parametrize("products", ["tensorfloat32", "bfloat16"])
def test_rounded_products_forward_and_backward(products):
    """Forward x @ y and the backward products g @ y^T, x^T @ g equal float64 products of the
    operands rounded by numpy/ml_dtypes, to float32 accumulation: each sum of k terms is off
    by at most k u_32 sum |terms| (the bound used, with k the contracted length)."""
    rng = np.random.default_rng(1)
    x, y, g = (rng.normal(size=s).astype(np.float32) for s in ((6, 5), (5, 4), (6, 4)))
    if products == "bfloat16":
        rnd = lambda v: v.astype(ml_dtypes.bfloat16).astype(np.float64)  # noqa: E731
    else:
        rnd = lambda v: _tf32_reference(v).astype(np.float64)  # noqa: E731
    out, vjp = jax.vjp(lambda x, y: rounded_matmul(x, y, products), jnp.asarray(x), jnp.asarray(y))
    gx, gy = vjp(jnp.asarray(g))
    u32 = 2.0**-24
    for got, (p, q) in [(out, (x, y)), (gx, (g, y.T)), (gy, (x.T, g))]:
        want = rnd(p) @ rnd(q)
        bound = p.shape[-1] * u32 * (np.abs(rnd(p)) @ np.abs(rnd(q)))
        assert np.all(np.abs(np.asarray(got, np.float64) - want) <= bound)
        # and not the unrounded product: rounding is resolved at these sizes
        assert np.max(np.abs(np.asarray(got, np.float64) - p.astype(np.float64) @ q)) > 1e-4


@pytest.fixture(scope="module")
def steps():
    """One SGD step of the same tiny network (n = 8, d = 6, B = 32) in each arithmetic."""
    kt, kn, ks = jax.random.split(jax.random.key(5), 3)
    out = {}
    for dtype, products in [
        ("float64", "float64"),
        ("float32", "float32"),
        ("float32", "tensorfloat32"),
        ("float32", "bfloat16"),
        ("bfloat16", "bfloat16"),
    ]:
        dt = jnp.dtype(dtype)
        teacher = init_teacher(kt, 6, [0.0, 1.0, 0.0, 0.3], 0.0, dt)
        net = init_network(kn, 8, 6, 0.5, "erf", dt, products)
        trainer = Trainer(teacher, optimizer(0.05, 1.0, 1.0, 8), batch=32)
        state = eqx.filter_jit(trainer.step)(trainer.init(net, ks))
        out[dtype, products] = (net, state.net)
    return out


def test_a_network_step_in_each_arithmetic(steps):
    """TF32 and bfloat16 products against float32's step of the same batch: off by about
    u_p times the update (50 u_p covers the sums over B and d of rounded terms) and far more
    than float32's rounding; float64 and bfloat16 networks step in their dtype and keep unit
    rows to their precision."""
    net0, ref = steps["float32", "float32"]
    update = float(jnp.max(jnp.abs(ref.w - net0.w)))
    assert 1e-3 < update < 1e-1
    for products, u in [("tensorfloat32", 2.0**-11), ("bfloat16", 2.0**-8)]:
        new = steps["float32", products][1]
        assert new.products == products
        err = float(jnp.max(jnp.abs(new.w - ref.w)))
        assert 1e3 * 2.0**-24 * update < err < 50 * u * update
    for dtype, u in [("float64", 2.0**-53), ("bfloat16", 2.0**-8)]:
        old, new = steps[dtype, dtype]
        assert new.w.dtype == jnp.dtype(dtype) and new.a.dtype == jnp.dtype(dtype)
        norms = jnp.linalg.norm(new.w.astype(jnp.float64), axis=-1)
        assert float(jnp.max(jnp.abs(norms - 1))) < 8 * u
        moved = float(jnp.max(jnp.abs((new.w - old.w).astype(jnp.float64))))
        assert 1e-3 < moved < 1e-1


def test_product_seed_derivation_against_simulated_rounding():
    """The product seed's core (corrections module docstring): values X spread over binades as
    Benford's law says, held by 64 rows with relative offsets Delta_j ~ N(0, sd^2), rounded to
    bfloat16 and TF32: the row-to-row variance of the rounding errors, over E[X^2], against
    `row_rounding_variance`, from offsets far below the spacing (where it is
    (4u/3) sd/sqrt(pi)) to beyond it (ulp^2/12). Monte Carlo over 4000 values: about 5%
    standard error at the smallest offsets (1/sqrt(#boundaries crossed)); 15% is 3 of them."""
    rng = np.random.default_rng(2)
    x = np.exp(rng.uniform(0, 6 * math.log(2), size=4000))[:, None]  # log-uniform: Benford
    for sd in (1e-4, 1e-3):
        rows = (x * (1 + sd * rng.normal(size=64))[None, :]).astype(np.float32)
        for products, u in [("bfloat16", 2.0**-8), ("tensorfloat32", 2.0**-11)]:
            rounded = np.asarray(round_mantissa(jnp.asarray(rows), PRODUCT_BITS[products]))
            err = rounded.astype(np.float64) - rows.astype(np.float64)
            measured = np.mean(np.var(err, axis=1, ddof=1)) / np.mean(x**2)
            assert measured == pytest.approx(float(row_rounding_variance(u, sd)), rel=0.15)
    # the small-offset limit
    want = 4 * 2.0**-8 / 3 * 1e-6 / math.sqrt(math.pi)
    assert float(row_rounding_variance(2.0**-8, 1e-6)) == pytest.approx(want, rel=1e-3)


def _trajectory(dtype="float32", precision="default", **extra):
    network = dict(width=64, dim=32, batch=1024, lr=0.05, dtype=dtype, matmul_precision=precision)
    return fsjax.load_config(
        {
            "kind": "trajectory",
            "model": {"activation": "erf", "target": [0, 1, 0, 0.3], "init": {"a": 0.5}},
            "dynamics": {"slow": "second_layer", "epsilon": 1e-3},
            "network": network,
            **extra,
        }
    )


def test_floor_seed_of_each_arithmetic_is_its_formula():
    """float32 products add nothing (the float32 floor as before); TF32 and bfloat16 products
    add lam_w^2 P eta (d/B) a^2 C(u_p, sd(a)/|a|) with the same spread; bfloat16 weights
    round the rows at u = 2^-8: 0.361 u^2 / eta; the CPU's default is float32."""
    models = {
        mode: fsjax.build_model(_trajectory(*mode))
        for mode in [
            ("float32", "default"),
            ("float32", "tensorfloat32"),
            ("float32", "bfloat16"),
            ("bfloat16", "default"),
        ]
    }
    f32 = models["float32", "default"]
    assert float(f32.product_roundoff) == 0.0
    ratio = 0.05 * 32 / 1024
    var_a = float(f32.spread_noise) / ratio
    a, s, slope = jnp.asarray([0.8]), jnp.asarray([0.999]), jnp.asarray([1.0])
    for (dtype, precision), u in [
        (("float32", "tensorfloat32"), 2.0**-11),
        (("float32", "bfloat16"), 2.0**-8),
        (("bfloat16", "default"), 2.0**-8),
    ]:
        model = models[dtype, precision]
        assert float(model.product_roundoff) == u
        assert float(model.spread_noise) == float(f32.spread_noise)
        # the seed enters the floor's rate as lam_w^2 P eta (d/B) a^2 C
        want = ratio * 0.8**2 * float(row_rounding_variance(u, math.sqrt(var_a) / 0.8))
        want = want * model.boundary_power(a, s)
        extra = model.floor_rate(a, s, slope) - f32.floor_rate(a, s, slope)
        if dtype == "bfloat16":
            extra = extra - (model.roundoff - f32.roundoff)
        np.testing.assert_allclose(extra, want, rtol=1e-9)
    assert float(models["bfloat16", "default"].roundoff) == pytest.approx(
        0.3607 * 2.0**-16 / 0.05, rel=1e-3
    )
    assert float(roundoff_rate(0.05, "bfloat16")) == float(models["bfloat16", "default"].roundoff)


def test_default_precision_follows_the_backend():
    assert backend_products("cpu") == "float32"
    assert backend_products("gpu", "8.0") == "tensorfloat32"
    assert backend_products("gpu", "7.0") == "float32"
    assert backend_products("tpu") == "bfloat16"
    assert product_format("float32", "default") == backend_products()
    assert product_format("float64", "default") == "float64"
    assert product_format("bfloat16", "float32") == "bfloat16"


@pytest.mark.parametrize(
    "platform, capability, message",
    [
        ("tpu", None, r"^network.matmul_precision: a TPU has no TF32 unit"),
        ("gpu", "7.0", r"^network.matmul_precision: TF32 needs .* \(this one: 7.0\)"),
    ],
)
def test_a_mode_the_backend_cannot_run_is_refused(platform, capability, message):
    with pytest.raises(fsjax.FsjaxError, match=message):
        product_format("float32", "tensorfloat32", platform, capability)


@pytest.mark.parametrize(
    "network, message",
    [
        (dict(dtype="float16"), r"^network.dtype: float16 is refused: .*choose bfloat16"),
        (
            dict(dtype="float64", matmul_precision="bfloat16"),
            r"matmul_precision: a float64 network multiplies in float64",
        ),
        (dict(matmul_precision="tf32"), r"^network.matmul_precision: got 'tf32'"),
    ],
)
def test_bad_arithmetic_names_the_field(network, message):
    config = {
        "kind": "network",
        "model": {"activation": "erf", "target": [0, 1], "init": {"a": 0.5}},
        "network": dict(width=4, dim=4, batch=8, lr=0.05, steps=2, **network),
    }
    with pytest.raises(fsjax.ConfigError, match=message):
        fsjax.load_config(config)
