"""THE 0.1.0 REFERENCE ADAM, used only by benchmarks/speed.py (``--sections adam``,
``--optimizer before``): numvae/training/optim.py as it was at commit 80a7efa, before the
redesign of issue 11 (one sweep over the flat buffer, whole arrays at a time, with a
denormal flush). It is kept here, unchanged but for the import of the validation helpers
(``from numvae.validation`` instead of ``from .validation``), so that the benchmark can
time today's optimisers against it. It is not part of the package; do not use it.

    git show 80a7efa:numvae/training/optim.py
"""
"""Optimisers that update the arrays of ``params`` in place.

Both take the dict ``params`` (name -> ndarray) at construction and a dict ``grads``
with the same keys at each ``step``; their state is a dict with the same keys too.
"""
import math
import numbers

import numpy as np

from numvae.validation import check_nonnegative_float, check_positive_float


def _check_params(params):
    if not isinstance(params, dict) or not params:
        raise TypeError(f"params must be a non-empty dict of name -> ndarray; got {type(params).__name__}")
    for name, value in params.items():
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise TypeError(f"params[{name!r}] must be a float ndarray; got {type(value).__name__}")


def _check_grads(params, grads):
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict of name -> ndarray like params; got {type(grads).__name__}")
    if grads.keys() != params.keys():
        missing, unexpected = sorted(set(params) - set(grads)), sorted(set(grads) - set(params))
        raise ValueError(f"grads must have the same keys as params; missing {missing}, "
                         f"unexpected {unexpected}")
    for name, grad in grads.items():
        if np.shape(grad) != params[name].shape:
            raise ValueError(f"grads[{name!r}] has shape {np.shape(grad)}; "
                             f"expected {params[name].shape}")


def flat_buffer(arrays):
    """The one 1-D array that the arrays of the dict ``arrays`` tile, in order and without
    gaps, or None. ``VAE.params`` and ``VAE.grads`` are such views (``VAE.flat_params``,
    ``VAE.flat_grads``); arbitrary dicts of arrays generally are not."""
    values = list(arrays.values())
    base = values[0].base
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    address, offset = base.__array_interface__["data"][0], 0
    for value in values:
        if (value.base is not base or not value.flags.c_contiguous
                or value.__array_interface__["data"][0] != address + offset * base.itemsize):
            return None
        offset += value.size
    return base if offset == base.size else None


def _zeros_like_views(params, flat):
    """A zero array shaped like ``flat`` (or None) and its views named like ``params``."""
    if flat is None:
        return None, {name: np.zeros_like(p) for name, p in params.items()}
    buffer, views, offset = np.zeros_like(flat), {}, 0
    for name, p in params.items():
        views[name] = buffer[offset: offset + p.size].reshape(p.shape)
        offset += p.size
    return buffer, views


class SGD:
    """Stochastic gradient descent with optional (heavy-ball) momentum (eq. O1).

    velocity <- momentum * velocity + grad;  param <- param - lr * velocity.
    """

    def __init__(self, params, lr, momentum=0.0):
        _check_params(params)
        self.params = params
        self.lr = check_positive_float(lr, "lr")
        self.momentum = check_nonnegative_float(momentum, "momentum")
        self.velocity = {name: np.zeros_like(p) for name, p in params.items()}
        self.t = 0

    def step(self, grads):
        _check_grads(self.params, grads)
        self.t += 1
        for name, param in self.params.items():
            velocity = self.velocity[name]
            velocity *= self.momentum
            velocity += grads[name]
            param -= self.lr * velocity

    def state_dict(self):
        return {"t": self.t, **{f"velocity.{n}": v for n, v in self.velocity.items()}}

    def load_state_dict(self, state):
        self.t = int(state["t"])
        for name in self.velocity:
            self.velocity[name][...] = state[f"velocity.{name}"]


class Adam:
    """Adam, Kingma & Ba (2015), Algorithm 1 with bias correction (eq. O2):

        m <- beta1 m + (1 - beta1) g,         v <- beta2 v + (1 - beta2) g^2,
        m_hat = m / (1 - beta1^t),            v_hat = v / (1 - beta2^t),
        param <- param - lr * m_hat / (sqrt(v_hat) + eps),

    computed as param -= step_size * m / (sqrt(v) + eps_hat) with step_size =
    lr sqrt(1 - beta2^t) / (1 - beta1^t) and eps_hat = eps sqrt(1 - beta2^t), which is
    the same number (derivations.md, O2).

    The moment estimates are inspectable as ``opt.m`` and ``opt.v`` (dicts like params).
    ``flush_every``: every so many steps, moment entries below ``tiny`` in magnitude are
    set to 0. Where a gradient has become exactly zero (a pixel that is always black),
    m decays geometrically into float32 denormal numbers, which CPUs handle very slowly;
    the flush changes the update by far less than float32 rounding does.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, *, flush_every=50,
                 tiny=1e-30):
        _check_params(params)
        self.params = params
        self.lr = check_positive_float(lr, "lr")
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or not all(isinstance(b, numbers.Real) and not isinstance(b, bool) and 0 <= b < 1
                           for b in betas)):
            raise ValueError(f"betas must be two numbers in [0, 1); got {betas!r}")
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = check_positive_float(eps, "eps")
        self.flush_every, self.tiny = flush_every, tiny
        # When the parameters tile one flat buffer (a VAE's do), the moments do too, and a
        # step updates everything in one sweep; otherwise array by array. Same arithmetic.
        self._flat_params = flat_buffer(params)
        self._flat_m, self.m = _zeros_like_views(params, self._flat_params)
        self._flat_v, self.v = _zeros_like_views(params, self._flat_params)
        # scratch space: the update is computed without new temporaries
        self._flat_scratch, self._scratch = _zeros_like_views(params, self._flat_params)
        self._names = list(params)  # the order in which params tile the flat buffer
        self._known_grads, self._known_flat_grads = (), None
        self.t = 0

    def _flat_grads(self, grads):
        """Check ``grads`` against the parameters; return the flat buffer it tiles, or None.

        A VAE hands over the very same gradient arrays at every step: then the check of
        their shapes and the lookup of their buffer are not repeated.
        """
        if (isinstance(grads, dict) and self._known_grads and list(grads) == self._names
                and all(a is b for a, b in zip(grads.values(), self._known_grads))):
            return self._known_flat_grads
        _check_grads(self.params, grads)
        # one sweep only if every gradient sits where its parameter sits in the flat buffer:
        # the same names in the same order (same shapes, checked above), tiling one buffer
        same_order = list(grads) == self._names
        flat = None if self._flat_params is None or not same_order else flat_buffer(grads)
        # remembered only for the flat case (the arrays are held, so their ids stay unique)
        self._known_grads = tuple(grads.values()) if flat is not None else ()
        self._known_flat_grads = flat
        return flat

    def step(self, grads):
        flat_grads = self._flat_grads(grads)
        self.t += 1
        bias1 = 1.0 - self.beta1 ** self.t
        bias2 = 1.0 - self.beta2 ** self.t
        # lr * m_hat / (sqrt(v_hat) + eps) = step_size * m / (sqrt(v) + eps_hat): the bias
        # corrections move into two scalars (plain Python floats, so float32 stays float32)
        step_size = self.lr * math.sqrt(bias2) / bias1
        eps_hat = self.eps * math.sqrt(bias2)
        flush = bool(self.flush_every) and self.t % self.flush_every == 0
        if flat_grads is not None:
            self._update(self._flat_params, flat_grads, self._flat_m, self._flat_v,
                         self._flat_scratch, step_size, eps_hat, flush)
        else:
            for name, param in self.params.items():
                self._update(param, grads[name], self.m[name], self.v[name],
                             self._scratch[name], step_size, eps_hat, flush)

    def _update(self, param, g, m, v, scratch, step_size, eps_hat, flush):
        """One Adam update of ``param`` in place (all arrays of one shape)."""
        m *= self.beta1                                   # m <- beta1 m + (1 - beta1) g
        np.multiply(g, 1.0 - self.beta1, out=scratch)
        m += scratch
        v *= self.beta2                                   # v <- beta2 v + (1 - beta2) g^2
        np.multiply(g, g, out=scratch)
        scratch *= 1.0 - self.beta2
        v += scratch
        if flush:
            m[np.abs(m) < self.tiny] = 0.0
            v[v < self.tiny] = 0.0
        np.sqrt(v, out=scratch)                           # scratch <- sqrt(v) + eps_hat
        scratch += eps_hat
        np.divide(m, scratch, out=scratch)                # scratch <- m / (...)
        scratch *= step_size
        param -= scratch

    def state_dict(self):
        state = {"t": self.t}
        for name in self.params:
            state[f"m.{name}"] = self.m[name]
            state[f"v.{name}"] = self.v[name]
        return state

    def load_state_dict(self, state):
        self.t = int(state["t"])
        for name in self.params:
            self.m[name][...] = state[f"m.{name}"]
            self.v[name][...] = state[f"v.{name}"]
