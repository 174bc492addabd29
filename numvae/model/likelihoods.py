"""The decoder's distribution p_theta(x|z): one class per likelihood, one registry.

Every likelihood reads the decoder's last pre-activation ``logits`` a (rows, input_dim)
and its sigmoid ``output`` (the Bernoulli probabilities, or the Gaussian mean), and has

* ``nll(logits, x, output=None)``: -log p(x|z) per row, (rows,);
* ``nll_backward(dnll, logits, x, output)``: dL/dlogits (rows, input_dim) for a loss
  L with dL/dnll = ``dnll`` (rows,), and the named gradients it passed on the way
  (for ``numvae.diagnostics.inspect``);
* ``check_data(x, name)``: the values it can model; ``sample(output, rng)``;
* ``settings()``: its constructor's keyword arguments, which a checkpoint stores beside its
  ``name``; ``flat_names``: 0.2's keyword for each setting (``numvae.model.parts``);
  ``build(latent_dim, rng, dtype)``: the part ready for a model (the same for every kind of
  part; a likelihood has nothing to build).

A new likelihood is one class here plus one entry in ``LIKELIHOODS``: the model, the
evaluation, the inspector, the checkpoint reader and the command line all go through
this registry, and never test a likelihood's name.
"""
import numpy as np

from numvae.nn.layers import as_float_array, sigmoid
from numvae.nn.threads import split_rows, worth_splitting
from numvae.validation import check_positive_float

# --- Bernoulli likelihood -------------------------------------------------------------

def softplus(a):
    """log(1 + exp(a)), stable for any a: max(a, 0) + log1p(exp(-|a|)).

    exp(-|a|) never overflows, and log1p keeps its relative precision where it is tiny.
    Computed in place, in two new arrays instead of six (it is the training step's
    largest elementwise work).
    """
    a = as_float_array(a)
    out = np.abs(a, out=np.empty_like(a))  # out=: an array even for 0-d input
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(a, 0)
    return out


def bernoulli_nll(logits, x):
    """-log p(x|z) for p = sigmoid(logits), fused with the sigmoid (eq. B3).

    -log p(x|z) = sum_i [softplus(a_i) - x_i a_i], exact even where sigmoid(a) rounds to
    0 or 1 (the staged form below would take log 0 there).
    logits, x: (batch, input_dim) -> (batch,). x may be grey levels in [0, 1].
    """
    if _same_layout(logits, x) and _worth_the_rows(logits.size):
        return bernoulli_nll_rows(logits, x)  # the faster path (below): the same numbers
    return np.sum(softplus(logits) - x * logits, axis=-1)


def bernoulli_nll_backward(logits, x, probs=None):
    """Gradient of ``bernoulli_nll`` with respect to the logits: sigmoid(a) - x (eq. B4).

    ``probs``: sigmoid(logits) if the caller already has it (the decoder's output), so
    that the sigmoid is not computed twice.
    """
    return (sigmoid(logits) if probs is None else probs) - x


def bernoulli_nll_from_probs(probs, x):
    """Staged form -sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)] (eq. B1).

    Kept as the test oracle of the fused form; it is infinite where p_i is exactly 0 or 1.
    probs, x: (batch, input_dim) -> (batch,).
    """
    return -np.sum(x * np.log(probs) + (1 - x) * np.log1p(-probs), axis=-1)


def bernoulli_nll_from_probs_backward(probs, x):
    """Gradient of ``bernoulli_nll_from_probs``: (p - x) / (p (1 - p)) (eq. B2)."""
    return (probs - x) / (probs * (1 - probs))


class Bernoulli:
    """p(x|z) = prod_i sigmoid(a_i)^x_i (1 - sigmoid(a_i))^(1 - x_i) (eqs. B1-B4).

    Grey levels in [0, 1] are allowed: the loss is then the cross-entropy.
    """
    name = "bernoulli"
    nll_formula = "-log p(x|z) = sum_i softplus(a_i) - x_i a_i  (B3)"
    flat_names = {}

    def settings(self):
        return {}

    def build(self, latent_dim, rng, dtype):
        return self

    def check_data(self, x, name):
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"{name} has values in [{x.min():.4g}, {x.max():.4g}]; the Bernoulli "
                             f"likelihood needs values in [0, 1]")

    def nll(self, logits, x, output=None):
        """-log p(x|z) per row, fused with the sigmoid (eq. B3): (rows,). x broadcasts."""
        return bernoulli_nll(logits, x)

    def nll_backward(self, dnll, logits, x, output):
        """dL/dlogits = dnll * (sigmoid(a) - x) (eq. B4), the Sigmoid's own backward fused in.

        dnll: (rows,) or a number. Returns (dlogits, {}): no other gradient on the way.
        """
        if output is not None and _same_layout(output, x) and _worth_the_rows(output.size):
            return bernoulli_nll_backward_rows(dnll, output, x), {}  # the faster path (below)
        dlogits = bernoulli_nll_backward(logits, x, probs=output)
        dlogits *= _as_column(dnll)  # in place: a new array from the line above
        return dlogits, {}

    def backward_formulas(self):
        """(name, formula) of the rows ``nll_backward`` produces, for the inspector."""
        return [("d logits", "dL/da = dnll * (sigmoid(a) - x)  (B4, V2)")]

    def sample(self, output, rng):
        """Binary images drawn from Bernoulli(output): (rows, input_dim)."""
        return (rng.random(output.shape) < output).astype(output.dtype)


# --- Gaussian likelihood --------------------------------------------------------------

def gaussian_nll(prediction, x, sigma=1.0):
    """-log N(x; prediction, sigma^2 I) per example, constants included (eq. G1).

    = sum_i (x_i - prediction_i)^2 / (2 sigma^2) + (input_dim / 2) log(2 pi sigma^2).
    prediction, x: (batch, input_dim) -> (batch,).
    """
    residual = x - prediction
    n_dims = x.shape[-1]
    return (np.sum(residual * residual, axis=-1) / (2 * sigma**2)
            + 0.5 * n_dims * np.log(2 * np.pi * sigma**2))


def gaussian_nll_backward(prediction, x, sigma=1.0):
    """Gradient of ``gaussian_nll`` with respect to the prediction: (prediction - x) / sigma^2 (eq. G2)."""
    return (prediction - x) / sigma**2


class Gaussian:
    """p(x|z) = N(x; sigmoid(a), sigma^2 I) with a fixed sigma (eqs. G1, G2): the slides'
    squared error, in nats."""
    name = "gaussian"
    nll_formula = "-log p(x|z) = sum_i (x_i - out_i)^2 / (2 sigma^2) + N/2 log(2 pi sigma^2)  (G1)"
    flat_names = {"sigma": "sigma"}

    def __init__(self, *, sigma=1.0):
        self.sigma = check_positive_float(sigma, "sigma")

    def settings(self):
        return {"sigma": self.sigma}

    def build(self, latent_dim, rng, dtype):
        return self

    def check_data(self, x, name):
        """Any finite value (checked by the caller)."""

    def nll(self, logits, x, output=None):
        """-log N(x; output, sigma^2 I) per row (eq. G1): (rows,). x broadcasts."""
        output = sigmoid(logits) if output is None else output
        return gaussian_nll(output, x, self.sigma)

    def nll_backward(self, dnll, logits, x, output):
        """dL/dout = dnll * (out - x) / sigma^2 (eq. G2), then through the sigmoid,
        dL/da = dL/dout * out (1 - out) (eq. D4). Returns (dlogits, {"doutput": dL/dout})."""
        doutput = gaussian_nll_backward(output, x, self.sigma) * _as_column(dnll)
        dlogits = doutput * output * (1 - output)
        return dlogits, {"doutput": doutput}

    def backward_formulas(self):
        return [("d output", "dL/dout = dnll * (out - x) / sigma^2  (G2, V2)"),
                ("d logits", "dL/da = dL/dout * out (1 - out)  (D4)")]

    def sample(self, output, rng):
        """Draws x = output + sigma * noise: (rows, input_dim)."""
        return output + self.sigma * rng.standard_normal(output.shape).astype(output.dtype)


def _as_column(dnll):
    """dnll (rows,) as (rows, 1), to scale each row of a (rows, input_dim) array; a number
    stays a number."""
    return dnll[:, None] if np.ndim(dnll) == 1 else dnll


LIKELIHOODS = {part.name: part for part in (Bernoulli, Gaussian)}


# --- THE FASTER PATH: the Bernoulli passes by blocks of rows, and over threads -----------
# The same NumPy operations as bernoulli_nll and Bernoulli.nll_backward above, in the same
# order, on rows start..stop at a time (numvae.nn.threads runs the ranges at once), or on
# one thread in blocks of about BLOCK_ENTRIES entries, written into buffers instead of
# temporaries: a block's passes run on numbers still in the CPU's cache (as FastAdam's
# slices), where the whole (rows, pixels) array would stream through memory once per pass.
# Bit for bit the textbook's numbers (each row's sum is the same pairwise sum;
# tests/test_threads.py). Taken for large 2-D arrays of one shape and dtype: split over
# threads (each range whole) if the pool is on, else in blocks from BLOCKED_MIN_ENTRIES on
# (the IWAE's (K batch, 784) logits; a dense model's batch of 128, 100,352 entries, gains
# nothing from blocks, docs/performance.md).

BLOCK_ENTRIES = 32768  # 128 KiB of float32 per buffer: a block's arrays fit in L2
BLOCKED_MIN_ENTRIES = 262144


def _worth_the_rows(n_entries):
    return worth_splitting(n_entries) or n_entries >= BLOCKED_MIN_ENTRIES


def _same_layout(a, x):
    """True if ``a`` and ``x`` are 2-D arrays of one shape and dtype (no broadcasting)."""
    return (isinstance(x, np.ndarray) and isinstance(a, np.ndarray) and a.ndim == 2
            and a.shape == x.shape and a.dtype == x.dtype)


def _blocks(start, stop, n_columns, split):
    """(first, last) row bounds of start..stop in blocks of about BLOCK_ENTRIES entries, or
    one block if the pass is ``split`` over threads (there blocks measured no faster)."""
    step = stop - start if split else max(1, BLOCK_ENTRIES // n_columns)
    return [(first, min(first + step, stop)) for first in range(start, stop, max(1, step))]


def bernoulli_nll_rows(logits, x):
    """``bernoulli_nll``: sum_i softplus(a_i) - x_i a_i per row (eq. B3), by blocks of rows."""
    nll, split = np.empty(len(logits), logits.dtype), worth_splitting(logits.size)

    def rows(start, stop):
        blocks = _blocks(start, stop, logits.shape[1], split)
        size = (blocks[0][1] - blocks[0][0], logits.shape[1])
        loss_buffer, other_buffer = np.empty(size, logits.dtype), np.empty(size, logits.dtype)
        for first, last in blocks:
            a = logits[first:last]
            loss, other = loss_buffer[: last - first], other_buffer[: last - first]
            np.abs(a, out=loss)                   # softplus(a) = log1p(exp(-|a|)) + max(a, 0)
            np.negative(loss, out=loss)
            np.exp(loss, out=loss)
            np.log1p(loss, out=loss)
            np.maximum(a, 0, out=other)
            loss += other
            np.multiply(x[first:last], a, out=other)  # - x a
            loss -= other
            np.sum(loss, axis=-1, out=nll[first:last])
    split_rows(rows, len(logits), logits.size)
    return nll


def bernoulli_nll_backward_rows(dnll, probs, x):
    """``Bernoulli.nll_backward``: dnll * (sigmoid(a) - x) (eq. B4), by blocks of rows."""
    dlogits, split = np.empty_like(probs), worth_splitting(probs.size)
    column = _as_column(dnll)

    def rows(start, stop):
        for first, last in _blocks(start, stop, probs.shape[1], split):
            part = np.subtract(probs[first:last], x[first:last], out=dlogits[first:last])
            part *= column[first:last] if np.ndim(column) else column
    split_rows(rows, len(probs), probs.size)
    return dlogits
