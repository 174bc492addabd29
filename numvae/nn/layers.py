"""Layers written by hand: each forward stores what its backward needs.

Contract (the same for every layer, see docs/derivations.md, section "Layers"), the
cache handed over explicitly as in cs231n's ``layers.py``:

* ``y, cache = layer.forward(x)``: the output, and what backward will need;
* ``dx = layer.backward(dy, cache)``: takes dL/dy and that cache, writes the parameter
  gradients into ``layer.grads`` (same keys and shapes as ``layer.params``; in place,
  because a model's gradients are views into one flat buffer) and returns dL/dx.

A layer keeps no record of its last call, so two forward passes in a row cannot pair
the wrong batch with a backward pass.

``d<name>`` always means the gradient of the loss with respect to ``<name>`` and has
exactly the shape of ``<name>``.
"""
import numpy as np

from numvae.nn.threads import split_rows, worth_splitting
from numvae.validation import check_positive_int


def check_float_dtype(dtype):
    """A layer's parameter dtype: float32 or float64 (an integer dtype would truncate the
    initial weights to zeros)."""
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {np.dtype(dtype).name}")
    return np.dtype(dtype)


def check_input(x, shape, name="x"):
    """Raise unless ``x`` is a real floating-point array of ``shape``, a tuple whose None
    entries take any size (the batch). Called only once a layer's cheap test has failed
    (``x.ndim``, one size and ``x.dtype.kind``), so that it costs nothing on the hot path."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array; got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name} has dtype {x.dtype}; expected real floating point (float32 "
                        f"or float64): cast it with x.astype(np.float32)")
    expected = ", ".join("batch" if size is None else str(size) for size in shape)
    raise ValueError(f"{name} has shape {x.shape}; expected ({expected})")


class Layer:
    """Base class: a layer without parameters has empty ``params`` and ``grads``.

    ``skips_input_grad``: its backward takes ``need_input_grad=False`` (Dense, the
    convolutions), so that a network's first layer skips the gradient nobody needs.
    """
    skips_input_grad = False

    def __init__(self):
        self.params = {}
        self.grads = {}

    def __repr__(self):
        return f"{type(self).__name__}()"


def check_generator(rng, owner):
    """``rng`` if it is a ``numpy.random.Generator``, else a TypeError naming ``owner``:
    initial values come from a generator the caller owns and seeded, never from a fresh
    unseeded one (whose draws no one could repeat)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{owner} needs rng=, a numpy.random.Generator for its initial values "
                        f"(e.g. numpy.random.default_rng(0)); got {type(rng).__name__}")
    return rng


class Owned(dict):
    """{name: array} of arrays that belong to layers, each given as (the layer's dict,
    key). Reading an entry reads the layer's array; assigning an entry assigns the layer's
    too, so that the layer computes with the new array (the fast Adam moves a model's
    parameters into one flat buffer this way, ``numvae.training.optim_fast``)."""

    def __init__(self, owners):
        super().__init__({name: arrays[key] for name, (arrays, key) in owners.items()})
        self.owners = owners

    def __setitem__(self, name, value):
        super().__setitem__(name, value)
        arrays, key = self.owners[name]
        arrays[key] = value


class Dense(Layer):
    """Affine layer y = x @ W + b (derivations.md, eq. D1).

    W has shape (in_features, out_features) and b shape (out_features,). Both are
    initialised as PyTorch's ``nn.Linear`` does by default, uniform(-1/sqrt(in), 1/sqrt(in)),
    so that a numvae model and a PyTorch model start from the same distribution.
    """

    skips_input_grad = True

    def __init__(self, in_features, out_features, *, rng=None, dtype=np.float32):
        super().__init__()
        in_features = check_positive_int(in_features, "in_features")
        out_features = check_positive_int(out_features, "out_features")
        dtype = check_float_dtype(dtype)
        rng = check_generator(rng, "Dense")
        bound = 1.0 / np.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.params = {
            "W": rng.uniform(-bound, bound, (in_features, out_features)).astype(dtype),
            "b": rng.uniform(-bound, bound, out_features).astype(dtype),
        }
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x):
        """x: (batch, in_features) -> y: (batch, out_features); the cache is x.

        x must be a real floating-point array (NaN passes through, as in NumPy and PyTorch):
        complex, object or integer input, or another shape, is refused by three comparisons.
        """
        if getattr(x, "ndim", None) != 2 or x.shape[1] != self.in_features or x.dtype.kind != "f":
            check_input(x, (None, self.in_features))
        y = x @ self.params["W"]
        y += self.params["b"]  # in place: no second (batch, out) temporary
        return y, x

    def backward(self, dy, cache, need_input_grad=True):
        """dy: (batch, out_features), cache x -> dx: (batch, in_features) (eq. D2).

        dW = x^T dy, db = sum over the batch of dy, dx = dy W^T. The first layer of a
        network has no use for dx, so ``need_input_grad=False`` skips that product.
        """
        x = cache
        np.matmul(x.T, dy, out=self.grads["W"])
        np.sum(dy, axis=0, out=self.grads["b"])
        if need_input_grad:
            return dy @ self.params["W"].T
        return None

    def __repr__(self):
        return f"Dense({self.in_features}, {self.out_features})"


class ReLU(Layer):
    """y = max(x, 0); backward dx = dy * 1[x > 0] (eq. D3). The cache is y (y > 0 where x > 0)."""

    def forward(self, x):
        if worth_splitting(x.size):  # the faster path (end of this file): the same numbers
            y = relu_rows(x)
            return y, y
        y = np.maximum(x, 0)
        return y, y

    def backward(self, dy, cache):
        if dy.shape == cache.shape and worth_splitting(dy.size):
            return relu_backward_rows(dy, cache)
        return dy * (cache > 0)


def as_float_array(a):
    """``a`` as a float ndarray: float arrays as they are, anything else (integers, booleans,
    Python numbers) converted to float64 first, so that no arithmetic is done in integers."""
    a = np.asarray(a)
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def sigmoid(a):
    """Logistic function 1 / (1 + exp(-a)), exact and warning-free for any a (eq. D4).

    For a below about -88 (float32) or -709 (float64), exp(-a) overflows to inf and
    1 / (1 + inf) = 0, which is the correctly rounded value: the overflow is harmless,
    so it is silenced rather than avoided. (The textbook alternative, branching on the
    sign of a, is exact too but about eight times slower in NumPy.)
    """
    a = as_float_array(a)
    if worth_splitting(a.size):  # the faster path (end of this file): the same numbers
        return sigmoid_rows(a)
    e = np.negative(a, out=np.empty_like(a))  # out=: an array even for 0-d input
    with np.errstate(over="ignore"):
        np.exp(e, out=e)  # in place: one (batch, input_dim) temporary for the whole sigmoid
    e += 1.0
    return np.reciprocal(e, out=e)


class Sigmoid(Layer):
    """y = sigmoid(x); backward dx = dy * y * (1 - y) (eq. D4). The cache is y."""

    def forward(self, x):
        y = sigmoid(x)
        return y, y

    def backward(self, dy, cache):
        y = cache
        if dy.shape == y.shape and worth_splitting(dy.size):
            return sigmoid_backward_rows(dy, y)
        return dy * y * (1 - y)


class Tanh(Layer):
    """y = tanh(x); backward dx = dy * (1 - y^2) (eq. D5). The cache is y."""

    def forward(self, x):
        if worth_splitting(x.size):
            y = np.empty_like(x)
            split_rows(lambda start, stop: np.tanh(x[start:stop], out=y[start:stop]),
                       len(x), x.size)
            return y, y
        y = np.tanh(x)
        return y, y

    def backward(self, dy, cache):
        y = cache
        if dy.shape == y.shape and worth_splitting(dy.size):
            return tanh_backward_rows(dy, y)
        return dy * (1 - y * y)


# the hidden activations a model may choose by name (``VAE(..., activation=...)``)
ACTIVATIONS = {"relu": ReLU, "tanh": Tanh}


class Sequential(Layer):
    """Layers applied in order. Parameters are named ``"<index>.<name>"`` like PyTorch's
    ``nn.Sequential``, e.g. ``"0.W"`` for the first Dense layer's weights."""

    def __init__(self, *layers):
        self.layers = list(layers)

    @property
    def params(self):
        """{"<index>.<name>": array} of the layers' own arrays (read afresh, never stale)."""
        return {f"{index}.{name}": value for index, layer in enumerate(self.layers)
                for name, value in layer.params.items()}

    @property
    def grads(self):
        return {f"{index}.{name}": value for index, layer in enumerate(self.layers)
                for name, value in layer.grads.items()}

    def __getitem__(self, index):
        if isinstance(index, slice):
            # A view sharing the same layer objects (and so the same parameters).
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def forward(self, x):
        """The layers in order. The cache holds each layer's own cache and its output
        (references, not copies), so that the inspector can show every intermediate."""
        caches, outputs = [], []
        for layer in self.layers:
            x, cache = layer.forward(x)
            caches.append(cache)
            outputs.append(x)
        return x, dict(layers=caches, outputs=outputs)

    def backward(self, dy, cache, need_input_grad=True):
        """dL/d(output) -> dL/d(input), through the layers in reverse order. With
        ``need_input_grad=False`` the first layer skips the gradient for the input."""
        return self.backward_steps(dy, cache, need_input_grad)[0]

    def backward_steps(self, dy, cache, need_input_grad=True):
        """The same backward pass, returning every gradient it computes: a list whose
        entry i is dL/d(input of layer i), entry 0 being dL/d(input of the network)
        and the last entry dy itself. With ``need_input_grad=False`` the pass stops at the
        first layer with parameters (a Reshape before a convolution needs no gradient):
        the entries up to it are None."""
        steps = [None] * len(self.layers) + [dy]
        first = next((i for i, layer in enumerate(self.layers) if layer.params), 0)
        for index in range(len(self.layers) - 1, -1, -1):
            layer, layer_cache = self.layers[index], cache["layers"][index]
            if index < first and not need_input_grad:
                break
            if index == first and layer.skips_input_grad:
                dy = layer.backward(dy, layer_cache, need_input_grad=need_input_grad)
            else:
                dy = layer.backward(dy, layer_cache)
            steps[index] = dy
        return steps

    def __repr__(self):
        return "Sequential(" + ", ".join(repr(layer) for layer in self.layers) + ")"


# --- THE FASTER PATH: the passes above, split by rows over threads --------------------------
# Each function below does exactly what the textbook line it replaces does, on rows
# start..stop at a time: the same NumPy operations on the same numbers in the same order, so
# the result is bit for bit the textbook's (tests/test_threads.py). The pool
# (numvae.nn.threads) runs the row ranges at once; it is used only for arrays of at least
# its ``min_entries`` entries and with more than one thread (NUMVAE_THREADS=1: never).

def _like(a, b):
    """An empty array for ``a op b``, both of one shape (the dtype NumPy's arithmetic gives)."""
    return np.empty(a.shape, np.result_type(a, b))


def relu_rows(x):
    """np.maximum(x, 0), split by rows."""
    y = np.empty_like(x)
    split_rows(lambda start, stop: np.maximum(x[start:stop], 0, out=y[start:stop]),
               len(x), x.size)
    return y


def relu_backward_rows(dy, y):
    """dy * (y > 0), split by rows."""
    dx = np.empty(dy.shape, dy.dtype)  # a float times a bool keeps the float's dtype
    split_rows(lambda start, stop: np.multiply(dy[start:stop], y[start:stop] > 0,
                                               out=dx[start:stop]), len(dx), dx.size)
    return dx


def sigmoid_rows(a):
    """``sigmoid(a)`` (its four in-place passes), split by rows."""
    e = np.empty_like(a)

    def rows(start, stop):
        part = np.negative(a[start:stop], out=e[start:stop])
        np.exp(part, out=part)
        part += 1.0
        np.reciprocal(part, out=part)
    with np.errstate(over="ignore"):  # as in sigmoid; the workers share this setting
        split_rows(rows, len(a), a.size)
    return e


def sigmoid_backward_rows(dy, y):
    """dy * y * (1 - y), split by rows."""
    dx = _like(dy, y)

    def rows(start, stop):
        part = np.multiply(dy[start:stop], y[start:stop], out=dx[start:stop])
        part *= 1 - y[start:stop]
    split_rows(rows, len(dx), dx.size)
    return dx


def tanh_backward_rows(dy, y):
    """dy * (1 - y * y), split by rows."""
    dx = _like(dy, y)

    def rows(start, stop):
        one_minus = np.multiply(y[start:stop], y[start:stop])
        np.subtract(1, one_minus, out=one_minus)
        np.multiply(dy[start:stop], one_minus, out=dx[start:stop])
    split_rows(rows, len(dx), dx.size)
    return dx
