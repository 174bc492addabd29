"""What the figures need to know of the prior p(z) a model uses: its name in a title, and
the latent values a grid should span.

The latent grid's axes take the prior's quantiles, so that each point stands for the same
share of p(z): for the slides' N(0, I) the Gaussian quantiles Phi^{-1}((i + 1/2) / n); for
a learnt Gaussian mixture (eq. GM1) the quantiles of its marginal along the axis, which
span where the mixture puts its codes (often far beyond N(0, 1)'s +-2).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from numvae.validation import check_positive_int

if TYPE_CHECKING:  # for the annotations only: plots may import the model, lazily or not
    from numvae.model.vae import VAE


def gaussian_grid(n: int) -> np.ndarray:
    """n latent values at Gaussian quantiles: z_i = Phi^{-1}((i + 1/2) / n), i = 0 .. n-1: (n,).

    The probabilities (i + 1/2) / n are the midpoints of n bins of equal prior mass, so each
    value stands for the same share of p(z) = N(0, 1); the grid is symmetric about 0 and
    n = 1 gives z = 0 (Kingma & Welling 2014, fig. 4, use the same inverse-CDF mapping).
    """
    n = check_positive_int(n, "n")
    inverse_cdf = NormalDist().inv_cdf
    return np.array([inverse_cdf((i + 0.5) / n) for i in range(n)])


def is_mixture(model: VAE) -> bool:
    return getattr(model.prior, "name", None) == "mixture"


def _mixture_marginal(model, dim):
    """(weights pi_k, means mu_k[dim], standard deviations sigma_k[dim]) of the mixture's
    marginal along latent dimension ``dim``, in float64."""
    params = model.prior.params
    logits = params["logits"].astype(np.float64)
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    means = params["means"][:, dim].astype(np.float64)
    stds = np.exp(0.5 * params["log_var"][:, dim].astype(np.float64))  # log_var is log sigma^2
    return weights, means, stds


def prior_name(model: VAE) -> str:
    """How a title names p(z): "N(0, I)" or "a mixture of 10 Gaussians"."""
    if is_mixture(model):
        return f"p(z), a mixture of {model.prior.components} Gaussians"
    if getattr(model.prior, "name", None) == "standard_normal":
        return "N(0, I)"
    return f"p(z) ({getattr(model.prior, 'name', type(model.prior).__name__)})"


def prior_grid(model: VAE, n: int, dim: int) -> np.ndarray:
    """n values of z[dim] at the prior's quantiles (i + 1/2) / n: (n,), increasing.

    N(0, I): ``gaussian_grid(n)``. A mixture: the marginal CDF
    F(v) = sum_k pi_k Phi((v - mu_k) / sigma_k) is inverted by bisection (60 halvings of a
    bracket 10 sigma beyond every component: far below float64's resolution)."""
    if not is_mixture(model):
        return gaussian_grid(n)
    n = check_positive_int(n, "n")
    weights, means, stds = _mixture_marginal(model, dim)
    erf = np.frompyfunc(math.erf, 1, 1)

    def cdf(v):                                                   # (n,) -> (n,)
        u = (v[:, None] - means) / (stds * math.sqrt(2.0))        # (n, K)
        return (0.5 * (1.0 + erf(u).astype(np.float64))) @ weights

    target = (np.arange(n) + 0.5) / n
    low = np.full(n, np.min(means - 10 * stds))
    high = np.full(n, np.max(means + 10 * stds))
    for _ in range(60):
        middle = 0.5 * (low + high)
        below = cdf(middle) < target
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    return 0.5 * (low + high)


def prior_centre(model: VAE) -> np.ndarray:
    """Where a grid holds the latent dimensions it does not vary: the prior's mean, 0 for
    N(0, I), sum_k pi_k mu_k for a mixture: (latent_dim,)."""
    if not is_mixture(model):
        return np.zeros(model.latent_dim)
    return np.array([_mixture_marginal(model, d)[0] @ _mixture_marginal(model, d)[1]
                     for d in range(model.latent_dim)])


def grid_ticks_note(model: VAE, n: int) -> str:
    """The axis note that says which quantiles the ticks are."""
    if is_mixture(model):
        return f"ticks: quantiles (i + 1/2) / {n} of the mixture prior's marginal"
    return f"ticks: Gaussian quantiles, Phi^-1((i + 1/2) / {n})"
