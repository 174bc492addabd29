"""numvae.training.checkpoint_fields: each JSON field of a checkpoint checked, and each
failure a ValueError naming the field (the checkpoint reader adds the file's name)."""
import numpy as np
import pytest

from numvae.training.checkpoint_fields import (
    check_generator_state,
    check_history,
    check_resume_position,
    check_train_state,
)
from numvae.training.loop import new_history


def a_history(epochs=2):
    history = new_history()
    for epoch in range(1, epochs + 1):
        for key in history:
            if isinstance(history[key], list) and key != "grad_norm_step":
                history[key].append(float(epoch) if key != "epoch" else epoch)
    return history


def a_state(**changes):
    state = dict(epoch=1, step=0, seen=0, train_reconstruction_sum=0.0, train_kl_sum=0.0,
                 seconds=1.5, rng=np.random.default_rng(0).bit_generator.state)
    state.update(changes)
    return state


def test_a_history_from_fit_passes_and_an_empty_one_too():
    assert check_history(a_history(), complete=True)["epoch"] == [1, 2]
    assert check_history({}, complete=True) == {}  # a checkpoint without history (resume state)


@pytest.mark.parametrize("change, message", [
    (dict(epoch=[1, 0]), r"history\['epoch'\] must be a list of epoch numbers >= 1"),
    (dict(train_loss=[1.0]), r"history\['train_loss'\] must be a list of 2 numbers or nulls"),
    (dict(seconds=[1.0, "1"]), r"history\['seconds'\] must be a list of 2 numbers"),
    (dict(grad_norm_step=[10], grad_norm={"encoder.mean.W": [1.0, 2.0]}),
     r"history\['grad_norm'\] must map names to lists of one norm per step"),
])
def test_a_damaged_history_names_its_field(change, message):
    with pytest.raises(ValueError, match=message):
        check_history({**a_history(), **change})


def test_an_incomplete_history_passes_only_when_not_resuming():
    partial = {"epoch": [1], "train_loss": [3.0]}
    assert check_history(partial) is partial
    with pytest.raises(ValueError, match=r"history\['train_reconstruction'\]"):
        check_history(partial, complete=True)


@pytest.mark.parametrize("change, message", [
    (dict(epoch=-1), r"train_state\['epoch'\] must be an integer >= 0 and <= 100,000; got -1"),
    (dict(epoch=10**20), r"train_state\['epoch'\] must be .* <= 100,000; got 1000000000000000"),
    (dict(step=1.5), r"train_state\['step'\] must be an integer >= 0 and <= 1,000,000,000,000; "
                     r"got 1.5"),
    (dict(seconds=float("nan")), r"train_state\['seconds'\] must be a finite number; got nan"),
    (dict(rng={"bit_generator": "MT19937"}), r"train_state\['rng'\] is a 'MT19937' state"),
])
def test_a_damaged_train_state_names_its_field(change, message):
    with pytest.raises(ValueError, match=message):
        check_train_state(a_state(**change))


def test_a_train_state_to_resume_from_must_be_whole():
    state = a_state()
    del state["rng"]
    assert check_train_state(state) is state
    with pytest.raises(ValueError, match="train_state has no 'rng': not a state to resume from"):
        check_train_state(state, complete=True)


def test_a_generator_state_is_tried_on_a_generator():
    good = np.random.default_rng(3).bit_generator.state
    assert check_generator_state(good, "model_rng") is good
    with pytest.raises(ValueError, match="model_rng is not a random generator's state"):
        check_generator_state([1, 2], "model_rng")
    with pytest.raises(ValueError, match="model_rng is not a valid PCG64 state"):
        check_generator_state({"bit_generator": "PCG64", "state": "seven"}, "model_rng")


def test_the_resume_position_fits_the_data():
    check_resume_position(a_state(step=2), np.array([3, 0, 2, 1]), 4, 1)
    with pytest.raises(ValueError, match=r"train_state\['step'\] is 4, beyond the 4 steps"):
        check_resume_position(a_state(step=4), None, 4, 1)
    with pytest.raises(ValueError, match="train_permutation must be a permutation of the 4"):
        check_resume_position(a_state(step=1), np.array([0, 0, 1, 2]), 4, 1)
