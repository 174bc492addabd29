"""Each part on its own (values against textbook formulas written here, gradients
against central differences in float64), and the promise of the redesign: a new part is
one class plus one registry entry."""
import math

import numpy as np
import pytest

import numvae
from helpers import tiny_model
from numvae.diagnostics.gradcheck import check_arrays, check_model
from numvae.model import kl as kl_terms
from numvae.model import likelihoods, posteriors, priors

TOL = 1e-7
RNG = np.random.default_rng(0)


def weighted_sum_check(forward, backward, arrays, weights):
    """check_arrays on L = sum(weights * forward()), whose gradient ``backward`` returns."""
    return check_arrays(lambda: float(np.sum(weights * forward())), arrays, backward())


@pytest.mark.parametrize("part", [likelihoods.Bernoulli(), likelihoods.Gaussian(0.7)])
def test_likelihood_values_and_gradient(part):
    logits, x = RNG.normal(scale=2.0, size=(5, 6)), RNG.uniform(size=(5, 6))
    p = 1 / (1 + np.exp(-logits))
    if part.name == "bernoulli":
        expected = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    else:
        expected = np.sum((x - p) ** 2, axis=1) / (2 * 0.49) + 3 * math.log(2 * math.pi * 0.49)
    np.testing.assert_allclose(part.nll(logits, x), expected, rtol=1e-12)
    dnll = RNG.uniform(0.5, 2.0, size=5)
    errors = weighted_sum_check(
        lambda: part.nll(logits, x), lambda: {"logits": part.nll_backward(
            dnll, logits, x, 1 / (1 + np.exp(-logits)))[0]}, {"logits": logits}, dnll)
    assert errors["logits"] < TOL


def test_diagonal_gaussian_rsample_and_its_backward():
    q = posteriors.DiagonalGaussian()
    mean, log_var = RNG.normal(size=(4, 3)), RNG.normal(scale=0.5, size=(4, 3))
    eps = RNG.standard_normal((2, 4, 3))
    z, cache = q.rsample({"mean": mean, "log_var": log_var}, eps)
    np.testing.assert_allclose(z, (mean + np.exp(log_var / 2) * eps).reshape(8, 3), rtol=1e-12)
    g = RNG.normal(size=z.shape)

    def backward():
        _, c = q.rsample({"mean": mean, "log_var": log_var}, eps)
        return q.rsample_backward(g, c)
    errors = check_arrays(lambda: float(np.sum(g * q.rsample({"mean": mean, "log_var": log_var},
                                                               eps)[0])),
                          {"mean": mean, "log_var": log_var}, backward())
    assert max(errors.values()) < TOL


def gaussian_log_density(z, mean, log_var):
    """log N(z; mean, diag(exp(log_var))), written out: (S, batch)."""
    return np.sum(-0.5 * (z - mean) ** 2 / np.exp(log_var) - 0.5 * log_var
                  - 0.5 * math.log(2 * math.pi), axis=-1)


def test_log_q_and_log_p_and_their_explicit_partials():
    q, p = posteriors.DiagonalGaussian(), priors.StandardNormal(3)
    mean, log_var = RNG.normal(size=(4, 3)), RNG.normal(scale=0.5, size=(4, 3))
    eps = RNG.standard_normal((2, 4, 3))
    z, cache = q.rsample({"mean": mean, "log_var": log_var}, eps)
    z3 = z.reshape(2, 4, 3).copy()
    np.testing.assert_allclose(q.log_prob(cache), gaussian_log_density(z3, mean, log_var),
                               rtol=1e-12)
    np.testing.assert_allclose(p.log_prob(z), gaussian_log_density(z, 0.0, 0.0), rtol=1e-12)
    weights = RNG.uniform(0.5, 2.0, size=(2, 4))
    dz, dheads = q.log_prob_backward(weights, cache)
    errors = check_arrays(lambda: float(np.sum(weights * gaussian_log_density(z3, mean, log_var))),
                          {"z": z3, "mean": mean, "log_var": log_var},
                          {"z": dz.reshape(2, 4, 3), **dheads})
    assert max(errors.values()) < TOL, errors
    flat_weights = weights.reshape(-1)
    errors = check_arrays(lambda: float(np.sum(flat_weights * p.log_prob(z))), {"z": z},
                          {"z": p.log_prob_backward(flat_weights, z)})
    assert errors["z"] < TOL


def test_monte_carlo_kl_is_an_unbiased_estimate_of_the_analytic_one():
    q, p = posteriors.DiagonalGaussian(), priors.StandardNormal(2)
    mean, log_var = np.array([[0.5, -1.0]]), np.array([[-0.4, 0.3]])
    eps = np.random.default_rng(1).standard_normal((200_000, 1, 2))
    z, cache = q.rsample({"mean": mean, "log_var": log_var}, eps)
    monte_carlo, _ = kl_terms.MonteCarloKL().forward(z, cache, q, p)
    analytic, _ = kl_terms.GaussianKL().forward(z, cache, q, p)
    assert kl_terms.kl_term(q, p).__class__ is kl_terms.GaussianKL
    assert monte_carlo[0] == pytest.approx(analytic[0], abs=0.02)


class PlainNormalPrior(priors.StandardNormal):
    """N(0, I) under another name: no closed-form KL is registered for it, so the ELBO
    falls back on the Monte Carlo KL (K3, K4)."""
    name = "plain_normal"


@pytest.fixture
def plain_prior(monkeypatch):
    monkeypatch.setitem(priors.PRIORS, PlainNormalPrior.name, PlainNormalPrior)
    return PlainNormalPrior.name


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_a_new_prior_is_one_class_and_one_entry_and_its_gradient_is_exact(plain_prior, likelihood):
    model = tiny_model(seed=3, prior=plain_prior, likelihood=likelihood, n_samples=2,
                       kl_weight=0.6)
    assert isinstance(model.prior, PlainNormalPrior) and model.config["prior"] == "plain_normal"
    x = np.random.default_rng(2).uniform(size=(4, 10))
    eps = np.random.default_rng(3).standard_normal((2, 4, 3))
    cache = model.forward(x, eps)
    assert type(cache["caches"]["objective"]["kl_part"]) is kl_terms.MonteCarloKL
    errors = check_model(model, x, eps)
    assert max(errors.values()) < 1e-6, errors
    # the same model with the analytic KL: the reconstruction terms agree exactly, the KLs
    # differ by the Monte Carlo error only
    analytic = tiny_model(seed=3, likelihood=likelihood, n_samples=2, kl_weight=0.6)
    reference = analytic.forward(x, eps)
    np.testing.assert_array_equal(cache["reconstruction"], reference["reconstruction"])
    assert not np.allclose(cache["kl"], reference["kl"])


def test_registries_are_the_choices_everywhere():
    from numvae.commands.cli import build_parser
    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    likelihood = next(a for a in train_parser._actions if a.dest == "likelihood")
    assert sorted(likelihood.choices) == sorted(likelihoods.LIKELIHOODS)
    with pytest.raises(ValueError,
                       match="posterior must be one of 'diagonal_gaussian'.*; got 'planar'"):
        numvae.VAE(4, 3, 2, posterior="planar")
