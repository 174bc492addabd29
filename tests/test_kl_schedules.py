"""Schedules of the KL weight (numvae.training.kl_schedules, eq. KA1) and their use by fit."""
import numpy as np
import pytest

from helpers import vae
from numvae.diagnostics.gradcheck import check_model
from numvae.model.vae import VAE
from numvae.training.kl_schedules import (
    Constant,
    Cyclical,
    LinearWarmup,
    kl_schedule_from_settings,
)
from numvae.training.loop import fit
from numvae.training.optim import Adam


def test_cyclical_follows_fu_et_al():
    # 2 epochs of 4 steps per cycle, rising over the first half: period P = 8 steps
    schedule = Cyclical(2, ramp=0.5)
    got = [schedule.factor(t, 4) for t in range(1, 18)]
    one_cycle = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    assert got == one_cycle + one_cycle + [0.0]
    assert [Cyclical(1, ramp=1.0).factor(t, 4) for t in (1, 2, 4, 5)] == [0.0, 0.25, 0.75, 0.0]


def test_warmup_and_constant():
    assert [LinearWarmup(2).factor(t, 2) for t in (1, 2, 4, 9)] == [0.25, 0.5, 1.0, 1.0]
    assert Constant().factor(7, 3) == 1.0


def test_settings_round_trip_and_bad_settings_are_refused():
    for schedule in (Constant(), LinearWarmup(3), Cyclical(5, ramp=0.25)):
        again = kl_schedule_from_settings(schedule.settings())
        assert again.settings() == schedule.settings()
    assert kl_schedule_from_settings(None) is None
    with pytest.raises(ValueError, match="ramp must be in"):
        Cyclical(2, ramp=1.5)
    with pytest.raises(ValueError, match="'name' is one of"):
        kl_schedule_from_settings({"name": "sawtooth"})
    with pytest.raises(ValueError, match="unexpected settings"):
        kl_schedule_from_settings({"name": "cyclical", "cycle_epochs": 2, "period": 3})


def test_the_gradient_at_a_scheduled_weight_passes_central_differences():
    """KA1: the step's gradient is V1's with beta_t = beta * factor(t)."""
    model = vae(10, 8, 3, encoder_hidden=(9,), decoder_hidden=(7,), activation="tanh",
                kl_weight=2.0, dtype=np.float64, seed=1)
    rng = np.random.default_rng(1)
    x, eps = (rng.random((5, 10)) > 0.5).astype(np.float64), rng.standard_normal((1, 5, 3))
    beta_t = 2.0 * Cyclical(2, ramp=0.5).factor(3, 4)   # 2 * 0.5
    scaled = VAE.from_config({**model.config, "dtype": "float64",
                              "objective": {**model.config["objective"], "kl_weight": beta_t}})
    for name in model.params:
        scaled.params[name][...] = model.params[name]
    assert max(check_model(scaled, x, eps, h=1e-6).values()) < 1e-6
    model.loss_and_grad(x, eps, kl_weight=beta_t)   # what fit does at step 3
    scaled.loss_and_grad(x, eps)
    for name in model.grads:
        assert np.allclose(model.grads[name], scaled.grads[name], atol=1e-12), name


def test_fit_follows_the_schedule_and_refuses_two_warmups():
    model = vae(10, 8, 2, encoder_hidden=(9,), decoder_hidden=(7,), kl_weight=3.0, seed=0)
    x = (np.random.default_rng(0).random((40, 10)) > 0.5).astype(np.float32)
    history = fit(model, Adam(model.params), x, epochs=4, batch_size=10, seed=0,
                  progress=False, log=None, kl_schedule=Cyclical(2, ramp=0.5))
    # the weight of each epoch's last step: steps 4, 8, 12, 16 of cycles of 8
    assert history["kl_weight"] == [3.0 * f for f in (0.75, 1.0, 0.75, 1.0)]
    with pytest.raises(ValueError, match="not both"):
        fit(model, Adam(model.params), x, epochs=1, kl_warmup_epochs=1, log=None,
            progress=False, kl_schedule=Cyclical(2))
    iwae = vae(10, 8, 2, objective="iwae", seed=0)
    with pytest.raises(ValueError, match="no KL term to weigh"):
        fit(iwae, Adam(iwae.params), x, epochs=1, log=None, progress=False,
            kl_schedule=Cyclical(2))


TOY = ["train", "--dataset", "toy", "--latent-dim", "2", "--shared-dim", "16", "--no-plots",
       "--batch-size", "64"]


@pytest.mark.parametrize("argv, message", [
    (["--free-bits", "-1"], "--free-bits: expected a finite number in [0, 1e+06], got '-1'"),
    (["--free-bits", "0.5", "--objective", "iwae"], "--free-bits floors the ELBO's KL"),
    (["--free-bits", "0.5", "--prior", "mixture"], "free bits need the KL of each latent"),
    (["--kl-cycle-epochs", "3"], "--kl-cycle-epochs need --kl-schedule cyclical"),
    (["--kl-schedule", "cyclical", "--kl-warmup-epochs", "2"], "two warm-ups; give one"),
    (["--kl-schedule", "cyclical", "--kl-cycle-ramp", "0"], "--kl-cycle-ramp: expected a "
                                                             "finite number in (0, 1]"),
    (["--kl-schedule", "sawtooth"], "invalid choice: 'sawtooth'"),
    (["--kl-schedule", "cyclical", "--objective", "iwae"], "no KL term to weigh"),
])
def test_bad_kl_options_get_one_line_and_exit_2(argv, message, tmp_path, capsys):
    from helpers import run_cli
    code, _, err = run_cli([*TOY, *argv, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_free_bits_and_cyclical_from_the_command_line_resume_exactly(tmp_path, capsys):
    from helpers import run_cli
    from numvae.training.checkpoint import load_checkpoint
    options = ["--free-bits", "0.2", "--kl-schedule", "cyclical", "--kl-cycle-epochs", "2",
               "--kl-weight", "2"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_cli([*TOY, *options, "--epochs", "3", "--out", str(straight)], capsys)[0] == 0
    assert run_cli([*TOY, *options, "--epochs", "1", "--out", str(split)], capsys)[0] == 0
    assert run_cli(["train", "--resume", str(split / "checkpoint.npz"), "--epochs", "3"],
                   capsys)[0] == 0
    a, b = (load_checkpoint(path / "checkpoint.npz") for path in (straight, split))
    assert a.model.objective.free_bits == 0.2 and a.model.objective.name == "free_bits"
    for name in a.model.params:
        assert np.array_equal(a.model.params[name], b.model.params[name]), name
    # 29 steps per epoch (1,800 toy images, batch 64), cycles of 58 steps rising over 29:
    # the last step of epoch 1 is t = 29, u = 28 / 58, factor (28 / 58) / 0.5
    assert a.history["kl_weight"] == pytest.approx([2 * 28 / 29, 2.0, 2 * 28 / 29])
    assert a.history["kl_weight"] == b.history["kl_weight"]
