"""The encoder's distribution q_phi(z|x): one class per posterior, one registry.

A posterior names the encoder ``heads`` it needs and their widths (``head_widths``; each
a Dense layer on the shared features, named ``encoder.<head>`` like the slides' modules;
its own parameters, if any, in ``params``/``grads`` join the model's as
``posterior.<name>``) and has

* ``rsample(heads, eps)``: z drawn by reparameterisation, (S * batch, latent_dim), and
  a cache; ``rsample_backward(dz, cache)``: the gradient of each head from dL/dz;
* ``log_prob(cache)``: log q(z|x) of those draws, (S, batch), and its backward
  ``log_prob_backward(dlog_q, cache)`` (for Monte Carlo KLs and weighted bounds).

A new posterior (a normalising flow, say) is one class here plus one entry in
``POSTERIORS``.
"""
import math

import numpy as np

from .losses import safe_exp

LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian:
    """q(z|x) = N(mean, diag(exp(log_var))): the slides' encoder with two heads."""
    name = "diagonal_gaussian"
    heads = ("mean", "log_var")
    # for the inspector: the quantities of rsample's cache, and each head's gradient from z
    formulas = {"std": "std = exp(0.5 log_var)  (R1)",
                "eps": "eps ~ N(0, I), shape (S, batch, latent_dim)",
                "z": "z = mean + std * eps  (R1)"}
    backward_formulas = {"mean": "sum_s dL/dz * 1  (V3)",
                         "log_var": "sum_s dL/dz * 0.5 exp(0.5 log_var) eps  (V3)"}

    def settings(self):
        return {}

    def head_widths(self, latent_dim):
        """{head: width} of the encoder heads this posterior reads."""
        return {name: latent_dim for name in self.heads}

    @classmethod
    def from_config(cls, config, rng, dtype):
        return cls()

    def rsample(self, heads, eps):
        """z = mean + exp(0.5 log_var) * eps (eq. R1), one row per (sample, example).

        heads: {"mean", "log_var"} each (batch, latent_dim); eps: (S, batch, latent_dim).
        Returns z (S * batch, latent_dim) and the cache (mean, log_var, std, eps).
        """
        mean, log_var = heads["mean"], heads["log_var"]
        std = safe_exp(0.5 * log_var, "0.5 * log_var")            # sigma = exp(log_var / 2)
        z = (mean + std * eps).reshape(-1, mean.shape[-1])          # (S * batch, latent_dim)
        return z, dict(mean=mean, log_var=log_var, std=std, eps=eps)

    def rsample_backward(self, dz, cache):
        """dz (S * batch, latent_dim) -> {"mean": dmean, "log_var": dlog_var} (eq. V3).

        dz/dmean = 1 and dz/dlog_var = 0.5 exp(0.5 log_var) eps; each summed over the S samples.
        """
        eps = cache["eps"]
        dz_per_sample = dz.reshape(eps.shape)                       # (S, batch, latent_dim)
        return {"mean": dz_per_sample.sum(axis=0),
                "log_var": (dz_per_sample * (0.5 * cache["std"] * eps)).sum(axis=0)}

    def log_prob(self, cache):
        """log q(z|x) of the draws z = mean + std * eps (eq. I1): (S, batch).

        Since (z - mean) / std = eps: sum_j [-eps_j^2 / 2 - log_var_j / 2 - log(2 pi) / 2].
        """
        eps, log_var = cache["eps"], cache["log_var"]
        latent_dim = eps.shape[-1]
        return (-0.5 * np.sum(eps * eps, axis=-1) - 0.5 * np.sum(log_var, axis=-1)
                - 0.5 * latent_dim * LOG_2PI)

    def log_prob_backward(self, dlog_q, cache):
        """Gradient of L(log q(z|x)) with dL/dlog_q = ``dlog_q`` (S, batch) (eq. K4).

        log q is a function of z, mean and log_var; with u = (z - mean) / std = eps:
        d/dz = -u / std, d/dmean = u / std, d/dlog_var = (u^2 - 1) / 2 (each an explicit
        partial derivative, the others held fixed). Returns dz (S * batch, latent_dim) and
        {"mean", "log_var"} (batch, latent_dim), summed over the S samples.
        """
        eps, std = cache["eps"], cache["std"]
        weight = dlog_q[..., None]                                   # (S, batch, 1)
        dz_explicit = -weight * eps / std                            # (S, batch, latent_dim)
        heads = {"mean": -dz_explicit.sum(axis=0),
                 "log_var": (weight * 0.5 * (eps * eps - 1.0)).sum(axis=0)}
        return dz_explicit.reshape(-1, eps.shape[-1]), heads


class PointMass:
    """q(z|x) = delta(z - mean): a deterministic encoder, one head. With the objective
    "reconstruction" (no KL term) the VAE is then the plain autoencoder of the slides'
    first section, (e*, d*) = argmin L(x, d(e(x))), trained with the same ``fit``.

    z does not depend on eps: the S rows of a sample are the same ``mean``. A point mass
    has no density, so ``log_prob`` (and any KL to a prior) does not exist.
    """
    name = "point"
    heads = ("mean",)
    has_density = False          # no log_prob: no KL, no importance-weighted bound
    formulas = {"z": "z = mean, for each of the S samples (eps unused)"}
    backward_formulas = {"mean": "sum_s dL/dz  (no noise: z = mean)"}

    def settings(self):
        return {}

    def head_widths(self, latent_dim):
        return {"mean": latent_dim}

    @classmethod
    def from_config(cls, config, rng, dtype):
        return cls()

    def rsample(self, heads, eps):
        """z = mean, repeated for each of the S samples: (S * batch, latent_dim). eps
        (S, batch, latent_dim) only sets S; the cache keeps it, as every posterior's does."""
        mean = heads["mean"]
        z = np.tile(mean, (eps.shape[0], 1))                        # (S * batch, latent_dim)
        return z, dict(mean=mean, eps=eps)

    def rsample_backward(self, dz, cache):
        """dz (S * batch, latent_dim) -> {"mean": sum_s dz}: dz/dmean = 1 for every sample."""
        return {"mean": dz.reshape(cache["eps"].shape).sum(axis=0)}

    def log_prob(self, cache):
        raise ValueError("a point mass has no density, so no log q(z|x): no KL to the prior "
                         "and no importance-weighted bound; train a point-mass posterior with "
                         "objective=\"reconstruction\"")

    def log_prob_backward(self, dlog_q, cache):
        self.log_prob(cache)


POSTERIORS = {part.name: part for part in (DiagonalGaussian, PointMass)}
