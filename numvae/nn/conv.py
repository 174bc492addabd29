"""Convolutional layers written by hand: im2col turns a convolution into one matrix product.

Images are (batch, channels, height, width) arrays and the layers follow PyTorch's
semantics, layouts and default initialisation (docs/derivations.md, section
"Convolutions"). Each layer uses the explicit-state contract:

* ``forward(x)`` returns ``(y, cache)``, the cache holding what backward reads;
* ``backward(dy, cache)`` returns ``dx`` and writes the parameter gradients in place
  (``self.grads["W"][...] = ...``), never rebinding them.

A convolution is a Dense layer applied to every patch of the image: ``im2col`` copies the
patches into the rows of a matrix, a matrix product applies the kernel, and ``col2im``,
the adjoint of ``im2col``, sends the patches' gradients back to the image. The transposed
convolution is the convolution's backward pass run forwards.
"""
import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from numvae.nn.conv_phases import copy_by_rows, phases_pay, transposed_conv_by_phases
from numvae.nn.layers import Layer, check_float_dtype, check_generator, check_input
from numvae.validation import check_nonnegative_int, check_positive_int


def output_size(size, kernel_size, stride, padding):
    """Positions of a kernel sliding over ``size`` padded pixels: floor((size + 2 padding
    - kernel_size) / stride) + 1 (eq. CV1); 0 or less when the kernel does not fit."""
    return (size + 2 * padding - kernel_size) // stride + 1


def im2col(x, kernel_size, stride, padding):
    """The patches of ``x`` as the rows of a matrix (eq. CV2).

    x: (batch, C, H, W) -> cols: (batch * H_out * W_out, C * kernel_size**2), where row
    (n, h, w) holds the padded input's patch whose top-left corner is (stride h, stride w),
    flattened in the order (channel, kernel row p, kernel column q) of the weights
    ``W.reshape(out_channels, -1)``. The loop runs over the kernel's k^2 offsets (p, q),
    each a strided copy of the whole batch; never over pixels or examples.
    """
    batch, channels, height, width = x.shape
    h_out = output_size(height, kernel_size, stride, padding)
    w_out = output_size(width, kernel_size, stride, padding)
    pad = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    x_pad = np.pad(x, pad) if padding else x  # zeros around the image
    cols = np.empty((batch, h_out, w_out, channels, kernel_size, kernel_size), x.dtype)
    for p in range(kernel_size):
        for q in range(kernel_size):
            # x_pad[n, c, stride h + p, stride w + q] for every (n, c, h, w) at once
            window = x_pad[:, :, p:p + stride * h_out:stride, q:q + stride * w_out:stride]
            cols[:, :, :, :, p, q] = window.transpose(0, 2, 3, 1)  # (batch, h, w, C)
    return cols.reshape(batch * h_out * w_out, channels * kernel_size * kernel_size)


def col2im(cols, x_shape, kernel_size, stride, padding):
    """The adjoint of ``im2col`` (eq. CV3): add every patch back where it was copied from.

    cols: (batch * H_out * W_out, C * kernel_size**2) -> x: ``x_shape`` = (batch, C, H, W).
    Pixels shared by overlapping patches receive the sum of their entries (the ``+=``);
    the padding's entries are dropped at the end, since the padding is not an input.
    """
    batch, channels, height, width = x_shape
    h_out = output_size(height, kernel_size, stride, padding)
    w_out = output_size(width, kernel_size, stride, padding)
    cols = cols.reshape(batch, h_out, w_out, channels, kernel_size, kernel_size)
    x_pad = np.zeros((batch, channels, height + 2 * padding, width + 2 * padding), cols.dtype)
    for p in range(kernel_size):
        for q in range(kernel_size):
            window = x_pad[:, :, p:p + stride * h_out:stride, q:q + stride * w_out:stride]
            window += cols[:, :, :, :, p, q].transpose(0, 3, 1, 2)  # (batch, C, h, w)
    return x_pad[:, :, padding:padding + height, padding:padding + width]


def _check_images(x, channels, kernel_size, padding, name="x"):
    """x must be a (batch, channels, H, W) array whose padded size fits the kernel."""
    shape = getattr(x, "shape", None)
    if (not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != channels
            or x.shape[0] == 0):
        raise ValueError(f"{name} has shape {shape}; expected (batch, {channels}, H, W)")
    if x.dtype.kind != "f":  # complex or object input would pass through the products
        check_input(x, (None, channels, "H", "W"), name)
    smallest = max(kernel_size - 2 * padding, 1)
    if min(x.shape[2:]) < smallest:
        raise ValueError(f"{name} has shape {shape}; expected H, W >= {smallest} for "
                         f"kernel_size {kernel_size} and padding {padding}")


def _uniform_init(rng, fan_in, weight_shape, bias_shape, dtype, owner):
    """PyTorch's default for convolutions: kaiming_uniform_(a=sqrt(5)) gives
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weights, and the bias uses the same bound."""
    rng = check_generator(rng, owner)
    bound = 1.0 / np.sqrt(fan_in)
    return {"W": rng.uniform(-bound, bound, weight_shape).astype(dtype),
            "b": rng.uniform(-bound, bound, bias_shape).astype(dtype)}


def _set_geometry(layer, in_channels, out_channels, kernel_size, stride, padding):
    """The settings a convolution and its transpose share, each checked and named."""
    layer.in_channels = check_positive_int(in_channels, "in_channels")
    layer.out_channels = check_positive_int(out_channels, "out_channels")
    layer.kernel_size = check_positive_int(kernel_size, "kernel_size")
    layer.stride = check_positive_int(stride, "stride")
    layer.padding = check_nonnegative_int(padding, "padding")


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as in PyTorch) of (batch, C_in, H, W) images.

    y[n, k, h, w] = b[k] + sum_{c, p, q} W[k, c, p, q] x_pad[n, c, stride h + p, stride w + q]
    (eq. CV1), computed as im2col followed by one matrix product (eq. CV2).

    W: (out_channels, in_channels, kernel_size, kernel_size), b: (out_channels,), both
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels * kernel_size**2, as
    PyTorch's ``nn.Conv2d`` by default. Output size floor((H + 2 padding - kernel_size) /
    stride) + 1, likewise for W.
    """
    skips_input_grad = True

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0,
                 rng=None, dtype=np.float32):
        super().__init__()
        _set_geometry(self, in_channels, out_channels, kernel_size, stride, padding)
        k = self.kernel_size
        self.params = _uniform_init(rng, in_channels * k * k, (out_channels, in_channels, k, k),
                                    (out_channels,), check_float_dtype(dtype), type(self).__name__)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x):
        """x: (batch, C_in, H, W) -> y: (batch, C_out, H_out, W_out), cache (eqs. CV1, CV2).

        The cache holds the patch matrix and x's shape, which is all backward reads.
        """
        _check_images(x, self.in_channels, self.kernel_size, self.padding)
        batch, _, height, width = x.shape
        h_out = output_size(height, self.kernel_size, self.stride, self.padding)
        w_out = output_size(width, self.kernel_size, self.stride, self.padding)
        cols = im2col(x, self.kernel_size, self.stride, self.padding)  # (batch h w, C_in k k)
        kernel = self.params["W"].reshape(self.out_channels, -1)        # (C_out, C_in k k)
        y = cols @ kernel.T                                             # (batch h w, C_out)
        y += self.params["b"]  # a Dense layer (eq. D1) on every patch
        y = y.reshape(batch, h_out, w_out, self.out_channels).transpose(0, 3, 1, 2)
        return y, (cols, x.shape)

    def backward(self, dy, cache, need_input_grad=True):
        """dy: (batch, C_out, H_out, W_out) -> dx: (batch, C_in, H, W) (eqs. CV4-CV6).

        The Dense gradients (eq. D2) of the patch matrix: dW = dY^T cols, db = the sum of
        dY's rows, dcols = dY W; then col2im sends dcols back to the image. As for Dense,
        ``need_input_grad=False`` (a network's first layer) skips dx and returns None.
        """
        cols, x_shape = cache
        dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)  # (batch h w, C_out)
        kernel = self.params["W"].reshape(self.out_channels, -1)          # (C_out, C_in k k)
        self.grads["W"][...] = (dy_rows.T @ cols).reshape(self.grads["W"].shape)  # in place
        self.grads["b"][...] = dy_rows.sum(axis=0)
        if not need_input_grad:
            return None
        dcols = dy_rows @ kernel                                          # (batch h w, C_in k k)
        return col2im(dcols, x_shape, self.kernel_size, self.stride, self.padding)

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, {self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")


class ConvTranspose2d(Layer):
    """Transposed 2-D convolution: the backward pass of a Conv2d, run forwards (eq. CV7).

    The Conv2d that maps (C_out, H_out, W_out) images to (C_in, H, W) with the same
    kernel_size, stride and padding has the input-gradient dx = col2im(dy W); this layer
    computes y = col2im(x W) + b, so its output is as large as that Conv2d's input:
    H_out = (H - 1) stride - 2 padding + kernel_size + output_padding. ``output_padding``
    (< stride) picks one of the ``stride`` input sizes the Conv2d maps to the same H.

    W: (in_channels, out_channels, kernel_size, kernel_size), b: (out_channels,), both
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = out_channels * kernel_size**2: PyTorch
    reads fan_in from W's second axis, which here is out_channels.
    """
    skips_input_grad = True

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0,
                 output_padding=0, rng=None, dtype=np.float32):
        super().__init__()
        _set_geometry(self, in_channels, out_channels, kernel_size, stride, padding)
        self.output_padding = check_nonnegative_int(output_padding, "output_padding")
        if self.output_padding >= self.stride:
            raise ValueError(f"output_padding must be smaller than stride ({stride}); "
                             f"got {output_padding!r}")
        k = self.kernel_size
        self.params = _uniform_init(rng, out_channels * k * k, (in_channels, out_channels, k, k),
                                    (out_channels,), check_float_dtype(dtype), type(self).__name__)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def output_shape(self, x_shape):
        """(batch, C_out, H_out, W_out) for an input of shape (batch, C_in, H, W)."""
        s, p, k, extra = self.stride, self.padding, self.kernel_size, self.output_padding
        return (x_shape[0], self.out_channels,
                *((size - 1) * s - 2 * p + k + extra for size in x_shape[2:]))

    def _check_input(self, x):
        """The output shape for x, after checking that x is (batch, C_in, H, W)."""
        if not (isinstance(x, np.ndarray) and x.ndim == 4 and x.shape[1] == self.in_channels
                and x.shape[0] > 0):
            raise ValueError(f"x has shape {getattr(x, 'shape', None)}; expected "
                             f"(batch, {self.in_channels}, H, W)")
        if x.dtype.kind != "f":  # complex or object input would pass through the products
            check_input(x, (None, self.in_channels, "H", "W"))
        y_shape = self.output_shape(x.shape)
        if min(y_shape[2:]) < 1:
            raise ValueError(f"x has shape {x.shape}; its output {y_shape} would be empty: "
                             f"padding {self.padding} is too large for this image")
        return y_shape

    def forward(self, x):
        """x: (batch, C_in, H, W) -> y: (batch, C_out, H_out, W_out), cache (eq. CV7).

        Every input pixel becomes a weighted patch, x_rows W; col2im adds the patches up.
        """
        y_shape = self._check_input(x)
        x_rows = x.transpose(0, 2, 3, 1).reshape(-1, self.in_channels)  # (batch h w, C_in)
        kernel = self.params["W"].reshape(self.in_channels, -1)          # (C_in, C_out k k)
        cols = x_rows @ kernel                                           # (batch h w, C_out k k)
        y = col2im(cols, y_shape, self.kernel_size, self.stride, self.padding)
        y += self.params["b"][:, None, None]
        return y, (x_rows, x.shape)

    def backward(self, dy, cache, need_input_grad=True):
        """dy: (batch, C_out, H_out, W_out) -> dx: (batch, C_in, H, W) (eq. CV7).

        The forward pass of the Conv2d whose backward this layer is: dcols = im2col(dy),
        dx = dcols W^T (no bias), and the Dense gradients dW = x_rows^T dcols, db = sum dy.
        ``need_input_grad=False`` skips dx and returns None.
        """
        x_rows, (batch, _, height, width) = cache
        dcols = im2col(dy, self.kernel_size, self.stride, self.padding)  # (batch h w, C_out k k)
        kernel = self.params["W"].reshape(self.in_channels, -1)           # (C_in, C_out k k)
        self.grads["W"][...] = (x_rows.T @ dcols).reshape(self.grads["W"].shape)  # in place
        self.grads["b"][...] = dy.sum(axis=(0, 2, 3))
        if not need_input_grad:
            return None
        dx_rows = dcols @ kernel.T                                        # (batch h w, C_in)
        return dx_rows.reshape(batch, height, width, self.in_channels).transpose(0, 3, 1, 2)

    def __repr__(self):
        return (f"ConvTranspose2d({self.in_channels}, {self.out_channels}, {self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding})")


class Flatten(Layer):
    """(batch, C, H, W) -> (batch, C * H * W), PyTorch's nn.Flatten; backward reshapes back."""

    def forward(self, x):
        """x: (batch, ...) -> y: (batch, prod(...)); the cache is x's shape."""
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            raise ValueError(f"x has shape {getattr(x, 'shape', None)}; expected (batch, ...)")
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dy, cache):
        """dy: (batch, prod(...)) -> dx: (batch, ...) of the cached shape."""
        return dy.reshape(cache)


class Reshape(Layer):
    """(batch, ...) -> (batch, *shape), e.g. Reshape((64, 7, 7)) after a Dense layer."""

    def __init__(self, shape):
        super().__init__()
        shape = (shape,) if isinstance(shape, numbers.Integral) else shape
        self.shape = tuple(check_positive_int(size, "shape entries") for size in shape)

    def forward(self, x):
        """x: (batch, ...) with prod(...) = prod(shape) -> y: (batch, *shape)."""
        size = int(np.prod(self.shape))
        if not isinstance(x, np.ndarray) or x.ndim < 2 or x[0].size != size:
            raise ValueError(f"x has shape {getattr(x, 'shape', None)}; expected (batch, ...) "
                             f"with {size} entries per example, to reshape to (batch, "
                             f"{', '.join(map(str, self.shape))})")
        return x.reshape(x.shape[0], *self.shape), x.shape

    def backward(self, dy, cache):
        """dy: (batch, *shape) -> dx: (batch, ...) of the cached shape."""
        return dy.reshape(cache)

    def __repr__(self):
        return f"Reshape({self.shape})"


# --- The fast path: channels last ----------------------------------------------------------
# The same arithmetic as Conv2d and ConvTranspose2d, in another memory order: images kept as
# (batch, H, W, C) in memory, a patch's entries ordered (p, q, channel), so that every copy
# moves runs of C contiguous numbers (the textbook im2col writes single numbers k^2 apart).
# Inputs and outputs stay (batch, C, H, W) arrays, views the next layer reads without a copy.
# The transposed convolution gathers by phases where that pays (numvae.nn.conv_phases).

def im2col_channels_last(x, kernel_size, stride, padding):
    """``im2col`` with the columns in the order (p, q, channel) (eq. CV2).

    x: (batch, C, H, W), fastest when it is a view of (batch, H, W, C) memory ->
    cols: (batch * H_out * W_out, kernel_size**2 * C). One copy through a sliding-window view
    (after the padding's), split by examples when numvae.nn.threads' pool is on.
    """
    batch, channels, height, width = x.shape
    h_out, w_out = (output_size(size, kernel_size, stride, padding) for size in (height, width))
    x_pad = np.zeros((batch, height + 2 * padding, width + 2 * padding, channels), x.dtype)
    copy_by_rows(x_pad[:, padding:padding + height, padding:padding + width],
                 x.transpose(0, 2, 3, 1))
    windows = sliding_window_view(x_pad, (kernel_size, kernel_size), axis=(1, 2))
    windows = windows[:, :stride * h_out:stride, :stride * w_out:stride]  # (batch, h, w, C, p, q)
    cols = np.empty((batch, h_out, w_out, kernel_size, kernel_size, channels), x.dtype)
    copy_by_rows(cols, windows.transpose(0, 1, 2, 4, 5, 3))
    return cols.reshape(batch * h_out * w_out, -1)


def col2im_channels_last(cols, x_shape, kernel_size, stride, padding):
    """``col2im`` for columns in the order (p, q, channel), the adjoint of
    ``im2col_channels_last`` (eq. CV3). Returns a (batch, C, H, W) view of (batch, H, W, C)
    memory."""
    batch, channels, height, width = x_shape
    h_out, w_out = (output_size(size, kernel_size, stride, padding) for size in (height, width))
    cols = cols.reshape(batch, h_out, w_out, kernel_size, kernel_size, channels)
    x_pad = np.zeros((batch, height + 2 * padding, width + 2 * padding, channels), cols.dtype)
    for p in range(kernel_size):
        for q in range(kernel_size):
            window = x_pad[:, p:p + stride * h_out:stride, q:q + stride * w_out:stride]
            window += cols[:, :, :, p, q]  # (batch, h, w, C)
    return x_pad[:, padding:padding + height, padding:padding + width].transpose(0, 3, 1, 2)


def _kernel_channels_last(weight):
    """(A, B, k, k) weights -> the (A, k * k * B) matrix whose columns are ordered (p, q, b)."""
    return weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def conv_transpose_channels_last(x, weight, y_shape, stride, padding):
    """col2im(X V) of eq. CV7 without bias, x (batch, C_in, H, W), weight (C_in, C_out, Q, Q)
    -> ``y_shape``: by phases (eq. CV8) where that pays, else one product and col2im."""
    kernel_size = weight.shape[2]
    if phases_pay(x.shape, y_shape, kernel_size, stride, padding):
        return transposed_conv_by_phases(x, weight, y_shape, stride, padding)
    x_rows = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])  # (batch h w, C_in)
    cols = x_rows @ _kernel_channels_last(weight)              # (batch h w, k k C_out)
    return col2im_channels_last(cols, y_shape, kernel_size, stride, padding)


def _write_kernel_gradient(grad, matrix):
    """grad[...] = the (A, k * k * B) matrix of columns (p, q, b) as (A, B, k, k), in place."""
    a, b, k, _ = grad.shape
    grad[...] = matrix.reshape(a, k, k, b).transpose(0, 3, 1, 2)


class FastConv2d(Conv2d):
    """Conv2d on the channels-last path: same parameters, results and equations (CV1-CV6)."""

    def forward(self, x):
        """x: (batch, C_in, H, W) -> y: (batch, C_out, H_out, W_out), cache (eqs. CV1, CV2)."""
        _check_images(x, self.in_channels, self.kernel_size, self.padding)
        batch, _, height, width = x.shape
        h_out = output_size(height, self.kernel_size, self.stride, self.padding)
        w_out = output_size(width, self.kernel_size, self.stride, self.padding)
        cols = im2col_channels_last(x, self.kernel_size, self.stride, self.padding)
        y = cols @ _kernel_channels_last(self.params["W"]).T  # (batch h w, C_out)
        y += self.params["b"]
        y = y.reshape(batch, h_out, w_out, self.out_channels).transpose(0, 3, 1, 2)
        return y, (cols, x.shape)

    def backward(self, dy, cache, need_input_grad=True):
        """dy: (batch, C_out, H_out, W_out) -> dx: (batch, C_in, H, W) (eqs. CV4-CV6)."""
        cols, x_shape = cache
        dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)  # (batch h w, C_out)
        _write_kernel_gradient(self.grads["W"], dy_rows.T @ cols)
        self.grads["b"][...] = dy_rows.sum(axis=0)
        if not need_input_grad:
            return None
        return conv_transpose_channels_last(dy, self.params["W"], x_shape, self.stride,
                                            self.padding)


class FastConvTranspose2d(ConvTranspose2d):
    """ConvTranspose2d on the channels-last path: same parameters, results and equation (CV7)."""

    def forward(self, x):
        """x: (batch, C_in, H, W) -> y: (batch, C_out, H_out, W_out), cache (eq. CV7)."""
        y_shape = self._check_input(x)
        x_rows = x.transpose(0, 2, 3, 1).reshape(-1, self.in_channels)  # (batch h w, C_in)
        y = conv_transpose_channels_last(x, self.params["W"], y_shape, self.stride, self.padding)
        y += self.params["b"][:, None, None]
        return y, (x_rows, x.shape)

    def backward(self, dy, cache, need_input_grad=True):
        """dy: (batch, C_out, H_out, W_out) -> dx: (batch, C_in, H, W) (eq. CV7)."""
        x_rows, (batch, _, height, width) = cache
        dcols = im2col_channels_last(dy, self.kernel_size, self.stride, self.padding)
        kernel = _kernel_channels_last(self.params["W"])                  # (C_in, k k C_out)
        _write_kernel_gradient(self.grads["W"], x_rows.T @ dcols)
        self.grads["b"][...] = dy.sum(axis=(0, 2, 3))
        if not need_input_grad:
            return None
        dx_rows = dcols @ kernel.T                                        # (batch h w, C_in)
        return dx_rows.reshape(batch, height, width, self.in_channels).transpose(0, 3, 1, 2)
