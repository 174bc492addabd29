"""``numvae train``: train a VAE and write its checkpoint, history, metrics and figures."""
import contextlib
import json
import signal
import sys
from pathlib import Path

import numpy as np

from numvae.commands import resume
from numvae.commands.common import (
    TEST_BINARIZE_SEED,
    Parser,
    UsageError,
    check_run_folder,
    has_elbo,
    load_data,
    lock_folder,
    make_out_dir,
    new_run_folder,
    part_name,
    result_line,
    save_figures,
)
from numvae.commands.train_options import add_parser
from numvae.diagnostics import evaluate
from numvae.diagnostics.latent_info import (
    format_latent_information,
    latent_information,
    latent_information_callback,
)
from numvae.io import datasets
from numvae.io.files import atomic_write_bytes
from numvae.model.parts import FLAT_SETTINGS, PART_KINDS, build_parts
from numvae.model.parts import REGISTRIES as PARTS
from numvae.model.vae import VAE
from numvae.training import loop as train
from numvae.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from numvae.training.checkpoint_fields import MAX_EPOCHS
from numvae.training.kl_schedules import Cyclical, kl_schedule_from_settings
from numvae.training.optim_fast import FastAdam
from numvae.training.two_processes import SecondProcessError

DEFAULT_EPOCHS = {"mnist": 10, "mnist-mini": 30, "fashion-mnist": 10, "digits": 100, "toy": 50}
DEFAULT_VAL_SIZE = {"mnist": 5000, "mnist-mini": 1000, "fashion-mnist": 5000, "digits": 200,
                    "toy": 200}
# options that a resumed run may change; every other training option comes from the checkpoint
RESUME_KEEPS = ("command", "resume", "epochs", "out", "overwrite", "no_progress", "no_plots",
                "max_memory", "processes")


def _new_run(args):
    """A fresh model and optimiser from the options; what the run needs to resume later."""
    check_run_folder(args.out, args.overwrite)  # before any data is read or downloaded
    train_data, test_data, used = load_data(args.dataset, args.data_dir)
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None  # usable from anywhere
    meta = dict(dataset=used, data_dir=data_dir, epochs=args.epochs or DEFAULT_EPOCHS[used],
                val_size=DEFAULT_VAL_SIZE[used] if args.val_size is None else args.val_size,
                batch_size=args.batch_size, seed=args.seed, binarize=args.binarize,
                # how the test images are prepared, recorded for evaluate, plot and inspect
                test_binarize_seed=TEST_BINARIZE_SEED if args.binarize else None,
                kl_warmup_epochs=args.kl_warmup_epochs, schedule=args.schedule)
    if args.kl_warmup_epochs and not PARTS["objective"][args.objective].supports_kl_weight:
        raise UsageError(f"numvae: error: --kl-warmup-epochs has no meaning for --objective "
                         f"{args.objective} (no KL term to weigh)", code=2)
    meta["kl_schedule"] = _kl_schedule_settings(args)
    objective = _objective_with_free_bits(args)
    try:
        parts = build_parts({**{kind: getattr(args, kind) for kind in PART_KINDS},
                             "objective": objective},
                            {name: getattr(args, name) for name in FLAT_SETTINGS})
        model = VAE(train_data.images.shape[1], args.shared_dim, args.latent_dim,
                    activation=args.activation, architecture=args.architecture, **parts,
                    seed=args.seed, max_memory=args.max_memory,
                    n_classes=int(train_data.labels.max()) + 1 if args.conditional else None)
        model.budget.check_step(args.batch_size, args.n_samples, "--batch-size x --n-samples: a step")
    except ValueError as err:  # e.g. --architecture conv on images it cannot take
        raise UsageError(f"numvae: error: {err}", code=2) from None
    _check_val_size(train_data, meta)
    _check_part_options(args, model)
    # only once the settings are known good
    folder, lock = new_run_folder(args.out, args.overwrite)
    run = dict(model=model, optimizer=FastAdam(model.params, lr=args.lr), history=None,
               train_state=None, train_permutation=None, lock=lock)
    return folder, meta, run, (train_data, test_data)


def _objective_with_free_bits(args):
    """--free-bits TAU > 0 makes the ELBO the free_bits objective; other objectives refuse it."""
    if not args.free_bits:
        return args.objective
    if args.objective not in ("elbo", "free_bits"):
        raise UsageError(f"numvae: error: --free-bits floors the ELBO's KL; --objective "
                         f"{args.objective} has no such term (use --objective elbo)", code=2)
    return "free_bits"


def _kl_schedule_settings(args):
    """The settings of --kl-schedule (None: constant), refusing what it cannot combine with."""
    cycle_options = [flag for flag, value in [("--kl-cycle-epochs", args.kl_cycle_epochs),
                                              ("--kl-cycle-ramp", args.kl_cycle_ramp)]
                     if value is not None]
    if args.kl_schedule != "cyclical":
        if cycle_options:
            raise UsageError(f"numvae: error: {', '.join(cycle_options)} need --kl-schedule "
                             f"cyclical", code=2)
        return None
    if args.kl_warmup_epochs:
        raise UsageError("numvae: error: --kl-schedule cyclical and --kl-warmup-epochs are two "
                         "warm-ups; give one", code=2)
    if not PARTS["objective"][args.objective].supports_kl_weight:
        raise UsageError(f"numvae: error: --kl-schedule cyclical has no meaning for "
                         f"--objective {args.objective} (no KL term to weigh)", code=2)
    return Cyclical(args.kl_cycle_epochs or 10, args.kl_cycle_ramp or 0.5).settings()


def _kl_schedule(meta, path):
    """The schedule a run's settings name (None: the constant weight or the warm-up)."""
    try:
        return kl_schedule_from_settings(meta.get("kl_schedule"))
    except ValueError as err:
        raise CheckpointError(f"checkpoint {path}: train_state['meta']['kl_schedule']: "
                              f"{err}") from None


# options that are settings of one part (a flow posterior, a mixture prior): the chosen
# parts' settings say which of them the model uses
PART_OPTIONS = ("flow_steps", "flow_hidden", "prior_components")


def _check_part_options(args, model):
    """Refuse an option given for a part the model does not have (--flow-steps without
    --posterior iaf): it would be silently ignored."""
    given = _options_given(args, keep=())
    used = {flat for part in (model.posterior, model.prior) for flat in part.flat_names}
    flags = {name: "--" + name.replace("_", "-") for name in PART_OPTIONS}
    unused = [flag for name, flag in flags.items() if flag in given and name not in used]
    if unused:
        raise UsageError(f"numvae: error: {', '.join(unused)}: no part of this model has that "
                         f"setting (--posterior {model.posterior.name}, --prior "
                         f"{model.prior.name})", code=2)


def _resumed_run(args):
    """The model, optimiser and training state saved in ``args.resume``."""
    checkpoint = load_checkpoint(args.resume, max_memory=args.max_memory)
    meta = checkpoint.train_state.get("meta")
    if not meta or checkpoint.optimizer is None:
        raise UsageError(f"numvae: error: {args.resume} holds no training state to resume")
    resume.check_meta(meta, args.resume)
    resume.check_typed_options(args, checkpoint, meta, _options_given(args, RESUME_KEEPS))
    train_data, test_data, _ = load_data(meta["dataset"], meta["data_dir"])
    if args.epochs:
        meta["epochs"] = args.epochs
    folder = make_out_dir(args.out, Path(args.resume).parent)
    lock = lock_folder(folder)  # the last step: held until the run ends (run() releases it)
    run = dict(model=checkpoint.model, optimizer=checkpoint.optimizer, history=checkpoint.history,
               train_state=checkpoint.train_state,
               train_permutation=checkpoint.train_permutation, lock=lock)
    return folder, meta, run, (train_data, test_data)


def _options_given(args, keep):
    """The options of ``numvae train`` typed on the command line (``args.typed``, which
    ``numvae.commands.cli.main`` records), except ``keep``; without that record, those
    that differ from their defaults."""
    typed = getattr(args, "typed", None)
    if typed is None:
        parser = Parser(prog="numvae")
        add_parser(parser.add_subparsers(dest="command"))
        defaults = vars(parser.parse_args(["train"]))
        typed = [name for name, value in vars(args).items() if value != defaults.get(name)]
    return [f"--{name.replace('_', '-')}" for name in vars(args) if name in typed
            and name not in keep]


def _check_val_size(train_data, meta):
    if meta["val_size"] >= len(train_data.images):
        raise UsageError(f"numvae: error: --val-size {meta['val_size']} leaves no training images "
                         f"({meta['dataset']} has {len(train_data.images)})", code=2)


def _split(train_data, meta):
    """(fit data, validation data or None), the validation images held out by seed."""
    _check_val_size(train_data, meta)
    if not meta["val_size"]:
        return train_data, None
    return datasets.train_val_split(train_data, meta["val_size"], seed=meta["seed"])


def _saver(checkpoint_path, folder, run, meta):
    """The callback that writes the checkpoint and history after each epoch (and on Ctrl-C)."""
    def save(state):
        train_state = {**state["train_state"], "meta": meta}
        save_checkpoint(checkpoint_path, run["model"], run["optimizer"], state["history"],
                        train_state, state["train_permutation"])
        write_history(folder, state["history"])
        if state["interrupted"]:
            name = signal.Signals(state["signal"]).name
            with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
                print(f"\ninterrupted ({name}): checkpoint saved to {checkpoint_path}; "
                      f"continue with numvae train --resume {checkpoint_path}", file=sys.stderr)
    return save


def _fit(args, run, meta, fit_data, val_data, save, checkpoint_path):
    try:
        return train.fit(run["model"], run["optimizer"], fit_data, epochs=meta["epochs"],
                         batch_size=meta["batch_size"], val_data=val_data,
                         kl_warmup_epochs=meta["kl_warmup_epochs"], seed=meta["seed"],
                         binarize=meta["binarize"], callbacks=[_measure(fit_data, val_data),
                                                              save],
                         progress=False if args.no_progress else None,
                         history=run["history"], train_state=run["train_state"],
                         train_permutation=run["train_permutation"],
                         schedule=meta.get("schedule"),
                         kl_schedule=_kl_schedule(meta, checkpoint_path),
                         processes=args.processes)
    except (train.TrainingDivergedError, MemoryError, SecondProcessError) as err:
        kept = f"; the last good checkpoint is {checkpoint_path}" if checkpoint_path.exists() else ""
        what = err if not isinstance(err, MemoryError) else (
            "out of memory (a MemoryError) during training; try a smaller --batch-size")
        raise UsageError(f"numvae: error: {what}{kept}") from None


def _measure(fit_data, val_data):
    """Each epoch: rate, distortion, I_q, marginal KL and active units on the first 1,000
    validation images (training images if none are held out), into the history."""
    data = val_data if val_data is not None else fit_data
    return latent_information_callback(data.images, labels=data.labels)


def _write_metrics(folder, model, test_data, meta, history):
    result = evaluate.evaluate_elbo(model, test_data.images, labels=test_data.labels)
    info = latent_information(model, test_data.images, labels=test_data.labels)
    elbo = has_elbo(model)  # an autoencoder has none: null, and its reconstruction error
    metrics = dict(dataset=meta["dataset"], objective=part_name(model, "objective"),
                   test_negative_elbo=result["loss"] if elbo else None,
                   test_negative_elbo_se=result["loss_se"] if elbo else None,
                   test_reconstruction=result["reconstruction"], test_kl=result["kl"],
                   # null where the KL has no split by dimension (a Monte Carlo KL)
                   kl_per_dim=[None if v != v else v for v in result["kl_per_dim"].tolist()],
                   epochs=len(history["epoch"]),  # trained for in all, never what was asked
                   test_images=test_images_note(meta),
                   # on the first 1,000 test images (numvae.diagnostics.latent_info)
                   latent={key: value for key, value in info.items() if key != "kl_per_dim"})
    atomic_write_bytes(folder / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    print(result_line(model, result))
    print(f"first {info['n_images']} test images: {format_latent_information(info)}")


def _prepared(test_data, meta):
    """The test images as training saw its images: binarised once, with the recorded seed
    (numvae 0.2's checkpoints have none: the default), for a run on binarised images."""
    if not meta["binarize"]:
        return test_data
    seed = meta.get("test_binarize_seed")
    seed = TEST_BINARIZE_SEED if seed is None else seed
    meta["test_binarize_seed"] = seed
    return test_data._replace(images=datasets.binarize(test_data.images,
                                                       np.random.default_rng(seed)))


def run(args):
    folder, meta, run_state, data = _resumed_run(args) if args.resume else _new_run(args)
    try:
        with _stopped_like_ctrl_c():
            return _train_and_report(args, folder, meta, run_state, data)
    finally:
        run_state["lock"].release()  # one run per folder: the next may start


@contextlib.contextmanager
def _stopped_like_ctrl_c():
    """SIGTERM and SIGHUP outside the training loop (while the metrics or figures are
    written) raise as Ctrl-C does, so that the lock is released and the exit code is
    128 + the signal's number; inside it, ``fit`` defers them to a step boundary."""
    def stop(signum, frame):
        raise train.TrainingInterrupted(signum)
    previous = {}
    for signum in train.STOP_SIGNALS:  # SIGINT raises KeyboardInterrupt already
        if signum != signal.SIGINT and signal.getsignal(signum) is signal.SIG_DFL:
            with contextlib.suppress(ValueError):  # not the main thread: left as it is
                previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def _train_and_report(args, folder, meta, run_state, data):
    train_data, test_data = data
    test_data = _prepared(test_data, meta)
    fit_data, val_data = _split(train_data, meta)
    if args.resume:
        resume.check_resumable(args.resume, run_state, meta, len(fit_data.images))
    checkpoint_path = folder / "checkpoint.npz"
    save = _saver(checkpoint_path, folder, run_state, meta)
    model = run_state["model"]
    done = (run_state["train_state"] or {}).get("epoch", 0)
    if done >= meta["epochs"]:
        more = (f"give --epochs {done + 1} or more to train on" if done < MAX_EPOCHS
                else f"{MAX_EPOCHS:,} is the most --epochs allows")
        print(f"numvae: {args.resume} has been trained for {done} epochs already; --epochs "
              f"counts epochs from the start, so there is nothing to do ({more})")
        return 0
    print(start_header(model, meta, fit_data, val_data, done, folder))
    try:
        history = _fit(args, run_state, meta, fit_data, val_data, save, checkpoint_path)
    except KeyboardInterrupt as stop:  # saved between two steps (the saver said so)
        return 128 + getattr(stop, "signum", signal.SIGINT)  # the shell's code for the signal
    _write_metrics(folder, model, test_data, meta, history)
    if not args.no_plots:
        save_figures(model, history, test_data, folder)
    print(f"wrote {folder}")
    return 0


def start_header(model, meta, fit_data, val_data, done, folder):
    """What the run is about to do, a few short lines (the model's repr is one long line)."""
    parts = [f"{part_name(model, 'posterior')} posterior", f"{part_name(model, 'prior')} prior",
             f"{part_name(model, 'likelihood')} likelihood",
             f"objective {part_name(model, 'objective')}"]
    validation = f", {len(val_data.images):,} held out for validation" if val_data else ""
    prepared = "binarised afresh every epoch" if meta["binarize"] else "grey levels"
    return "\n".join([
        f"numvae train: a {model.input_dim}-{model.latent_dim} VAE "
        f"({model.n_params():,} parameters, {model.dtype})",
        f"  parts: {', '.join(parts)}",
        f"  data: {meta['dataset']}, {len(fit_data.images):,} training images{validation}; "
        f"{prepared}",
        f"  test images: {test_images_note(meta)}",
        f"  epochs: up to {meta['epochs']} (counted from the start; {done} done), batch "
        f"{meta['batch_size']}, seed {meta['seed']}",
        f"  writing to {folder}"])


def test_images_note(meta):
    seed = meta.get("test_binarize_seed")
    return "grey levels" if not meta["binarize"] else f"binarised once with seed {seed}"


def write_history(folder, history):
    """history.json (everything) and history.csv (one row per epoch)."""
    atomic_write_bytes(folder / "history.json", (json.dumps(history) + "\n").encode())
    columns = [key for key, value in history.items()
               if isinstance(value, list) and key != "grad_norm_step"]
    lines = [",".join(columns)]
    for row in zip(*(history[key] for key in columns)):
        lines.append(",".join("" if value is None else repr(value) for value in row))
    atomic_write_bytes(folder / "history.csv", ("\n".join(lines) + "\n").encode())
