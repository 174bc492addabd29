"""What the commands share: the one-line usage error, the parser that raises it, the
option types (each with its range), and opening a checkpoint or an output folder."""
import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from numvae.io import datasets
from numvae.io.files import remove_dead_temporaries
from numvae.io.lock import LOCK_NAME, FolderBusyError, RunLock
from numvae.model import size
from numvae.training.checkpoint import load_checkpoint
from numvae.validation import few

# The one error style of every command: "numvae train: error: <what went wrong>", one line.
# Messages are written without the prefix; numvae.commands.cli adds it. An older message
# that still starts with this prefix has it removed, so that no line says it twice.
_OLD_PREFIX = "numvae: error: "


WRITE_PROBE = ".numvae-write-test"  # make_out_dir's probe, which a kill may leave behind


class UsageError(Exception):
    """A problem to report in one line, with exit code 2 (bad arguments) or 1."""

    def __init__(self, message, code=1):
        message = str(message)
        super().__init__(message[len(_OLD_PREFIX):] if message.startswith(_OLD_PREFIX)
                         else message)
        self.code = code


class DefaultsFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default, unless its help already says it or the
    default is "nothing" (None, False: a flag that is off)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS
                or not action.option_strings or "default" in text):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})".lstrip() if text else f"default: {shown}"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), in the commands' error
    style ("numvae train: ..."), and ``--help`` shows the defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)", code=2)


def widths(text):
    """An argparse type: comma-separated positive integers ("200,100"), or "" for none."""
    try:
        values = tuple(int(part) for part in text.split(",")) if text.strip() else ()
    except ValueError:
        values = None
    if values is None or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such "
                                         f"as 200,100 (or '' for none), got {text[:40]!r}")
    return values


class WidthsAction(argparse.Action):
    """A list of layer widths written with commas (``200,100``), the one list syntax of
    every command; ``200 100`` (numvae 0.2's spelling of --flow-hidden) is read too."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            setattr(namespace, self.dest, tuple(w for part in values for w in widths(part)))
        except argparse.ArgumentTypeError as err:  # one line naming the option, as a type's
            raise argparse.ArgumentError(self, str(err)) from None


def add_widths_option(parser, flag, default, help):
    """``flag`` as a list of widths: ``--flag 200,100`` (or ``--flag 200 100``)."""
    parser.add_argument(flag, nargs="+", action=WidthsAction, default=default, metavar="WIDTHS",
                        help=help)


def int_in(low, high):
    """An argparse type: an integer in [low, high]. Every option has a range, checked up
    front, so that an absurd value is one line naming the option (argparse prefixes the
    option's name), never an allocation of terabytes or a loop of 10**20 epochs."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low:,} to {high:,}, "
                                             f"got {text[:40]!r}")
        return value
    return parse


def float_in(low, high, *, low_open=False):
    """An argparse type: a finite number in [low, high] (or (low, high] with ``low_open``)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None
        above_low = value > low if low_open else value >= low
        if not (math.isfinite(value) and above_low and value <= high):
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"expected a finite number in {bracket}{low:g}, "
                                             f"{high:g}], got {text[:40]!r}")
        return value
    return parse


# the ranges of the options (a paper's 3,280 epochs and K = 5000 fit comfortably)
positive_int = int_in(1, 10_000_000)
nonnegative_int = int_in(0, 10_000_000)
epochs_option = int_in(1, 100_000)
width_option = int_in(1, 100_000)          # layer widths, latent sizes, batch sizes
images_option = int_in(1, 10_000)          # images drawn at once (sample --n)
samples_option = int_in(0, 100_000)        # importance samples K
seed_option = int_in(0, 2**63 - 1)
positive_float = float_in(0.0, 1e6, low_open=True)
nonnegative_float = float_in(0.0, 1e6)
sigma_option = float_in(1e-3, 1e3)
lr_option = float_in(0.0, 10.0, low_open=True)


def memory_option(text):
    """An argparse type: a size such as 8G, 512M or a number of bytes."""
    try:
        return size.parse_bytes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_memory_option(parser):
    """--max-memory, for the commands that build a model (``numvae.model.size``)."""
    parser.add_argument_group("memory").add_argument(
                        "--max-memory", type=memory_option, metavar="SIZE",
                        help=f"the memory the model and a step may take, e.g. 8G (default "
                        f"min(4 GiB, half the memory): {size.human(size.default_limit())} "
                        f"here); larger settings are refused before any memory is asked for")


# the seed of the one binarisation of the test images, for a run trained on binarised
# images (Burda et al.'s protocol; experiments/iwae_table uses the same)
TEST_BINARIZE_SEED = 2016
TEST_IMAGES = ("as-trained", "grey", "binarised")


def add_data_options(parser):
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=datasets.DATASET_NAMES,
                       help="default: the data set the checkpoint was trained on")
    group.add_argument("--data-dir", help="folder holding the four MNIST IDX files (default: "
                       "the checkpoint's, else $NUMVAE_DATA_DIR or the cache)")
    add_preparation_options(group)


def add_preparation_options(group):
    """--test-images and --binarize-seed: how the test images are prepared."""
    group.add_argument("--test-images", choices=TEST_IMAGES, default="as-trained",
                       help="as-trained (default): prepared as the checkpoint records (grey "
                       "levels, or binarised once with its seed); grey: the grey levels; "
                       "binarised: binarised once with --binarize-seed")
    group.add_argument("--binarize-seed", type=seed_option,
                       help="seed of the test images' binarisation (default: the "
                       f"checkpoint's, else {TEST_BINARIZE_SEED})")


def data_preparation(checkpoint):
    """(binarised?, seed of the test images' binarisation or None), as the checkpoint
    records it: ``train_state["data_preparation"]`` (any writer) or the command line's
    ``train_state["meta"]``. A checkpoint that records nothing: grey levels."""
    state = checkpoint.train_state or {}
    record = state.get("data_preparation") or state.get("meta") or {}
    binarised = record.get("binarize") is True
    seed = record.get("test_binarize_seed")
    return binarised, (seed if isinstance(seed, int) and not isinstance(seed, bool) else None)


def prepare_test_images(checkpoint, images, args, announce):
    """``images`` (grey levels) prepared as ``--test-images`` says; one line through
    ``announce`` saying how, and how to choose otherwise."""
    binarised, seed = data_preparation(checkpoint)
    choice = args.test_images
    if choice == "grey" or (choice == "as-trained" and not binarised):
        how = "as the checkpoint records" if choice == "as-trained" else "as asked"
        announce(f"test images: grey levels, {how} (--test-images binarised to binarise them)")
        return images
    seed = args.binarize_seed if args.binarize_seed is not None else (
        seed if seed is not None else TEST_BINARIZE_SEED)
    how = "as the checkpoint records" if choice == "as-trained" else "as asked"
    announce(f"test images: binarised once with seed {seed}, {how} (--test-images grey for "
             f"grey levels)")
    return datasets.binarize(images, np.random.default_rng(seed))


def load_data(name, data_dir, announce=None):
    announce = announce or (lambda line: print(line, file=sys.stderr))
    return datasets.load_dataset(name or "auto", data_dir, announce=announce)


def open_checkpoint(path, max_memory=None):
    if not Path(path).exists():
        raise UsageError(f"numvae: error: checkpoint {path} does not exist")
    return load_checkpoint(path, max_memory=max_memory)


def test_data(checkpoint, args, announce=None):
    """The test split of the data set named by --dataset, else the one the checkpoint
    was trained on, prepared as it was in training (``prepare_test_images``)."""
    announce = announce or (lambda line: print(line, file=sys.stderr))
    state = checkpoint.train_state or {}
    meta = state.get("meta") or state.get("data_preparation") or {}
    name = args.dataset or meta.get("dataset", "auto")
    data_dir = args.data_dir or (meta.get("data_dir") if name == meta.get("dataset") else None)
    _, data, _ = load_data(name, data_dir)
    if data.images.shape[1] != checkpoint.model.input_dim:
        raise UsageError(f"numvae: error: data set {name} has {data.images.shape[1]} "
                         f"values per image; the model expects {checkpoint.model.input_dim}")
    # how the images were prepared belongs to the report (stdout); stderr keeps one line
    # for an error
    return data._replace(images=prepare_test_images(checkpoint, data.images, args, print))


def check_run_folder(out, overwrite):
    """Refuse ``out`` if it holds files and ``overwrite`` is false, before any data is read
    (checked again under the run's lock by ``new_run_folder``)."""
    if out and Path(out).is_dir():
        _check_empty(Path(out), overwrite)


def has_elbo(model):
    """False for an autoencoder (a point-mass posterior): no density, so no KL and no ELBO."""
    return getattr(getattr(model, "posterior", None), "has_density", True)


def part_name(model, kind):
    """The name of a model's part (``"elbo"``, ``"mixture"``, ...), or "?" if it has none."""
    return getattr(getattr(model, kind, None), "name", "?")


def result_line(model, result, where="test"):
    """The evaluation's headline, under the name of what was measured: the negative ELBO
    (with the objective the model was trained with when that is not the ELBO), or, for an
    autoencoder, its reconstruction error: never "-ELBO ... (KL 0.00)" for a model with no
    KL term, which would read as a better ELBO than a VAE's."""
    objective = part_name(model, "objective")
    if not has_elbo(model):
        return (f"{where} reconstruction error {result['reconstruction']:.2f} +- "
                f"{result['loss_se']:.2f} nats per example (an autoencoder, trained with "
                f"objective {objective}: no KL term, no ELBO)")
    trained = "" if objective == "elbo" else f"; trained with objective {objective}"
    return (f"{where} -ELBO {result['loss']:.2f} +- {result['loss_se']:.2f} nats per example "
            f"(reconstruction {result['reconstruction']:.2f}, KL {result['kl']:.2f}{trained})")


def new_run_folder(out, overwrite):
    """The folder a new training run writes into, and the run's lock on it (``RunLock``,
    to release when the run ends): ``out``, refused if another run holds it, or if it holds
    files unless ``overwrite`` (a run never silently replaces another's checkpoint); or a
    new ``runs/<timestamp>`` folder, created exclusively (``-2``, ``-3``, ... on collision,
    so that two runs started in the same second never share one)."""
    if out:
        folder = make_out_dir(out, None)
        lock = lock_folder(folder)
        try:
            _check_empty(folder, overwrite)
        except BaseException:
            lock.release()
            raise
        return folder, lock
    stem = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    stem.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        folder = stem if attempt == 1 else stem.with_name(f"{stem.name}-{attempt}")
        try:
            folder.mkdir()  # exclusive: fails if another run made it first
        except FileExistsError:
            continue
        folder = make_out_dir(folder, None)
        return folder, lock_folder(folder)
    raise UsageError(f"numvae: error: cannot find a free run folder next to {stem}")


def lock_folder(folder):
    """This run's ``RunLock`` on ``folder``; another run's folder is one line."""
    try:
        return RunLock.acquire(folder)
    except FolderBusyError as err:
        raise UsageError(f"numvae: error: {err}") from None


def _check_empty(folder, overwrite):
    """Refuse a folder with files (but a dead run's temporary files, removed here, and the
    lock) unless ``overwrite``; the hint says --resume only where a checkpoint is."""
    remove_dead_temporaries(folder)
    names = sorted(entry.name for entry in folder.iterdir()
                   if entry.name not in (LOCK_NAME, WRITE_PROBE))
    if not names or overwrite:
        return
    checkpoint = folder / "checkpoint.npz"
    hint = (f"--resume {checkpoint} to continue that run" if checkpoint.exists()
            else "another --out (it holds no checkpoint.npz to resume)")
    raise UsageError(f"numvae: error: output folder {folder} is not empty ({few(names)}); "
                     f"give --overwrite to replace its files, or {hint}")



def make_out_dir(out, default):
    """The folder ``out`` (or ``default``), created if needed and checked writable."""
    folder = Path(out) if out else Path(default)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / WRITE_PROBE
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"numvae: error: cannot write into output folder {folder} "
                         f"({err.strerror or err})") from None
    return folder


def save_figures(model, history, data, folder):
    from numvae import (
        plots,  # late: matplotlib is slow to import, --help should not wait
    )
    paths = plots.save_all(model, history, data.images, data.labels, folder)
    if model.n_classes:  # a conditional model: its digits in shared styles
        paths["conditional_grid"] = folder / "conditional_grid.png"
        plots.conditional_grid(model, path=paths["conditional_grid"])
    print("figures: " + ", ".join(path.name for path in paths.values()))


def output_file(path, suffix, overwrite):
    """``path`` as a Path for a new file ending in ``suffix`` (or one of the tuple
    ``suffix``): refused (one line) if it exists and ``overwrite`` is false, or if its
    folder does not exist."""
    path = Path(path)
    suffixes = (suffix,) if isinstance(suffix, str) else tuple(suffix)
    if path.suffix not in suffixes:
        raise UsageError(f"numvae: error: the output file must end in {' or '.join(suffixes)}; "
                         f"got {path.name}", code=2)
    if path.exists() and not overwrite:
        raise UsageError(f"numvae: error: {path} exists; give --overwrite to replace it")
    if not path.parent.is_dir():
        raise UsageError(f"numvae: error: cannot write {path}: folder {path.parent} does not exist")
    return path
