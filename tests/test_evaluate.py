import math

import numpy as np
import pytest

import numvae
from helpers import vae
from numvae.diagnostics import evaluate


def one_dimensional_model(seed=0):
    return vae(6, 5, 1, encoder_hidden=(8,), decoder_hidden=(8,), dtype=np.float64,
                      seed=seed)


def exact_log_px(model, x):
    """log p(x) = log integral p(x|z) p(z) dz by quadrature on a fine grid (latent_dim = 1)."""
    z = np.linspace(-9, 9, 9001)
    dz = z[1] - z[0]
    logits, _ = model.decoder.to_logits.forward(z[:, None])
    log_joint = (-numvae.model.likelihoods.bernoulli_nll(logits, x[None, :]) - 0.5 * z**2
                 - 0.5 * math.log(2 * math.pi))
    top = log_joint.max()
    return top + math.log(np.sum(np.exp(log_joint - top)) * dz)


def test_iwae_approaches_log_px_and_bounds_the_elbo():
    model = one_dimensional_model()
    x = (np.random.default_rng(1).uniform(size=(5, 6)) > 0.5).astype(np.float64)
    truth = np.array([exact_log_px(model, row) for row in x])
    elbo = -evaluate.evaluate_elbo(model, np.repeat(x, 2000, axis=0))["loss"]
    k1 = evaluate.iwae_log_likelihood(model, x, k=1, seed=0)["per_example"]
    k10 = evaluate.iwae_log_likelihood(model, x, k=10, seed=0)["per_example"]
    k5000 = evaluate.iwae_log_likelihood(model, x, k=5000, seed=0)["per_example"]
    # the bound holds on average and tightens with K
    assert elbo < k10.mean() < k5000.mean() <= truth.mean() + 0.01
    assert abs(k1.mean() - elbo) < 0.5  # K = 1 is a one-sample ELBO
    np.testing.assert_allclose(k5000, truth, atol=0.02)
    assert np.mean(truth - k10) > np.mean(truth - k5000)


def test_iwae_in_chunks_is_stable_and_consistent():
    model = one_dimensional_model(seed=2)
    x = (np.random.default_rng(3).uniform(size=(4, 6)) > 0.5).astype(np.float64)
    few_rows = evaluate.iwae_log_likelihood(model, x, k=3000, max_rows=100, seed=1)
    many_rows = evaluate.iwae_log_likelihood(model, x, k=3000, max_rows=50_000, seed=1)
    np.testing.assert_allclose(few_rows["per_example"], many_rows["per_example"], atol=0.03)


def test_iwae_log_sum_exp_survives_very_negative_log_weights():
    model = one_dimensional_model()
    model.params["decoder.decompressor.2.b"][:] = 800.0  # p(x=0 | z) = sigmoid(-800): log w ~ -4800
    x = np.zeros((2, 6))
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        result = evaluate.iwae_log_likelihood(model, x, k=50)
    assert np.isfinite(result["log_px"]) and result["log_px"] < -4000


def test_elbo_parts_and_kl_per_dimension():
    model = vae(6, 5, 3, encoder_hidden=(8,), decoder_hidden=(8,), dtype=np.float64,
                       seed=0, kl_weight=0.3)
    x = np.random.default_rng(0).uniform(size=(50, 6))
    result = evaluate.evaluate_elbo(model, x, seed=4)
    # same eps through the model's own loss at kl_weight 1
    eps = np.random.default_rng(4).standard_normal((1, 50, 3))
    assert result["loss"] == pytest.approx(model.forward(x, eps, kl_weight=1.0)["loss"], rel=1e-10)
    assert result["loss"] == pytest.approx(result["reconstruction"] + result["kl"])
    np.testing.assert_allclose(result["kl_per_dim"].sum(), result["kl"], rtol=1e-10)
    np.testing.assert_allclose(evaluate.kl_per_dimension(model, x), result["kl_per_dim"])
    n_active, variance = evaluate.active_units(model, x, threshold=0.0)
    assert n_active == 3 and variance.shape == (3,)


def test_bad_k():
    with pytest.raises(ValueError, match="k must be a positive integer"):
        evaluate.iwae_log_likelihood(one_dimensional_model(), np.zeros((1, 6)), k=0)
