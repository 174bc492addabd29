"""numvae.plots.prior and the figures that use it: titles name the prior, the label and what
is measured; the latent grid spans the prior actually used (a mixture's extent)."""
from statistics import NormalDist

import numpy as np
import pytest

import numvae
from numvae import plots
from numvae.diagnostics import evaluate
from numvae.model.priors import GaussianMixture

SHAPE = (4, 4)


def mixture_model(seed=0):
    """A 2-d mixture prior whose components sit far from N(0, 1)'s +-2 (means +-5, +-6)."""
    model = numvae.VAE(16, 6, 2, encoder_hidden=(5,), decoder_hidden=(5,),
                       prior=GaussianMixture(components=3),
                       dtype=np.float64, seed=seed)
    model.prior.params["means"][...] = [[-5.0, 6.0], [0.5, -6.0], [5.0, 1.0]]
    model.prior.params["log_var"][...] = [[0.0, -1.0], [-2.0, 0.5], [0.3, 0.0]]
    model.prior.params["logits"][...] = [0.0, 1.0, -0.5]
    return model


def marginal_cdf(model, dim, v):
    """F(v) = sum_k pi_k Phi((v - mu_k) / sigma_k), written out with statistics.NormalDist."""
    params = model.prior.params
    pi = np.exp(params["logits"]) / np.exp(params["logits"]).sum()
    return sum(p * NormalDist(m, s).cdf(v) for p, m, s in zip(
        pi, params["means"][:, dim], np.exp(0.5 * params["log_var"][:, dim])))


@pytest.mark.parametrize("dim", [0, 1])
def test_the_grid_of_a_mixture_is_at_its_marginal_quantiles(dim):
    model, n = mixture_model(), 7
    values = plots.prior_grid(model, n, dim)
    assert np.all(np.diff(values) > 0)
    for i, v in enumerate(values):
        assert marginal_cdf(model, dim, v) == pytest.approx((i + 0.5) / n, abs=1e-9)
    assert values[0] < -4 and values[-1] > 4  # the codes' extent, not N(0, 1)'s +-1.5


def test_the_grid_of_the_standard_normal_is_unchanged():
    model = numvae.VAE(16, 6, 2, seed=0)
    np.testing.assert_array_equal(plots.prior_grid(model, 5, 1), plots.gaussian_grid(5))
    assert plots.prior_name(model) == "N(0, I)"


def test_the_latent_grid_of_a_mixture_spans_the_mixture(tmp_path):
    model, n = mixture_model(), 5
    fig = plots.latent_grid(model, n=n, image_shape=SHAPE, path=tmp_path / "grid.png")
    [ax] = fig.axes
    assert "mixture of 3 Gaussians" in ax.get_title()
    ticks = [float(t.get_text()) for t in ax.get_xticklabels()]
    np.testing.assert_allclose(ticks, plots.prior_grid(model, n, 0), atol=0.006)
    assert "mixture prior's marginal" in ax.get_xlabel()
    canvas = ax.get_images()[0].get_array()
    corner = model.decode(np.array([[plots.prior_grid(model, n, 0)[0],
                                     plots.prior_grid(model, n, 1)[-1]]]))
    np.testing.assert_allclose(canvas[:4, :4], corner.reshape(SHAPE), rtol=1e-6)


def test_sample_titles_name_the_prior_and_the_label():
    title = plots.prior_samples(mixture_model(), n=4, image_shape=SHAPE).axes[0].get_title()
    assert "mixture of 3 Gaussians" in title and "N(0, I)" not in title
    plain = numvae.VAE(16, 6, 2, seed=0)
    assert "z ~ N(0, I)" in plots.prior_samples(plain, n=4, image_shape=SHAPE).axes[0].get_title()
    conditional = numvae.VAE(16, 6, 2, n_classes=5, seed=0)
    title = plots.prior_samples(conditional, n=4, image_shape=SHAPE, label=3).axes[0].get_title()
    assert "label 3" in title


def test_an_autoencoder_s_usage_figure_agrees_with_its_active_units():
    model = numvae.VAE(16, 6, 2, posterior="point", objective="reconstruction", seed=0)
    images = np.random.default_rng(0).uniform(size=(50, 16))
    fig = plots.kl_per_dimension(model, images)
    [ax] = fig.axes
    n_active, variances = evaluate.active_units(model, images)
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], variances)
    assert f"{n_active} of 2 above 0.01" in ax.get_title() and np.all(variances > 0)
    assert ax.get_ylabel() == "Var_x(E_q[z_j])"


def test_the_usage_title_fits_in_its_figure():
    model = numvae.VAE(16, 6, 2, prior="mixture", seed=0)
    fig = plots.kl_per_dimension(model, np.random.default_rng(0).uniform(size=(20, 16)))
    fig.canvas.draw()
    box = fig.axes[0].title.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width, (box, fig.bbox)
