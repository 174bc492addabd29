"""The Gaussian-mixture prior (eqs. GM1-GM3): values against the textbook sum written here,
its stable log-sum-exp, the responsibilities of the E-step, every gradient against central
differences in float64, and the whole model with it (gradients, checkpoint, evaluation)."""
import math

import numpy as np
import pytest

import numvae
from helpers import tiny_model, vae
from numvae.diagnostics import evaluate
from numvae.diagnostics.gradcheck import check_arrays, check_model
from numvae.model import priors
from numvae.training.checkpoint import load_checkpoint, save_checkpoint

TOL = 1e-7


def mixture(k=4, m=3, seed=0):
    """A mixture with non-trivial values everywhere, so that no zero hides a wrong gradient."""
    rng = np.random.default_rng(seed)
    prior = priors.GaussianMixture(components=k).build(m, rng, np.float64)
    prior.params["logits"][...] = rng.normal(size=k)
    prior.params["means"][...] = rng.normal(scale=1.5, size=(k, m))
    prior.params["log_var"][...] = rng.normal(scale=0.5, size=(k, m))
    return prior


def textbook_log_prob(prior, z):
    """log sum_k pi_k prod_j N(z_j; mu_kj, sigma_kj^2), term by term, without log-sum-exp."""
    logits, means, log_var = (prior.params[name] for name in ("logits", "means", "log_var"))
    pi = np.exp(logits) / np.exp(logits).sum()
    total = np.zeros(len(z))
    for k in range(len(pi)):
        var = np.exp(log_var[k])
        density = np.prod(np.exp(-(z - means[k]) ** 2 / (2 * var)) / np.sqrt(2 * math.pi * var),
                          axis=1)
        total += pi[k] * density
    return np.log(total)


def test_log_prob_is_the_mixture_density():
    prior = mixture()
    z = np.random.default_rng(1).normal(scale=2.0, size=(6, 3))
    np.testing.assert_allclose(prior.log_prob(z), textbook_log_prob(prior, z), rtol=1e-12)
    # any leading shape: (S, batch, latent_dim) -> (S, batch)
    assert prior.log_prob(z.reshape(2, 3, 3)).shape == (2, 3)


def test_log_prob_is_stable_far_from_every_mean():
    """exp of -1e5 underflows to 0; the log-sum-exp keeps the exact answer."""
    prior = mixture()
    z = np.full((2, 3), 300.0)
    with np.errstate(divide="ignore"):
        assert np.isneginf(textbook_log_prob(prior, z)).all()   # the naive sum gives log 0
    value = prior.log_prob(z)
    assert np.isfinite(value).all() and (value < -1e4).all()
    assert np.isfinite(prior.log_prob_backward(np.ones(2), z)).all()


def test_one_component_is_a_diagonal_gaussian_and_standard_normal_is_a_special_case():
    prior = priors.GaussianMixture(components=1).build(3, np.random.default_rng(0), np.float64)
    prior.params["means"][...] = 0.0
    z = np.random.default_rng(2).normal(size=(5, 3))
    np.testing.assert_allclose(prior.log_prob(z), priors.StandardNormal().build(3).log_prob(z),
                               rtol=1e-12)


def test_responsibilities_are_the_posterior_over_components():
    prior = mixture()
    z = np.random.default_rng(3).normal(size=(7, 3))
    r = prior.responsibilities(z)
    assert r.shape == (7, 4)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=1e-12)
    # r_k = pi_k N_k(z) / p(z): a one-component mixture of component k gives log pi_k N_k
    for k in range(4):
        single = priors.GaussianMixture(components=1).build(3, np.random.default_rng(0),
                                                            np.float64)
        single.params["means"][...] = prior.params["means"][k]
        single.params["log_var"][...] = prior.params["log_var"][k]
        log_pi = prior.params["logits"][k] - np.log(np.exp(prior.params["logits"]).sum())
        np.testing.assert_allclose(np.log(r[:, k]),
                                   log_pi + single.log_prob(z) - prior.log_prob(z), atol=1e-12)


def test_every_gradient_against_central_differences():
    """dz and the three parameter gradients of L = sum_rows w * log p(z) (eq. GM3)."""
    prior = mixture()
    rng = np.random.default_rng(4)
    z, weights = rng.normal(scale=1.5, size=(6, 3)), rng.uniform(0.5, 2.0, size=6)
    dz = prior.log_prob_backward(weights, z)
    analytic = {"z": dz, **{name: grad.copy() for name, grad in prior.grads.items()}}
    errors = check_arrays(lambda: float(np.sum(weights * prior.log_prob(z))),
                          {"z": z, **prior.params}, analytic)
    assert max(errors.values()) < TOL, errors


def test_gradients_are_written_in_place():
    prior = mixture()
    views = {name: grad for name, grad in prior.grads.items()}
    prior.log_prob_backward(np.ones(4), np.random.default_rng(5).normal(size=(4, 3)))
    assert all(prior.grads[name] is views[name] for name in views)
    assert all(np.abs(grad).sum() > 0 for grad in views.values())


def test_sampling_from_one_component_and_from_the_mixture():
    prior = mixture()
    rng = np.random.default_rng(6)
    z = prior.sample(20000, rng, component=2)
    np.testing.assert_allclose(z.mean(axis=0), prior.params["means"][2], atol=0.05)
    np.testing.assert_allclose(np.log(z.var(axis=0)), prior.params["log_var"][2], atol=0.05)
    z = prior.sample(20000, rng)
    pi = np.exp(prior.params["logits"]) / np.exp(prior.params["logits"]).sum()
    np.testing.assert_allclose(z.mean(axis=0), pi @ prior.params["means"], atol=0.05)


def test_the_model_with_a_mixture_prior():
    model = tiny_model(prior="mixture", prior_components=4)
    assert model.config["prior"] == {"name": "mixture", "components": 4}
    assert {"prior.logits", "prior.means", "prior.log_var"} <= set(model.params)
    assert model.params["prior.means"].std() > 0.1                  # spread, not all at 0
    x = np.random.default_rng(7).uniform(size=(5, 10))
    errors = check_model(model, x, np.random.default_rng(8).standard_normal((2, 5, 3)))
    assert max(errors.values()) < 1e-6, errors
    assert tiny_model().config["prior"] == {"name": "standard_normal"}  # no components


@pytest.mark.parametrize("value", [0, -1, 2.5, "3"])
def test_bad_number_of_components(value):
    with pytest.raises(ValueError, match="components must be a positive integer"):
        tiny_model(prior="mixture", prior_components=value)


def test_checkpoint_round_trip(tmp_path):
    model = tiny_model(prior="mixture", prior_components=3, dtype=np.float32)
    optimizer = numvae.Adam(model.params, lr=1e-2)
    x = np.random.default_rng(9).uniform(size=(6, 10))
    for _ in range(3):
        model.loss_and_grad(x)
        optimizer.step(model.grads)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.npz", model, optimizer))
    assert loaded.model.config == model.config
    assert all(np.array_equal(loaded.model.params[n], v) for n, v in model.params.items())


def test_evaluation_reports_no_kl_per_dimension_but_active_units():
    model = tiny_model(prior="mixture", prior_components=3)
    x = np.random.default_rng(10).uniform(size=(20, 10))
    result = evaluate.evaluate_elbo(model, x)
    assert np.isfinite(result["loss"]) and np.isnan(result["kl_per_dim"]).all()
    assert np.isnan(evaluate.kl_per_dimension(model, x)).all()
    n_active, variance = evaluate.active_units(model, x)
    assert variance.shape == (3,) and 0 <= n_active <= 3
    iwae = evaluate.iwae_log_likelihood(model, x, k=20)
    assert iwae["log_px"] >= -result["loss"] - 3 * result["loss_se"]


def test_mixture_figures_and_clusters(tmp_path):
    from numvae import plots
    from numvae.io import datasets
    data = datasets.make_toy(60, side=4, seed=0)
    model = vae(16, 8, 2, encoder_hidden=(8,), decoder_hidden=(8,), prior="mixture",
                       prior_components=4, seed=0)
    components, accuracy, mapping = plots.mixture_clusters(model, data.images, data.labels)
    assert components.shape == (60,) and 0.25 <= accuracy <= 1.0   # >= the largest class
    assert set(mapping) <= set(range(4)) and set(mapping.values()) <= set(range(4))
    fig = plots.latent_space_with_components(model, data.images, data.labels,
                                                   path=tmp_path / "latent.png")
    assert len(fig.axes[0].patches) == 4                              # one ellipse each
    plots.component_samples(model, n=3, image_shape=(4, 4), path=tmp_path / "samples.png")
    assert (tmp_path / "latent.png").exists() and (tmp_path / "samples.png").exists()
    standard = vae(16, 8, 2, encoder_hidden=(8,), decoder_hidden=(8,), seed=0)
    fig = plots.latent_space_with_components(standard, data.images, data.labels)
    assert len(fig.axes[0].patches) == 1                              # the 1-sigma circle
    with pytest.raises(ValueError, match="latent_dim 2"):
        plots.latent_space_with_components(tiny_model(), np.zeros((2, 10)), [0, 1])


def test_kl_per_dimension_figure_shows_active_unit_variances_instead():
    from numvae import plots
    model = tiny_model(prior="mixture", prior_components=3)
    x = np.random.default_rng(11).uniform(size=(30, 10))
    fig = plots.kl_per_dimension(model, x)
    ax = fig.axes[0]
    assert ax.get_title().startswith("Variance of E_q[z_j] per latent dimension")
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, evaluate.active_units(model, x)[1])
