"""What the commands share: the one-line usage error, the parser that raises it, the
option types (each with its range), and opening a checkpoint or an output folder."""
import argparse
import math
import sys
from pathlib import Path

from .. import datasets
from ..checkpoint import load_checkpoint


class UsageError(Exception):
    """A problem to report in one line, with exit code 2 (bad arguments) or 1."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)", code=2)


def int_at_least(low, what):
    """An argparse type: an integer >= ``low``, described as ``what`` in the error."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_int = int_at_least(1, "a positive integer")
nonnegative_int = int_at_least(0, "an integer >= 0")


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def nonnegative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def add_data_options(parser):
    parser.add_argument("--dataset", choices=datasets.DATASET_NAMES,
                        help="default: the data set the checkpoint was trained on")
    parser.add_argument("--data-dir", help="folder holding the four MNIST IDX files")


def load_data(name, data_dir, announce=None):
    announce = announce or (lambda line: print(line, file=sys.stderr))
    return datasets.load_dataset(name or "auto", data_dir, announce=announce)


def open_checkpoint(path):
    if not Path(path).exists():
        raise UsageError(f"numvae: error: checkpoint {path} does not exist")
    return load_checkpoint(path)


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


def make_out_dir(out, default):
    """The folder ``out`` (or ``default``), created if needed and checked writable."""
    folder = Path(out) if out else Path(default)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".numvae-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"numvae: error: cannot write into output folder {folder} "
                         f"({err.strerror or err})") from None
    return folder


def save_figures(model, history, data, folder):
    from .. import plot_latent, plots  # late: matplotlib is slow to import, --help should not wait
    paths = plots.save_all(model, history, data.images, data.labels, folder)
    if model.n_classes:  # a conditional model: its digits in shared styles
        paths["conditional_grid"] = folder / "conditional_grid.png"
        plot_latent.conditional_grid(model, path=paths["conditional_grid"])
    print("figures: " + ", ".join(path.name for path in paths.values()))


def output_file(path, suffix, overwrite):
    """``path`` as a Path for a new file ending in ``suffix``: refused (one line) if it
    exists and ``overwrite`` is false, or if its folder does not exist."""
    path = Path(path)
    if path.suffix != suffix:
        raise UsageError(f"numvae: error: the output file must end in {suffix}; got {path.name}",
                         code=2)
    if path.exists() and not overwrite:
        raise UsageError(f"numvae: error: {path} exists; give --overwrite to replace it")
    if not path.parent.is_dir():
        raise UsageError(f"numvae: error: cannot write {path}: folder {path.parent} does not exist")
    return path
