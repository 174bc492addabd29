"""Free bits (Kingma et al. 2016, "Improved variational inference with inverse
autoregressive flow", eq. 15): the ELBO with a floor tau on each latent dimension's KL,
averaged over the batch, so that the optimiser gains nothing by pushing a dimension's KL
below tau: a cure for posterior collapse. An objective part, as ``ELBO`` is
(``numvae.model.objectives``): ``forward(nll, z, posterior_cache, posterior, prior,
kl_weight) -> (terms, cache)`` and ``backward(cache) -> (dnll, dz or None, {head: gradient})``.
"""
import numpy as np

from numvae.model.kl import GaussianKL, kl_divergence_backward, kl_divergence_per_dim, kl_term
from numvae.validation import check_nonnegative_float, check_positive_int


class FreeBitsELBO:
    """The negative ELBO with free bits (eq. FB1), with kappa_j the batch-averaged KL of
    latent dimension j and tau the floor, in nats per dimension:

        L = (1/B) sum_b (1/S) sum_s -log p(x_b | z_bs) + kl_weight * sum_j max(kappa_j, tau),
        kappa_j = (1/B) sum_b KL_bj   (the terms of eq. K1 before the sum over j).

    tau = 0 is the ELBO. The terms it reports are the ELBO's (``kl`` is the true KL per
    example, not the floored one), so histories and evaluation are comparable; ``loss`` is
    L. Needs the closed-form KL of a diagonal Gaussian posterior and the standard normal
    prior (the per-dimension split); ``kl_term`` refuses other pairs.
    """
    name = "free_bits"
    supports_kl_weight = True
    # kappa_j is a mean over the batch: the loss of a batch is not the mean of its halves'
    # (fit(..., processes=2) refuses it, numvae.training.two_processes)
    couples_the_batch = True
    formula = "L = mean_batch(reconstruction) + kl_weight * sum_j max(mean_batch KL_j, tau)  (FB1)"

    flat_names = {"kl_weight": "kl_weight", "n_samples": "n_samples", "free_bits": "free_bits"}

    def __init__(self, *, kl_weight=1.0, n_samples=1, free_bits=0.0):
        self.kl_weight = check_nonnegative_float(kl_weight, "kl_weight")
        self.n_samples = check_positive_int(n_samples, "n_samples")
        self.free_bits = check_nonnegative_float(free_bits, "free_bits")

    def settings(self):
        return {"kl_weight": self.kl_weight, "n_samples": self.n_samples,
                "free_bits": self.free_bits}

    def build(self, latent_dim, rng, dtype):
        return self

    def kl_term(self, posterior, prior):
        """The pair's KL part; only the closed form K1 splits by dimension."""
        part = kl_term(posterior, prior)
        if not isinstance(part, GaussianKL):
            raise ValueError(f"free bits need the KL of each latent dimension, which only the "
                             f"closed form (a diagonal Gaussian posterior and the standard "
                             f"normal prior) gives; posterior {posterior.name!r} with prior "
                             f"{prior.name!r} has a Monte Carlo KL")
        return part

    def forward(self, nll, z, posterior_cache, posterior, prior, kl_weight):
        """nll: (S, batch). Returns the terms (``reconstruction``, ``kl`` (batch,), the
        floored ``kl_floored`` (a float, sum_j max(kappa_j, tau)) and ``loss``) and the
        cache for ``backward``."""
        mean, log_var = posterior_cache["mean"], posterior_cache["log_var"]
        kl_dims = kl_divergence_per_dim(mean, log_var)                # (batch, latent_dim)
        kappa = kl_dims.mean(axis=0)                                  # (latent_dim,)
        floored = float(np.maximum(kappa, self.free_bits).sum())
        reconstruction = nll.mean(axis=0)                             # (batch,)
        loss = float(reconstruction.mean() + kl_weight * floored)
        terms = dict(reconstruction=reconstruction, kl=kl_dims.sum(axis=1),
                     kl_floored=floored, loss=loss)
        # which dimensions are above the floor: only those pass gradient (FB2)
        above = (kappa > self.free_bits).astype(mean.dtype)
        return terms, dict(mean=mean, log_var=log_var, above=above, shape=nll.shape,
                           kl_weight=kl_weight, kl_part=GaussianKL(), kl_cache=posterior_cache)

    def backward(self, cache):
        """dL/dnll = 1 / (S B) for every row, no dz, and the heads' gradients (eq. FB2):

            dL/dkappa_j = kl_weight * [kappa_j > tau],   dkappa_j / dKL_bj = 1 / B,
            dL/dmean_bj = kl_weight / B * [kappa_j > tau] * mean_bj,
            dL/dlog_var_bj = kl_weight / B * [kappa_j > tau] * 0.5 (exp(log_var_bj) - 1)  (K2).
        """
        n_samples, batch = cache["shape"]
        dkappa = cache["kl_weight"] * cache["above"]                  # (latent_dim,)
        dmean, dlog_var = kl_divergence_backward(cache["mean"], cache["log_var"])
        dkl_dims = dkappa / batch                                     # each KL_bj, (latent_dim,)
        return 1.0 / (n_samples * batch), None, {"mean": dkl_dims * dmean,
                                                 "log_var": dkl_dims * dlog_var}
