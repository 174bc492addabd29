"""THE FAST PATH, part two: the transposed convolution gathered phase by phase (eq. CV8).

Nothing here is needed to understand the convolutions; read ``numvae.nn.conv`` first. The
transposed convolution (eq. CV7) scatters: every input pixel stamps a weighted copy of the
kernel onto the output at stride s, and col2im adds the overlapping stamps up, Q^2 strided
additions over the whole output. When the kernel size Q is a multiple of the stride, the
same sums can be gathered instead. Padded output row u = s m + rho (phase rho = 0 .. s-1)
receives x[h] W[p] for s h + p = u, that is p = rho + s t and h = m - t, t = 0 .. T-1 with
T = Q / s: each phase of the output is a stride-1 convolution of the input with a T x T
slice of the kernel. All s^2 phases read the same T x T windows of the input, so one
im2col of the input and one matrix product give them all, and interleaving the phases gives
the output. ``FastConvTranspose2d.forward`` and ``FastConv2d.backward`` (whose input
gradient is the same map) use this path where it moves fewer numbers (``phases_pay``);
``set_phases(False)`` turns it off.

The sums are the same as col2im's, in another order: the results agree to rounding (float32
rounding, and 1e-12 relative in float64, in tests/test_conv_phases.py), not bit for bit.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from numvae.nn.threads import split_rows

_settings = {"on": True}


def copy_by_rows(out, source):
    """out[...] = source, split by the first axis (the batch) over the elementwise pool of
    ``numvae.nn.threads`` when that is on: a copy is the same numbers however it is split."""
    split_rows(lambda start, stop: np.copyto(out[start:stop], source[start:stop]),
               len(out), out.size)


def set_phases(on):
    """Use the phase path where it pays (True, the default) or never (False: always the
    product and col2im of the channels-last path). Returns the previous setting."""
    if not isinstance(on, bool):
        raise ValueError(f"set_phases: on must be True or False; got {on!r}")
    previous, _settings["on"] = _settings["on"], on
    return previous


def phases_pay(x_shape, y_shape, kernel_size, stride, padding):
    """True if the phase path is on, applies to this transposed convolution (x_shape ->
    y_shape) and copies a smaller patch matrix than the one col2im would add up."""
    if not _settings["on"] or kernel_size % stride:
        return False  # phases with different numbers of taps: not written
    taps = kernel_size // stride
    _, c_in, height, width = x_shape
    _, c_out, h_out, w_out = y_shape
    grid_h, grid_w = height + taps - 1, width + taps - 1
    if padding + h_out > stride * grid_h or padding + w_out > stride * grid_w:
        return False  # output_padding beyond the padding: rows no window reaches
    # patches (batch M N, T^2 C_in) copied here against (batch H W, Q^2 C_out) added there
    return grid_h * grid_w * taps * taps * c_in <= height * width * kernel_size ** 2 * c_out


def phase_kernel(weight, stride):
    """(C_in, C_out, Q, Q) weights -> the (T^2 C_in, s^2 C_out) matrix of eq. CV8.

    Row (j, l, c), column (rho, rho', k) holds W[c, k, rho + s (T-1-j), rho' + s (T-1-l)]: the
    window's row j is the input row m - t with t = T-1-j, so the taps run backwards."""
    c_in, c_out, kernel, _ = weight.shape
    taps = kernel // stride
    split = weight.reshape(c_in, c_out, taps, stride, taps, stride)  # p = s t + rho
    flipped = split[:, :, ::-1, :, ::-1, :]                          # (c, k, j, rho, l, rho')
    return flipped.transpose(2, 4, 0, 3, 5, 1).reshape(taps * taps * c_in, -1)


def transposed_conv_by_phases(x, weight, y_shape, stride, padding):
    """col2im(X V) of eq. CV7 (no bias), gathered phase by phase (eq. CV8).

    x: (batch, C_in, H, W), fastest as a view of (batch, H, W, C_in) memory; weight:
    (C_in, C_out, Q, Q) with Q a multiple of the stride; y_shape: (batch, C_out, H_out,
    W_out), for which ``phases_pay`` holds. Returns (batch, C_out, H_out, W_out), a view of
    channels-last memory.
    """
    batch, c_in, height, width = x.shape
    c_out, kernel = weight.shape[1], weight.shape[2]
    taps, (h_out, w_out) = kernel // stride, y_shape[2:]
    edge = taps - 1  # zeros each side: every window that holds an input pixel is whole
    x_pad = np.zeros((batch, height + 2 * edge, width + 2 * edge, c_in), x.dtype)
    copy_by_rows(x_pad[:, edge:edge + height, edge:edge + width], x.transpose(0, 2, 3, 1))
    windows = sliding_window_view(x_pad, (taps, taps), axis=(1, 2))  # (batch, M, N, C_in, j, l)
    grid_h, grid_w = windows.shape[1:3]
    patches = np.empty((batch, grid_h, grid_w, taps, taps, c_in), x.dtype)
    copy_by_rows(patches, windows.transpose(0, 1, 2, 4, 5, 3))  # runs of C_in numbers
    phases = patches.reshape(-1, taps * taps * c_in) @ phase_kernel(weight, stride)
    phases = phases.reshape(batch, grid_h, grid_w, stride, stride, c_out)  # (., m, n, rho, rho', k)
    canvas = np.empty((batch, grid_h, stride, grid_w, stride, c_out), x.dtype)
    copy_by_rows(canvas, phases.transpose(0, 1, 3, 2, 4, 5))  # interleave: row s m + rho
    canvas = canvas.reshape(batch, stride * grid_h, stride * grid_w, c_out)
    return canvas[:, padding:padding + h_out, padding:padding + w_out].transpose(0, 3, 1, 2)
