import numpy as np
import pytest

from numvae import SGD, Adam
from numvae.training.optim_fast import FastAdam


def test_adam_three_steps_by_hand():
    """lr 0.1, betas (0.9, 0.999), eps 1e-8; gradients 0.5, -1.0, 2.0 for a parameter at 1.0.

    t=1: m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25; p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.900000002
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


def test_adam_one_sweep_equals_array_by_array():
    import numvae
    flat_model = numvae.VAE(12, 5, 2, seed=0)
    separate = {name: p.copy() for name, p in flat_model.params.items()}  # not one buffer
    opt_flat, opt_separate = FastAdam(flat_model.params), FastAdam(separate, flush_every=3)
    opt_flat.flush_every = 3
    assert opt_flat._flat_params is flat_model.flat_params and opt_separate._flat_params is None
    rng = np.random.default_rng(0)
    for _ in range(7):
        flat_model.flat_grads[:] = rng.normal(size=flat_model.flat_grads.size) * 1e-3
        opt_flat.step(flat_model.grads)
        opt_separate.step({name: g.copy() for name, g in flat_model.grads.items()})
    for name in separate:
        assert np.array_equal(flat_model.params[name], separate[name]), name
        assert np.array_equal(opt_flat.v[name], opt_separate.v[name]), name


def test_adam_checks_gradients_again_when_they_are_other_arrays():
    """FastAdam remembers a VAE's gradient arrays (same objects every step); any other dict
    is checked and used afresh: copies give the same update, bad shapes still fail."""
    import numvae
    model = numvae.VAE(12, 5, 2, seed=0)
    twin = model.copy()
    opt, opt_twin = FastAdam(model.params), FastAdam(twin.params)
    rng = np.random.default_rng(1)
    for step in range(6):
        model.flat_grads[:] = rng.normal(size=model.flat_grads.size)
        opt.step(model.grads)
        copies = {name: g.copy() for name, g in model.grads.items()}
        # the twin alternates between its own (remembered) arrays and separate copies
        if step % 2:
            opt_twin.step(copies)
        else:
            twin.flat_grads[:] = model.flat_grads
            opt_twin.step(twin.grads)
    for name in model.params:
        assert np.array_equal(model.params[name], twin.params[name]), name
    bad = dict(model.grads, **{"decoder.decompressor.0.W": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match=r"grads\['decoder.decompressor.0.W'\] has shape \(3, 3\)"):
        opt.step(bad)
    missing = {k: v for k, v in model.grads.items() if k != "decoder.decompressor.0.b"}
    with pytest.raises(ValueError, match="missing \\['decoder.decompressor.0.b'\\]"):
        opt.step(missing)
    with pytest.raises(ValueError, match="unexpected \\['extra'\\]"):
        opt.step(dict(model.grads, extra=np.zeros(1)))


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
        model.flat_grads[:] = rng.normal(size=model.flat_grads.size)
        given = model.grads if grads == "own" else dict(zip(names, model.grads.values()))
        opt.step(given)
        opt_reference.step({name: g.copy() for name, g in given.items()})
        for name in reference:
            assert np.array_equal(model.params[name], reference[name]), (grads, name)


@pytest.mark.parametrize("chunk", [1000, 32768, 10**9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_adam_is_the_textbook_adam_bit_for_bit(chunk, dtype):
    """The fast path (one sweep, cache-sized slices) with the flush off is the textbook
    Adam, to the last bit, on a VAE's flat buffer and on separate arrays."""
    import numvae
    model = numvae.VAE(12, 40, 3, encoder_hidden=(64,), dtype=dtype, seed=0)
    textbook_params = {name: p.copy() for name, p in model.params.items()}
    separate = {name: p.copy() for name, p in model.params.items()}
    fast = FastAdam(model.params, lr=3e-3, flush_every=0, chunk=chunk)
    fast_separate = FastAdam(separate, lr=3e-3, flush_every=0, chunk=chunk)
    textbook = Adam(textbook_params, lr=3e-3)
    assert fast._flat_params is model.flat_params and fast_separate._flat_params is None
    rng = np.random.default_rng(5)
    for _ in range(12):
        model.flat_grads[:] = rng.normal(size=model.flat_grads.size) * rng.uniform(1e-6, 1.0)
        copies = {name: g.copy() for name, g in model.grads.items()}
        fast.step(model.grads)
        fast_separate.step(copies)
        textbook.step(copies)
    for name in model.params:
        assert np.array_equal(model.params[name], textbook_params[name]), name
        assert np.array_equal(separate[name], textbook_params[name]), name
        assert np.array_equal(fast.m[name], textbook.m[name]), name
        assert np.array_equal(fast.v[name], textbook.v[name]), name


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


@pytest.mark.parametrize("kwargs, message", [
    (dict(flush_every=-1), "flush_every must be an integer >= 0"),
    (dict(flush_every=2.5), "flush_every must be an integer >= 0"),
    (dict(tiny=0.0), "tiny must be a positive finite number"),
    (dict(chunk=0), "chunk must be a positive integer"),
])
def test_fast_adam_checks_its_settings(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        FastAdam({"w": np.zeros(2)}, **kwargs)
