"""What training minimises, made of the parts: the KL term and the objective.

The KL term KL(q(z|x) || p(z)) is analytic where a formula is registered for the pair
(posterior, prior) in ``ANALYTIC_KL``, and a Monte Carlo estimate otherwise; both have
``forward(z, cache, posterior, prior) -> (kl (batch,), cache)`` and
``backward(dkl, cache) -> (dz or None, {head: gradient})``.

An objective turns the per-sample negative log-likelihoods and the KL into the loss,
and back. ``OBJECTIVES`` is its registry: an importance-weighted bound, say, is one
class here plus one entry there.
"""
import numpy as np

from . import losses
from .posteriors import DiagonalGaussian
from .priors import StandardNormal


class GaussianKL:
    """KL(N(mean, diag(exp(log_var))) || N(0, I)) in closed form (eqs. K1, K2)."""
    formula = "KL = 0.5 sum_j (mean^2 + exp(log_var) - 1 - log_var)  (K1)"
    backward_formulas = {"mean": "kl_weight / B * mean  (K2, V4)",
                         "log_var": "kl_weight / B * 0.5 (exp(log_var) - 1)  (K2, V4)"}

    def forward(self, z, posterior_cache, posterior, prior):
        """(batch,) KL per example; the cache is the posterior's (mean, log_var)."""
        return losses.kl_divergence(posterior_cache["mean"], posterior_cache["log_var"]), \
            posterior_cache

    has_per_dimension = True

    def per_dimension(self, posterior_cache):
        """The terms of K1 before the sum over j: (batch, latent_dim)."""
        return losses.kl_divergence_per_dim(posterior_cache["mean"], posterior_cache["log_var"])

    def backward(self, dkl, cache):
        """dKL/dmean = mean, dKL/dlog_var = 0.5 (exp(log_var) - 1) (K2), times ``dkl``
        (a number: the same weight for every example). z is not involved: dz is None."""
        dmean, dlog_var = losses.kl_divergence_backward(cache["mean"], cache["log_var"])
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
        (``numvae.evaluate.active_units``, Burda et al.'s criterion, valid for any prior)."""
        mean = posterior_cache["mean"]
        return np.full(mean.shape, np.nan)

    def forward(self, z, posterior_cache, posterior, prior):
        log_q = posterior.log_prob(posterior_cache)                   # (S, batch)
        log_p = prior.log_prob(z).reshape(log_q.shape)                # (S, batch)
        cache = dict(z=z, posterior_cache=posterior_cache, posterior=posterior, prior=prior,
                     n_samples=log_q.shape[0])
        return (log_q - log_p).mean(axis=0), cache

    def backward(self, dkl, cache):
        """dkl: a number or (batch,). Returns dz (S * batch, latent_dim) and the heads'
        explicit gradients; the prior's own parameter gradients go into ``prior.grads``."""
        z, n_samples = cache["z"], cache["n_samples"]
        batch = len(z) // n_samples
        dlog_q = np.broadcast_to(np.asarray(dkl, z.dtype) / n_samples, (n_samples, batch))
        dz_q, dheads = cache["posterior"].log_prob_backward(dlog_q, cache["posterior_cache"])
        dz_p = cache["prior"].log_prob_backward(-dlog_q.reshape(-1), z)
        return dz_q + dz_p, dheads


# pairs (posterior class, prior class) with a closed-form KL
ANALYTIC_KL = {(DiagonalGaussian, StandardNormal): GaussianKL}


def kl_term(posterior, prior):
    """The analytic KL of the pair if one is registered, else the Monte Carlo estimate."""
    return ANALYTIC_KL.get((type(posterior), type(prior)), MonteCarloKL)()


class ELBO:
    """The negative ELBO with S samples of z per example (eq. V1):

        L = (1/B) sum_b [ (1/S) sum_s -log p(x_b | z_bs) + kl_weight * KL_b ].

    kl_weight = 1 is the negative ELBO itself; other values are beta-VAEs and KL warm-up.
    """
    name = "elbo"
    formula = "L = mean_batch(reconstruction + kl_weight * kl)  (V1)"

    def __init__(self, n_samples=1, kl_weight=1.0):
        self.n_samples, self.kl_weight = int(n_samples), float(kl_weight)

    def settings(self):
        return {"kl_weight": self.kl_weight, "n_samples": self.n_samples}

    @classmethod
    def from_config(cls, config, rng, dtype):
        return cls(config.get("n_samples", 1), config.get("kl_weight", 1.0))

    def forward(self, nll, z, posterior_cache, posterior, prior, kl_weight):
        """nll: (S, batch) -log p(x|z) of each draw. Returns the terms (``reconstruction``
        and ``kl`` (batch,), the float ``loss``) and the cache for ``backward``."""
        kl_part = kl_term(posterior, prior)
        kl, kl_cache = kl_part.forward(z, posterior_cache, posterior, prior)
        reconstruction = nll.mean(axis=0)                             # (batch,)
        loss = float(np.mean(reconstruction + kl_weight * kl))
        terms = dict(reconstruction=reconstruction, kl=kl, loss=loss)
        return terms, dict(kl_part=kl_part, kl_cache=kl_cache, shape=nll.shape,
                           kl_weight=kl_weight)

    def backward(self, cache):
        """Returns dL/dnll (a number: each (sample, example) row weighs 1 / (S B)), the KL's
        dL/dz (or None) and its {head: gradient} (eqs. V2, V4)."""
        n_samples, batch = cache["shape"]
        dz_kl, dheads_kl = cache["kl_part"].backward(cache["kl_weight"] / batch, cache["kl_cache"])
        return 1.0 / (n_samples * batch), dz_kl, dheads_kl


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


class Reconstruction:
    """The autoencoder's loss: the mean reconstruction term and no KL,

        L = (1/B) sum_b (1/S) sum_s -log p(x_b | z_bs),

    with -log p(x|z) the likelihood's (the squared error / (2 sigma^2) plus a constant for
    the Gaussian). ``kl_weight`` is 0: ``terms["kl"]`` holds zeros. With the "point"
    posterior this is the slides' autoencoder; with a Gaussian posterior, a VAE at beta = 0.
    """
    name = "reconstruction"
    formula = "L = mean_batch(reconstruction): no KL term"
    kl_weight = 0.0

    def __init__(self, n_samples=1):
        self.n_samples = int(n_samples)

    def settings(self):
        return {"kl_weight": 0.0, "n_samples": self.n_samples}

    @classmethod
    def from_config(cls, config, rng, dtype):
        return cls(config.get("n_samples", 1))

    def kl_term(self, posterior, prior):
        return NoKL()

    def forward(self, nll, z, posterior_cache, posterior, prior, kl_weight):
        """As ``ELBO.forward`` with the KL replaced by zeros; ``kl_weight`` is ignored."""
        kl_part = NoKL()
        kl, kl_cache = kl_part.forward(z, posterior_cache, posterior, prior)
        reconstruction = nll.mean(axis=0)                             # (batch,)
        terms = dict(reconstruction=reconstruction, kl=kl, loss=float(np.mean(reconstruction)))
        return terms, dict(kl_part=kl_part, kl_cache=kl_cache, shape=nll.shape, kl_weight=0.0)

    def backward(self, cache):
        """dL/dnll = 1 / (S B) for every row; no dz and zero head gradients from a KL."""
        n_samples, batch = cache["shape"]
        dz_kl, dheads_kl = cache["kl_part"].backward(0.0, cache["kl_cache"])
        return 1.0 / (n_samples * batch), dz_kl, dheads_kl


def kl_part_of(model):
    """The KL part a model's objective uses: the objective's own (``kl_term`` method) if
    it has one, else the pair's analytic KL or the Monte Carlo estimate (``kl_term``)."""
    own = getattr(model.objective, "kl_term", None)
    return (own or kl_term)(model.posterior, model.prior)


OBJECTIVES = {part.name: part for part in (ELBO, Reconstruction)}
