"""numvae.model.priors: a new prior is one class and one registry entry (its gradient exact,
the Monte Carlo KL taken for it). The Gaussian mixture: test_mixture.py."""
import numpy as np
import pytest

from helpers import tiny_model
from numvae.diagnostics.gradcheck import check_model
from numvae.model import kl as kl_terms
from numvae.model import priors


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
    assert isinstance(model.prior, PlainNormalPrior) and model.config["prior"]["name"] == "plain_normal"
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
