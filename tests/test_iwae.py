"""The importance-weighted objective (objective="iwae", eqs. IW1-IW3) and the learning-rate
schedules: values against the bound written out here, gradients against central
differences in float64, K = 1 against the ELBO with a Monte Carlo KL, and the refusals."""
import numpy as np
import pytest

import numvae
from helpers import tiny_model, vae
from numvae.diagnostics import evaluate
from numvae.diagnostics.gradcheck import check_model, check_model_directions
from numvae.io import datasets
from numvae.model import priors
from numvae.model.objectives import IWAE, drop_negligible_weights
from numvae.training import loop
from numvae.training.checkpoint import load_checkpoint, save_checkpoint

X = np.random.default_rng(2).uniform(size=(5, 10))
EPS = np.random.default_rng(3).standard_normal((4, 5, 3))


def test_the_loss_is_minus_the_mean_log_mean_weight():
    model = tiny_model(seed=1, objective="iwae", n_samples=4, activation="tanh")
    log_w = evaluate.log_weights(model, X, EPS)                     # (K, batch), eq. I1
    bound = np.log(np.mean(np.exp(log_w), axis=0))
    cache = model.forward(X, EPS)
    np.testing.assert_allclose(cache["bound"], bound, rtol=1e-12)
    assert cache["loss"] == pytest.approx(-bound.mean(), rel=1e-12)
    # the bound is above the mean of the K single-sample ELBOs (Jensen), draw by draw
    assert np.all(cache["bound"] >= log_w.mean(axis=0))
    # what fit's history reads: -log p(x|z) averaged over the draws, and the KL
    elbo = tiny_model(seed=1, n_samples=4, activation="tanh").forward(X, EPS)
    np.testing.assert_allclose(cache["reconstruction"], elbo["reconstruction"], rtol=1e-12)
    np.testing.assert_allclose(cache["kl"], elbo["kl"], rtol=1e-12)
    assert cache["reconstruction"].shape == cache["kl"].shape == (5,)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_gradient_matches_central_differences(likelihood, activation):
    model = tiny_model(seed=4, objective="iwae", n_samples=4, likelihood=likelihood,
                       activation=activation)
    errors = check_model(model, X, EPS)
    assert max(errors.values()) < 1e-6, errors


def test_a_wrong_weight_is_caught():
    """The check is tight enough to see the normalised weights replaced by 1/K (the
    average of K ELBO gradients instead of the bound's)."""
    model = tiny_model(seed=4, objective="iwae", n_samples=4, activation="tanh")
    backward = model.objective.backward

    def uniform_weights(cache):
        cache = dict(cache, normalised=np.full_like(cache["normalised"], 0.25))
        return backward(cache)
    model.objective.backward = uniform_weights
    assert max(check_model(model, X, EPS).values()) > 1e-3


class PlainNormalPrior(priors.StandardNormal):
    """N(0, I) without a closed-form KL: the ELBO uses the Monte Carlo KL (K3, K4)."""
    name = "plain_normal"


def test_one_sample_gives_the_elbo_gradient_with_a_monte_carlo_kl(monkeypatch):
    monkeypatch.setitem(priors.PRIORS, PlainNormalPrior.name, PlainNormalPrior)
    iwae = tiny_model(seed=5, objective="iwae", n_samples=1, activation="tanh")
    elbo = tiny_model(seed=5, prior="plain_normal", n_samples=1, activation="tanh")
    loss_iwae = iwae.loss_and_grad(X, EPS[:1])
    loss_elbo = elbo.loss_and_grad(X, EPS[:1])
    assert loss_iwae == pytest.approx(loss_elbo, rel=1e-12)
    for name in iwae.grads:
        np.testing.assert_allclose(iwae.grads[name], elbo.grads[name], rtol=1e-10, atol=1e-13)


def test_full_size_gradient_along_random_directions():
    """Burda et al.'s 784-200-200-50 tanh model, K = 5, every parameter (C2)."""
    model = vae(784, 200, 50, encoder_hidden=(200,), decoder_hidden=(200, 200),
                       activation="tanh", objective="iwae", n_samples=5, dtype=np.float64,
                       seed=0)
    x = datasets.binarize(np.random.default_rng(0).uniform(size=(3, 784)), np.random.default_rng(1))
    errors = check_model_directions(model, x, n_directions=3)
    assert max(errors.values()) < 1e-5, errors


def test_kl_weight_and_warmup_are_refused():
    with pytest.raises(ValueError, match="kl_weight=0.5 has no meaning for objective='iwae'"):
        vae(10, 6, 3, objective="iwae", kl_weight=0.5)
    model = tiny_model(objective="iwae", n_samples=2)
    assert model.config["objective"] == {"name": "iwae", "k": 2}  # no kl_weight
    with pytest.raises(ValueError, match="kl_weight"):
        model.forward(X, EPS[:2], kl_weight=0.3)
    data = np.random.default_rng(0).uniform(size=(20, 10))
    with pytest.raises(ValueError, match="kl_warmup_epochs=2 has no meaning for objective='iwae'"):
        loop.fit(model, numvae.Adam(model.params), data, epochs=1, kl_warmup_epochs=2,
                  progress=False, log=None)


def test_fit_trains_the_bound_and_a_checkpoint_keeps_the_objective(tmp_path):
    data = datasets.make_toy(200, seed=0)
    model = vae(64, 16, 2, encoder_hidden=(32,), decoder_hidden=(32,),
                       objective="iwae", n_samples=5, seed=0)
    before = model.forward(data.images[:100], model.draw_eps(100))["loss"]
    history = loop.fit(model, numvae.Adam(model.params, lr=3e-3), data, epochs=4,
                        batch_size=20, seed=0, progress=False, log=None)
    after = model.forward(data.images[:100], model.draw_eps(100))["loss"]
    assert after < before - 1 and len(history["train_loss"]) == 4
    save_checkpoint(tmp_path / "c.npz", model)
    loaded = load_checkpoint(tmp_path / "c.npz").model
    assert loaded.config["objective"] == {"name": "iwae", "k": 5} and loaded.n_samples == 5


def test_fit_follows_the_schedule_and_a_resumed_run_keeps_it(tmp_path):
    data = datasets.make_toy(60, seed=0)

    def setup():
        model = vae(64, 16, 2, encoder_hidden=(32,), decoder_hidden=(32,), seed=0)
        return model, numvae.Adam(model.params, lr=2e-3)

    def record(rates):
        return lambda state: rates.append(state["optimizer"].lr)

    model, optimizer = setup()
    straight = []
    loop.fit(model, optimizer, data, epochs=5, batch_size=20, seed=0, schedule="burda",
              callbacks=[record(straight)], progress=False, log=None)
    np.testing.assert_allclose(straight, [2e-3 * 10 ** (-i / 7) for i in (0, 1, 1, 1, 2)])
    # stop after 2 epochs, save, load, resume without naming the schedule
    model, optimizer = setup()
    saved = {}
    loop.fit(model, optimizer, data, epochs=2, batch_size=20, seed=0, schedule="burda",
              callbacks=[lambda state: saved.update(state)], progress=False, log=None)
    save_checkpoint(tmp_path / "c.npz", model, optimizer, saved["history"],
                    saved["train_state"], saved["train_permutation"])
    checkpoint = load_checkpoint(tmp_path / "c.npz")
    resumed = []
    loop.fit(checkpoint.model, checkpoint.optimizer, data, epochs=5, batch_size=20, seed=0,
              history=checkpoint.history, train_state=checkpoint.train_state,
              train_permutation=checkpoint.train_permutation, callbacks=[record(resumed)],
              progress=False, log=None)
    np.testing.assert_allclose(resumed, straight[2:])
    with pytest.raises(ValueError, match="resumed run follows 'burda'"):
        loop.fit(checkpoint.model, checkpoint.optimizer, data, epochs=6, batch_size=20,
                  train_state=checkpoint.train_state, schedule="constant", progress=False,
                  log=None)


def test_command_line_trains_with_the_bound_and_refuses_a_kl_weight(tmp_path, capsys):
    from numvae.commands.cli import main
    out = tmp_path / "run"
    code = main(["train", "--dataset", "toy", "--epochs", "2", "--objective", "iwae",
                 "--n-samples", "3", "--schedule", "burda", "--out", str(out), "--no-plots",
                 "--no-progress"])
    assert code == 0
    checkpoint = load_checkpoint(out / "checkpoint.npz")
    assert checkpoint.model.config["objective"] == {"name": "iwae", "k": 3}
    assert checkpoint.model.n_samples == 3
    assert checkpoint.train_state["schedule"] == {"name": "burda", "base_lr": 1e-3}
    assert checkpoint.optimizer.lr == pytest.approx(1e-3 * 10 ** (-1 / 7))
    for option in (["--kl-weight", "0.5"], ["--kl-warmup-epochs", "2"]):
        assert main(["train", "--dataset", "toy", "--objective", "iwae", "--out",
                     str(tmp_path / "bad"), *option]) == 2
        assert "no meaning" in capsys.readouterr().err


# --- the fast path of IWAE.backward (issue 26): negligible weights to exact zeros -------

def test_negligible_weights_are_those_below_eps_squared():
    """float32: eps = 2^-23, so the cut is 2^-46 (1.4e-14); float64: 2^-104 (4.9e-32)."""
    w32 = np.array([[2.0**-47, 2.0**-46], [1e-45, 0.75]], dtype=np.float32)
    np.testing.assert_array_equal(drop_negligible_weights(w32), [[0.0, 2.0**-46], [0.0, 0.75]])
    assert drop_negligible_weights(w32).dtype == np.float32
    w64 = np.array([2.0**-105, 2.0**-104, 2.0**-47])
    np.testing.assert_array_equal(drop_negligible_weights(w64), [0.0, 2.0**-104, 2.0**-47])
    assert w64[0] == 2.0**-105  # the weights of the forward cache are left as they are


def burda_like(fast, dtype=np.float32):
    """A small 784-input tanh IWAE, K = 50, whose decoder depends on z strongly (its last
    weights 5 times their initial values, as after some training): of its 150 weights,
    82 are below the cut and 5 subnormal, the case the fast path is for."""
    model = vae(784, 20, 5, encoder_hidden=(20,), decoder_hidden=(20, 20), activation="tanh",
                objective="iwae", n_samples=50, dtype=dtype, seed=3)
    model.params["decoder.decompressor.4.W"][...] *= 5
    model.objective.fast_backward = fast
    return model


def zero_rows(model, x, eps):
    """The number of rows of dL/dlogits (K * batch, 784) that are exactly zero."""
    steps = model.backward(model.forward(x, eps))
    return int((~steps["dlogits"].any(axis=1)).sum())


def test_the_fast_backward_is_the_textbook_one_to_float32_rounding():
    """With negligible weights present, the fast path's gradient equals the textbook's to
    float32 rounding (each dropped row weighs < eps^2, see drop_negligible_weights; here
    even bit for bit, the dropped terms being below the sums' rounding), its dropped rows of
    dL/dlogits exact zeros."""
    x = datasets.binarize(np.random.default_rng(0).uniform(size=(3, 784)), np.random.default_rng(1))
    eps = np.random.default_rng(2).standard_normal((50, 3, 5)).astype(np.float32)
    fast, textbook = burda_like(True), burda_like(False)
    cache = fast.forward(x, eps)
    assert (cache["caches"]["objective"]["normalised"] < 2.0**-46).sum() == 82  # rows dropped
    # (one weight is 0 already in the forward: e^(l - LSE) below float32's smallest number)
    assert zero_rows(fast, x, eps) == 82 and zero_rows(textbook, x, eps) == 1
    assert fast.loss_and_grad(x, eps) == textbook.loss_and_grad(x, eps)  # the forward: unchanged
    for name in fast.grads:
        scale = np.abs(textbook.grads[name]).max()
        np.testing.assert_allclose(fast.grads[name], textbook.grads[name], rtol=1e-5,
                                   atol=1e-6 * scale, err_msg=name)


def test_the_fast_backward_is_on_by_default_and_off_with_one_setting(monkeypatch):
    x = datasets.binarize(np.random.default_rng(0).uniform(size=(3, 784)), np.random.default_rng(1))
    eps = np.random.default_rng(2).standard_normal((50, 3, 5)).astype(np.float32)
    model = burda_like(True)
    del model.objective.fast_backward  # the class's default
    assert zero_rows(model, x, eps) == 82
    monkeypatch.setattr(IWAE, "fast_backward", False)  # every model's, at once
    assert zero_rows(model, x, eps) == 1  # the one weight that is 0 in the forward
    textbook = burda_like(False)  # and what it computes is the textbook backward's, bit for bit
    model.loss_and_grad(x, eps)
    textbook.loss_and_grad(x, eps)
    assert all(np.array_equal(model.grads[n], textbook.grads[n]) for n in model.grads)


def test_the_fast_backward_keeps_the_gradient_check_in_float64():
    """float64 weights below 2^-104 are dropped too: central differences still agree."""
    x = datasets.binarize(np.random.default_rng(0).uniform(size=(2, 784)), np.random.default_rng(1))
    eps = np.random.default_rng(2).standard_normal((50, 2, 5))
    model = burda_like(True, np.float64)
    model.params["decoder.decompressor.4.W"][...] *= 4  # 20 times the initial: dropped rows
    assert zero_rows(model, x, eps) > 0
    errors = check_model_directions(model, x, eps, n_directions=2)
    assert max(errors.values()) < 1e-6, errors
