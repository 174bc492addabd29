"""numvae.model.kl: the KL term's value and gradient (K1, K2) against central differences and
Monte Carlo, the closed form beside the Monte Carlo estimate (K3, K4), a named error on overflow."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numvae.diagnostics.gradcheck import check_arrays
from numvae.model import kl as kl_terms
from numvae.model import posteriors, priors
from numvae.model.kl import kl_divergence, kl_divergence_backward
from numvae.validation import NumericalError

TOL = 1e-6
shapes = st.tuples(st.integers(1, 8), st.integers(1, 10))
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=40, deadline=None)
@given(shapes, seeds)
def test_kl_gradient(shape, seed):
    rng = np.random.default_rng(seed)
    mean, log_var = rng.normal(size=shape), rng.normal(size=shape)
    dmean, dlog_var = kl_divergence_backward(mean, log_var)
    errors = check_arrays(lambda: np.sum(kl_divergence(mean, log_var)),
                          {"mean": mean, "log_var": log_var},
                          {"mean": dmean, "log_var": dlog_var})
    assert max(errors.values()) < TOL, errors


def test_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mean, log_var = np.array([[0.5, -1.0]]), np.array([[-0.3, 0.8]])
    std = np.exp(0.5 * log_var)
    z = mean + std * rng.standard_normal((400_000, 2))
    log_q = np.sum(-0.5 * ((z - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi), 1)
    log_p = np.sum(-0.5 * z**2 - 0.5 * math.log(2 * math.pi), axis=1)
    monte_carlo = np.mean(log_q - log_p)
    standard_error = np.std(log_q - log_p) / math.sqrt(len(z))
    assert abs(kl_divergence(mean, log_var)[0] - monte_carlo) < 4 * standard_error


def test_kl_is_zero_at_the_prior():
    np.testing.assert_allclose(kl_divergence(np.zeros((2, 3)), np.zeros((2, 3))), [0, 0])


def test_exp_overflow_is_a_named_error():
    with pytest.raises(NumericalError, match="log_var"):
        kl_divergence(np.zeros((1, 1), np.float32), np.full((1, 1), 100.0, np.float32))


def test_monte_carlo_kl_is_an_unbiased_estimate_of_the_analytic_one():
    q, p = posteriors.DiagonalGaussian(), priors.StandardNormal().build(2)
    mean, log_var = np.array([[0.5, -1.0]]), np.array([[-0.4, 0.3]])
    eps = np.random.default_rng(1).standard_normal((200_000, 1, 2))
    z, cache = q.rsample({"mean": mean, "log_var": log_var}, eps)
    monte_carlo, _ = kl_terms.MonteCarloKL().forward(z, cache, q, p)
    analytic, _ = kl_terms.GaussianKL().forward(z, cache, q, p)
    assert kl_terms.kl_term(q, p).__class__ is kl_terms.GaussianKL
    assert monte_carlo[0] == pytest.approx(analytic[0], abs=0.02)
