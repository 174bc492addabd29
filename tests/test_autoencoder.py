"""The autoencoder as parts: a point-mass posterior (a deterministic encoder, one head)
and the "reconstruction" objective (no KL), trained by the same ``fit``."""
import numpy as np
import pytest

import numvae
from helpers import tiny_model
from numvae import plots
from numvae.diagnostics.evaluate import active_units, evaluate_elbo, kl_per_dimension
from numvae.diagnostics.gradcheck import check_arrays, check_model
from numvae.diagnostics.inspect import trace_step
from numvae.model import objectives, posteriors
from numvae.training.checkpoint import load_checkpoint, save_checkpoint
from numvae.training.loop import fit

RNG = np.random.default_rng(0)


def autoencoder(**kwargs):
    return tiny_model(posterior="point", objective="reconstruction", **kwargs)


def test_point_mass_ignores_eps_and_its_backward_sums_the_samples():
    q = posteriors.PointMass()
    mean, eps = RNG.normal(size=(4, 3)), RNG.standard_normal((2, 4, 3))
    z, cache = q.rsample({"mean": mean}, eps)
    np.testing.assert_array_equal(z, np.concatenate([mean, mean]))
    g = RNG.normal(size=z.shape)
    errors = check_arrays(lambda: float(np.sum(g * q.rsample({"mean": mean}, eps)[0])),
                          {"mean": mean}, q.rsample_backward(g, cache))
    assert errors["mean"] < 1e-9
    with pytest.raises(ValueError, match="no density"):
        q.log_prob(cache)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_the_autoencoders_gradient_is_exact(likelihood):
    model = autoencoder(likelihood=likelihood, n_samples=2, seed=4)
    assert list(model.encoder.heads) == ["mean"] and model.objective.kl_weight == 0.0
    x = RNG.uniform(size=(5, 10))
    errors = check_model(model, x)
    assert max(errors.values()) < 1e-6, errors
    cache = model.forward(x)
    np.testing.assert_array_equal(cache["kl"], 0.0)
    assert cache["loss"] == pytest.approx(cache["reconstruction"].mean())
    # the loss is a deterministic function of x: eps plays no part
    assert model.forward(x)["loss"] == cache["loss"]


def test_a_point_mass_with_the_elbo_says_what_to_use():
    for objective in ("elbo", "iwae"):  # refused when the model is built, not at its first step
        with pytest.raises(ValueError, match='no density.*objective="reconstruction"'):
            tiny_model(posterior="point", objective=objective)
    with pytest.raises(ValueError, match='objective="reconstruction"'):  # the part itself too
        posteriors.PointMass().log_prob({})


def test_fit_evaluate_inspect_and_checkpoint_work_with_one_head(tmp_path):
    model = autoencoder(dtype=np.float32)
    x = RNG.uniform(size=(64, 10)).astype(np.float32)
    history = fit(model, numvae.Adam(model.params, lr=1e-2), x, epochs=3, batch_size=16,
                  val_data=x, seed=0, progress=False, log=None)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["train_kl"] == [0.0, 0.0, 0.0]
    result = evaluate_elbo(model, x)
    assert result["kl"] == 0.0 and result["loss"] == pytest.approx(result["reconstruction"])
    np.testing.assert_array_equal(kl_per_dimension(model, x), 0.0)
    assert active_units(model, x)[1].shape == (3,)
    trace = trace_step(model, x[:4], check=True, n_entries=3)
    assert "log_var" not in trace.names() and "d mean (from KL)" in trace.names()
    assert max(row.fd_error for row in trace if row.fd_error is not None) < 1e-6
    path = tmp_path / "ae.npz"
    save_checkpoint(path, model, numvae.Adam(model.params), history)
    loaded = load_checkpoint(path)
    loaded = loaded.model
    assert type(loaded.posterior) is posteriors.PointMass
    assert type(loaded.objective) is objectives.Reconstruction


def test_every_figure_can_be_drawn_for_an_autoencoder(tmp_path):
    model = numvae.VAE(16, 6, 2, posterior="point", objective="reconstruction", seed=0)
    x = RNG.uniform(size=(20, 16))
    paths = plots.save_all(model, None, x, np.arange(20) % 3, tmp_path)
    assert all(path.is_file() for path in paths.values())


def test_numvae_evaluate_skips_the_importance_weighted_bound_for_an_autoencoder(tmp_path, capsys):
    from numvae.commands.cli import main
    model = numvae.VAE(784, 16, 2, encoder_hidden=(), decoder_hidden=(8,), posterior="point",
                       objective="reconstruction", seed=0)
    path = tmp_path / "ae.npz"
    save_checkpoint(path, model, numvae.Adam(model.params), {})
    assert main(["evaluate", str(path), "--n", "20", "--dataset", "mnist-mini"]) == 0
    out = capsys.readouterr().out
    assert "point mass" in out and "skipped" in out
    # reported as what it is, never as an ELBO with "KL 0.00" that reads better than a VAE's
    (headline,) = [line for line in out.splitlines() if line.startswith("20 test images:")]
    assert "-ELBO" not in headline and "KL 0.00" not in out
    assert headline.startswith("20 test images: reconstruction error")
    assert "no KL term, no ELBO" in headline
