"""The checks of every field a checkpoint holds besides the arrays: the JSON entries
(history, training state, generator states) and the training state against the data
it resumes on. Each failure is a ValueError naming the field; ``numvae.training.checkpoint``
turns it into a ``CheckpointError`` naming the file too."""
import math
import numbers

import numpy as np

HISTORY_LISTS = ("epoch", "train_loss", "train_reconstruction", "train_kl", "val_loss",
                 "val_reconstruction", "val_kl", "kl_weight", "seconds", "examples_per_second")
STATE_COUNTS = ("epoch", "step", "seen")
MAX_EPOCHS = 100_000   # the command line's largest --epochs: a resume hint never exceeds it
MAX_COUNT = 10**12     # steps and examples within an epoch
STATE_SUMS = ("train_reconstruction_sum", "train_kl_sum", "seconds")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_generator_state(state, field):
    """A NumPy bit generator's state, as ``rng.bit_generator.state`` gives it: try it on a
    generator of the same kind. Returns the state."""
    if not isinstance(state, dict) or not isinstance(state.get("bit_generator"), str):
        raise ValueError(f"{field} is not a random generator's state (a JSON object with "
                         f"'bit_generator')")
    if state["bit_generator"] != "PCG64":
        raise ValueError(f"{field} is a {state['bit_generator']!r} state; expected 'PCG64'")
    try:
        np.random.default_rng().bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"{field} is not a valid PCG64 state ({err})") from None
    return state


def check_history(history, complete=False):
    """The history ``numvae.training.loop.fit`` writes: lists of one entry per epoch (numbers, or
    None for what was not measured), gradient norms by name. Each list is checked where
    present; with ``complete`` (to resume with ``fit``), all must be, unless it is {}."""
    if not isinstance(history, dict):
        raise ValueError(f"history is a {type(history).__name__}; expected a JSON object")
    if not history:
        return history
    epochs = history.get("epoch")
    if not isinstance(epochs, list) or not all(_is_int(e) and e >= 1 for e in epochs):
        raise ValueError("history['epoch'] must be a list of epoch numbers >= 1")
    for key in HISTORY_LISTS:
        values = history.get(key)
        if values is None and not complete:
            continue
        if not isinstance(values, list) or len(values) != len(epochs) or not all(
                value is None or _is_number(value) for value in values):
            raise ValueError(f"history[{key!r}] must be a list of {len(epochs)} numbers or nulls")
    steps, norms = history.get("grad_norm_step", []), history.get("grad_norm", {})
    if not isinstance(steps, list) or not all(_is_int(s) for s in steps):
        raise ValueError("history['grad_norm_step'] must be a list of step numbers")
    if not isinstance(norms, dict) or not all(
            isinstance(v, list) and len(v) == len(steps) and all(_is_number(x) for x in v)
            for v in norms.values()):
        raise ValueError("history['grad_norm'] must map names to lists of one norm per step")
    return history


def check_train_state(state, complete=False):
    """Where ``fit`` stands: non-negative integer epoch, step and count of examples seen,
    finite running sums, the generator's state. Each is checked where present; with
    ``complete`` (to resume with ``fit``) all must be. Anything else (the command line's
    'meta') is checked by its reader."""
    if not isinstance(state, dict):
        raise ValueError(f"train_state is a {type(state).__name__}; expected a JSON object")
    for key in (*STATE_COUNTS, *STATE_SUMS, "rng"):
        if complete and key not in state:
            raise ValueError(f"train_state has no {key!r}: not a state to resume from")
    for key in STATE_COUNTS:
        high = MAX_EPOCHS if key == "epoch" else MAX_COUNT
        if key in state and (not _is_int(state[key]) or not 0 <= state[key] <= high):
            raise ValueError(f"train_state[{key!r}] must be an integer >= 0 and <= {high:,}; "
                             f"got {state[key]!r}")
    for key in STATE_SUMS:
        if key in state and (not _is_number(state[key]) or not math.isfinite(state[key])):
            raise ValueError(f"train_state[{key!r}] must be a finite number; got {state[key]!r}")
    if "rng" in state:
        check_generator_state(state["rng"], "train_state['rng']")
    return state


def check_resume_position(train_state, permutation, n_examples, batch_size):
    """The training state fits the data it resumes on: the step within the epoch, and the
    epoch's example order, needed mid-epoch and checked whenever it is there, a permutation
    of range(n_examples)."""
    steps_per_epoch = -(-n_examples // batch_size)
    step = train_state.get("step", 0)
    if step >= steps_per_epoch:
        raise ValueError(f"train_state['step'] is {step}, beyond the {steps_per_epoch} steps of "
                         f"an epoch of {n_examples} examples in batches of {batch_size}")
    if step > 0 or permutation is not None:
        if permutation is None or np.shape(permutation) != (n_examples,) or not np.array_equal(
                np.sort(permutation), np.arange(n_examples)):
            raise ValueError(f"train_permutation must be a permutation of the {n_examples:,} "
                             f"training examples (each index from 0 to {n_examples - 1:,} "
                             f"once)")
