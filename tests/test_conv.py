"""Conv2d, ConvTranspose2d, Flatten, Reshape (numvae.nn.conv) against finite differences,
direct loop implementations written here, the adjoint identities, and PyTorch if present."""
import itertools

import numpy as np
import pytest

from numvae.diagnostics.gradcheck import check_layer
from numvae.nn.conv import (
    Conv2d,
    ConvTranspose2d,
    FastConv2d,
    FastConvTranspose2d,
    Flatten,
    Reshape,
    col2im,
    col2im_channels_last,
    im2col,
    im2col_channels_last,
    output_size,
)

# L = sum(y * g) is linear in x, in W and in b separately, so central differences are exact
# but for rounding (about 1e-10 here); a factor 2 anywhere gives 0.5, a missing 1/2 0.33.
TOL = 1e-7
GEOMETRIES = list(itertools.product([1, 2], [0, 1, 2], [1, 2, 3, 4, 5]))  # stride, padding, k


def geometry_id(geometry):
    return "s{}-p{}-k{}".format(*geometry)


def channels_for(index):
    """(in_channels, out_channels), varied over the cases: 1 to 3 each."""
    return 1 + index % 3, 1 + (index // 3) % 3


# --- independent references: loops over every index, straight from the definitions -------

def conv2d_direct(x, weight, bias, stride, padding):
    """y[n, k, h, w] = b[k] + sum_{c,p,q} W[k, c, p, q] x_pad[n, c, s h + p, s w + q]."""
    batch, _, height, width = x.shape
    out_channels, _, kernel, _ = weight.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out = (height + 2 * padding - kernel) // stride + 1
    w_out = (width + 2 * padding - kernel) // stride + 1
    y = np.zeros((batch, out_channels, h_out, w_out))
    for n, k, h, w in itertools.product(range(batch), range(out_channels), range(h_out),
                                        range(w_out)):
        patch = x_pad[n, :, stride * h:stride * h + kernel, stride * w:stride * w + kernel]
        y[n, k, h, w] = bias[k] + np.sum(weight[k] * patch)
    return y


def conv_transpose2d_direct(x, weight, bias, stride, padding, output_padding):
    """Every input pixel x[n, c, i, j] adds x[n, c, i, j] W[c] to the output patch at
    (s i, s j) of a padded canvas; the padding is then cut off each side."""
    batch, in_channels, height, width = x.shape
    _, out_channels, kernel, _ = weight.shape
    full_h = (height - 1) * stride + kernel + output_padding
    full_w = (width - 1) * stride + kernel + output_padding
    canvas = np.zeros((batch, out_channels, full_h, full_w))
    for n, c, i, j in itertools.product(range(batch), range(in_channels), range(height),
                                        range(width)):
        canvas[n, :, stride * i:stride * i + kernel, stride * j:stride * j + kernel] += (
            x[n, c, i, j] * weight[c])
    y = canvas[:, :, padding:full_h - padding, padding:full_w - padding]
    return y + bias[:, None, None]


# --- gradient checks ---------------------------------------------------------------------

@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_conv2d_backward_matches_finite_differences(geometry):
    stride, padding, kernel = geometry
    c_in, c_out = channels_for(GEOMETRIES.index(geometry))
    rng = np.random.default_rng(GEOMETRIES.index(geometry))
    layer = Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, rng=rng,
                   dtype=np.float64)
    x = rng.standard_normal((2, c_in, 7, 6))  # non-square; odd size: stride 2 floors
    errors = check_layer(layer, x)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("geometry, output_padding",
                         [(geometry, extra) for geometry in GEOMETRIES
                          for extra in range(geometry[0])],  # output_padding < stride
                         ids=lambda value: geometry_id(value) if isinstance(value, tuple)
                         else f"op{value}")
def test_conv_transpose2d_backward_matches_finite_differences(geometry, output_padding):
    stride, padding, kernel = geometry
    c_in, c_out = channels_for(GEOMETRIES.index(geometry) + 1)
    rng = np.random.default_rng(100 + GEOMETRIES.index(geometry))
    layer = ConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=padding,
                            output_padding=output_padding, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, c_in, 5, 4 + padding))  # non-square, output never empty
    errors = check_layer(layer, x)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < TOL, errors


class DoubledConv2d(Conv2d):
    """A deliberately broken backward: every gradient twice too large."""

    def backward(self, dy, cache):
        dx = super().backward(dy, cache)
        self.grads["W"] *= 2
        self.grads["b"] *= 2
        return 2 * dx


def test_gradient_check_catches_a_factor_two():
    rng = np.random.default_rng(0)
    layer = DoubledConv2d(2, 3, 3, stride=2, padding=1, rng=rng, dtype=np.float64)
    errors = check_layer(layer, rng.standard_normal((2, 2, 6, 5)))
    for name, error in errors.items():
        assert error == pytest.approx(0.5, abs=1e-6), (name, errors)


# --- values, shapes and adjoints -----------------------------------------------------------

@pytest.mark.parametrize("geometry", [(1, 0, 3), (2, 1, 4), (2, 2, 5), (1, 1, 1)],
                         ids=geometry_id)
def test_conv2d_forward_equals_the_direct_loops(geometry):
    stride, padding, kernel = geometry
    rng = np.random.default_rng(1)
    layer = Conv2d(2, 3, kernel, stride=stride, padding=padding, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 7, 5))
    y, _ = layer.forward(x)
    assert y.shape == (2, 3, output_size(7, kernel, stride, padding),
                       output_size(5, kernel, stride, padding))
    np.testing.assert_allclose(y, conv2d_direct(x, layer.params["W"], layer.params["b"],
                                                stride, padding), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry, output_padding",
                         [((1, 0, 3), 0), ((2, 1, 4), 1), ((2, 2, 5), 0), ((2, 0, 1), 1)],
                         ids=lambda value: str(value))
def test_conv_transpose2d_forward_equals_the_direct_loops(geometry, output_padding):
    stride, padding, kernel = geometry
    rng = np.random.default_rng(2)
    layer = ConvTranspose2d(3, 2, kernel, stride=stride, padding=padding,
                            output_padding=output_padding, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 4, 5))
    y, _ = layer.forward(x)
    assert y.shape == (2, 2, *[(size - 1) * stride - 2 * padding + kernel + output_padding
                               for size in (4, 5)])
    expected = conv_transpose2d_direct(x, layer.params["W"], layer.params["b"], stride,
                                       padding, output_padding)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", [(1, 0, 3), (2, 1, 4), (2, 2, 3), (2, 0, 5)],
                         ids=geometry_id)
def test_conv_transpose_is_the_adjoint_of_conv(geometry):
    """<conv(x), y> = <x, convT(y)> with the same weights and no bias (eq. CV7)."""
    stride, padding, kernel = geometry
    rng = np.random.default_rng(3)
    height, width = 9, 7  # both odd: one output_padding fits both sides
    conv = Conv2d(2, 3, kernel, stride=stride, padding=padding, rng=rng, dtype=np.float64)
    extra = [(size + 2 * padding - kernel) % stride for size in (height, width)]
    assert extra[0] == extra[1]
    transpose = ConvTranspose2d(3, 2, kernel, stride=stride, padding=padding,
                                output_padding=extra[0], rng=np.random.default_rng(0),
                                dtype=np.float64)  # its weights are set below
    transpose.params["W"][...] = conv.params["W"]  # (3, 2, k, k) for both
    conv.params["b"][...] = 0
    transpose.params["b"][...] = 0
    x = rng.standard_normal((2, 2, height, width))
    conv_x, _ = conv.forward(x)
    y = rng.standard_normal(conv_x.shape)
    transpose_y, _ = transpose.forward(y)
    assert transpose_y.shape == x.shape
    assert np.vdot(conv_x, y) == pytest.approx(np.vdot(x, transpose_y), rel=1e-12)
    # and the transposed convolution's forward is the convolution's input gradient
    np.testing.assert_allclose(transpose_y, conv.backward(y, conv.forward(x)[1]),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", [(1, 0, 1), (1, 2, 3), (2, 1, 4), (3, 2, 5)],
                         ids=geometry_id)
def test_col2im_is_the_adjoint_of_im2col(geometry):
    """<im2col(x), C> = <x, col2im(C)> (eq. CV3)."""
    stride, padding, kernel = geometry
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 7))
    cols = im2col(x, kernel, stride, padding)
    assert cols.shape == (2 * output_size(8, kernel, stride, padding)
                          * output_size(7, kernel, stride, padding), 3 * kernel * kernel)
    other = rng.standard_normal(cols.shape)
    assert np.vdot(cols, other) == pytest.approx(
        np.vdot(x, col2im(other, x.shape, kernel, stride, padding)), rel=1e-12)


def test_mnist_shapes_of_the_issue():
    """1x28x28 -> 32x14x14 -> 64x7x7 (k4 s2 p1) and back with the transposed layers."""
    rng = np.random.default_rng(5)
    x = rng.random((3, 1, 28, 28), dtype=np.float32)
    h, _ = Conv2d(1, 32, 4, stride=2, padding=1, rng=rng).forward(x)
    h, _ = Conv2d(32, 64, 4, stride=2, padding=1, rng=rng).forward(h)
    assert h.shape == (3, 64, 7, 7) and h.dtype == np.float32
    flat, _ = Flatten().forward(h)
    image, _ = Reshape((64, 7, 7)).forward(flat)
    h, _ = ConvTranspose2d(64, 32, 4, stride=2, padding=1, rng=rng).forward(image)
    h, _ = ConvTranspose2d(32, 1, 4, stride=2, padding=1, rng=rng).forward(h)
    assert h.shape == (3, 1, 28, 28) and h.dtype == np.float32


# --- initialisation ------------------------------------------------------------------------

@pytest.mark.parametrize("layer_class, fan_in", [(Conv2d, 2 * 9), (ConvTranspose2d, 50 * 9)])
def test_initialisation_follows_pytorch(layer_class, fan_in):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the transposed layer's fan_in is out_channels k^2."""
    layer = layer_class(2, 50, 3, rng=np.random.default_rng(6))
    weight, bias = layer.params["W"], layer.params["b"]
    assert weight.dtype == np.float32 and bias.shape == (50,)
    assert weight.shape == ((50, 2, 3, 3) if layer_class is Conv2d else (2, 50, 3, 3))
    bound = 1 / np.sqrt(fan_in)
    assert np.abs(weight).max() <= bound and np.abs(bias).max() <= bound
    assert abs(weight.std() - bound / np.sqrt(3)) < 0.05 * bound  # U(-a, a): std a/sqrt(3)
    assert set(layer.grads) == {"W", "b"}
    assert all(layer.grads[name].shape == layer.params[name].shape for name in layer.params)


@pytest.mark.parametrize("layer_class",
                         [Conv2d, ConvTranspose2d, FastConv2d, FastConvTranspose2d])
def test_backward_writes_into_the_gradient_arrays(layer_class):
    """The model may turn grads into views of one flat buffer: they must be written, not
    rebound."""
    rng = np.random.default_rng(7)
    layer = layer_class(2, 3, 3, stride=2, padding=1, rng=rng, dtype=np.float64)
    buffer = np.zeros(sum(grad.size for grad in layer.grads.values()))
    offset = 0
    for name, grad in layer.grads.items():
        layer.grads[name] = buffer[offset:offset + grad.size].reshape(grad.shape)
        offset += grad.size
    y, cache = layer.forward(rng.standard_normal((2, 2, 5, 6)))
    layer.backward(np.ones_like(y), cache)
    assert np.shares_memory(layer.grads["W"], buffer)
    assert buffer[-3:] == pytest.approx(np.full(3, y[:, 0].size))  # db = sum over n, h, w
    assert np.any(buffer[:-3] != 0)  # dW reached the buffer too


@pytest.mark.parametrize("layer_class",
                         [Conv2d, ConvTranspose2d, FastConv2d, FastConvTranspose2d])
def test_backward_can_skip_the_input_gradient(layer_class):
    """As Dense: a network's first layer has no use for dx; the parameters' gradients stay."""
    rng = np.random.default_rng(11)
    layer = layer_class(2, 3, 3, stride=2, padding=1, rng=rng, dtype=np.float64)
    y, cache = layer.forward(rng.standard_normal((2, 2, 5, 6)))
    dy = rng.standard_normal(y.shape)
    assert layer.backward(dy, cache) is not None
    expected = {name: grad.copy() for name, grad in layer.grads.items()}
    layer.grads["W"][...] = 0
    assert layer.backward(dy, cache, need_input_grad=False) is None
    for name, grad in layer.grads.items():
        np.testing.assert_array_equal(grad, expected[name])


# --- Flatten and Reshape -------------------------------------------------------------------

def test_flatten_and_reshape_round_trip():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    flat, cache = Flatten().forward(x)
    assert flat.shape == (2, 60)
    np.testing.assert_array_equal(flat[1], x[1].ravel())  # PyTorch's order: C, H, W
    assert Flatten().backward(flat, cache).shape == x.shape
    image, cache = Reshape((3, 4, 5)).forward(flat)
    np.testing.assert_array_equal(image, x)
    assert Reshape((3, 4, 5)).backward(image, cache).shape == (2, 60)
    assert Reshape(60).forward(x)[0].shape == (2, 60)  # an int is a 1-tuple


# --- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(in_channels=0), "in_channels"), (dict(out_channels=2.0), "out_channels"),
    (dict(kernel_size=-1), "kernel_size"), (dict(stride=0), "stride"),
    (dict(padding=-1), "padding"), (dict(padding=True), "padding"),
    (dict(dtype=np.int32), "dtype")])
@pytest.mark.parametrize("layer_class", [Conv2d, ConvTranspose2d])
def test_constructor_arguments_are_checked(layer_class, kwargs, name):
    arguments = {**dict(in_channels=1, out_channels=2, kernel_size=3), **kwargs}
    args = [arguments.pop(key) for key in ("in_channels", "out_channels", "kernel_size")]
    with pytest.raises(ValueError, match=name):
        layer_class(*args, **arguments)


def test_output_padding_must_be_smaller_than_stride():
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2d(1, 1, 3, stride=2, output_padding=2)


@pytest.mark.parametrize("layer", [Conv2d(3, 2, 3, rng=np.random.default_rng(0)),
                                   ConvTranspose2d(3, 2, 3, rng=np.random.default_rng(0))])
@pytest.mark.parametrize("x", [np.zeros((2, 2, 5, 5)), np.zeros((3, 5, 5)), [[0.0]],
                               np.zeros((0, 3, 5, 5))], ids=["channels", "3-D", "list", "empty"])
def test_forward_names_the_expected_shape(layer, x):
    with pytest.raises(ValueError, match=r"x has shape .*expected \(batch, 3, H, W\)"):
        layer.forward(x)


def test_forward_rejects_images_smaller_than_the_kernel():
    with pytest.raises(ValueError, match=r"x has shape \(1, 1, 2, 9\); expected H, W >= 3"):
        Conv2d(1, 1, 5, padding=1, rng=np.random.default_rng(0)).forward(np.zeros((1, 1, 2, 9)))
    with pytest.raises(ValueError, match="would be empty"):
        ConvTranspose2d(1, 1, 1, padding=2, rng=np.random.default_rng(0)).forward(np.zeros((1, 1, 3, 3)))


def test_reshape_names_the_sizes():
    with pytest.raises(ValueError, match=r"x has shape \(2, 10\).*49 entries"):
        Reshape((1, 7, 7)).forward(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="shape entries"):
        Reshape((0, 7))


# --- the fast path (channels last) agrees with the textbook path ---------------------------

def run_both(layer, fast_layer, x, seed):
    """Forward and backward of both layers with the same g; their y, dx, dW, db."""
    results = []
    for one in (layer, fast_layer):
        y, cache = one.forward(x)
        g = np.random.default_rng(seed).standard_normal(y.shape)
        dx = one.backward(g, cache)
        results.append((y, dx, one.grads["W"].copy(), one.grads["b"].copy()))
    return results


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_fast_layers_equal_the_textbook_layers(geometry):
    stride, padding, kernel = geometry
    c_in, c_out = channels_for(GEOMETRIES.index(geometry) + 2)
    rng = np.random.default_rng(200 + GEOMETRIES.index(geometry))
    for textbook_class, fast_class, x_shape, extra in [
            (Conv2d, FastConv2d, (3, c_in, 7, 6), {}),
            (ConvTranspose2d, FastConvTranspose2d, (3, c_in, 5, 4 + padding),
             dict(output_padding=stride - 1))]:
        layer = textbook_class(c_in, c_out, kernel, stride=stride, padding=padding, rng=rng,
                               dtype=np.float64, **extra)
        fast_layer = fast_class(c_in, c_out, kernel, stride=stride, padding=padding,
                                rng=np.random.default_rng(0), dtype=np.float64, **extra)
        for name in layer.params:
            fast_layer.params[name][...] = layer.params[name]
        textbook, fast = run_both(layer, fast_layer, rng.standard_normal(x_shape), seed=1)
        for name, ours, theirs in zip(("y", "dx", "dW", "db"), fast, textbook):
            assert ours.shape == theirs.shape, name
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("geometry", [(1, 0, 1), (1, 2, 3), (2, 1, 4), (3, 2, 5)],
                         ids=geometry_id)
def test_channels_last_im2col_permutes_the_columns_and_has_its_adjoint(geometry):
    stride, padding, kernel = geometry
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 8, 7))
    cols = im2col_channels_last(x, kernel, stride, padding)
    rows = cols.shape[0]
    np.testing.assert_array_equal(  # columns (p, q, c) against the textbook's (c, p, q)
        cols.reshape(rows, kernel, kernel, 3).transpose(0, 3, 1, 2).reshape(rows, -1),
        im2col(x, kernel, stride, padding))
    other = rng.standard_normal(cols.shape)
    assert np.vdot(cols, other) == pytest.approx(
        np.vdot(x, col2im_channels_last(other, x.shape, kernel, stride, padding)), rel=1e-12)


@pytest.mark.parametrize("layer_class", [FastConv2d, FastConvTranspose2d])
def test_fast_layers_pass_the_gradient_check(layer_class):
    rng = np.random.default_rng(10)
    layer = layer_class(2, 3, 4, stride=2, padding=1, rng=rng, dtype=np.float64)
    errors = check_layer(layer, rng.standard_normal((2, 2, 6, 5)))
    assert max(errors.values()) < TOL, errors


# --- PyTorch, an optional second opinion ---------------------------------------------------

@pytest.mark.parametrize("geometry", [(1, 0, 3), (2, 1, 4), (2, 2, 5)], ids=geometry_id)
def test_values_and_gradients_match_pytorch(geometry):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    stride, padding, kernel = geometry
    rng = np.random.default_rng(8)
    for transposed in (False, True):
        layer_class = ConvTranspose2d if transposed else Conv2d
        layer = layer_class(3, 2, kernel, stride=stride, padding=padding, rng=rng,
                            dtype=np.float64)
        x = rng.standard_normal((2, 3, 7, 6))
        y, cache = layer.forward(x)
        g = rng.standard_normal(y.shape)
        dx = layer.backward(g, cache)
        tensors = [torch.tensor(a, requires_grad=True)
                   for a in (x, layer.params["W"], layer.params["b"])]
        op = functional.conv_transpose2d if transposed else functional.conv2d
        y_torch = op(*tensors, stride=stride, padding=padding)
        (y_torch * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(y, y_torch.detach().numpy(), rtol=1e-10, atol=1e-12)
        for ours, theirs in zip((dx, layer.grads["W"], layer.grads["b"]), tensors):
            np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


# --- the benchmark still runs (its figures are never asserted on) --------------------------

def test_conv_speed_benchmark_runs_on_a_tiny_batch():
    from benchmarks.speed import conv_layers
    result = conv_layers.measure(batch=2, steps=1, repeats=1, use_torch=False)
    assert set(result["ms"]) == {"numvae textbook", "numvae fast", "im2col", "col2im", "GEMM"}
    assert all(np.isfinite(value) and value > 0 for value in result["ms"].values())
    # 2 flops per multiply-add, 3 products per layer, each size in the encoder and decoder
    macs_per_image = 196 * 16 * 32 + 49 * 512 * 64  # (rows, C_in k^2, C_out) of each conv
    assert result["gflop"] == pytest.approx(2 * 3 * 2 * 2 * macs_per_image / 1e9)


def test_a_first_conv_layer_in_a_sequential_skips_the_input_gradient():
    from numvae.nn.layers import Sequential, Tanh
    rng = np.random.default_rng(0)
    net = Sequential(Conv2d(1, 2, 3, rng=rng, dtype=np.float64), Tanh(), Flatten())
    y, cache = net.forward(rng.standard_normal((2, 1, 5, 5)))
    steps = net.backward_steps(np.ones_like(y), cache, need_input_grad=False)
    assert steps[0] is None and np.abs(net.layers[0].grads["W"]).sum() > 0
