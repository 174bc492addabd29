"""numvae.plots.latent, the figures of the latent space: the right panels, labels and
values, saved PNGs that are not blank. (The history figures: test_history.py.)

Small untrained models on random 8 x 8 images: the figures' content is checked against
the model's own encode/decode, not against what a trained model would show.
"""
from statistics import NormalDist

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

import numvae
from helpers import assert_png, fake_history, tick_texts
from numvae import plots
from numvae.diagnostics import evaluate

SHAPE = (8, 8)
N_IMAGES = 40
N_LABELS = 4


def small_model(latent_dim, seed=0):
    return numvae.VAE(64, 8, latent_dim, encoder_hidden=(16,), decoder_hidden=(16,), seed=seed)


@pytest.fixture(scope="module")
def model():
    return small_model(2)


@pytest.fixture(scope="module")
def model5():
    return small_model(5)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(N_IMAGES, 64)).astype(np.float32)
    labels = np.arange(N_IMAGES) % N_LABELS  # every label present
    return images, labels


# --- gaussian_grid ------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 7, 15])
def test_gaussian_grid_is_inverse_normal_cdf_at_bin_midpoints(n):
    values = plots.gaussian_grid(n)
    expected = [NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(values, -values[::-1], atol=1e-12)  # symmetric about 0
    assert np.all(np.diff(values) > 0)
    # each value is the median of its bin: equal prior mass 1/n on either side of the steps
    np.testing.assert_allclose([NormalDist().cdf(v) for v in values], (np.arange(n) + 0.5) / n)


def test_gaussian_grid_15_matches_known_quantiles():
    values = plots.gaussian_grid(15)
    assert values[7] == pytest.approx(0.0, abs=1e-12)
    assert values[-1] == pytest.approx(1.8339146358, abs=1e-9)  # Phi^{-1}(14.5 / 15)


# --- latent_space -------------------------------------------------------------------------

def test_latent_space_2d(model, data, tmp_path):
    images, labels = data
    path = tmp_path / "latent.png"
    fig = plots.latent_space(model, images, labels, path=path)
    assert isinstance(fig, Figure)
    [ax] = fig.axes
    assert ax.get_title() == "Latent space (encoder means)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z[0] (mean)", "z[1] (mean)")
    assert tick_texts(ax.get_legend().get_texts()) == [str(k) for k in range(N_LABELS)]
    # the points are the encoder means, in some drawing order
    points = ax.collections[0].get_offsets()
    means = model.encode(images)[0]
    np.testing.assert_allclose(np.sort(points, axis=0), np.sort(means, axis=0), rtol=1e-6)
    assert_png(path)
    assert [p.name for p in tmp_path.iterdir()] == ["latent.png"]  # nothing else created


def test_latent_space_colours_follow_labels(model, data):
    images, labels = data
    ax = plots.latent_space(model, images, labels).axes[0]
    points = ax.collections[0].get_offsets()
    colours = ax.collections[0].get_facecolors()[:, :3]
    means = model.encode(images)[0]
    legend = {text.get_text(): handle.get_color() for text, handle in
              zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    for point, colour in zip(points[:10], colours[:10]):
        row = np.argmin(np.abs(means - point).sum(axis=1))
        assert np.allclose(colour, matplotlib.colors.to_rgb(legend[str(labels[row])]))


def test_latent_space_pca_for_more_than_two_dimensions(model5, data, tmp_path):
    images, labels = data
    fig = plots.latent_space(model5, images, labels, path=tmp_path / "pca.png")
    [ax] = fig.axes
    assert "principal component" in ax.get_title()
    assert ax.get_xlabel().startswith("principal component 1 of the encoder means")
    assert ax.get_ylabel().startswith("principal component 2 of the encoder means")
    assert len(ax.get_legend().get_texts()) == N_LABELS
    # principal components: centred, uncorrelated, the first with the larger variance
    points = np.asarray(ax.collections[0].get_offsets(), dtype=np.float64)
    np.testing.assert_allclose(points.mean(axis=0), 0, atol=1e-6)
    assert abs(np.cov(points.T)[0, 1]) < 1e-6 * points.var()
    assert points[:, 0].var() >= points[:, 1].var()
    # and the largest variance of any projection: that of the top singular vector
    means = model5.encode(images)[0].astype(np.float64)
    top = np.linalg.svd(means - means.mean(axis=0), compute_uv=False)[0]
    assert points[:, 0].var() * len(points) == pytest.approx(top ** 2, rel=1e-5)
    assert_png(tmp_path / "pca.png")


def test_latent_space_1d_strips(data):
    images, labels = data
    ax = plots.latent_space(small_model(1), images, labels).axes[0]
    assert ax.get_xlabel() == "z[0] (mean)"
    assert len(ax.get_legend().get_texts()) == N_LABELS


def test_latent_space_max_points_and_no_labels(model, data):
    images, _ = data
    ax = plots.latent_space(model, images, None, max_points=7).axes[0]
    assert len(ax.collections[0].get_offsets()) == 7
    assert ax.get_legend() is None


# --- latent_grid --------------------------------------------------------------------------

def test_latent_grid_2d(model, tmp_path):
    n = 5
    fig = plots.latent_grid(model, n=n, image_shape=SHAPE, path=tmp_path / "grid.png")
    [ax] = fig.axes
    assert ax.get_title() == "Sampling the latent space of prior N(0, I)"
    [image] = ax.get_images()  # one canvas, one imshow
    canvas = image.get_array()
    assert canvas.shape == (n * 8, n * 8)
    expected = [f"{NormalDist().inv_cdf((i + 0.5) / n):.2f}" for i in range(n)]
    assert tick_texts(ax.get_xticklabels()) == expected
    assert tick_texts(ax.get_yticklabels()) == expected[::-1]  # largest z[1] at the top
    quantiles = f"  (ticks: Gaussian quantiles, Phi^-1((i + 1/2) / {n}))"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z[0]" + quantiles, "z[1]" + quantiles)
    # the top-left cell is the decoder output at (smallest z[0], largest z[1])
    values = plots.gaussian_grid(n)
    top_left = model.decode(np.array([[values[0], values[-1]]])).reshape(SHAPE)
    np.testing.assert_allclose(canvas[:8, :8], top_left, rtol=1e-6)
    assert_png(tmp_path / "grid.png")


def test_latent_grid_varies_the_chosen_dimensions_others_zero(model5):
    n = 3
    ax = plots.latent_grid(model5, n=n, dims=(3, 1), image_shape=SHAPE).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == tuple(
        f"z[{d}]  (ticks: Gaussian quantiles, Phi^-1((i + 1/2) / {n}))" for d in (3, 1))
    assert "Sampling the latent space" in ax.get_title()
    canvas = ax.get_images()[0].get_array()
    values = plots.gaussian_grid(n)
    z = np.zeros((1, 5))
    z[0, 3], z[0, 1] = values[2], values[0]  # bottom-right cell: largest z[3], smallest z[1]
    np.testing.assert_allclose(canvas[-8:, -8:], model5.decode(z).reshape(SHAPE), rtol=1e-6)


def test_latent_grid_1d_is_one_row():
    ax = plots.latent_grid(small_model(1), n=6, image_shape=SHAPE).axes[0]
    assert ax.get_images()[0].get_array().shape == (8, 6 * 8)
    assert len(ax.get_xticklabels()) == 6


# --- reconstructions and prior samples ----------------------------------------------------

def test_reconstructions(model, data, tmp_path):
    images, _ = data
    n = 4
    fig = plots.reconstructions(model, images, n=n, image_shape=SHAPE,
                                path=tmp_path / "rec.png")
    assert len(fig.axes) == 2 * n
    top, bottom = fig.axes[:n], fig.axes[n:]  # subplots(2, n) adds them row by row
    expected = model.decode(model.encode(images[:n])[0])
    for k in range(n):
        np.testing.assert_allclose(top[k].get_images()[0].get_array(), images[k].reshape(SHAPE))
        np.testing.assert_allclose(bottom[k].get_images()[0].get_array(),
                                   expected[k].reshape(SHAPE), rtol=1e-6)
    assert (top[0].get_ylabel(), bottom[0].get_ylabel()) == ("original", "reconstruction")
    assert_png(tmp_path / "rec.png")


def test_prior_samples(model, tmp_path):
    state = model.rng.bit_generator.state
    fig = plots.prior_samples(model, n=10, rng=np.random.default_rng(3), image_shape=SHAPE,
                              path=tmp_path / "prior.png")
    assert model.rng.bit_generator.state == state  # the model's generator is not used
    [ax] = fig.axes
    canvas = ax.get_images()[0].get_array()
    assert canvas.shape == (3 * 8 + 2, 4 * 8 + 3)  # 10 images: 3 rows of 4, 1-pixel gaps
    expected = model.sample(10, np.random.default_rng(3))
    np.testing.assert_allclose(canvas[:8, 9:17], expected[1].reshape(SHAPE), rtol=1e-6)
    assert canvas.mask[-8:, -8:].all()  # the two empty cells are masked, drawn white
    assert_png(tmp_path / "prior.png")
    again = plots.prior_samples(model, n=10, rng=3, image_shape=SHAPE)
    np.testing.assert_array_equal(again.axes[0].get_images()[0].get_array(), canvas)


# --- kl_per_dimension -------------------------------------------------------------------

def test_kl_per_dimension(model5, data, tmp_path):
    images, _ = data
    fig = plots.kl_per_dimension(model5, images, path=tmp_path / "kl.png")
    [ax] = fig.axes
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, evaluate.kl_per_dimension(model5, images))
    assert tick_texts(ax.get_xticklabels()) == [f"z[{d}]" for d in range(5)]
    [threshold] = ax.get_lines()
    assert threshold.get_ydata()[0] == pytest.approx(0.01)
    assert_png(tmp_path / "kl.png")


# --- save_all -----------------------------------------------------------------------------

def test_save_all(model, data, tmp_path):
    images, labels = data
    out = tmp_path / "figures"
    paths = plots.save_all(model, fake_history(), images, labels, out)  # 64 -> (8, 8)
    assert set(paths) == set(plots.FILE_NAMES)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in plots.FILE_NAMES)
    for path in paths.values():
        assert_png(path)


@pytest.mark.parametrize("history", [None, {}])
def test_save_all_without_history(model, data, tmp_path, history):
    images, labels = data
    paths = plots.save_all(model, history, images, labels, tmp_path)
    assert set(paths) == set(plots.FILE_NAMES) - {"training_curves", "gradient_flow"}
    assert all(path.exists() for path in paths.values())


def test_default_image_shape():
    assert plots.default_image_shape(784) == (28, 28)
    assert plots.default_image_shape(64) == (8, 8)
    assert plots.default_image_shape(10) == (1, 10)


# --- bad arguments ------------------------------------------------------------------------

def test_bad_arguments_name_the_argument(model, model5, data):
    images, labels = data
    cases = [
        (lambda: plots.latent_space(model, images[:, :60], labels), ValueError, "images"),
        (lambda: plots.latent_space(model, images, labels[:-1]), ValueError, "labels"),
        (lambda: plots.latent_space(model, images, labels, max_points=0), ValueError,
         "max_points"),
        (lambda: plots.latent_grid(model, n=0, image_shape=SHAPE), ValueError, "n must"),
        (lambda: plots.latent_grid(model5, dims=(0, 5), image_shape=SHAPE), ValueError, "dims"),
        (lambda: plots.latent_grid(model5, dims=(2, 2), image_shape=SHAPE), ValueError, "dims"),
        (lambda: plots.latent_grid(model5, dims=3, image_shape=SHAPE), TypeError, "dims"),
        (lambda: plots.latent_grid(model, image_shape=(28, 28)), ValueError,
         "image_shape"),  # 784 != 64
        (lambda: plots.reconstructions(model, images, n=N_IMAGES + 1, image_shape=SHAPE),
         ValueError, "n = "),
        (lambda: plots.reconstructions(model, images, n=-1, image_shape=SHAPE), ValueError,
         "n must"),
        (lambda: plots.prior_samples(model, n=0, image_shape=SHAPE), ValueError, "n must"),
        (lambda: plots.prior_samples(model, rng="seed", image_shape=SHAPE), TypeError, "rng"),
        (lambda: plots.kl_per_dimension(model, images * 2), ValueError, "images"),
        (lambda: plots.training_curves([1, 2]), TypeError, "history"),
        (lambda: plots.training_curves(fake_history(epochs=0)), ValueError, "epoch"),
        (lambda: plots.training_curves({**fake_history(), "train_kl": [1.0]}), ValueError,
         "train_kl"),
        (lambda: plots.gradient_flow({"epoch": [1]}), ValueError, "grad_norm"),
        (lambda: plots.latent_space(model, images, labels, path=3), TypeError, "path"),
    ]
    for call, error, name in cases:
        with pytest.raises(error, match=name):
            call()
