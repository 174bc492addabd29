"""What the commands share: the one-line usage error, the parser that raises it, the
option types (each with its range), and opening a checkpoint or an output folder."""
import argparse
import math
import sys
import time
from pathlib import Path

from numvae.io import datasets
from numvae.io.files import remove_dead_temporaries
from numvae.io.lock import LOCK_NAME, FolderBusyError, RunLock
from numvae.model import size
from numvae.validation import few
from numvae.training.checkpoint import load_checkpoint


WRITE_PROBE = ".numvae-write-test"  # make_out_dir's probe, which a kill may leave behind


class UsageError(Exception):
    """A problem to report in one line, with exit code 2 (bad arguments) or 1."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)", code=2)


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
    parser.add_argument("--max-memory", type=memory_option, metavar="SIZE",
                        help=f"the memory the model and a step may take, e.g. 8G (default "
                        f"min(4 GiB, half the memory): {size.human(size.default_limit())} "
                        f"here); larger settings are refused before any memory is asked for")


def add_data_options(parser):
    parser.add_argument("--dataset", choices=datasets.DATASET_NAMES,
                        help="default: the data set the checkpoint was trained on")
    parser.add_argument("--data-dir", help="folder holding the four MNIST IDX files")


def load_data(name, data_dir, announce=None):
    announce = announce or (lambda line: print(line, file=sys.stderr))
    return datasets.load_dataset(name or "auto", data_dir, announce=announce)


def open_checkpoint(path, max_memory=None):
    if not Path(path).exists():
        raise UsageError(f"numvae: error: checkpoint {path} does not exist")
    return load_checkpoint(path, max_memory=max_memory)


def test_data(checkpoint, args):
    """The test split of the data set named by --dataset, else the one the checkpoint
    was trained on."""
    meta = checkpoint.train_state.get("meta") or {}
    name = args.dataset or meta.get("dataset", "auto")
    data_dir = args.data_dir or (meta.get("data_dir") if name == meta.get("dataset") else None)
    _, data, _ = load_data(name, data_dir)
    if data.images.shape[1] != checkpoint.model.input_dim:
        raise UsageError(f"numvae: error: data set {name} has {data.images.shape[1]} "
                         f"values per image; the model expects {checkpoint.model.input_dim}")
    return data


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
