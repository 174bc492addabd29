"""The KL term KL(q(z|x) || p(z)): every formula of it and its gradient, in one file.

* ``kl_divergence`` (eq. K1) and ``kl_divergence_backward`` (eq. K2): the closed form for a
  diagonal Gaussian posterior and the standard normal prior, per example and, before the
  sum over the latent dimensions, per dimension (``kl_divergence_per_dim``);
* ``GaussianKL``: that closed form as a part of the objective; ``MonteCarloKL``: the
  estimate log q(z|x) - log p(z) for any posterior and prior (eqs. K3, K4); ``NoKL``: the
  autoencoder's absent term;
* ``kl_term``: which of them a (posterior, prior) pair uses (``ANALYTIC_KL``).

A KL part has ``forward(z, posterior_cache, posterior, prior) -> (kl (batch,), cache)`` and
``backward(dkl, cache) -> (dz or None, {head: gradient})``.
"""
import numpy as np

from numvae.model.posteriors import DiagonalGaussian
from numvae.model.priors import StandardNormal
from numvae.validation import safe_exp


def kl_divergence(mean, log_var):
    """Analytic KL(N(mean, diag(exp(log_var))) || N(0, I)) per example (eq. K1).

    KL = 0.5 * sum_j (mean_j^2 + exp(log_var_j) - 1 - log_var_j).
    mean, log_var: (batch, latent_dim) -> (batch,).
    """
    return np.sum(kl_divergence_per_dim(mean, log_var), axis=-1)


def kl_divergence_per_dim(mean, log_var):
    """The terms of eq. K1 before the sum over j: 0.5 (mean_j^2 + exp(log_var_j) - 1 - log_var_j).

    The KL of each latent dimension, (batch, latent_dim); dimensions near 0 are unused.
    """
    var = safe_exp(log_var, "log_var")
    return 0.5 * (mean * mean + var - 1.0 - log_var)


def kl_divergence_backward(mean, log_var):
    """Gradient of ``kl_divergence`` (eq. K2): dKL/dmean = mean, dKL/dlog_var = 0.5 (exp(log_var) - 1).

    Returns (dmean, dlog_var), each (batch, latent_dim), for a loss equal to the sum over
    the batch of the per-example KL.
    """
    dmean = mean.copy()
    dlog_var = 0.5 * (safe_exp(log_var, "log_var") - 1.0)
    return dmean, dlog_var


class GaussianKL:
    """KL(N(mean, diag(exp(log_var))) || N(0, I)) in closed form (eqs. K1, K2)."""
    formula = "KL = 0.5 sum_j (mean^2 + exp(log_var) - 1 - log_var)  (K1)"
    backward_formulas = {"mean": "kl_weight / B * mean  (K2, V4)",
                         "log_var": "kl_weight / B * 0.5 (exp(log_var) - 1)  (K2, V4)"}

    def forward(self, z, posterior_cache, posterior, prior):
        """(batch,) KL per example; the cache is the posterior's (mean, log_var)."""
        return kl_divergence(posterior_cache["mean"], posterior_cache["log_var"]), \
            posterior_cache

    has_per_dimension = True

    def per_dimension(self, posterior_cache):
        """The terms of K1 before the sum over j: (batch, latent_dim)."""
        return kl_divergence_per_dim(posterior_cache["mean"], posterior_cache["log_var"])

    def backward(self, dkl, cache):
        """dKL/dmean = mean, dKL/dlog_var = 0.5 (exp(log_var) - 1) (K2), times ``dkl``
        (a number: the same weight for every example). z is not involved: dz is None."""
        dmean, dlog_var = kl_divergence_backward(cache["mean"], cache["log_var"])
        return None, {"mean": dkl * dmean, "log_var": dkl * dlog_var}


class MonteCarloKL:
    """KL ~ (1/S) sum_s [log q(z_s|x) - log p(z_s)] over the S draws (eq. K3), for any
    posterior and prior; its gradient flows through z as well (eq. K4)."""
    formula = "KL ~ mean_s [log q(z_s|x) - log p(z_s)]  (K3)"
    backward_formulas = {}  # filled per head: the explicit partials of log q (K4)

    has_per_dimension = False

    def per_dimension(self, posterior_cache):
        """NaN, (batch, latent_dim): log q and log p do not factorise over the latent
        dimensions for every posterior and prior (a mixture prior's log p does not), so
        there is no KL per dimension to report. Count active units instead
        (``numvae.diagnostics.evaluate.active_units``, Burda et al.'s criterion, valid for any prior)."""
        mean = posterior_cache["mean"]
        return np.full(mean.shape, np.nan)

    def forward(self, z, posterior_cache, posterior, prior):
        log_q = posterior.log_prob(posterior_cache)                   # (S, batch)
        log_p = prior.log_prob(z).reshape(log_q.shape)                # (S, batch)
        cache = dict(z=z, posterior_cache=posterior_cache, posterior=posterior, prior=prior,
                     n_samples=log_q.shape[0])
        return (log_q - log_p).mean(axis=0), cache

    def backward(self, dkl, cache):
        """The gradient of the estimate (eq. K4). dkl: a number or (batch,). Returns dz
        (S * batch, latent_dim) and the heads' explicit gradients; the prior's own parameter
        gradients go into ``prior.grads``."""
        z, n_samples = cache["z"], cache["n_samples"]
        batch = len(z) // n_samples
        dlog_q = np.broadcast_to(np.asarray(dkl, z.dtype) / n_samples, (n_samples, batch))
        dz_q, dheads = cache["posterior"].log_prob_backward(dlog_q, cache["posterior_cache"])
        dz_p = cache["prior"].log_prob_backward(-dlog_q.reshape(-1), z)
        return dz_q + dz_p, dheads


# pairs (posterior class, prior class) with a closed-form KL
ANALYTIC_KL = {(DiagonalGaussian, StandardNormal): GaussianKL}


def kl_term(posterior, prior):
    """The analytic KL of the pair if one is registered, else the Monte Carlo estimate.
    Either needs log q(z|x): a posterior without a density (a point mass) has no KL."""
    if not getattr(posterior, "has_density", True):
        raise ValueError(f"posterior {posterior.name!r} has no density, so no KL to the prior "
                         f"and no importance-weighted bound: train it with objective="
                         f"\"reconstruction\" (numvae train --objective reconstruction)")
    return ANALYTIC_KL.get((type(posterior), type(prior)), MonteCarloKL)()


class NoKL:
    """The KL part of an objective that has none (the autoencoder's): zeros, and no
    gradient. Not a KL of a point mass to the prior, which would be infinite: the term
    is simply not in the loss."""
    formula = "kl = 0: no KL term in the loss (an autoencoder)"
    backward_formulas = {}
    has_per_dimension = True  # zeros

    def forward(self, z, posterior_cache, posterior, prior):
        """(batch,) zeros; the cache is the posterior's (the heads' shapes)."""
        batch = posterior_cache["eps"].shape[1]
        return np.zeros(batch, z.dtype), dict(posterior_cache, heads=posterior.heads)

    def per_dimension(self, posterior_cache):
        mean = posterior_cache["mean"]
        return np.zeros(mean.shape, mean.dtype)

    def backward(self, dkl, cache):
        return None, {name: np.zeros_like(cache[name]) for name in cache["heads"]}


def kl_part_of(model):
    """The KL part a model's objective uses: the objective's own (``kl_term`` method) if
    it has one, else the pair's analytic KL or the Monte Carlo estimate (``kl_term``)."""
    own = getattr(model.objective, "kl_term", None)
    return (own or kl_term)(model.posterior, model.prior)
