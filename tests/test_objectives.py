"""numvae.model.objectives: the slides' loss_fn (seed_loss, S1, S2) against its formula and
central differences. The objectives inside a model: test_vae.py, test_iwae.py,
test_autoencoder.py."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numvae.diagnostics.gradcheck import check_arrays
from numvae.model.kl import kl_divergence
from numvae.model.likelihoods import gaussian_nll
from numvae.model.objectives import seed_loss, seed_loss_backward

TOL = 1e-6
shapes = st.tuples(st.integers(1, 8), st.integers(1, 10))
seeds = st.integers(0, 2**32 - 1)


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
