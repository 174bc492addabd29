"""Optimisers that update the arrays of ``params`` in place.

Both take the dict ``params`` (name -> ndarray) at construction and a dict ``grads``
with the same keys at each ``step``; their state is a dict with the same keys too.
"""
from __future__ import annotations

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


def check_grads(params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
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


MAX_STEPS = 10**12  # steps t: a million epochs of a million steps


def _load_state(optimizer, state, moments):
    """Read ``t`` and the moment arrays named ``<moment>.<param name>`` from ``state`` into
    ``optimizer``, checking each first: a non-negative integer step, and arrays of exactly
    the parameter's shape (no broadcasting of a scalar), real and finite."""
    t = state["t"]
    t = t.item() if isinstance(t, np.ndarray) and t.shape == () else t
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t <= MAX_STEPS:
        raise ValueError(f"optimizer step t must be an integer >= 0 and <= {MAX_STEPS:,}; "
                         f"got {t!r}")
    for moment in moments:
        for name, target in getattr(optimizer, moment).items():
            value = np.asarray(state[f"{moment}.{name}"])
            if value.shape != target.shape or value.dtype.kind not in "fiu":
                raise ValueError(f"optimizer state {moment}.{name} has shape {value.shape} and "
                                 f"dtype {value.dtype}; expected real numbers of shape {target.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"optimizer state {moment}.{name} is not finite")
            if moment == "v" and value.min(initial=0) < 0:  # a mean of squares
                raise ValueError(f"optimizer state v.{name} has negative entries (down to "
                                 f"{value.min():.3g}); Adam's second moment is >= 0")
    optimizer.t = int(t)
    for moment in moments:
        for name, target in getattr(optimizer, moment).items():
            target[...] = state[f"{moment}.{name}"]


class SGD:
    """Stochastic gradient descent with optional (heavy-ball) momentum (eq. O1).

    velocity <- momentum * velocity + grad;  param <- param - lr * velocity.
    """

    def __init__(self, params: dict[str, np.ndarray], lr: float, momentum: float = 0.0) -> None:
        _check_params(params)
        self.params = params
        self.lr = check_positive_float(lr, "lr")
        self.momentum = check_nonnegative_float(momentum, "momentum")
        self.velocity = {name: np.zeros_like(p) for name, p in params.items()}
        self.t = 0

    def step(self, grads: dict[str, np.ndarray]) -> None:
        check_grads(self.params, grads)
        self.t += 1
        for name, param in self.params.items():
            velocity = self.velocity[name]
            velocity *= self.momentum
            velocity += grads[name]
            param -= self.lr * velocity

    def settings(self) -> dict:
        """The constructor's keyword arguments, as a checkpoint stores them."""
        return dict(lr=self.lr, momentum=self.momentum)

    def state_dict(self) -> dict:
        return {"t": self.t, **{f"velocity.{n}": v for n, v in self.velocity.items()}}

    def load_state_dict(self, state: dict) -> None:
        _load_state(self, state, ("velocity",))


class Adam:
    """Adam, Kingma & Ba (2015), Algorithm 1 with bias correction (eq. O2):

        m <- beta1 m + (1 - beta1) g,         v <- beta2 v + (1 - beta2) g^2,
        m_hat = m / (1 - beta1^t),            v_hat = v / (1 - beta2^t),
        param <- param - lr * m_hat / (sqrt(v_hat) + eps),

    computed as param -= step_size * m / (sqrt(v) + eps_hat) with step_size =
    lr sqrt(1 - beta2^t) / (1 - beta1^t) and eps_hat = eps sqrt(1 - beta2^t), which is
    the same number (derivations.md, O2). The moment estimates are ``opt.m`` and ``opt.v``
    (dicts like params). This is the textbook version, one array at a time;
    ``numvae.training.optim_fast.FastAdam`` is the same arithmetic, faster, and what ``numvae
    train`` uses.
    """

    def __init__(self, params: dict[str, np.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        _check_params(params)
        self.params = params
        self.lr = check_positive_float(lr, "lr")
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or not all(isinstance(b, numbers.Real) and not isinstance(b, bool) and 0 <= b < 1
                           for b in betas)):
            raise ValueError(f"betas must be two numbers in [0, 1); got {betas!r}")
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = check_positive_float(eps, "eps")
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}
        self.t = 0

    def step(self, grads: dict[str, np.ndarray]) -> None:
        check_grads(self.params, grads)
        self.t += 1
        step_size, eps_hat = self.corrected_step()
        for name, param in self.params.items():
            g, m, v = grads[name], self.m[name], self.v[name]
            m *= self.beta1
            m += (1.0 - self.beta1) * g                         # first moment
            v *= self.beta2
            v += (1.0 - self.beta2) * np.square(g)              # second moment
            param -= step_size * (m / (np.sqrt(v) + eps_hat))   # the bias-corrected step

    def corrected_step(self):
        """(step_size, eps_hat) of eq. O2 at step ``t``: the bias corrections moved into
        two scalars (plain Python floats, so that float32 arrays stay float32)."""
        bias1, bias2 = 1.0 - self.beta1 ** self.t, 1.0 - self.beta2 ** self.t
        return self.lr * math.sqrt(bias2) / bias1, self.eps * math.sqrt(bias2)

    def settings(self) -> dict:
        """The constructor's keyword arguments, as a checkpoint stores them."""
        return dict(lr=self.lr, betas=[self.beta1, self.beta2], eps=self.eps)

    def state_dict(self) -> dict:
        state = {"t": self.t}
        for name in self.params:
            state[f"m.{name}"] = self.m[name]
            state[f"v.{name}"] = self.v[name]
        return state

    def load_state_dict(self, state: dict) -> None:
        _load_state(self, state, ("m", "v"))
