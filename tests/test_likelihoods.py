"""numvae.model.likelihoods: each likelihood's value against its textbook density and its
gradient against central differences in float64; the fused Bernoulli (with the sigmoid)
against the staged one, exact when saturated."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numvae.diagnostics.gradcheck import check_arrays
from numvae.model import likelihoods
from numvae.model.likelihoods import (
    bernoulli_nll,
    bernoulli_nll_backward,
    bernoulli_nll_from_probs,
    bernoulli_nll_from_probs_backward,
    gaussian_nll,
    gaussian_nll_backward,
)
from numvae.nn.layers import sigmoid

TOL = 1e-6
shapes = st.tuples(st.integers(1, 8), st.integers(1, 10))
seeds = st.integers(0, 2**32 - 1)


def per_example_sum(fn):
    """The scalar sum over the batch, the function whose gradient the *_backward return."""
    return lambda *args: float(np.sum(fn(*args)))


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

RNG = np.random.default_rng(0)


def weighted_sum_check(forward, backward, arrays, weights):
    """check_arrays on L = sum(weights * forward()), whose gradient ``backward`` returns."""
    return check_arrays(lambda: float(np.sum(weights * forward())), arrays, backward())


@pytest.mark.parametrize("part", [likelihoods.Bernoulli(), likelihoods.Gaussian(sigma=0.7)])
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
    assert errors["logits"] < 1e-7
