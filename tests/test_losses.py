import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numvae.diagnostics.gradcheck import check_arrays
from numvae.model.kl import kl_divergence, kl_divergence_backward
from numvae.model.likelihoods import (
    bernoulli_nll,
    bernoulli_nll_backward,
    bernoulli_nll_from_probs,
    bernoulli_nll_from_probs_backward,
    gaussian_nll,
    gaussian_nll_backward,
)
from numvae.model.objectives import seed_loss, seed_loss_backward
from numvae.nn.layers import sigmoid
from numvae.validation import NumericalError

TOL = 1e-6
shapes = st.tuples(st.integers(1, 8), st.integers(1, 10))
seeds = st.integers(0, 2**32 - 1)


def per_example_sum(fn):
    """The scalar sum over the batch, the function whose gradient the *_backward return."""
    return lambda *args: float(np.sum(fn(*args)))


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


@settings(max_examples=40, deadline=None)
@given(shapes, seeds)
def test_bernoulli_gradients_fused_and_staged(shape, seed):
    rng = np.random.default_rng(seed)
    logits, x = rng.normal(scale=3, size=shape), rng.uniform(size=shape)
    fused = check_arrays(lambda: np.sum(bernoulli_nll(logits, x)), {"logits": logits},
                         {"logits": bernoulli_nll_backward(logits, x)})
    assert fused["logits"] < TOL
    probs = rng.uniform(0.05, 0.95, size=shape)
    staged = check_arrays(lambda: np.sum(bernoulli_nll_from_probs(probs, x)),
                          {"probs": probs},
                          {"probs": bernoulli_nll_from_probs_backward(probs, x)})
    assert staged["probs"] < TOL


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, st.floats(0.1, 3.0))
def test_gaussian_gradient(shape, seed, sigma):
    rng = np.random.default_rng(seed)
    prediction, x = rng.normal(size=shape), rng.normal(size=shape)
    errors = check_arrays(lambda: np.sum(gaussian_nll(prediction, x, sigma)),
                          {"prediction": prediction},
                          {"prediction": gaussian_nll_backward(prediction, x, sigma)})
    assert errors["prediction"] < TOL


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(1, 5), seeds, st.sampled_from([0.0, 0.3, 1.0, 2.5]))
def test_seed_loss_gradient(shape, latent_dim, seed, kl_weight):
    rng = np.random.default_rng(seed)
    prediction, target = rng.uniform(size=shape), rng.uniform(size=shape)
    mean, log_var = rng.normal(size=(shape[0], latent_dim)), rng.normal(size=(shape[0], latent_dim))
    dprediction, dmean, dlog_var = seed_loss_backward(prediction, target, mean, log_var,
                                                             kl_weight)
    errors = check_arrays(lambda: seed_loss(prediction, target, mean, log_var, kl_weight),
                          {"prediction": prediction, "mean": mean, "log_var": log_var},
                          {"prediction": dprediction, "mean": dmean, "log_var": dlog_var})
    assert max(errors.values()) < TOL, errors


def test_sigmoid_then_staged_bernoulli_equals_fused():
    """Staged first, fused second: sigmoid followed by the staged loss is the fused loss."""
    rng = np.random.default_rng(3)
    logits, x = rng.normal(scale=4, size=(5, 7)), rng.uniform(size=(5, 7))
    probs = sigmoid(logits)
    np.testing.assert_allclose(bernoulli_nll(logits, x),
                               bernoulli_nll_from_probs(probs, x), rtol=1e-10)
    # chain rule: dL/dlogits = dL/dprobs * p (1 - p) = p - x
    staged = bernoulli_nll_from_probs_backward(probs, x) * probs * (1 - probs)
    np.testing.assert_allclose(bernoulli_nll_backward(logits, x), staged, rtol=1e-9,
                               atol=1e-12)


def test_bernoulli_is_exact_when_saturated():
    # a = +-1000: p rounds to exactly 1 or 0, the staged form gives inf, the fused one is exact
    logits = np.array([[1000.0, -1000.0, 1000.0, -1000.0]])
    x = np.array([[1.0, 0.0, 0.0, 1.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        nll = bernoulli_nll(logits, x)
        grad = bernoulli_nll_backward(logits, x)
    # -log p(x) = 0 + 0 + 1000 + 1000 (log sigmoid(-1000) = -1000 to double precision)
    np.testing.assert_allclose(nll, [2000.0])
    np.testing.assert_allclose(grad, [[0.0, 0.0, 1.0, -1.0]])


def test_bernoulli_matches_textbook_density():
    p, x = 0.3, np.array([[1.0, 0.0, 1.0]])
    logits = np.full((1, 3), math.log(p / (1 - p)))
    # p(x) = 0.3 * 0.7 * 0.3
    np.testing.assert_allclose(bernoulli_nll(logits, x), [-math.log(0.3 * 0.7 * 0.3)])


def test_gaussian_matches_textbook_density():
    prediction, x, sigma = np.array([[0.2, -1.0]]), np.array([[0.5, 0.0]]), 0.7
    density = 1.0
    for mu, value in zip(prediction[0], x[0]):
        density *= math.exp(-(value - mu) ** 2 / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2)
    np.testing.assert_allclose(gaussian_nll(prediction, x, sigma), [-math.log(density)])


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


def test_seed_loss_is_the_slides_formula():
    rng = np.random.default_rng(1)
    pred, target = rng.uniform(size=(3, 4)), rng.uniform(size=(3, 4))
    mean, log_var = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    # l2 = nn_mse_loss(reduction = "sum"); kl_div = (mean^2 + exp(log_var) - log_var).sum()
    expected = ((pred - target) ** 2).sum() + 0.5 * (mean**2 + np.exp(log_var) - log_var).sum()
    assert seed_loss(pred, target, mean, log_var, kl_weight=0.5) == pytest.approx(expected)


def test_seed_loss_relation_to_exact_elbo():
    """seed_loss = 2 * negative ELBO(sigma = 1) - N log(2 pi) + kl_weight * M, per example."""
    rng = np.random.default_rng(2)
    batch, n_dims, latent_dim, kl_weight = 3, 4, 2, 0.7
    pred, target = rng.uniform(size=(batch, n_dims)), rng.uniform(size=(batch, n_dims))
    mean, log_var = rng.normal(size=(batch, latent_dim)), rng.normal(size=(batch, latent_dim))
    negative_elbo = np.sum(gaussian_nll(pred, target, 1.0)
                           + kl_weight * kl_divergence(mean, log_var))
    expected = 2 * negative_elbo - batch * n_dims * math.log(2 * math.pi) + kl_weight * batch * latent_dim
    assert seed_loss(pred, target, mean, log_var, kl_weight) == pytest.approx(expected)


def test_exp_overflow_is_a_named_error():
    with pytest.raises(NumericalError, match="log_var"):
        kl_divergence(np.zeros((1, 1), np.float32), np.full((1, 1), 100.0, np.float32))
