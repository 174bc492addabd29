import numpy as np
import pytest

from helpers import set_grads
from numvae import SGD, Adam
from numvae.training.optim_fast import FastAdam


def test_adam_three_steps_by_hand():
    """lr 0.1, betas (0.9, 0.999), eps 1e-8; gradients 0.5, -1.0, 2.0 for a parameter at 1.0.

    t=1: m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25; p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) =
    0.900000002
    t=2: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975;
         m_hat = -0.055 / 0.19 = -0.2894737, v_hat = 0.00124975 / 0.001999 = 0.6251876;
         p = 0.900000002 + 0.1 * 0.2894737 / 0.7906880 = 0.9366104
    t=3: m = -0.0495 + 0.2 = 0.1505, v = 0.0012485 + 0.004 = 0.0052485;
         m_hat = 0.1505 / 0.271 = 0.5553506, v_hat = 0.0052485 / 0.002997 = 1.751251;
         p = 0.9366104 - 0.1 * 0.5553506 / 1.323348 = 0.8946448
    """
    params = {"w": np.array([1.0])}
    opt = Adam(params, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    expected = [0.900000002, 0.9366104, 0.8946448]
    for grad, value in zip([0.5, -1.0, 2.0], expected):
        opt.step({"w": np.array([grad])})
        assert params["w"][0] == pytest.approx(value, abs=2e-7)
    assert opt.m["w"][0] == pytest.approx(0.1505)
    assert opt.v["w"][0] == pytest.approx(0.0052485)
    assert opt.t == 3


def test_adam_updates_in_place():
    w = np.ones(3, np.float32)
    opt = Adam({"w": w})
    opt.step({"w": np.ones(3, np.float32)})
    assert w[0] == pytest.approx(1 - 1e-3) and w.dtype == np.float32


def test_sgd_with_momentum_by_hand():
    params = {"w": np.array([0.0])}
    opt = SGD(params, lr=0.5, momentum=0.9)
    opt.step({"w": np.array([1.0])})   # v = 1,   w = -0.5
    opt.step({"w": np.array([1.0])})   # v = 1.9, w = -0.5 - 0.95 = -1.45
    assert params["w"][0] == pytest.approx(-1.45)


@pytest.mark.parametrize("lr", [0, -1e-3, float("nan"), float("inf")])
def test_bad_learning_rate(lr):
    with pytest.raises(ValueError, match="lr"):
        Adam({"w": np.zeros(2)}, lr=lr)


def test_grads_must_match_params():
    opt = Adam({"w": np.zeros(2)})
    with pytest.raises(ValueError, match=r"grads\['w'\] has shape \(3,\)"):
        opt.step({"w": np.zeros(3)})


def test_adam_applies_gradients_by_name_not_by_position():
    """The VAE's own gradient arrays, in their own order, but with the names of two
    same-shaped ones exchanged: each parameter must get the array under its name (the
    one-sweep path, and its memory of last step's arrays, would go by position)."""
    import numvae
    model = numvae.VAE(12, 5, 2, seed=0)
    reference = {name: p.copy() for name, p in model.params.items()}
    opt, opt_reference = FastAdam(model.params), FastAdam(reference)
    names = list(model.grads)
    i, j = names.index("encoder.mean.b"), names.index("encoder.log_var.b")
    names[i], names[j] = names[j], names[i]
    rng = np.random.default_rng(2)
    for grads in ("own", "swapped", "swapped", "own"):
        set_grads(model, rng.normal(size=model.n_params()))
        given = model.grads if grads == "own" else dict(zip(names, model.grads.values()))
        opt.step(given)
        opt_reference.step({name: g.copy() for name, g in given.items()})
        for name in reference:
            assert np.array_equal(model.params[name], reference[name]), (grads, name)


def test_textbook_adam_matches_algorithm_1_written_out():
    """Kingma & Ba's Algorithm 1 with m_hat and v_hat, written here independently."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 3))
    opt = Adam({"w": w}, lr=0.05, betas=(0.8, 0.99), eps=1e-6)
    expected, m, v = w.copy(), np.zeros_like(w), np.zeros_like(w)
    for t in range(1, 30):
        g = rng.normal(size=w.shape)
        opt.step({"w": g})
        m = 0.8 * m + 0.2 * g
        v = 0.99 * v + 0.01 * g**2
        expected -= 0.05 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-6)
    np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-14)
