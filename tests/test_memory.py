"""numvae.nn.memory: glibc asked to keep freed memory (mallopt), once, by the conv
architecture, off with one setting; the numbers are the same either way."""
import os

import numpy as np
import pytest

import numvae
from numvae.model import architectures
from numvae.nn.memory import (
    GLIBC_START,
    KEPT,
    M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD,
    keep_freed_memory,
    set_keep_memory,
)


def ignore(parameter, value):
    return 1


class Recorder:
    """A stand-in for glibc's mallopt that records its calls and accepts them."""

    def __init__(self):
        self.calls = []

    def __call__(self, parameter, value):
        self.calls.append((parameter, value))
        return 1


@pytest.fixture
def fresh_setting(monkeypatch):
    """The setting as in a new process (environment unread, nothing applied), put back after;
    glibc itself is never touched by the switching."""
    monkeypatch.delenv("NUMVAE_KEEP_MEMORY", raising=False)
    set_keep_memory(False, mallopt=ignore)
    previous = set_keep_memory(None)
    yield
    set_keep_memory(False, mallopt=ignore)
    set_keep_memory(previous)


def is_glibc():
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


def test_keep_sets_both_thresholds_once(fresh_setting):
    recorder = Recorder()
    assert keep_freed_memory(mallopt=recorder)
    assert keep_freed_memory(mallopt=recorder)  # already in effect: no second call
    assert sorted(recorder.calls) == sorted(KEPT.items())
    assert KEPT[M_MMAP_THRESHOLD] == 32 * 2 ** 20 and KEPT[M_TRIM_THRESHOLD] == 2 ** 30


def test_off_by_environment_or_setting(fresh_setting, monkeypatch):
    recorder = Recorder()
    monkeypatch.setenv("NUMVAE_KEEP_MEMORY", "0")
    assert not keep_freed_memory(mallopt=recorder)
    monkeypatch.setenv("NUMVAE_KEEP_MEMORY", "1")
    set_keep_memory(False)
    assert not keep_freed_memory(mallopt=recorder)
    assert recorder.calls == []


def test_turning_off_sets_glibcs_starting_thresholds_back(fresh_setting):
    recorder = Recorder()
    keep_freed_memory(mallopt=recorder)
    recorder.calls.clear()
    assert set_keep_memory(False, mallopt=recorder) is True
    assert sorted(recorder.calls) == sorted(GLIBC_START.items())
    set_keep_memory(True)
    assert keep_freed_memory(mallopt=recorder)  # on again: applied again
    assert sorted(recorder.calls[2:]) == sorted(KEPT.items())


def test_a_refused_threshold_is_not_in_effect(fresh_setting):
    assert not keep_freed_memory(mallopt=lambda parameter, value: 0)


def test_bad_settings_are_refused(fresh_setting, monkeypatch):
    with pytest.raises(ValueError, match="on must be True, False or None"):
        set_keep_memory(1)
    monkeypatch.setenv("NUMVAE_KEEP_MEMORY", "yes")
    with pytest.raises(ValueError, match="NUMVAE_KEEP_MEMORY must be 0"):
        keep_freed_memory(mallopt=ignore)


def test_the_conv_architecture_asks_for_it_and_mlp_does_not(monkeypatch):
    calls = []
    monkeypatch.setattr(architectures, "keep_freed_memory", lambda: calls.append(1))
    numvae.VAE(16, 8, 2, architecture="conv", seed=0)
    assert len(calls) == 2  # compressor and decompressor
    numvae.VAE(16, 8, 2, seed=0)
    assert len(calls) == 2


@pytest.mark.skipif(not is_glibc(), reason="glibc's mallopt only")
def test_glibc_takes_the_thresholds_and_the_numbers_stay(fresh_setting):
    rng = np.random.default_rng(0)
    x = (rng.random((8, 64)) < 0.3).astype(np.float32)
    eps = rng.standard_normal((1, 8, 2)).astype(np.float32)
    results = []
    for on in (False, True):
        set_keep_memory(on)
        model = numvae.VAE(64, 8, 2, architecture="conv", seed=3)
        assert keep_freed_memory() is on
        loss = model.loss_and_grad(x, eps)
        results.append((loss, {name: grad.copy() for name, grad in model.grads.items()}))
    (loss_off, grads_off), (loss_on, grads_on) = results
    assert loss_on == loss_off  # bit for bit: only where the memory comes from changed
    for name in grads_off:
        np.testing.assert_array_equal(grads_on[name], grads_off[name])
