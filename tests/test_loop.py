"""numvae.training.loop: fit and train_step (the history, the loss that falls, Ctrl-C
between steps saving a state that resumes exactly, the options it refuses)."""
import os
import signal

import numpy as np
import pytest

import numvae
from numvae.io import datasets
from numvae.training import loop
from numvae.training.checkpoint import load_checkpoint, save_checkpoint


def small_setup(seed=0):
    data = datasets.make_toy(300, seed=seed)
    model = numvae.VAE(64, 16, 2, encoder_hidden=(32,), decoder_hidden=(32,), seed=seed)
    return data, model, numvae.Adam(model.params, lr=3e-3)


def fit_quietly(model, optimizer, data, **kwargs):
    kwargs.setdefault("batch_size", 32)
    return loop.fit(model, optimizer, data, progress=False, log=None, **kwargs)


def test_same_seed_gives_bit_identical_parameters():
    results = []
    for _ in range(2):
        data, model, optimizer = small_setup()
        fit_quietly(model, optimizer, data, epochs=2, seed=7, binarize=True)
        results.append(model.params)
    for name in results[0]:
        assert np.array_equal(results[0][name], results[1][name]), name
    data, model, optimizer = small_setup()
    fit_quietly(model, optimizer, data, epochs=2, seed=8, binarize=True)
    assert not np.array_equal(model.params["encoder.mean.W"], results[0]["encoder.mean.W"])


def test_history_and_loss_falls():
    data, model, optimizer = small_setup()
    val = datasets.make_toy(100, seed=5)
    history = fit_quietly(model, optimizer, data, epochs=6, val_data=val, seed=0)
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert all(len(history[key]) == 6 for key in ("train_loss", "val_loss", "seconds", "train_kl"))
    assert history["val_loss"][-1] < 0.8 * history["val_loss"][0]
    np.testing.assert_allclose(history["train_loss"],
                               np.add(history["train_reconstruction"], history["train_kl"]))
    assert set(history["grad_norm"]) == set(model.params)
    assert len(history["grad_norm_step"]) == 6 * 10 // 10  # 10 steps per epoch, every 10th


def test_kl_warmup_rises_linearly_then_stays():
    data, model, optimizer = small_setup()
    history = fit_quietly(model, optimizer, data, epochs=4, kl_warmup_epochs=2, seed=0)
    assert history["kl_weight"] == pytest.approx([0.5, 1.0, 1.0, 1.0])
    assert model.objective.kl_weight == 1.0  # fit passes the warm-up weight, never writes the model


def test_resume_between_epochs_is_exact(tmp_path):
    data, model, optimizer = small_setup()
    fit_quietly(model, optimizer, data, epochs=3, seed=3, binarize=True)
    straight = {name: p.copy() for name, p in model.params.items()}

    path = tmp_path / "c.npz"

    def save(state):
        save_checkpoint(path, state["model"], state["optimizer"], state["history"],
                        state["train_state"], state["train_permutation"])

    data, model, optimizer = small_setup()
    fit_quietly(model, optimizer, data, epochs=1, seed=3, binarize=True, callbacks=[save])
    checkpoint = load_checkpoint(path)
    history = fit_quietly(checkpoint.model, checkpoint.optimizer, data, epochs=3, seed=3,
                          binarize=True, history=checkpoint.history,
                          train_state=checkpoint.train_state,
                          train_permutation=checkpoint.train_permutation)
    assert history["epoch"] == [1, 2, 3]
    for name, value in straight.items():
        assert np.array_equal(checkpoint.model.params[name], value), name


def test_ctrl_c_mid_epoch_saves_a_state_that_resumes_exactly(tmp_path):
    data, model, optimizer = small_setup()
    fit_quietly(model, optimizer, data, epochs=2, seed=4)
    straight = {name: p.copy() for name, p in model.params.items()}

    data, model, optimizer = small_setup()
    path = tmp_path / "c.npz"
    calls = {"n": 0}
    original = model.forward

    def forward_then_ctrl_c(x, eps=None, **options):
        calls["n"] += 1
        if calls["n"] == 13:  # in the middle of epoch 2 (10 steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return original(x, eps, **options)

    model.forward = forward_then_ctrl_c

    def save(state):
        assert state["interrupted"] or state["train_state"]["step"] == 0
        save_checkpoint(path, state["model"], state["optimizer"], state["history"],
                        state["train_state"], state["train_permutation"])

    with pytest.raises(KeyboardInterrupt):
        fit_quietly(model, optimizer, data, epochs=2, seed=4, callbacks=[save])
    checkpoint = load_checkpoint(path)
    assert checkpoint.train_state["epoch"] == 1 and checkpoint.train_state["step"] == 3
    fit_quietly(checkpoint.model, checkpoint.optimizer, data, epochs=2, seed=4,
                history=checkpoint.history, train_state=checkpoint.train_state,
                train_permutation=checkpoint.train_permutation)
    for name, value in straight.items():
        assert np.array_equal(checkpoint.model.params[name], value), name


def test_nan_gradient_stops_with_epoch_step_and_name():
    data, model, optimizer = small_setup()
    model.params["decoder.decompressor.2.W"][0, 0] = np.nan
    with pytest.raises(loop.TrainingDivergedError, match="epoch 1, step 1"):
        fit_quietly(model, optimizer, data, epochs=1, seed=0)


def test_overflowing_log_var_names_the_quantity():
    data, model, optimizer = small_setup()
    model.params["encoder.log_var.b"][:] = 1000.0
    with pytest.raises(loop.TrainingDivergedError, match=r"epoch 1, step 1: exp\(0.5 \* log_var\)"):
        fit_quietly(model, optimizer, data, epochs=1, seed=0)


def test_bad_arguments():
    data, model, optimizer = small_setup()
    with pytest.raises(ValueError, match="epochs"):
        fit_quietly(model, optimizer, data, epochs=0)
    with pytest.raises(ValueError, match="train_data has shape"):
        fit_quietly(model, optimizer, np.zeros((10, 5)), epochs=1)


def test_nan_gradient_with_finite_loss_names_the_parameter():
    data, model, optimizer = small_setup()
    original = model.backward

    def poisoned(cache):
        steps = original(cache)
        model.grads["encoder.log_var.W"][0, 0] = np.nan
        return steps

    model.backward = poisoned
    with pytest.raises(loop.TrainingDivergedError,
                       match="epoch 1, step 1: the gradient of encoder.log_var.W is not finite"):
        fit_quietly(model, optimizer, data, epochs=1, seed=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kl_warmup_epochs=-1), "kl_warmup_epochs must be an integer >= 0; got -1"),
    (dict(kl_warmup_epochs="2"), "kl_warmup_epochs must be an integer >= 0"),
    (dict(grad_norm_every=0), "grad_norm_every must be a positive integer; got 0"),
])
def test_bad_fit_options(kwargs, message):
    data, model, optimizer = small_setup()
    with pytest.raises(ValueError, match=message):
        fit_quietly(model, optimizer, data, epochs=1, **kwargs)
