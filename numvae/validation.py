"""Checks at the public boundary: bad input gets an error that names the argument,
what was expected and what came, before NumPy fails somewhere deep inside."""
import json
import numbers

import numpy as np

EPS_LIMIT = 1e3


def few(names, shown=3):
    """'a, b, c and 5 more': a long list cut to a few entries and a count, so that a
    message stays one short line whatever the list."""
    names = [str(name) for name in names]
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown:,} more"


def parse_json(text):
    """``json.loads(text)``, every failure a ValueError: nesting deeper than the parser's
    recursion allows (100,000 brackets) included, which would be a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("it is nested too deeply (more than about 1,000 levels of brackets)"
                         ) from None


def shown(value, most=80):
    """repr(value), cut to ``most`` characters: a message stays one short line."""
    text = repr(value)
    return text if len(text) <= most else f"{text[:most]}... ({len(text):,} characters)"


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(value, name):
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_nonnegative_int(value, name):
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    return int(value)


def check_positive_float(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive finite number; got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


def check_nonnegative_float(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number >= 0; got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def check_choice(value, name, registry):
    """``value`` must be one of the names of ``registry`` (a dict name -> part)."""
    if not isinstance(value, str) or value not in registry:
        raise ValueError(f"{name} must be one of {', '.join(repr(k) for k in registry)}; "
                         f"got {value!r}")
    return value


def check_widths(sizes, name):
    """Hidden widths: a tuple (or list, or any iterable, read once) of positive integers."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"{name} must be a tuple of positive integers; got {shown(sizes)}")
    sizes = tuple(sizes)  # once: a generator would be empty on a second reading
    for size in sizes:
        if not _is_int(size) or size <= 0:
            listed = repr(sizes) if len(sizes) <= 5 else f"({few(sizes)})"
            raise ValueError(f"{name} must be a tuple of positive integers; got {listed}")
    return tuple(int(size) for size in sizes)


def check_vae_config(input_dim, shared_dim, latent_dim, dtype, seed=None):
    """The network's settings of ``numvae.VAE`` (each part checks its own)."""
    for value, name in [(input_dim, "input_dim"), (shared_dim, "shared_dim"),
                        (latent_dim, "latent_dim")]:
        check_positive_int(value, name)
    if seed is not None and (not _is_int(seed) or seed < 0):
        raise ValueError(f"seed must be None or an integer >= 0; got {seed!r}")
    if dtype is None:  # np.dtype(None) would silently be float64
        raise TypeError("dtype must be float32 or float64; got None")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; got {np.dtype(dtype).name}")


def _as_float_array(value, name):
    """``value`` as an array, refusing strings, objects, bools mixed in as text, etc."""
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array; numvae would ignore its mask: fill or drop "
                        f"the masked entries first (np.ma.filled, np.ma.compress_rows)")
    array = np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array; got dtype {array.dtype}")
    return array


def integer_hint(x):
    """How to bring integer pixels into [0, 1], for the range they seem to come in."""
    top = int(x.max())
    if top <= 16:
        return "for pixels in 0-16 (scikit-learn's 8x8 digits), divide by 16"
    if top <= 255:
        return "for 8-bit pixels (0-255), divide by 255"
    return f"divide by the largest value the pixels can take (at least {top})"


def check_data(x, input_dim, dtype, name="x", support=None):
    """A batch of data (batch, input_dim) of finite values, cast to ``dtype``.

    ``support(x, name)``: the likelihood's own check of the values (``check_data`` of a
    part in ``numvae.model.likelihoods``), run on the values as given, before the cast.
    """
    x = _as_float_array(x, name)
    if x.ndim != 2 or x.shape[1] != input_dim:
        hint = ": flatten the images first" if x.ndim > 2 else ""
        raise ValueError(f"{name} has shape {x.shape}; expected (batch, {input_dim}){hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {x.shape}); expected at least one row")
    if x.dtype.kind in "iu" and x.max() > 1:
        raise ValueError(f"{name} holds integers up to {x.max()}; expected values in [0, 1]: "
                         f"{integer_hint(x)}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if support is not None:
        support(x, name)
    return _cast_finite(x, dtype, name)


def _cast_finite(array, dtype, name):
    """``array`` in ``dtype``; an error, not an overflow warning, if it does not fit."""
    with np.errstate(over="ignore"):
        cast = array.astype(dtype, copy=False)
    # only a conversion can overflow: the callers have checked the original for NaN/inf
    if cast is not array and cast.dtype.kind == "f" and not np.isfinite(cast).all():
        raise ValueError(f"{name} has values beyond the {np.dtype(dtype).name} range")
    return cast


def check_eps(eps, batch, latent_dim, dtype):
    """eps of shape (batch, latent_dim) or (n_samples, batch, latent_dim) -> 3-D, ``dtype``."""
    eps = _as_float_array(eps, "eps")
    if not (eps.ndim in (2, 3) and eps.shape[-2:] == (batch, latent_dim) and eps.size > 0):
        raise ValueError(f"eps has shape {eps.shape}; expected ({batch}, {latent_dim}) or "
                         f"(n_samples, {batch}, {latent_dim})")
    if eps.dtype.kind == "f" and not np.isfinite(eps).all():
        raise ValueError("eps contains NaN or infinite values")
    if np.abs(eps).max() > EPS_LIMIT:  # N(0, 1) draws beyond 1000 are a bug, not bad luck
        raise ValueError(f"eps has values up to {np.abs(eps).max():.4g}; expected draws from "
                         f"N(0, I), |eps| <= {EPS_LIMIT:g}")
    return _cast_finite(eps.reshape(-1, batch, latent_dim), dtype, "eps")


def check_latent(z, latent_dim, dtype):
    """Latent points z of shape (batch, latent_dim), finite."""
    z = _as_float_array(z, "z")
    if z.ndim != 2 or z.shape[1] != latent_dim or z.shape[0] == 0:
        raise ValueError(f"z has shape {z.shape}; expected (batch, {latent_dim})")
    if z.dtype.kind == "f" and not np.isfinite(z).all():
        raise ValueError("z contains NaN or infinite values")
    return _cast_finite(z, dtype, "z")


class NumericalError(FloatingPointError):
    """A quantity that must be finite is not (overflow, NaN)."""


def safe_exp(a, name):
    """exp(a), raising NumericalError naming ``name`` instead of warning on overflow."""
    with np.errstate(over="ignore"):
        out = np.exp(a)
    if not np.isfinite(out).all():
        raise NumericalError(
            f"exp({name}) is not finite: {name} reached {np.nanmax(a):.4g} "
            f"(or is NaN); training has diverged, try a smaller learning rate")
    return out
