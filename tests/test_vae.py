import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import numvae
from helpers import relu_margin, tiny_model
from numvae.diagnostics.gradcheck import check_model
from numvae.model.likelihoods import Bernoulli, Gaussian
from numvae.model.objectives import ELBO

# h = 1e-4 leaves a truncation error O(h^2) that reads as ~1e-6 relative to a gradient as
# small as 1e-4 (hypothesis drew one: encoder.log_var.b = -1.2e-4, error 1.3e-6); 1e-5
# still catches a missing factor 1/2 (0.5) by four orders of magnitude
TOL_WHOLE_MODEL = 1e-5
seeds = st.integers(0, 2**32 - 1)


def assert_gradient_matches(model, x, eps):
    # finite differences are invalid across a ReLU kink
    assume(relu_margin(model, model.forward(x, eps)) > 1e-3)
    # h = 1e-4 (< the margin): rounding error ~ 1e-16 |loss| / h stays far below gradients
    # that are small next to the loss (a model whose decoder is dead learns from the KL only)
    errors = check_model(model, x, eps, h=1e-4)
    assert set(errors) == set(model.params)
    assert max(errors.values()) < TOL_WHOLE_MODEL, errors


dims = st.integers(1, 10)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), dims, dims, dims, st.lists(dims, max_size=2), st.lists(dims, max_size=2),
       st.integers(1, 3), seeds, st.sampled_from(["bernoulli", "gaussian"]), st.floats(0.1, 3.0),
       st.floats(0.2, 2.0))
def test_vae_gradient_matches_finite_differences(batch, input_dim, shared_dim, latent_dim,
                                                 encoder_hidden, decoder_hidden, n_samples, seed,
                                                 likelihood, kl_weight, sigma):
    rng = np.random.default_rng(seed)
    model = numvae.VAE(input_dim, shared_dim, latent_dim, encoder_hidden=tuple(encoder_hidden),
                       decoder_hidden=tuple(decoder_hidden),
                       likelihood=Gaussian(sigma=sigma) if likelihood == "gaussian" else Bernoulli(),
                       objective=ELBO(kl_weight=kl_weight, n_samples=n_samples),
                       dtype=np.float64, seed=seed)
    x = rng.uniform(size=(batch, input_dim))
    eps = rng.standard_normal((n_samples, batch, model.latent_dim))
    assert_gradient_matches(model, x, eps)


def test_slides_parameter_names_and_shapes():
    model = numvae.VAE(784, shared_dim=128, latent_dim=2, seed=0)
    expected = {
        "encoder.compressor.0.W": (784, 256), "encoder.compressor.0.b": (256,),
        "encoder.compressor.2.W": (256, 128), "encoder.compressor.2.b": (128,),
        "encoder.mean.W": (128, 2), "encoder.mean.b": (2,),
        "encoder.log_var.W": (128, 2), "encoder.log_var.b": (2,),
        "decoder.decompressor.0.W": (2, 32), "decoder.decompressor.0.b": (32,),
        "decoder.decompressor.2.W": (32, 256), "decoder.decompressor.2.b": (256,),
        "decoder.decompressor.4.W": (256, 784), "decoder.decompressor.4.b": (784,),
    }
    assert {name: p.shape for name, p in model.params.items()} == expected
    assert {name: g.shape for name, g in model.grads.items()} == expected
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_examples_architecture():
    model = numvae.VAE(784, shared_dim=400, latent_dim=20, encoder_hidden=(), decoder_hidden=(400,))
    assert model.params["encoder.compressor.0.W"].shape == (784, 400)
    assert model.params["encoder.mean.W"].shape == (400, 20)
    assert model.params["decoder.decompressor.0.W"].shape == (20, 400)
    assert model.params["decoder.decompressor.2.W"].shape == (400, 784)


def test_loss_is_mean_negative_elbo_with_explicit_terms():
    model = tiny_model(seed=4, kl_weight=0.5, n_samples=2)
    rng = np.random.default_rng(0)
    x, eps = rng.uniform(size=(3, 10)), rng.standard_normal((2, 3, 3))
    terms = model.forward(x, eps)
    assert terms["reconstruction"].shape == (3,) and terms["kl"].shape == (3,)
    # rebuild from the cached forward quantities with textbook formulas
    c = terms
    p = c["output"].reshape(2, 3, 10)
    log_lik = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)      # (S, B)
    kl = 0.5 * np.sum(c["mean"] ** 2 + np.exp(c["log_var"]) - 1 - c["log_var"], axis=1)
    expected = np.mean(-log_lik.mean(axis=0) + 0.5 * kl)
    assert model.loss_and_grad(x, eps) == pytest.approx(expected, rel=1e-10)


def test_reparameterised_samples_have_the_right_moments():
    model = tiny_model(seed=5)
    x = np.random.default_rng(1).uniform(size=(1, 10))
    eps = np.random.default_rng(2).standard_normal((200_000, 1, 3))
    c = model.forward(x, eps)
    z = c["z"]
    np.testing.assert_allclose(z.mean(axis=0), c["mean"][0], atol=4 * c["std"].max() / np.sqrt(2e5))
    np.testing.assert_allclose(z.var(axis=0), np.exp(c["log_var"][0]), rtol=0.02)


def test_same_seed_same_model_and_eps_is_an_input():
    a, b = numvae.VAE(12, 5, 2, seed=3), numvae.VAE(12, 5, 2, seed=3)
    x = np.random.default_rng(0).uniform(size=(4, 12)).astype(np.float32)
    assert a.loss(x) == b.loss(x)
    # loss(x) draws eps from model.rng: passing that very draw gives the very loss
    eps = b.draw_eps(4)
    c = numvae.VAE(12, 5, 2, seed=3)
    c.draw_eps(4)  # advance c's generator like a and b
    assert c.loss(x) == a.loss(x, eps)
    assert a.loss(x, eps) != a.loss(x, eps + 1.0)


def test_float32_training_step_stays_float32():
    model = numvae.VAE(12, 5, 2, seed=0)
    x = np.random.default_rng(0).uniform(size=(4, 12))  # float64 input is cast once
    cache = model.forward(x)
    model.backward(cache)
    assert all(g.dtype == np.float32 for g in model.grads.values())
    assert cache["z"].dtype == np.float32 and cache["output"].dtype == np.float32


def test_tiny_vae_learns_a_toy_data_set():
    """Three binary prototypes with noise: 400 Adam steps must cut the loss by 40%."""
    rng = np.random.default_rng(0)
    prototypes = (rng.uniform(size=(3, 16)) > 0.5).astype(np.float64)
    data = np.clip(prototypes[rng.integers(0, 3, 300)] + rng.normal(0, 0.1, (300, 16)), 0, 1)
    model = numvae.VAE(16, 8, 2, encoder_hidden=(16,), decoder_hidden=(16,), seed=0)
    opt = numvae.Adam(model.params, lr=1e-2)
    start = model.loss(data)
    for _ in range(400):
        batch = data[rng.integers(0, 300, 32)]
        model.loss_and_grad(batch)
        opt.step(model.grads)
    end = model.loss(data)
    assert end < 0.6 * start, (start, end)


def test_params_and_grads_are_the_layers_own_arrays_and_can_re_point_them():
    model = numvae.VAE(12, 5, 2, seed=0)
    assert model.n_params() == sum(p.size for p in model.params.values())
    layer = model.encoder.heads["mean"]
    assert layer.params["W"] is model.params["encoder.mean.W"]
    assert layer.grads["W"] is model.grads["encoder.mean.W"]
    replacement = np.zeros_like(layer.params["W"])
    model.params["encoder.mean.W"] = replacement  # what FastAdam does to share one buffer
    assert layer.params["W"] is replacement
    mean = model.encode(np.full((1, 12), 0.5))[0]  # the layer computes with the new W = 0
    np.testing.assert_array_equal(mean, layer.params["b"][None, :])


def test_backward_uses_the_cache_it_is_handed_not_the_last_forward():
    """State is passed explicitly: a forward pass in between pairs nothing wrongly."""
    model = tiny_model(seed=6)
    rng = np.random.default_rng(3)
    x1, x2 = rng.uniform(size=(4, 10)), rng.uniform(size=(5, 10))
    eps1, eps2 = rng.standard_normal((1, 4, 3)), rng.standard_normal((1, 5, 3))
    twin = model.copy()
    twin.loss_and_grad(x1, eps1)
    cache = model.forward(x1, eps1)
    model.forward(x2, eps2)  # a second batch in between
    model.backward(cache)
    for name, grad in twin.grads.items():
        assert np.array_equal(model.grads[name], grad), name


def test_kl_weight_is_an_argument_and_leaves_the_model_alone():
    model = tiny_model(seed=7, kl_weight=0.25)
    rng = np.random.default_rng(4)
    x, eps = rng.uniform(size=(3, 10)), rng.standard_normal((1, 3, 3))
    terms = model.forward(x, eps, kl_weight=0.75)
    assert terms["loss"] == pytest.approx(np.mean(terms["reconstruction"] + 0.75 * terms["kl"]),
                                          rel=1e-12)
    assert model.forward(x, eps)["loss"] == pytest.approx(
        np.mean(terms["reconstruction"] + 0.25 * terms["kl"]), rel=1e-12)
    assert model.config["objective"]["kl_weight"] == 0.25 == model.objective.kl_weight


def test_hidden_widths_from_a_generator_are_read_once():
    model = numvae.VAE(16, 4, 2, encoder_hidden=(h for h in [8]), decoder_hidden=iter([5]))
    assert model.params["encoder.compressor.0.W"].shape == (16, 8)
    assert model.params["decoder.decompressor.0.W"].shape == (2, 5)
    network = model.config["architecture"]
    assert network["encoder_hidden"] == (8,) and network["decoder_hidden"] == (5,)


def test_the_verbs_encode_expected_z_decode_and_sample():
    """What plots, evaluation and tutorials call instead of reaching into the model."""
    model = tiny_model(seed=8)
    x = np.random.default_rng(5).uniform(size=(4, 10))
    mean, log_var = model.encode(x)
    assert mean.shape == log_var.shape == (4, 3)
    np.testing.assert_array_equal(model.expected_z(x), mean)      # a Gaussian's E_q[z|x]
    logits = model.decode(mean, logits=True)
    np.testing.assert_allclose(model.decode(mean), 1 / (1 + np.exp(-logits)), rtol=1e-12)
    cache = model.forward(x, np.zeros((1, 4, 3)))                 # eps = 0: z is the mean
    np.testing.assert_array_equal(cache["logits"], logits)
    draws = [model.sample(5, np.random.default_rng(1)) for _ in range(2)]
    assert draws[0].shape == (5, 10) and np.array_equal(*draws)   # the generator decides
    flow = tiny_model(seed=8, posterior="iaf")
    estimates = [flow.expected_z(x, rng=np.random.default_rng(2)) for _ in range(2)]
    assert np.array_equal(*estimates) and not np.array_equal(estimates[0], flow.encode(x)[0])
