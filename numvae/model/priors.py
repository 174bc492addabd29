"""The prior p(z): one class per prior, one registry.

A prior has ``log_prob(z)`` (rows,), its backward ``log_prob_backward(dlog_p, z)`` (the
gradient with respect to z, and to the prior's own parameters in ``grads`` if it has
any), and ``sample(n, rng)``. Its learnable parameters, if any, live in ``params`` and
``grads`` and join the model's as ``prior.<name>``.

A new prior is one class here plus one entry in ``PRIORS``: ``GaussianMixture`` is one.
Its settings are its constructor's keyword arguments (``GaussianMixture(components=10)``);
``build(latent_dim, rng, dtype)`` makes its parameters, drawn from ``rng``, the model's
generator (never from an unseeded one).
"""
import math

import numpy as np

from numvae.nn.layers import check_generator
from numvae.validation import check_positive_int

LOG_2PI = math.log(2 * math.pi)


class StandardNormal:
    """p(z) = N(0, I), the slides' prior. No parameters."""
    name = "standard_normal"
    flat_names = {}

    def __init__(self):
        self.latent_dim = None  # set by build
        self.params, self.grads = {}, {}

    def settings(self):
        return {}

    def build(self, latent_dim, rng=None, dtype=None):
        """N(0, I) in ``latent_dim`` dimensions (nothing to draw): returns self."""
        self.latent_dim = int(latent_dim)
        return self

    def log_prob(self, z):
        """log N(z; 0, I) = sum_j [-z_j^2 / 2 - log(2 pi) / 2] (eq. I1): (..., latent_dim) -> (...)."""
        return -0.5 * np.sum(z * z, axis=-1) - 0.5 * self.latent_dim * LOG_2PI

    def log_prob_backward(self, dlog_p, z):
        """dL/dz = dlog_p * (-z) (eq. K4), for dL/dlog_p = ``dlog_p`` (rows,): (rows, latent_dim)."""
        return -dlog_p[:, None] * z

    def sample(self, n, rng):
        """n draws z ~ N(0, I): (n, latent_dim)."""
        return rng.standard_normal((n, self.latent_dim))


def _log_softmax(logits):
    """log softmax over the last axis, stably: subtract the max before exp."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


class GaussianMixture:
    """p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)), pi = softmax(logits) (eq. GM1): the
    slides' Gaussian mixture model, now as the prior, its parameters learnt with the rest.

    Setting: ``components`` K. ``build`` makes the parameters ``logits`` (K,), ``means``
    (K, latent_dim), ``log_var`` (K, latent_dim) (log sigma_k^2, one symbol one meaning),
    named ``prior.<name>`` in the model. Initial values: means N(0, 1) draws from the
    model's generator (the components start apart), log_var 0 and logits 0 (equal weights).
    """
    name = "mixture"
    flat_names = {"prior_components": "components"}

    def __init__(self, *, components=10):
        self.components = check_positive_int(components, "components")
        self.latent_dim = None  # set by build
        self.params, self.grads = {}, {}

    def settings(self):
        return {"components": self.components}

    def build(self, latent_dim, rng, dtype):
        """The parameters for a latent space of ``latent_dim``, the means drawn from ``rng``
        (the model's generator, or any you own): returns self."""
        check_generator(rng, "GaussianMixture.build")
        self.latent_dim = int(latent_dim)
        k, m = self.components, self.latent_dim
        self.params = {"logits": np.zeros(k, dtype),
                       "means": rng.standard_normal((k, m)).astype(dtype),
                       "log_var": np.zeros((k, m), dtype)}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        return self

    def _component_log_probs(self, z):
        """ell_k(z) = log pi_k + log N(z; mu_k, diag(sigma_k^2)) (eq. GM1): (rows, K), and
        the cache (the scaled distances u = (z - mu_k) / sigma_k^2, (rows, K, latent_dim))."""
        means, log_var = self.params["means"], self.params["log_var"]
        diff = z[:, None, :] - means                                  # (rows, K, M)
        inv_var = np.exp(-log_var)                                    # 1 / sigma_k^2, (K, M)
        log_normal = -0.5 * (np.sum(diff * diff * inv_var, axis=-1)
                             + np.sum(log_var, axis=-1) + self.latent_dim * LOG_2PI)
        return _log_softmax(self.params["logits"]) + log_normal, (diff, inv_var)

    def log_prob(self, z):
        """log p(z) = logsumexp_k ell_k(z) (eq. GM1): (..., latent_dim) -> (...).

        log-sum-exp: the max over k is subtracted before exp, so that no term underflows
        to 0 for a z far from every mean."""
        rows = z.reshape(-1, self.latent_dim)
        ell, _ = self._component_log_probs(rows)
        top = ell.max(axis=1)
        return (top + np.log(np.sum(np.exp(ell - top[:, None]), axis=1))).reshape(z.shape[:-1])

    def responsibilities(self, z):
        """r_k(z) = p(k | z) = pi_k N_k(z) / sum_l pi_l N_l(z) (eq. GM2), the E-step's
        quantity: (rows, latent_dim) -> (rows, K), each row summing to 1."""
        ell, _ = self._component_log_probs(z.reshape(-1, self.latent_dim))
        return np.exp(_log_softmax(ell))

    def log_prob_backward(self, dlog_p, z):
        """dL/dz for dL/dlog_p = ``dlog_p`` (rows,) (eq. GM3); the gradients of ``logits``,
        ``means`` and ``log_var`` are written into ``self.grads`` in place.

        With r (rows, K) the responsibilities and u_k = (z - mu_k) / sigma_k^2:
        d log p/dz = -sum_k r_k u_k, d log p/dmu_k = r_k u_k,
        d log p/dlog_var_k = r_k ((z - mu_k) u_k - 1) / 2, d log p/dlogits_k = r_k - pi_k.
        """
        ell, (diff, inv_var) = self._component_log_probs(z)
        r = np.exp(_log_softmax(ell))                                 # (rows, K), eq. GM2
        weighted = dlog_p[:, None] * r                                # dL/dlog_p * r_k
        u = diff * inv_var                                            # (rows, K, M)
        pi = np.exp(_log_softmax(self.params["logits"]))
        self.grads["means"][...] = np.einsum("rk,rkm->km", weighted, u)
        self.grads["log_var"][...] = 0.5 * np.einsum("rk,rkm->km", weighted, diff * u - 1.0)
        # sum_k r_k = 1, so sum_rows dlog_p * (r_k - pi_k)
        self.grads["logits"][...] = weighted.sum(axis=0) - dlog_p.sum() * pi
        return -np.einsum("rk,rkm->rm", weighted, u)

    def sample(self, n, rng, component=None):
        """n draws z ~ p(z): a component k ~ Categorical(pi) (or the given ``component``),
        then z = mu_k + sigma_k * eps. Returns (n, latent_dim)."""
        if component is None:
            pi = np.exp(_log_softmax(self.params["logits"].astype(np.float64)))
            k = rng.choice(self.components, size=n, p=pi / pi.sum())
        else:
            k = np.full(n, int(component))
        eps = rng.standard_normal((n, self.latent_dim))
        return self.params["means"][k] + np.exp(0.5 * self.params["log_var"][k]) * eps


PRIORS = {part.name: part for part in (StandardNormal, GaussianMixture)}
