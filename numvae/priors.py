"""The prior p(z): one class per prior, one registry.

A prior has ``log_prob(z)`` (rows,), its backward ``log_prob_backward(dlog_p, z)`` (the
gradient with respect to z, and to the prior's own parameters in ``grads`` if it has
any), and ``sample(n, rng)``. Its learnable parameters, if any, live in ``params`` and
``grads`` and join the model's as ``prior.<name>``.

A new prior (a Gaussian mixture, say) is one class here plus one entry in ``PRIORS``.
"""
import math

import numpy as np

LOG_2PI = math.log(2 * math.pi)


class StandardNormal:
    """p(z) = N(0, I), the slides' prior. No parameters."""
    name = "standard_normal"

    def __init__(self, latent_dim):
        self.latent_dim = int(latent_dim)
        self.params, self.grads = {}, {}

    def settings(self):
        return {}

    @classmethod
    def from_config(cls, config, rng, dtype):
        return cls(config["latent_dim"])

    def log_prob(self, z):
        """log N(z; 0, I) = sum_j [-z_j^2 / 2 - log(2 pi) / 2] (eq. I1): (..., latent_dim) -> (...)."""
        return -0.5 * np.sum(z * z, axis=-1) - 0.5 * self.latent_dim * LOG_2PI

    def log_prob_backward(self, dlog_p, z):
        """dL/dz = dlog_p * (-z) (eq. K4), for dL/dlog_p = ``dlog_p`` (rows,): (rows, latent_dim)."""
        return -dlog_p[:, None] * z

    def sample(self, n, rng):
        """n draws z ~ N(0, I): (n, latent_dim)."""
        return rng.standard_normal((n, self.latent_dim))


PRIORS = {part.name: part for part in (StandardNormal,)}
