"""Finite-difference gradient checks, in float64 with central differences (eq. C1):

    df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2 h),   error O(h^2).

The error measure is the largest absolute difference divided by the largest magnitude
of the two gradients (``relative_error``). A correct float64 gradient gives about 1e-9 on
a tiny model and up to about 1e-6 when the loss is large (rounding error grows like
machine epsilon * |f| / h); a gradient off by a factor of 2 gives exactly 0.5.
"""
import numpy as np

from numvae.validation import check_positive_float, check_positive_int


def relative_error(analytic, numeric):
    """max |analytic - numeric| / max(max |analytic|, max |numeric|), 0 when both are 0."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"analytic has shape {analytic.shape}; numeric has {numeric.shape}")
    scale = max(np.max(np.abs(analytic), initial=0.0), np.max(np.abs(numeric), initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(analytic - numeric)) / scale)


class GradientError(float):
    """The relative error of one array's gradient (a float, compared and printed as one),
    saying what it rests on: ``checked``, the number of entries (or directions) compared,
    and ``zero_everywhere``, true when the analytic gradient is 0 in every entry of the
    array. Then a small error only says that the numeric gradient is 0 too where it was
    looked at: a check that may pass vacuously, so the printed value says so."""

    def __new__(cls, value, checked, zero_everywhere):
        error = super().__new__(cls, value)
        error.checked, error.zero_everywhere = int(checked), bool(zero_everywhere)
        return error

    def __repr__(self):
        text = float.__repr__(self)
        if self.zero_everywhere:
            text += " (analytic gradient zero everywhere: nothing non-zero was checked)"
        return text


def _entries_to_check(exact, n_entries, rng, nonzero_only):
    """The flat indices of ``exact`` to compare, or None for all of them.

    With ``nonzero_only``, ``n_entries`` are drawn among the entries whose analytic gradient
    is non-zero (all of them if there are fewer): entries that are 0 both ways (a dead ReLU,
    an always-black pixel) would let a check pass without testing anything. If the analytic
    gradient is 0 everywhere, the draw is among all entries, so that a gradient wrongly 0
    still meets a non-zero numeric one.
    """
    if n_entries is None:
        return None
    candidates = np.flatnonzero(exact) if nonzero_only else np.arange(exact.size)
    if candidates.size == 0:
        candidates = np.arange(exact.size)
    if n_entries >= candidates.size:
        return None if candidates.size == exact.size else candidates
    return rng.choice(candidates, size=n_entries, replace=False)


def _require_float64(array, name):
    if not isinstance(array, np.ndarray) or array.dtype != np.float64:
        dtype = getattr(array, "dtype", type(array).__name__)
        raise TypeError(f"{name} must be a float64 ndarray for a gradient check; got {dtype}")


def _analytic_for(analytic, name, array):
    """``analytic[name]`` as float64, with a named error if it is missing or misshapen."""
    if name not in analytic:
        raise ValueError(f"analytic has no gradient for {name!r}; expected one of shape {array.shape}")
    exact = np.asarray(analytic[name], np.float64)
    if exact.shape != array.shape:
        raise ValueError(f"analytic[{name!r}] has shape {exact.shape}; expected {array.shape} "
                         f"like the array it is the gradient of")
    return exact


def numerical_gradient(f, x, h=1e-5, indices=None):
    """Central-difference gradient of the scalar function ``f()`` with respect to ``x`` (eq. C1).

    ``x`` (float64) is perturbed in place, one entry at a time, and restored. ``indices``
    (flat indices) limits the check to some entries; the others are returned as NaN.
    """
    _require_float64(x, "x")
    grad = np.full(x.shape, np.nan) if indices is not None else np.zeros(x.shape)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)  # views: writes reach x and grad
    for i in (range(x.size) if indices is None else indices):
        original = flat_x[i]
        try:
            flat_x[i] = original + h
            f_plus = float(f())
            flat_x[i] = original - h
            f_minus = float(f())
        finally:  # x is the caller's (a model's parameters): never leave it perturbed
            flat_x[i] = original
        flat_grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def check_arrays(f, arrays, analytic, h=1e-5, n_entries=None, seed=0, nonzero_only=True):
    """Compare ``analytic[name]`` with the central difference of ``f()`` w.r.t. ``arrays[name]``.

    arrays, analytic: dicts name -> float64 array of the same shape; ``f()`` reads the
    arrays (which are perturbed in place). With ``n_entries``, a random subset of that
    many entries per array is checked, drawn among the entries whose analytic gradient is
    non-zero unless ``nonzero_only`` is false. Returns {name: maximum relative error}, each
    a ``GradientError`` that says how many entries were checked and whether the analytic
    gradient is zero everywhere.
    """
    h = check_positive_float(h, "h")
    if n_entries is not None:
        n_entries = check_positive_int(n_entries, "n_entries")
    rng = np.random.default_rng(seed)
    errors = {}
    for name, array in arrays.items():
        _require_float64(array, name)
        exact = _analytic_for(analytic, name, array).reshape(-1)
        indices = _entries_to_check(exact, n_entries, rng, nonzero_only)
        numeric = numerical_gradient(f, array, h, indices).reshape(-1)
        if indices is None:
            error, checked = relative_error(exact, numeric), exact.size
        else:
            error, checked = relative_error(exact[indices], numeric[indices]), len(indices)
        errors[name] = GradientError(error, checked, not exact.any())
    return errors


def check_layer(layer, x, h=1e-5, seed=0):
    """Check a layer's backward: input gradient and every parameter gradient.

    Uses the scalar L = sum(forward(x) * g) for a fixed random g, so dL/d(output) = g.
    x: float64 (batch, in_features). Returns {"x": err, "W": err, ...}.
    """
    _require_float64(x, "x")
    x = x.copy()
    y, cache = layer.forward(x)
    g = np.random.default_rng(seed).standard_normal(y.shape)

    def f():
        return np.sum(layer.forward(x)[0] * g)

    dx = layer.backward(g, cache)
    analytic = {"x": dx, **{name: grad.copy() for name, grad in layer.grads.items()}}
    return check_arrays(f, {"x": x, **layer.params}, analytic, h)


def directional_check(f, arrays, analytic, h=1e-5, n_directions=8, seed=0):
    """Check every entry of each array at once, along random directions (eq. C2).

    For unit vectors u_1..u_K drawn at random on the sphere of each array's entries,
    compare the analytic projections g . u_k with the central differences
    (f(w + h u_k) - f(w - h u_k)) / (2h): two evaluations of ``f`` per direction, however
    large the array. ``arrays``/``analytic`` as in ``check_arrays``. Returns {name: the
    ``relative_error`` of the K projections}; a gradient off by a factor 2 gives 0.5.
    """
    h = check_positive_float(h, "h")
    n_directions = check_positive_int(n_directions, "n_directions")
    rng = np.random.default_rng(seed)
    errors = {}
    for name, array in arrays.items():
        _require_float64(array, name)
        exact = _analytic_for(analytic, name, array)
        original = array.copy()
        projected, numeric = np.empty(n_directions), np.empty(n_directions)
        try:
            for k in range(n_directions):
                u = rng.standard_normal(array.shape)
                u /= np.linalg.norm(u)
                projected[k] = np.vdot(exact, u)
                np.add(original, h * u, out=array)
                f_plus = float(f())
                np.subtract(original, h * u, out=array)
                f_minus = float(f())
                numeric[k] = (f_plus - f_minus) / (2 * h)
        finally:  # the caller's parameters: never leave them perturbed
            array[...] = original
        errors[name] = GradientError(relative_error(projected, numeric), n_directions,
                                     not exact.any())
    return errors


def _float64_loss(model, x, eps, seed, y=None):
    """A float64 copy of ``model`` (or the model itself), x and a fixed eps; its gradient."""
    model = model if model.dtype == np.float64 else model.copy(np.float64)
    x = np.asarray(x, np.float64)
    if eps is None:
        eps = np.random.default_rng(seed).standard_normal(
            (model.n_samples, x.shape[0], model.latent_dim))
    eps = np.asarray(eps, np.float64)
    model.loss_and_grad(x, eps, y=y)
    analytic = {name: grad.copy() for name, grad in model.grads.items()}
    return model, x, eps, analytic


def check_model(model, x, eps=None, h=1e-5, n_entries=None, seed=0, nonzero_only=True, *,
                y=None):
    """Check ``model.loss_and_grad`` against central differences, per parameter.

    A float32 model is first copied to float64. ``eps`` is fixed (drawn once from
    ``seed`` if not given) so the loss is a deterministic function of the parameters.
    ``n_entries`` checks that many random entries of each parameter (None: all), among
    those whose analytic gradient is non-zero unless ``nonzero_only`` is false.
    ``y``: the labels (batch,) of a conditional model.
    Returns {parameter name: maximum relative error}, as ``check_arrays`` does.
    """
    model, x, eps, analytic = _float64_loss(model, x, eps, seed, y)
    return check_arrays(lambda: model.loss(x, eps, y=y), model.params, analytic, h, n_entries,
                        seed, nonzero_only)


def check_model_directions(model, x, eps=None, h=1e-5, n_directions=8, seed=0, *, y=None):
    """Like ``check_model``, but every entry of every parameter at once, along
    ``n_directions`` random directions per parameter (``directional_check``, eq. C2).

    Two loss evaluations per direction: the whole slides' model (444,404 entries) in a
    fraction of a second, where entry by entry would take minutes.
    Returns {parameter name: relative error of the projections}.
    """
    model, x, eps, analytic = _float64_loss(model, x, eps, seed, y)
    return directional_check(lambda: model.loss(x, eps, y=y), model.params, analytic, h,
                             n_directions, seed)
