"""numvae.training.optim_fast: FastAdam, the one-sweep path beside the textbook Adam: bit for bit
the same update (flush off), on one flat buffer or array by array, its settings checked."""
import numpy as np
import pytest

from helpers import set_grads
from numvae import Adam
from numvae.model.priors import GaussianMixture
from numvae.nn import threads
from numvae.training.optim_fast import FastAdam


def test_adam_one_sweep_equals_array_by_array():
    import numvae
    flat_model = numvae.VAE(12, 5, 2, seed=0)
    separate = {name: p.copy() for name, p in flat_model.params.items()}  # not one buffer
    opt_flat, opt_separate = FastAdam(flat_model.params), FastAdam(separate, flush_every=3)
    opt_flat.flush_every = 3
    assert all(p.base is opt_flat._flat_params for p in flat_model.params.values())
    assert opt_separate._flat_params is None
    rng = np.random.default_rng(0)
    for _ in range(7):
        set_grads(flat_model, rng.normal(size=flat_model.n_params()) * 1e-3)
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
        set_grads(model, rng.normal(size=model.n_params()))
        opt.step(model.grads)
        copies = {name: g.copy() for name, g in model.grads.items()}
        # the twin alternates between its own (remembered) arrays and separate copies
        if step % 2:
            opt_twin.step(copies)
        else:
            set_grads(twin, np.concatenate([g.ravel() for g in model.grads.values()]))
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
    assert all(p.base is fast._flat_params for p in model.params.values())
    assert fast_separate._flat_params is None
    rng = np.random.default_rng(5)
    for _ in range(12):
        set_grads(model, rng.normal(size=model.n_params()) * rng.uniform(1e-6, 1.0))
        copies = {name: g.copy() for name, g in model.grads.items()}
        fast.step(model.grads)
        fast_separate.step(copies)
        textbook.step(copies)
    for name in model.params:
        assert np.array_equal(model.params[name], textbook_params[name]), name
        assert np.array_equal(separate[name], textbook_params[name]), name
        assert np.array_equal(fast.m[name], textbook.m[name]), name
        assert np.array_equal(fast.v[name], textbook.v[name]), name


@pytest.mark.parametrize("kwargs, message", [
    (dict(flush_every=-1), "flush_every must be an integer >= 0"),
    (dict(flush_every=2.5), "flush_every must be an integer >= 0"),
    (dict(tiny=0.0), "tiny must be a positive finite number"),
    (dict(chunk=0), "chunk must be a positive integer"),
])
def test_fast_adam_checks_its_settings(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        FastAdam({"w": np.zeros(2)}, **kwargs)


def test_fast_adam_moves_a_models_arrays_into_one_buffer_that_the_layers_use():
    """The flat buffer belongs to the fast path: FastAdam moves a model's parameters into
    one buffer when it is built and the gradients at its first step; every layer then
    computes with views of them (a plain dict of arrays is left as it is)."""
    import numvae
    model = numvae.VAE(12, 5, 2, prior=GaussianMixture(components=2), seed=0)
    before = {name: p.copy() for name, p in model.params.items()}
    fast = FastAdam(model.params, lr=1e-2)
    buffer = fast._flat_params
    assert buffer.size == model.n_params()
    for name, param in model.params.items():
        assert param.base is buffer and np.array_equal(param, before[name]), name
    assert model.encoder.heads["mean"].params["W"] is model.params["encoder.mean.W"]
    assert model.prior.params["means"] is model.params["prior.means"]
    assert fast.flat_grads is None                       # the gradients move at the first step
    x = np.random.default_rng(0).uniform(size=(4, 12))
    model.loss_and_grad(x)
    expected = {name: g.copy() for name, g in model.grads.items()}
    fast.step(model.grads)
    assert all(g.base is fast.flat_grads for g in model.grads.values())
    assert model.encoder.heads["mean"].grads["W"] is model.grads["encoder.mean.W"]
    for name, grad in model.grads.items():
        assert np.array_equal(grad, expected[name]), name
    model.loss_and_grad(x)                               # the layers write into the buffer
    assert np.abs(fast.flat_grads).sum() > 0
    np.testing.assert_array_equal(fast.flat_grads,
                                  np.concatenate([g.ravel() for g in model.grads.values()]))


@pytest.mark.parametrize("flat", [True, False])
def test_tuned_slices_are_the_textbook_adam_bit_for_bit(flat):
    """FastAdam's tuning (FAST PATH: ``chunk``-sized slices on one thread and on the
    threads, one slice and one range per thread, by turns, then the fastest) changes no
    number: every step equals the textbook Adam's, during the tuning (every layout used)
    and after it (one kept). The pool is forced on, every array split, so that the threaded
    layouts split too."""
    import numvae
    model = numvae.VAE(12, 40, 3, encoder_hidden=(64,), seed=0)
    textbook_params = {name: p.copy() for name, p in model.params.items()}
    params = model.params if flat else {name: p.copy() for name, p in model.params.items()}
    fast = FastAdam(params, lr=3e-3, flush_every=0, chunk=700)  # several slices per array
    fast.TUNING_STEPS = 3
    textbook = Adam(textbook_params, lr=3e-3)
    used = []
    rng = np.random.default_rng(7)
    previous = threads.set_threads(2, min_entries=1)
    try:
        for _ in range(14):
            vector = rng.normal(size=sum(p.size for p in params.values())).astype(np.float32)
            if flat:  # as in training: the layers' gradients, views of one buffer
                set_grads(model, vector)
                grads = model.grads
            else:
                grads, offset = {}, 0
                for name, p in params.items():
                    grads[name] = vector[offset:offset + p.size].reshape(p.shape).copy()
                    offset += p.size
            used.append(fast._layout_now())
            fast.step(grads)
            textbook.step(grads)
            assert (fast.flat_grads is not None) == flat  # the one-buffer sweep, or per array
            for name in params:  # equal after every step, during the tuning and after it
                assert np.array_equal(params[name], textbook_params[name]), name
                assert np.array_equal(fast.m[name], textbook.m[name]), name
                assert np.array_equal(fast.v[name], textbook.v[name]), name
    finally:
        threads.restore(previous)
    assert used[:5] == ["slices", "slices", "slices on threads", "whole",
                        "whole on threads"]  # turns (the 1st untimed)
    assert fast.layout in FastAdam.LAYOUTS and used[-1] == fast.layout  # one chosen, kept
    assert [len(times) for times in fast._tuning.values()] == [3, 3, 3, 3]


def test_slices_stay_on_the_calling_thread_and_slices_on_threads_split(monkeypatch):
    """"slices" is the one layout that never hands work to the pool (the one that wins
    while the BLAS's worker holds the second core); "slices on threads" does split."""
    from numvae.training import optim_fast
    calls = []

    def recording(work, n_rows, n_entries):
        calls.append(n_rows)
        return threads.split_rows(work, n_rows, n_entries)
    monkeypatch.setattr(optim_fast, "split_rows", recording)
    previous = threads.set_threads(2, min_entries=1)  # the pool on, every array worth it
    try:
        fast = FastAdam({"w": np.zeros(5000, np.float32)}, chunk=1000)
        for layout, expected in (("slices", []), ("slices on threads", [5])):
            calls.clear()
            fast.use_layout(layout)
            fast.step({"w": np.ones(5000, np.float32)})
            assert calls == expected, layout
    finally:
        threads.restore(previous)


def test_a_layout_can_be_forced_and_a_wrong_one_is_refused():
    fast = FastAdam({"w": np.zeros(50, np.float32)})
    assert fast.layout is None  # tuning
    fast.use_layout("whole")
    assert fast.layout == "whole" and fast._layout_now() == "whole"
    with pytest.raises(ValueError, match=r"use_layout: layout must be one of \('slices', "
                                         r"'slices on threads', 'whole', 'whole on threads'\); "
                                         r"got 'fast'"):
        fast.use_layout("fast")


def test_tuning_off_keeps_the_chunk():
    """``tune_slices = False`` (the switch): every step in ``chunk``-sized slices, nothing timed."""
    fast = FastAdam({"w": np.zeros(5000, np.float32)}, chunk=1000)
    fast.tune_slices = False
    for _ in range(40):
        assert fast._layout_now() == "slices on threads"
        fast.step({"w": np.ones(5000, np.float32)})
    assert fast._layout is None and not any(fast._tuning.values())
