"""The conditional VAE (``n_classes=C``, eq. CD1): labels checked with clear errors, the
one-hot inputs of the encoder and the decoder, the gradient against central differences,
and the labels going everywhere a batch goes (fit, evaluation, gradient checks, the
inspector, checkpoints, the figures and the command line)."""
import json

import numpy as np
import pytest

import numvae
from helpers import tiny_model
from numvae import plots
from numvae.diagnostics import evaluate
from numvae.diagnostics.gradcheck import check_model, check_model_directions
from numvae.diagnostics.inspect import trace_step
from numvae.io import datasets
from numvae.model.labels import check_labels, one_hot
from numvae.plots.structure import conditional_grid
from numvae.training.checkpoint import load_checkpoint, save_checkpoint
from numvae.training.loop import fit

RNG = np.random.default_rng(0)


def conditional(**kwargs):
    return tiny_model(n_classes=4, activation="tanh", **kwargs)   # tanh: no kink to straddle


def test_one_hot_rows():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3, np.float64),
                                  [[0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize("y, words", [(None, "needs the labels y"),
                                      ([0, 1], r"shape \(3,\); got shape \(2,\)"),
                                      ([0, 1, 4],
                                       "holds the label 4; expected integers in \\[0, 4\\)"),
                                      ([0, -1, 2], "holds the label -1"),
                                      ([0.5, 1, 2], "one integer label per example"),
                                      (["a", "b", "c"], "one integer label per example")])
def test_bad_labels_are_refused_clearly(y, words):
    with pytest.raises(ValueError, match=words):
        check_labels(y, 4, 3)
    model = conditional()
    with pytest.raises(ValueError, match=words):
        model.loss(RNG.uniform(size=(3, 10)), y=y)


def test_whole_numbers_as_floats_are_labels():
    np.testing.assert_array_equal(check_labels(np.array([1.0, 3.0]), 4, 2), [1, 3])


def test_the_encoder_and_the_decoder_read_the_one_hot_label():
    model = conditional()
    assert model.params["encoder.compressor.0.W"].shape == (10 + 4, 7)
    assert model.params["decoder.decompressor.0.W"].shape == (3 + 4, 5)
    assert model.config["architecture"]["n_classes"] == 4
    assert "n_classes" not in tiny_model().config["architecture"]
    x = RNG.uniform(size=(2, 10))
    np.testing.assert_array_equal(model.condition(x, np.array([1, 3]))[:, 10:],
                                  [[0, 1, 0, 0], [0, 0, 0, 1]])
    z = RNG.normal(size=(6, 3))                          # S = 3 draws of 2 examples
    np.testing.assert_array_equal(model.condition(z, np.array([1, 3]))[:, 3:].argmax(1),
                                  [1, 3, 1, 3, 1, 3])
    # the label changes the decoded image: the decoder reads it
    assert not np.allclose(model.decode(z[:2], [0, 0]), model.decode(z[:2], [1, 1]))


def test_gradient_against_central_differences():
    model = conditional()
    x, y = RNG.uniform(size=(5, 10)), np.array([0, 3, 1, 1, 2])
    eps = RNG.standard_normal((2, 5, 3))
    errors = check_model(model, x, eps, y=y)
    assert max(errors.values()) < 1e-7, errors
    assert max(check_model_directions(model, x, eps, y=y).values()) < 1e-7
    model = tiny_model(n_classes=3, prior="mixture", prior_components=2, activation="tanh")
    assert max(check_model(model, x, eps, y=y % 3).values()) < 1e-7


def test_an_unconditional_model_ignores_labels():
    model = tiny_model()
    x, eps = RNG.uniform(size=(3, 10)), RNG.standard_normal((1, 3, 3))
    assert model.loss(x, eps) == model.loss(x, eps, y=[5, 6, 7])
    assert model.check_labels([5, 6, 7], 3) is None


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="n_classes must be a positive integer"):
        tiny_model(n_classes=0)
    with pytest.raises(ValueError, match="conv architecture takes no labels"):
        numvae.VAE(64, 5, 2, architecture="conv", n_classes=3)


def test_sample_and_decode():
    model = conditional()
    assert model.sample(6, np.random.default_rng(0)).shape == (6, 10)   # classes in turn
    a = model.sample(3, np.random.default_rng(1), y=[2, 2, 2])
    b = model.decode(model.prior.sample(3, np.random.default_rng(1)), [2, 2, 2])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="needs the labels y"):
        model.decode(np.zeros((2, 3)))


def toy(n=200, seed=0):
    data = datasets.make_toy(n, side=4, seed=seed)                       # 4 classes, 16 pixels
    return data


def test_fit_evaluate_and_the_figures_take_the_labels(tmp_path):
    data = toy()
    model = numvae.VAE(16, 8, 2, encoder_hidden=(16,), decoder_hidden=(16,), n_classes=4,
                       seed=0)
    history = fit(model, numvae.FastAdam(model.params, lr=1e-2), data, epochs=3, batch_size=50,
                  val_data=toy(60, seed=1), seed=0, progress=False, log=None)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_loss"][-1] is not None
    with pytest.raises(ValueError, match="needs the labels y"):
        fit(model, numvae.FastAdam(model.params), data.images, epochs=1, progress=False, log=None)
    result = evaluate.evaluate_elbo(model, data.images, labels=data.labels)
    iwae = evaluate.iwae_log_likelihood(model, data.images[:20], labels=data.labels[:20], k=10)
    assert iwae["log_px"] > -result["loss"] - 5
    assert evaluate.active_units(model, data.images, labels=data.labels)[1].shape == (2,)
    with pytest.raises(ValueError, match="needs the labels y"):
        evaluate.evaluate_elbo(model, data.images)
    paths = plots.save_all(model, history, data.images, data.labels, tmp_path,
                           image_shape=(4, 4))
    assert paths["latent_space"].exists() and paths["latent_grid"].exists()
    fig = conditional_grid(model, n_styles=5, image_shape=(4, 4), path=tmp_path / "c.png")
    assert (tmp_path / "c.png").exists()
    assert len(fig.axes[0].get_yticklabels()) == 4


def test_trace_step_and_checkpoint(tmp_path):
    model = conditional()
    x, y = RNG.uniform(size=(4, 10)), np.array([0, 1, 2, 3])
    trace = trace_step(model, x, y=y, check=True)
    assert trace["onehot(y)"].value.shape == (4, 4)
    assert "[x, onehot(y)]" in trace["encoder.compressor.0"].formula
    assert max(row.fd_error for row in trace if row.fd_error is not None) < 1e-6
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.npz", model))
    assert loaded.model.config == model.config
    assert loaded.model.loss(x, RNG.standard_normal((1, 4, 3)) * 0, y=y) == \
        model.loss(x, np.zeros((1, 4, 3)), y=y)


def test_command_line(tmp_path, capsys):
    from numvae.commands.cli import main
    out = tmp_path / "run"
    code = main(["train", "--dataset", "toy", "--latent-dim", "2", "--shared-dim", "16",
                 "--epochs", "1", "--conditional", "--out", str(out)])
    assert code == 0
    checkpoint = out / "checkpoint.npz"
    assert load_checkpoint(checkpoint).model.n_classes == 4
    assert (out / "conditional_grid.png").exists()
    assert json.loads((out / "metrics.json").read_text())["test_negative_elbo"] > 0
    assert main(["evaluate", str(checkpoint), "--iwae-k", "5"]) == 0
    assert main(["sample", str(checkpoint), "--n", "3", "--label", "2",
                 "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 64)
    assert main(["inspect", str(checkpoint)]) == 0
    assert "onehot(y)" in capsys.readouterr().out
    assert main(["sample", str(checkpoint), "--label", "4", "--out", str(tmp_path / "t.npy")]) == 2
    assert "classes 0 .. 3" in capsys.readouterr().err
