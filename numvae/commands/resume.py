"""What ``numvae train --resume`` checks before it continues a run: the settings the
command line stored in the checkpoint (``meta``), the options typed beside ``--resume``
(compared with the checkpoint's run, not with their defaults), and the saved training
state against the data it resumes on. Each refusal is one line naming the file and the
field."""
import sys
from pathlib import Path

from numvae.commands.common import UsageError
from numvae.io import datasets
from numvae.model.parts import flat_config
from numvae.training.checkpoint import CheckpointError
from numvae.training.checkpoint_fields import (
    MAX_EPOCHS,
    check_history,
    check_resume_position,
    check_train_state,
)
from numvae.validation import shown

# what the command line stores in a checkpoint's train_state["meta"], and the check of each
META_FIELDS = {
    "dataset": lambda v: v in datasets.DATASET_NAMES and v != "auto",
    "data_dir": lambda v: v is None or isinstance(v, str),
    "epochs": lambda v: is_count(v, 1, MAX_EPOCHS), "val_size": lambda v: is_count(v, 0),
    "batch_size": lambda v: is_count(v, 1), "seed": lambda v: is_count(v, 0),
    "binarize": lambda v: isinstance(v, bool), "kl_warmup_epochs": lambda v: is_count(v, 0)}


def is_count(value, low, high=10**9):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_meta(meta, path):
    """Every field of the run's settings, as ``_new_run`` wrote them."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path}: train_state['meta'] is not a JSON object")
    for field, valid in META_FIELDS.items():
        if field not in meta or not valid(meta[field]):
            raise CheckpointError(f"checkpoint {path}: train_state['meta'][{field!r}] is "
                                  f"{shown(meta.get(field, 'missing'))}, not a valid setting")


def saved_setting(name, checkpoint, meta):
    """(True, the value the checkpoint's run has for option ``name``), or (False, None)."""
    config = checkpoint.model.config
    if isinstance(config.get("architecture"), dict):  # the options are 0.2's flat names
        config = flat_config(config)
    if name == "conditional":
        return True, "n_classes" in config
    if name == "kl_schedule":  # stored as the schedule's settings, or None for constant
        return True, (meta.get("kl_schedule") or {}).get("name", "constant")
    if name == "objective" and config.get("objective") == "free_bits":
        return True, "elbo"  # --free-bits made the ELBO the free_bits objective
    if name in config:
        value = config[name]
        return True, list(value) if isinstance(value, tuple) else value
    if name in meta:
        return True, meta[name]
    return False, None


def check_typed_options(args, checkpoint, meta, given):
    """An option typed with --resume (``given``, flags such as '--latent-dim') must agree
    with the checkpoint's run (its value there, not the option's default): one that differs
    is refused, naming the file and the saved value; one the checkpoint does not record is
    named as ignored."""
    ignored = []
    for flag in given:
        name = flag[2:].replace("-", "_")
        found, saved = saved_setting(name, checkpoint, meta)
        typed = getattr(args, name)
        typed = list(typed) if isinstance(typed, tuple) else typed
        if name == "data_dir":  # the checkpoint holds the folder's absolute path
            typed = str(Path(typed).resolve())
        if found and typed != saved and not (name == "dataset" and typed == "auto"):
            raise UsageError(f"numvae: error: {flag} {typed!r} differs from checkpoint "
                             f"{args.resume}, whose run has {name} = {saved!r}; a resumed run "
                             f"keeps its settings (drop {flag}, or start a new run with --out)",
                             code=2)
        if not found:
            ignored.append(flag)
    if ignored:
        print(f"numvae: --resume continues the saved run as it was; ignoring "
              f"{', '.join(ignored)}", file=sys.stderr)


def check_resumable(path, run_state, meta, n_examples):
    """``fit``'s checks of the saved state, run here so that a refusal names the file."""
    try:
        if run_state["history"]:
            check_history(run_state["history"], complete=True)
        if run_state["train_state"]:
            check_train_state(run_state["train_state"], complete=True)
            check_resume_position(run_state["train_state"], run_state["train_permutation"],
                                  n_examples, meta["batch_size"])
    except ValueError as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from None
