"""numvae.nn.threads: the pool that splits big elementwise passes by rows, its setting and
its off-switch. Tiny shapes: ``min_entries=1`` forces a split even of a few rows."""
import os
import signal
import threading
import time

import numpy as np
import pytest

from numvae.nn import threads


@pytest.fixture
def two_threads():
    """The pool forced on, 2 threads, every pass split however small."""
    previous = threads.set_threads(2, min_entries=1)
    yield
    threads.restore(previous)


@pytest.fixture
def one_thread():
    previous = threads.set_threads(1)
    yield
    threads.restore(previous)


def test_row_bounds_cover_every_row_once():
    assert threads.row_bounds(7, 2) == [(0, 3), (3, 7)]
    assert threads.row_bounds(9, 3) == [(0, 3), (3, 6), (6, 9)]
    assert threads.row_bounds(1, 4) == [(0, 1)]  # fewer rows than threads: fewer ranges


def test_split_rows_runs_ranges_on_two_threads(two_threads):
    seen = []

    def task(start, stop):
        seen.append((start, stop, threading.get_ident()))
        time.sleep(0.05)  # long enough for the worker to wake and take a range

    threads.split_rows(task, 10, 10)
    # two ranges per thread, each run once
    assert sorted(s[:2] for s in seen) == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert len({s[2] for s in seen}) == 2  # some ranges ran on the worker thread


def test_a_late_worker_leaves_its_ranges_to_the_caller(two_threads):
    """A job's ranges go to whichever thread asks first: if the worker has not woken, the
    caller runs them all (and does not wait for the worker)."""
    job = threads.Job(lambda start, stop: None, threads.row_bounds(10, 4))
    job.take_ranges()  # the caller alone, no worker involved
    assert job.all_done.acquire(blocking=False)  # every range finished
    job.take_ranges()  # a worker waking now finds nothing left


def test_split_rows_off_runs_once_on_the_caller(one_thread):
    seen = []
    threads.split_rows(lambda start, stop: seen.append((start, stop, threading.get_ident())),
                       10, 10**9)
    assert seen == [(0, 10, threading.get_ident())]


def test_small_passes_stay_on_the_caller():
    previous = threads.set_threads(2, min_entries=100)
    try:
        seen = []
        threads.split_rows(lambda start, stop: seen.append((start, stop)), 10, 99)
        assert seen == [(0, 10)]
        assert not threads.worth_splitting(99) and threads.worth_splitting(100)
    finally:
        threads.restore(previous)


def test_a_split_exp_is_bit_identical(two_threads):
    a = np.random.default_rng(0).standard_normal((7, 13)).astype(np.float32) * 30
    out = np.empty_like(a)
    threads.split_rows(lambda s, e: np.exp(a[s:e], out=out[s:e]), len(a), a.size)
    with np.errstate(over="ignore"):
        expected = np.exp(a)
    np.testing.assert_array_equal(out, expected)


def test_an_error_in_a_range_reaches_the_caller(two_threads):
    def task(start, stop):
        if start > 0:  # on whichever thread takes it
            raise ZeroDivisionError("from a range")
    with pytest.raises(ZeroDivisionError, match="from a range"):
        threads.split_rows(task, 4, 4)
    seen = []  # and the pool still works afterwards
    threads.split_rows(lambda s, e: seen.append(s), 4, 4)
    assert sorted(seen) == [0, 1, 2, 3]


def test_ctrl_c_waits_for_the_ranges_under_way(two_threads):
    """A SIGINT while the caller waits for a worker's range: the KeyboardInterrupt goes up
    only once that range has finished writing."""
    caller, worker_started, finished, gave_up = threading.get_ident(), threading.Event(), [], []

    def task(start, stop):
        if threading.get_ident() == caller:
            # the caller's first range waits until the worker has one
            if not worker_started.wait(30):
                gave_up.append(True)  # no SIGINT after the caller has gone on
            return
        worker_started.set()
        time.sleep(0.05)  # the caller is waiting for this range by now
        if not gave_up:
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        finished.append(stop)

    with pytest.raises(KeyboardInterrupt):
        threads.split_rows(task, 8, 8)
    assert len(finished) >= 1  # the worker's range ended before the interrupt went up


def test_workers_use_the_callers_errstate(two_threads):
    """np.errstate is a context variable: an overflow the caller silenced stays silent in
    the worker (pytest turns warnings into errors)."""
    a = np.full((4, 3), 100.0, dtype=np.float32)
    with np.errstate(over="ignore"):
        threads.split_rows(lambda s, e: np.exp(a[s:e]), 4, a.size)
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        threads.split_rows(lambda s, e: np.exp(a[s:e]), 4, a.size)


def test_a_nested_split_runs_on_the_calling_thread(two_threads):
    seen = []

    def inner(start, stop):
        seen.append((start, stop))

    threads.split_rows(lambda s, e: threads.split_rows(inner, 2, 2), 4, 4)
    # the pool is busy with the outer split: each inner one runs whole on its own thread
    assert seen == [(0, 2)] * 4


def test_environment_sets_the_count(monkeypatch):
    previous = threads.set_threads(None)
    try:
        monkeypatch.setenv("NUMVAE_THREADS", "3")
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
        assert threads.thread_count() == 3
        monkeypatch.delenv("NUMVAE_THREADS")
        threads.set_threads(None)  # read the environment again
        assert threads.thread_count() == 2  # as many as the BLAS
        monkeypatch.setenv("NUMVAE_THREADS", "1")
        threads.set_threads(None)
        assert threads.thread_count() == 1 and not threads.worth_splitting(10**9)
        monkeypatch.setenv("NUMVAE_THREADS", "two")
        threads.set_threads(None)
        with pytest.raises(ValueError, match="NUMVAE_THREADS must be a whole number >= 1"):
            threads.thread_count()
    finally:
        threads.restore(previous)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_threads_refuses_bad_counts(bad):
    with pytest.raises(ValueError, match="set_threads: n must be"):
        threads.set_threads(bad)


def test_set_threads_from_the_package():
    import numvae
    previous = numvae.set_threads(1)
    try:
        assert threads.thread_count() == 1
    finally:
        threads.restore(previous)


# --- the faster paths, each bit for bit its textbook code -----------------------------------

def _both(fn):
    """fn() with the pool off (the textbook code) and forced on (2 threads, every pass
    split): the two results."""
    previous = threads.set_threads(1)
    try:
        off = fn()
        threads.set_threads(2, min_entries=1)
        on = fn()
    finally:
        threads.restore(previous)
    return off, on


def _values(shape, dtype, seed=0):
    """Non-trivial values: large of both signs (exp over- and underflows), zeros, tiny."""
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * 40).astype(dtype)
    a.flat[::5] = 0.0
    a.flat[1::7] = 1e-3
    return a


def _assert_same(off, on):
    for a, b in zip(off if isinstance(off, tuple) else (off,),
                    on if isinstance(on, tuple) else (on,)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)  # NaN == NaN; exact otherwise


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 13), (3, 784), (5,)])
def test_activations_on_threads_equal_the_textbook(dtype, shape):
    from numvae.nn.layers import ReLU, Sigmoid, Tanh
    x, dy = _values(shape, dtype, 1), _values(shape, dtype, 2)
    for layer in (ReLU(), Sigmoid(), Tanh()):
        def step(layer=layer):
            y, cache = layer.forward(x)
            return y, layer.backward(dy, cache)
        _assert_same(*_both(step))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_on_threads_equals_the_textbook(dtype):
    from numvae.model.likelihoods import Bernoulli
    from numvae.nn.layers import sigmoid
    logits = _values((9, 784), dtype, 3)
    x = (np.random.default_rng(4).random((9, 784)) < 0.3).astype(dtype)
    x[0] = np.linspace(0, 1, 784)  # grey levels too
    probs = sigmoid(logits)
    dnll_rows = np.random.default_rng(5).random(9).astype(dtype)
    part = Bernoulli()
    for dnll in (1.0 / 9, dnll_rows):
        _assert_same(*_both(lambda dnll=dnll: (part.nll(logits, x, probs),
                                               part.nll_backward(dnll, logits, x, probs)[0])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", ["off", "on"])
def test_bernoulli_by_blocks_of_rows_equals_the_textbook(dtype, pool, monkeypatch):
    """The Bernoulli passes by blocks of rows (on one thread: blocks of 2 and a last one of
    1 row here) and split over threads (the pool on: each range whole) give the textbook
    expressions' numbers, bit for bit."""
    from numvae.model import likelihoods
    from numvae.nn.layers import sigmoid
    monkeypatch.setattr(likelihoods, "BLOCK_ENTRIES", 2 * 784)
    monkeypatch.setattr(likelihoods, "BLOCKED_MIN_ENTRIES", 1)  # blocks at any size
    logits = _values((9, 784), dtype, 6)
    x = (np.random.default_rng(7).random((9, 784)) < 0.3).astype(dtype)
    x[1] = np.linspace(0, 1, 784)
    probs, dnll = sigmoid(logits), np.random.default_rng(8).random(9).astype(dtype)
    textbook_nll = np.sum(likelihoods.softplus(logits) - x * logits, axis=-1)   # eq. B3
    textbook_grad = (probs - x) * dnll[:, None]                                 # eq. B4
    previous = threads.set_threads(1) if pool == "off" else threads.set_threads(2, min_entries=1)
    try:
        part = likelihoods.Bernoulli()
        _assert_same((textbook_nll, textbook_grad),
                     (part.nll(logits, x, probs), part.nll_backward(dnll, logits, x, probs)[0]))
    finally:
        threads.restore(previous)


def test_fast_adam_on_threads_equals_the_textbook():
    from numvae.training.optim_fast import FastAdam

    def steps():
        rng = np.random.default_rng(6)
        params = {"a": rng.standard_normal(1000).astype(np.float32),
                  "b": rng.standard_normal((30, 7)).astype(np.float32)}
        optimizer = FastAdam(params, lr=0.01, chunk=64, flush_every=2)  # many slices
        for _ in range(4):  # with a flush
            optimizer.step({k: rng.standard_normal(p.shape).astype(np.float32) * 1e-20
                            if k == "b" else rng.standard_normal(p.shape).astype(np.float32)
                            for k, p in params.items()})
        return tuple(params.values()) + tuple(optimizer.m.values()) + tuple(optimizer.v.values())
    _assert_same(*_both(steps))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_a_training_step_on_threads_equals_the_textbook(activation):
    """The whole step (loss, every gradient, the FastAdam update) of a small VAE."""
    import numvae
    from numvae.training.loop import train_step
    from numvae.training.optim_fast import FastAdam

    def step():
        model = numvae.VAE(784, shared_dim=16, latent_dim=2, encoder_hidden=(32,),
                           decoder_hidden=(8, 32), activation=activation, seed=0)
        optimizer = FastAdam(model.params, chunk=1000)
        x = (np.random.default_rng(7).random((6, 784)) < 0.4).astype(np.float32)
        losses = [train_step(model, optimizer, x, 1.0, (0, i))["loss"] for i in range(3)]
        return ((np.array(losses),) + tuple(model.params.values())
                + tuple(model.grads.values()))
    _assert_same(*_both(step))
