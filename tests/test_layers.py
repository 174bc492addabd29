import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numvae import Dense, ReLU, Sequential, Sigmoid, Tanh
from numvae.diagnostics.gradcheck import check_layer
from numvae.nn.conv import Conv2d, ConvTranspose2d
from numvae.nn.flows import MaskedDense
from numvae.nn.layers import sigmoid

TOL = 1e-6
dims = st.integers(1, 10)
batches = st.integers(1, 8)
seeds = st.integers(0, 2**32 - 1)


def away_from_zero(x, margin=0.05):
    """Move every entry at least ``margin`` away from 0 (the ReLU kink)."""
    return np.where(x >= 0, x + margin, x - margin)


@settings(max_examples=40, deadline=None)
@given(batches, dims, dims, seeds)
def test_dense_backward_matches_finite_differences(batch, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    layer = Dense(n_in, n_out, rng=rng, dtype=np.float64)
    errors = check_layer(layer, rng.normal(size=(batch, n_in)), seed=seed)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < TOL, errors


@settings(max_examples=40, deadline=None)
@given(batches, dims, seeds, st.sampled_from([ReLU, Sigmoid, Tanh]))
def test_activation_backward_matches_finite_differences(batch, width, seed, layer_class):
    x = np.random.default_rng(seed).normal(scale=3.0, size=(batch, width))
    if layer_class is ReLU:
        x = away_from_zero(x)
    else:
        # saturated: at |x| = 13 tanh' is 2e-11, below the finite difference's own
        # rounding noise (seed 755 drew that); inside [-4, 4] both derivatives are >= 1.3e-3
        x = np.clip(x, -4.0, 4.0)
    errors = check_layer(layer_class(), x, seed=seed)
    assert errors["x"] < TOL, errors


@settings(max_examples=25, deadline=None)
@given(batches, dims, dims, seeds)
def test_sequential_backward_matches_finite_differences(batch, n_in, n_hidden, seed):
    rng = np.random.default_rng(seed)
    net = Sequential(Dense(n_in, n_hidden, rng=rng, dtype=np.float64), Tanh(),
                     Dense(n_hidden, 3, rng=rng, dtype=np.float64), Sigmoid())
    errors = check_layer(net, rng.normal(size=(batch, n_in)), seed=seed)
    assert set(errors) == {"x", "0.W", "0.b", "2.W", "2.b"}
    assert max(errors.values()) < TOL, errors


def test_dense_shapes_and_init_bound():
    layer = Dense(400, 30, rng=np.random.default_rng(0))
    assert layer.params["W"].shape == (400, 30) and layer.params["b"].shape == (30,)
    assert layer.params["W"].dtype == np.float32
    bound = 1 / np.sqrt(400)
    assert np.abs(layer.params["W"]).max() <= bound
    # uniform(-a, a) has standard deviation a / sqrt(3)
    assert abs(layer.params["W"].std() - bound / np.sqrt(3)) < 0.05 * bound


def test_dense_skips_input_gradient_when_asked():
    layer = Dense(3, 2, rng=np.random.default_rng(0), dtype=np.float64)
    _, cache = layer.forward(np.ones((4, 3)))
    assert layer.backward(np.ones((4, 2)), cache, need_input_grad=False) is None
    np.testing.assert_allclose(layer.grads["b"], [4.0, 4.0])


def test_sigmoid_is_stable_and_exact_at_extremes():
    a = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        y = sigmoid(a)
        y32 = sigmoid(a.astype(np.float32))
    assert y[0] == 0.0 and y[2] == 0.5 and y[-1] == 1.0
    np.testing.assert_allclose(y[1], np.exp(-40.0) / (1 + np.exp(-40.0)), rtol=1e-12)
    assert y32.dtype == np.float32 and np.isfinite(y32).all()


def test_sigmoid_matches_textbook_formula():
    a = np.linspace(-20, 20, 81)
    np.testing.assert_allclose(sigmoid(a), 1 / (1 + np.exp(-a)), rtol=1e-12)


def test_sequential_names_follow_positions():
    rng = np.random.default_rng(0)
    net = Sequential(Dense(2, 3, rng=rng), ReLU(), Dense(3, 1, rng=rng))
    assert list(net.params) == ["0.W", "0.b", "2.W", "2.b"]
    assert net.params["2.W"] is net[2].params["W"]


@pytest.mark.parametrize("value", [0.0, 2, np.float32(-3.0), np.array(1.5), [[-1.0, 4.0]],
                                   np.uint8(200), np.int8(-128), True])
def test_sigmoid_and_softplus_take_scalars_and_lists(value):
    """Both work in place on a new float array, which must not trip over 0-d input, and
    integers must be converted before any arithmetic (-(-128) is -128 in int8)."""
    from numvae.model.likelihoods import softplus
    a = np.asarray(value, dtype=np.float64)
    rtol = 1e-6 if isinstance(value, np.float32) else 1e-12
    np.testing.assert_allclose(sigmoid(value), 1 / (1 + np.exp(-a)), rtol=rtol)
    np.testing.assert_allclose(softplus(value), np.log1p(np.exp(a)), rtol=rtol)
    if isinstance(value, np.float32):
        assert sigmoid(value).dtype == np.float32 and softplus(value).dtype == np.float32


# --- issue 21: a layer checks its input and its construction arguments --------------------

@pytest.mark.parametrize("x, error, message", [
    (np.ones((2, 6), complex), TypeError, "dtype complex128; expected real floating point"),
    (np.ones((2, 6), object), TypeError, "dtype object"),
    (np.ones((2, 6), int), TypeError, "dtype int64"),
    (np.ones((2, 3, 6)), ValueError, r"shape \(2, 3, 6\); expected \(batch, 6\)"),
    (np.ones(6), ValueError, r"shape \(6,\); expected \(batch, 6\)"),
    (np.ones((2, 5)), ValueError, r"shape \(2, 5\); expected \(batch, 6\)"),
    ([[1.0] * 6], TypeError, "must be a NumPy array; got list"),
])
def test_dense_forward_refuses_what_it_cannot_compute(x, error, message):
    with pytest.raises(error, match=message):
        Dense(6, 3, rng=np.random.default_rng(0)).forward(x)


def test_dense_forward_lets_nan_through_as_numpy_and_pytorch_do():
    x = np.ones((2, 6))
    x[0, 0] = np.nan
    y, _ = Dense(6, 3, rng=np.random.default_rng(0), dtype=np.float64).forward(x)
    assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()


@pytest.mark.parametrize("args, kwargs, message", [
    ((6, 3), dict(dtype=int), "dtype must be float32 or float64; got int64"),
    ((0, 3), {}, "in_features must be a positive integer; got 0"),
    ((6, -1), {}, "out_features must be a positive integer; got -1"),
    ((6.5, 3), {}, "in_features must be a positive integer; got 6.5"),
])
def test_dense_refuses_bad_construction_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Dense(*args, **kwargs)


@pytest.mark.parametrize("dtype", [complex, object])
def test_convolutions_refuse_complex_and_object_input(dtype):
    from numvae.nn.conv import Conv2d, ConvTranspose2d, FastConv2d, FastConvTranspose2d
    x = np.ones((1, 2, 4, 4), dtype)
    rng = np.random.default_rng(0)
    for layer in (Conv2d(2, 3, 3, rng=rng), FastConv2d(2, 3, 3, rng=rng),
                  ConvTranspose2d(2, 3, 3, rng=rng), FastConvTranspose2d(2, 3, 3, rng=rng)):
        with pytest.raises(TypeError, match=f"dtype {np.dtype(dtype)}; expected real floating"):
            layer.forward(x)


@pytest.mark.parametrize("make, name", [
    (lambda rng: Dense(3, 2, rng=rng), "Dense"),
    (lambda rng: Conv2d(1, 2, 3, rng=rng), "Conv2d"),
    (lambda rng: ConvTranspose2d(1, 2, 3, rng=rng), "ConvTranspose2d"),
    (lambda rng: MaskedDense(np.ones((3, 2)), rng=rng), "MaskedDense"),
])
def test_a_layer_without_a_generator_refuses_rather_than_draw_unseeded(make, name):
    """Randomness is an input: no layer falls back on numpy.random.default_rng()."""
    for missing in (None, 0):
        with pytest.raises(TypeError, match=f"{name} needs rng=, a numpy.random.Generator"):
            make(missing)
    assert make(np.random.default_rng(0)).params["W"].shape
