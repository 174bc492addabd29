"""The transposed convolution by phases (numvae.nn.conv_phases, eq. CV8) against the textbook
product and col2im (eq. CV7), central differences and PyTorch if present; its switch."""
import itertools

import numpy as np
import pytest

from numvae.diagnostics.gradcheck import check_layer
from numvae.nn.conv import (
    FastConv2d,
    FastConvTranspose2d,
    col2im,
    col2im_channels_last,
)
from numvae.nn.conv_phases import phase_kernel, phases_pay, set_phases, transposed_conv_by_phases

# (stride, padding, kernel) with the kernel a multiple of the stride, as the phases need
GEOMETRIES = [(s, p, k) for s, p, k in itertools.product([1, 2, 3], [0, 1, 2], [1, 2, 3, 4, 6])
              if k % s == 0 and p < k]


def geometry_id(geometry):
    return "s{}-p{}-k{}".format(*geometry)


@pytest.fixture
def phases_off():
    """Turn the phase path off for one test, and back on after it whatever happens."""
    previous = set_phases(False)
    yield
    set_phases(previous)


def textbook_transposed(x, weight, y_shape, stride, padding):
    """col2im(X V) of eq. CV7 with the textbook functions: channels-first columns."""
    x_rows = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
    cols = x_rows @ weight.reshape(weight.shape[0], -1)
    return col2im(cols, y_shape, weight.shape[2], stride, padding)


def output_shape(x_shape, c_out, kernel, stride, padding, output_padding):
    return (x_shape[0], c_out, *((size - 1) * stride - 2 * padding + kernel + output_padding
                                 for size in x_shape[2:]))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_phases_equal_the_textbook_scatter_in_float64(geometry):
    stride, padding, kernel = geometry
    rng = np.random.default_rng(GEOMETRIES.index(geometry))
    for output_padding in range(min(stride - 1, padding) + 1):
        c_in, c_out = 1 + output_padding, 3 - output_padding
        x = rng.standard_normal((2, c_in, 4, 3))
        weight = rng.standard_normal((c_in, c_out, kernel, kernel))
        y_shape = output_shape(x.shape, c_out, kernel, stride, padding, output_padding)
        if min(y_shape[2:]) < 1:
            continue
        ours = transposed_conv_by_phases(x, weight, y_shape, stride, padding)
        theirs = textbook_transposed(x, weight, y_shape, stride, padding)
        assert ours.shape == theirs.shape == y_shape
        # the same sums in another order: equal to rounding, not bit for bit
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_phases_equal_the_scatter_to_float32_rounding():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 8, 5, 5)).astype(np.float32)
    weight = rng.standard_normal((8, 4, 4, 4)).astype(np.float32)
    y_shape = (3, 4, 10, 10)
    ours = transposed_conv_by_phases(x, weight, y_shape, 2, 1)
    exact = textbook_transposed(x.astype(np.float64), weight.astype(np.float64), y_shape, 2, 1)
    assert ours.dtype == np.float32
    # each entry sums 4 taps x 8 channels; the error is a few float32 epsilons of the terms
    scale = textbook_transposed(np.abs(x), np.abs(weight), y_shape, 2, 1).astype(np.float64)
    assert np.max(np.abs(ours - exact) / scale) < 8 * np.finfo(np.float32).eps


def test_the_phase_kernel_holds_the_taps_backwards():
    weight = np.arange(1 * 1 * 4 * 4, dtype=np.float64).reshape(1, 1, 4, 4)
    kernel = phase_kernel(weight, 2)  # rows (j, l), columns (r, r'): W[r + 2 (1-j), r' + 2 (1-l)]
    assert kernel.shape == (4, 4)
    assert kernel[0, 0] == weight[0, 0, 2, 2] and kernel[3, 0] == weight[0, 0, 0, 0]
    assert kernel[1, 3] == weight[0, 0, 3, 1]  # j=0, l=1; r=1, r'=1


def test_phases_pay_where_they_move_fewer_numbers():
    # the conv VAE's layers (batch 128): its large transposed convolution and the first
    # conv's input gradient gather; the last layer (one output channel) keeps col2im
    assert phases_pay((128, 64, 7, 7), (128, 32, 14, 14), 4, 2, 1)
    assert not phases_pay((128, 32, 14, 14), (128, 1, 28, 28), 4, 2, 1)
    assert not phases_pay((2, 8, 5, 5), (2, 8, 11, 11), 5, 2, 1)  # kernel not a multiple
    assert not phases_pay((2, 8, 5, 5), (2, 8, 13, 13), 4, 2, 0)  # output_padding 1 > padding 0


def test_set_phases_turns_the_path_off_and_says_what_it_was(phases_off):
    assert not phases_pay((128, 64, 7, 7), (128, 32, 14, 14), 4, 2, 1)
    assert set_phases(True) is False
    assert phases_pay((128, 64, 7, 7), (128, 32, 14, 14), 4, 2, 1)
    with pytest.raises(ValueError, match="on must be True or False; got 1"):
        set_phases(1)


def test_switched_off_the_layers_run_the_product_and_col2im_bit_for_bit(phases_off):
    rng = np.random.default_rng(2)
    layer = FastConvTranspose2d(8, 4, 4, stride=2, padding=1, rng=rng)
    x = rng.standard_normal((2, 8, 5, 5)).astype(np.float32)
    y, _ = layer.forward(x)
    kernel = layer.params["W"].transpose(0, 2, 3, 1).reshape(8, -1)
    cols = x.transpose(0, 2, 3, 1).reshape(-1, 8) @ kernel
    expected = col2im_channels_last(cols, y.shape, 4, 2, 1) + layer.params["b"][:, None, None]
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("layer_class", [FastConv2d, FastConvTranspose2d])
def test_layers_on_the_phase_path_equal_it_switched_off(layer_class):
    rng = np.random.default_rng(3)
    layer = layer_class(6, 6, 4, stride=2, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 6, 6, 6))
    results = []
    for on in (True, False):
        previous = set_phases(on)
        try:
            y, cache = layer.forward(x)
            dx = layer.backward(np.cos(y), cache)
        finally:
            set_phases(previous)
        results.append((y, dx, layer.grads["W"].copy()))
    # the phase path is taken: the transposed convolution here pays
    assert phases_pay((2, 6, 3, 3), (2, 6, 6, 6), 4, 2, 1)
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer_class", [FastConv2d, FastConvTranspose2d])
def test_layers_on_the_phase_path_pass_the_gradient_check(layer_class):
    rng = np.random.default_rng(4)
    layer = layer_class(3, 3, 4, stride=2, padding=1, rng=rng, dtype=np.float64)
    errors = check_layer(layer, rng.standard_normal((2, 3, 6, 5)))
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("geometry", [(1, 1, 3), (2, 1, 4), (3, 2, 6)], ids=geometry_id)
def test_the_phase_path_matches_pytorch(geometry):
    torch = pytest.importorskip("torch")
    stride, padding, kernel = geometry
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 5, 4))
    weight = rng.standard_normal((4, 2, kernel, kernel))
    y_shape = output_shape(x.shape, 2, kernel, stride, padding, 0)
    ours = transposed_conv_by_phases(x, weight, y_shape, stride, padding)
    theirs = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(weight),
                                                  stride=stride, padding=padding)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)


# --- the profile benchmark still runs (its figures are never asserted on) ------------------

def test_conv_profile_benchmark_runs_and_times_the_phase_path():
    from benchmarks.speed import conv_profile
    result = conv_profile.worker(rounds=1, block=1, phases=True, batch=2)
    assert result["parts"]["phases"] > 0 and result["parts"]["col2im"] > 0  # last layer: col2im
    off = conv_profile.worker(rounds=1, block=1, phases=False, batch=2)
    assert off["parts"]["phases"] == 0 and off["parts"]["col2im"] > 0
    assert set_phases(True) is False  # the worker leaves the switch as it set it


def test_copies_split_over_the_pool_are_the_same_numbers():
    from numvae.nn import threads
    from numvae.nn.conv import im2col_channels_last
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 3, 7, 6)).astype(np.float32)
    weight = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    results = []
    for n_threads in (1, 2):
        previous = threads.set_threads(n_threads, min_entries=1)  # split even tiny arrays
        try:
            results.append((im2col_channels_last(x, 4, 2, 1),
                            transposed_conv_by_phases(x, weight, (5, 2, 14, 12), 2, 1)))
        finally:
            threads.restore(previous)
    for ours, theirs in zip(*results):
        np.testing.assert_array_equal(ours, theirs)
