"""Property checks that catch modelling bugs: a gradient check cannot, since the gradient of
a wrong loss is right. Each check computes what a VAE must satisfy from first principles
(its own formulas, not the model's) and returns a ``Finding``: its name, whether it passed,
and one line of what it found.

    findings = check_properties(model, x)            # every check that applies
    print(format_findings(findings))

* ``posterior_variance``: draws of q(z|x) have the variance exp(log_var) (eq. R1);
* ``loss_composition``: the loss is -E_q[log p(x|z)] + beta KL, summed over pixels, per
  example (V1, with B3 or G1 and K1 written out here), and moves by (beta' - beta) KL
  when beta does;
* ``kl_sign``: the KL is non-negative on the data and zero at the prior;
* ``bound_order``: ELBO <= IWAE_k <= IWAE_k' for k < k' (I2; one-sided, 3 standard errors);
* ``bernoulli_data``: a Bernoulli likelihood is given binary data, or what it reports is
  called a cross-entropy;
* ``reported_log_px``: a figure reported as log p(x) is an importance-weighted estimate (at
  least the ELBO, at most the check's IWAE_k', and not the reconstruction term);
* ``grid_spans_prior``: a latent grid for a figure reaches the prior's 5% and 95% quantiles.
"""
import math
from typing import NamedTuple

import numpy as np

from numvae.diagnostics.evaluate import log_weights

PRIOR_QUANTILES = (0.05, 0.95)  # a grid must reach both, in every dimension


class Finding(NamedTuple):
    name: str
    passed: bool
    line: str


def format_findings(findings):
    """One line per finding: PASS or FAIL, the check's name, what it found."""
    return "\n".join(f"{'PASS' if f.passed else 'FAIL'}  {f.name:<19} {f.line}" for f in findings)


def _is_gaussian_posterior(model):
    return tuple(model.posterior.heads) == ("mean", "log_var")


def check_posterior_variance(model, x, rng, n_draws=4000):
    """Draw z = rsample(heads, eps) for log_var set to -2 .. 2 (so that a sampler that uses
    exp(log_var) as the standard deviation cannot hide behind log_var = 0) and compare
    each coordinate's sample variance with exp(log_var) (eq. R1)."""
    if not _is_gaussian_posterior(model):
        return Finding("posterior_variance", True, "skipped: not a Gaussian posterior")
    mean = np.asarray(model.encode(x[:4])[0], np.float64)            # (b, latent_dim)
    log_var = np.linspace(-2.0, 2.0, mean.size).reshape(mean.shape)
    heads = {"mean": mean.astype(model.dtype), "log_var": log_var.astype(model.dtype)}
    eps = rng.standard_normal((n_draws, *mean.shape)).astype(model.dtype)
    z, _ = model.posterior.rsample(heads, eps)
    ratio = np.asarray(z, np.float64).reshape(eps.shape).var(axis=0, ddof=1) / np.exp(log_var)
    # the sample variance of n draws has relative standard deviation sqrt(2 / (n - 1))
    bound = 5 * math.sqrt(2 / (n_draws - 1))
    worst = float(np.max(np.abs(ratio - 1)))
    return Finding("posterior_variance", worst < bound,
                   f"sample variance / exp(log_var) in [{ratio.min():.3g}, {ratio.max():.3g}] "
                   f"for log_var in [-2, 2] (expected 1 +- {bound:.2g})")


def independent_nll(model, logits, output, x):
    """-log p(x|z) per row, summed over pixels, from the likelihood's name and settings with
    formulas written here (B3 by logaddexp, G1): (rows,)."""
    x = np.asarray(x, np.float64)
    if model.likelihood.name == "bernoulli":
        a = np.asarray(logits, np.float64)
        # -log p = -x log sigmoid(a) - (1 - x) log(1 - sigmoid(a))
        return np.sum(x * np.logaddexp(0.0, -a) + (1 - x) * np.logaddexp(0.0, a), axis=-1)
    sigma = model.likelihood.sigma
    residual = x - np.asarray(output, np.float64)
    return (np.sum(residual ** 2, axis=-1) / (2 * sigma ** 2)
            + 0.5 * x.shape[-1] * math.log(2 * math.pi * sigma ** 2))


def independent_kl(model, cache):
    """KL(q(z|x) || p(z)) per example: K1 written out for a diagonal Gaussian and the
    standard normal prior; otherwise log q - log p from the parts' densities (K3)."""
    if _is_gaussian_posterior(model) and model.prior.name == "standard_normal":
        mean, log_var = (np.asarray(cache[k], np.float64) for k in ("mean", "log_var"))
        return 0.5 * np.sum(mean ** 2 + np.exp(log_var) - 1.0 - log_var, axis=-1)
    log_q = model.posterior.log_prob(cache)
    return np.mean(log_q - model.prior.log_prob(cache["z"]).reshape(log_q.shape), axis=0)


def check_loss_composition(model, x, rng):
    """loss(beta) = mean_b [R_b + beta KL_b], every term from ``independent_nll`` and
    ``independent_kl``, at the model's beta and at beta + 1 (eq. V1)."""
    if model.objective.name != "elbo":
        return Finding("loss_composition", True,
                       f"skipped: objective {model.objective.name!r} is not the weighted ELBO")
    beta = model.objective.kl_weight
    eps = rng.standard_normal((1, len(x), model.latent_dim)).astype(model.dtype)
    losses, expected = [], []
    for weight in (beta, beta + 1.0):
        cache = model.forward(x, eps, kl_weight=weight)
        nll = independent_nll(model, cache["logits"], cache["output"], cache["x_rows"])
        kl = independent_kl(model, cache)
        losses.append(cache["loss"])
        expected.append(float(np.mean(nll + weight * kl)))
    moved, kl_mean = losses[1] - losses[0], expected[1] - expected[0]
    tolerance = 1e-4 * (1 + abs(expected[0]))
    passed = abs(losses[0] - expected[0]) < tolerance and abs(moved - kl_mean) < tolerance
    return Finding("loss_composition", passed,
                   f"loss {losses[0]:.4f} vs -log p(x|z) + beta KL = {expected[0]:.4f} at beta "
                   f"{beta:g}; beta + 1 moves it by {moved:.4f}, the KL is {kl_mean:.4f}")


def check_kl_sign(model, x, rng):
    """The model's KL term is >= 0 on the data and 0 when q(z|x) is the prior."""
    eps = rng.standard_normal((1, len(x), model.latent_dim)).astype(model.dtype)
    if model.objective.name == "reconstruction":
        return Finding("kl_sign", True, "skipped: the objective has no KL term")
    kl = np.asarray(model.forward(x, eps, kl_weight=1.0)["kl"], np.float64)
    at_prior = None
    if _is_gaussian_posterior(model) and model.prior.name == "standard_normal":
        zeros = np.zeros((len(x), model.latent_dim), model.dtype)
        z, cache = model.posterior.rsample({"mean": zeros, "log_var": zeros}, eps)
        nll = np.zeros((1, len(x)), model.dtype)
        terms, _ = model.objective.forward(nll, z, cache, model.posterior, model.prior, 1.0)
        at_prior = float(np.max(np.abs(terms["kl"])))
    passed = kl.min() >= -1e-6 and (at_prior is None or at_prior < 1e-6)
    prior_text = "" if at_prior is None else f"; at the prior its largest |KL| is {at_prior:.3g}"
    return Finding("kl_sign", passed, f"KL on the data in [{kl.min():.4g}, {kl.max():.4g}]"
                   f"{prior_text}")


def _bounds(model, x, rng, ks):
    """Per-example ELBO (the mean of log w over every draw) and IWAE_k for each k in ks,
    from one set of max(ks) draws: {name: (n,)}."""
    eps = rng.standard_normal((max(ks), len(x), model.latent_dim)).astype(model.dtype)
    with np.errstate(over="ignore", under="ignore"):
        log_w = np.asarray(log_weights(model, x, eps), np.float64)    # (K, n)
    out = {"elbo": log_w.mean(axis=0)}
    for k in ks:
        top = log_w[:k].max(axis=0)                                  # log-sum-exp: subtract the max
        out[k] = top + np.log(np.exp(log_w[:k] - top).sum(axis=0)) - math.log(k)
    return out


def _at_least(difference):
    """Mean of a paired difference and whether it is >= -3 standard errors."""
    se = difference.std(ddof=1) / math.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return float(difference.mean()), bool(difference.mean() >= -3 * se)


def check_bound_order(model, x, rng, ks=(5, 50)):
    """ELBO <= IWAE_k <= IWAE_k' (eq. I2), each gap a paired mean >= -3 standard errors."""
    if not getattr(model.posterior, "has_density", True):
        return Finding("bound_order", True, "skipped: a point mass has no importance weights")
    bounds = _bounds(model, x, rng, ks)
    gap_1, ok_1 = _at_least(bounds[ks[0]] - bounds["elbo"])
    gap_2, ok_2 = _at_least(bounds[ks[1]] - bounds[ks[0]])
    return Finding("bound_order", ok_1 and ok_2,
                   f"IWAE_{ks[0]} - ELBO = {gap_1:+.3f}, IWAE_{ks[1]} - IWAE_{ks[0]} = "
                   f"{gap_2:+.3f} nats (each must be >= -3 standard errors)")


def check_bernoulli_data(model, x, reported_as="log-likelihood"):
    """Binary data for a Bernoulli likelihood, or its value called a cross-entropy."""
    if model.likelihood.name != "bernoulli":
        return Finding("bernoulli_data", True, "skipped: not a Bernoulli likelihood")
    grey = float(np.mean((x != 0) & (x != 1)))
    if grey == 0 or reported_as == "cross-entropy":
        what = "binary data" if grey == 0 else f"{grey:.0%} grey pixels, reported as a cross-entropy"
        return Finding("bernoulli_data", True, what)
    return Finding("bernoulli_data", False,
                   f"{grey:.0%} of the pixels are neither 0 nor 1: the Bernoulli term is then a "
                   f"cross-entropy, not a log-likelihood (binarise, or call it so)")


def check_reported_log_px(model, x, reported, rng, k=50):
    """A figure reported as the mean log p(x) over x: at least the ELBO and at most IWAE_k
    (each within 3 standard errors of the mean), and nearer IWAE_k than the reconstruction
    term -E_q[log p(x|z)], which exceeds the ELBO by the whole KL."""
    bounds = _bounds(model, x, rng, (k,))
    eps = rng.standard_normal((1, len(x), model.latent_dim)).astype(model.dtype)
    reconstruction = -float(np.mean(model.forward(x, eps, kl_weight=1.0)["reconstruction"]))
    elbo, iwae = float(bounds["elbo"].mean()), float(bounds[k].mean())
    se = float(bounds[k].std(ddof=1) / math.sqrt(len(x)))
    passed = (elbo - 3 * se <= reported <= iwae + 3 * se
              and abs(reported - iwae) < abs(reported - reconstruction))
    return Finding("reported_log_px", passed,
                   f"reported {reported:.2f}; ELBO {elbo:.2f}, IWAE_{k} {iwae:.2f} (+- {se:.2f}), "
                   f"reconstruction term {reconstruction:.2f}")


def check_grid(model, grid):
    """The latent values of a figure's grid, (n,) or (n, latent_dim), reach the prior's 5%
    and 95% quantiles in every dimension (Phi(z) <= 0.05 and >= 0.95)."""
    if model.prior.name != "standard_normal":
        return Finding("grid_spans_prior", True, "skipped: not the standard normal prior")
    values = np.asarray(grid, np.float64).reshape(len(grid), -1)
    cdf = np.vectorize(lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2))))(values)
    low, high = cdf.min(axis=0), cdf.max(axis=0)
    passed = bool(np.all(low <= PRIOR_QUANTILES[0] + 1e-9) and np.all(high >= PRIOR_QUANTILES[1] - 1e-9))
    return Finding("grid_spans_prior", passed,
                   f"the grid covers prior quantiles {low.max():.3f} to {high.min():.3f} "
                   f"(it must reach {PRIOR_QUANTILES[0]} and {PRIOR_QUANTILES[1]})")


def check_properties(model, x, *, seed=0, grid=None, reported_log_px=None,
                     reported_as="log-likelihood", n_images=200):
    """Every check that applies to ``model`` on the first ``n_images`` of ``x`` (n,
    input_dim); ``grid``: the latent values of a figure's grid; ``reported_log_px``: a
    figure claimed as the mean log p(x) of those images; ``reported_as``: what the
    Bernoulli likelihood's value is called. Returns a list of ``Finding``."""
    x = model.check_data(x[:n_images])
    rng = np.random.default_rng(seed)
    findings = [check_posterior_variance(model, x, rng), check_loss_composition(model, x, rng),
                check_kl_sign(model, x, rng), check_bound_order(model, x, rng),
                check_bernoulli_data(model, x, reported_as)]
    if reported_log_px is not None:
        findings.append(check_reported_log_px(model, x, float(reported_log_px), rng))
    if grid is not None:
        findings.append(check_grid(model, grid))
    return findings
