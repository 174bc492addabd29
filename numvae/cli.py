"""The ``numvae`` command: train, evaluate, sample, plot, inspect.

Every failure the user can cause (a bad option, a missing checkpoint, a folder that
cannot be written, data that cannot be read) ends in one line on stderr and a non-zero
exit code, never a traceback.
"""
import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import datasets, evaluate, train
from ._io import atomic_write, atomic_write_bytes
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .optim import Adam
from .vae import VAE

DEFAULT_EPOCHS = {"mnist": 10, "mnist-mini": 30, "toy": 50}
DEFAULT_VAL_SIZE = {"mnist": 5000, "mnist-mini": 1000, "toy": 200}


class UsageError(Exception):
    """A problem to report in one line, with exit code 2 (bad arguments) or 1."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)", code=2)


def _int_at_least(low, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "an integer >= 0")


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _nonnegative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def build_parser():
    parser = Parser(prog="numvae", description="A variational auto-encoder in NumPy, "
                    "every gradient derived by hand.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    p = commands.add_parser("train", help="train a VAE and write checkpoint, history and figures",
                            description="Train a VAE; write into --out the checkpoint "
                            "(checkpoint.npz, saved after every epoch), the history "
                            "(history.json, history.csv), metrics.json and the figures.")
    p.add_argument("--dataset", default="auto", choices=["auto", "mnist", "mnist-mini", "toy"],
                   help="auto (default): full MNIST if it can be found or downloaded, else the "
                   "embedded 10,000-image subset")
    p.add_argument("--data-dir", help="folder holding the four MNIST IDX files")
    p.add_argument("--epochs", type=_positive_int,
                   help="default: 10 on mnist, 30 on mnist-mini, 50 on toy")
    p.add_argument("--latent-dim", type=_positive_int, default=2)
    p.add_argument("--shared-dim", type=_positive_int, default=128)
    p.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli")
    p.add_argument("--sigma", type=_positive_float, default=1.0,
                   help="standard deviation of the Gaussian likelihood")
    p.add_argument("--kl-weight", type=_nonnegative_float, default=1.0)
    p.add_argument("--kl-warmup-epochs", type=_nonnegative_int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--lr", type=_positive_float, default=1e-3)
    p.add_argument("--seed", type=_nonnegative_int, default=0)
    p.add_argument("--binarize", action="store_true",
                   help="dynamic binarisation: a fresh Bernoulli draw of each pixel every epoch")
    p.add_argument("--val-size", type=_nonnegative_int,
                   help="training images held out for validation (default: 5000 on mnist, "
                   "1000 on mnist-mini, 200 on toy)")
    p.add_argument("--out", help="output folder (default: runs/<timestamp>)")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT exactly where it stopped")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")

    p = commands.add_parser("evaluate", help="test-set negative ELBO and importance-weighted log p(x)")
    p.add_argument("checkpoint")
    p.add_argument("--iwae-k", type=_nonnegative_int, default=100,
                   help="importance samples K (0: skip; default 100)")
    p.add_argument("--n", type=_positive_int, help="evaluate only the first N test images")
    _data_options(p)

    p = commands.add_parser("sample", help="decode samples z ~ N(0, I) into images")
    p.add_argument("checkpoint")
    p.add_argument("--n", type=_positive_int, default=64)
    p.add_argument("--seed", type=_nonnegative_int, default=0)
    p.add_argument("--out", help="a .png picture or a .npy array (default: samples.png next "
                   "to the checkpoint)")

    p = commands.add_parser("plot", help="make the figures again from a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--out", help="folder for the PNGs (default: the checkpoint's folder)")
    _data_options(p)

    p = commands.add_parser("inspect", help="trace one training step, forward and backward")
    p.add_argument("checkpoint", nargs="?",
                   help="a checkpoint (default: a fresh slides' VAE on the embedded subset)")
    p.add_argument("--batch-size", type=_positive_int, default=4)
    p.add_argument("--check", action="store_true",
                   help="add finite-difference estimates of each parameter gradient (float64)")
    p.add_argument("--show", metavar="NAME", help="print the full array of one quantity")
    p.add_argument("--seed", type=_nonnegative_int, default=0)
    return parser


def _data_options(parser):
    parser.add_argument("--dataset", choices=["auto", "mnist", "mnist-mini", "toy"],
                        help="default: the data set the checkpoint was trained on")
    parser.add_argument("--data-dir", help="folder holding the four MNIST IDX files")


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as err:
        print(err, file=sys.stderr)
        return err.code
    except (CheckpointError, datasets.DataUnavailableError, datasets.IDXError,
            FloatingPointError, OSError, ValueError, TypeError) as err:
        # FloatingPointError covers TrainingDivergedError and losses.NumericalError
        print(f"numvae: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("numvae: interrupted", file=sys.stderr)
        return 130


# --- train ----------------------------------------------------------------------------

def _load_data(name, data_dir, announce=None):
    announce = announce or (lambda line: print(line, file=sys.stderr))
    return datasets.load_dataset(name or "auto", data_dir, announce=announce)


def _make_out_dir(out):
    folder = Path(out) if out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".numvae-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"numvae: error: cannot write into output folder {folder} "
                         f"({err.strerror or err})") from None
    return folder


def cmd_train(args):
    if args.resume:
        checkpoint = load_checkpoint(args.resume)
        meta = checkpoint.train_state.get("meta")
        if not meta or checkpoint.optimizer is None:
            raise UsageError(f"numvae: error: {args.resume} holds no training state to resume")
        model, optimizer = checkpoint.model, checkpoint.optimizer
        folder = _make_out_dir(args.out or Path(args.resume).parent)
        ignored = _options_given(args, RESUME_KEEPS)
        if ignored:
            print(f"numvae: --resume continues the saved run as it was; ignoring "
                  f"{', '.join(ignored)}", file=sys.stderr)
    else:
        meta = None
        folder = _make_out_dir(args.out)
    if meta is None:
        train_data, test_data, used = _load_data(args.dataset, args.data_dir)
        epochs = args.epochs or DEFAULT_EPOCHS[used]
        val_size = DEFAULT_VAL_SIZE[used] if args.val_size is None else args.val_size
        data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None  # usable from anywhere
        meta = dict(dataset=used, data_dir=data_dir, epochs=epochs, val_size=val_size,
                    batch_size=args.batch_size, seed=args.seed, binarize=args.binarize,
                    kl_warmup_epochs=args.kl_warmup_epochs)
        model = VAE(train_data.images.shape[1], args.shared_dim, args.latent_dim,
                    likelihood=args.likelihood, sigma=args.sigma, kl_weight=args.kl_weight,
                    seed=args.seed)
        optimizer = Adam(model.params, lr=args.lr)
        history, state, permutation = None, None, None
    else:
        train_data, test_data, used = _load_data(meta["dataset"], meta["data_dir"])
        if args.epochs:
            meta["epochs"] = args.epochs
        history = checkpoint.history
        state, permutation = checkpoint.train_state, checkpoint.train_permutation
    fit_data, val_data = train_data, None
    if meta["val_size"] >= len(train_data.images):
        raise UsageError(f"numvae: error: --val-size {meta['val_size']} leaves no training images "
                         f"({used} has {len(train_data.images)})", code=2)
    if meta["val_size"]:
        fit_data, val_data = datasets.train_val_split(train_data, meta["val_size"], seed=meta["seed"])

    checkpoint_path = folder / "checkpoint.npz"

    def save(state_for_callback):
        train_state = {**state_for_callback["train_state"], "meta": meta}
        save_checkpoint(checkpoint_path, model, optimizer, state_for_callback["history"],
                        train_state, state_for_callback["train_permutation"])
        _write_history(folder, state_for_callback["history"])
        if state_for_callback["interrupted"]:
            print(f"\ninterrupted: checkpoint saved to {checkpoint_path}; continue with "
                  f"numvae train --resume {checkpoint_path}", file=sys.stderr)

    print(f"numvae: training {model!r} on {used} ({len(fit_data.images)} images"
          f"{', validation ' + str(len(val_data.images)) if val_data else ''}) for "
          f"{meta['epochs']} epochs; writing to {folder}")
    try:
        history = train.fit(model, optimizer, fit_data, epochs=meta["epochs"],
                            batch_size=meta["batch_size"], val_data=val_data,
                            kl_warmup_epochs=meta["kl_warmup_epochs"], seed=meta["seed"],
                            binarize=meta["binarize"], callbacks=[save],
                            progress=not args.no_progress and sys.stderr.isatty(),
                            history=history, train_state=state, train_permutation=permutation)
    except KeyboardInterrupt:
        return 130
    except train.TrainingDivergedError as err:
        kept = f"; the last good checkpoint is {checkpoint_path}" if checkpoint_path.exists() else ""
        raise UsageError(f"numvae: error: {err}{kept}") from None
    result = evaluate.evaluate_elbo(model, test_data.images)
    metrics = dict(dataset=used, test_negative_elbo=result["loss"],
                   test_negative_elbo_se=result["loss_se"],
                   test_reconstruction=result["reconstruction"], test_kl=result["kl"],
                   kl_per_dim=result["kl_per_dim"].tolist(), epochs=meta["epochs"])
    atomic_write_bytes(folder / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    print(f"test -ELBO {result['loss']:.2f} +- {result['loss_se']:.2f} nats per example "
          f"(reconstruction {result['reconstruction']:.2f}, KL {result['kl']:.2f})")
    if not args.no_plots:
        _save_figures(model, history, test_data, folder)
    print(f"wrote {folder}")
    return 0


# options that a resumed run may change; every other training option comes from the checkpoint
RESUME_KEEPS = ("command", "resume", "epochs", "out", "no_progress", "no_plots")


def _options_given(args, keep):
    """The options of ``numvae train`` that differ from their defaults, except ``keep``."""
    defaults = vars(build_parser().parse_args(["train"]))
    return [f"--{name.replace('_', '-')}" for name, value in vars(args).items()
            if name not in keep and value != defaults.get(name)]


def _write_history(folder, history):
    """history.json (everything) and history.csv (one row per epoch)."""
    atomic_write_bytes(folder / "history.json", (json.dumps(history) + "\n").encode())
    columns = [key for key, value in history.items()
               if isinstance(value, list) and key != "grad_norm_step"]
    lines = [",".join(columns)]
    for row in zip(*(history[key] for key in columns)):
        lines.append(",".join("" if value is None else repr(value) for value in row))
    atomic_write_bytes(folder / "history.csv", ("\n".join(lines) + "\n").encode())


def _save_figures(model, history, data, folder):
    from . import plots  # imported late: matplotlib is slow to import, --help should not wait
    paths = plots.save_all(model, history, data.images, data.labels, folder)
    print("figures: " + ", ".join(path.name for path in paths.values()))


# --- evaluate, sample, plot -----------------------------------------------------------

def _open(path):
    if not Path(path).exists():
        raise UsageError(f"numvae: error: checkpoint {path} does not exist")
    return load_checkpoint(path)


def _test_data(checkpoint, args):
    meta = checkpoint.train_state.get("meta") or {}
    name = args.dataset or meta.get("dataset", "auto")
    data_dir = args.data_dir or (meta.get("data_dir") if name == meta.get("dataset") else None)
    _, test_data, _ = _load_data(name, data_dir)
    if test_data.images.shape[1] != checkpoint.model.input_dim:
        raise UsageError(f"numvae: error: data set {name} has {test_data.images.shape[1]} "
                         f"values per image; the model expects {checkpoint.model.input_dim}")
    return test_data


def cmd_evaluate(args):
    checkpoint = _open(args.checkpoint)
    model, data = checkpoint.model, _test_data(checkpoint, args)
    images = data.images[: args.n] if args.n else data.images
    result = evaluate.evaluate_elbo(model, images)
    n_active, _ = evaluate.active_units(model, images)
    print(f"{len(images)} test images: -ELBO {result['loss']:.2f} +- {result['loss_se']:.2f} "
          f"nats (reconstruction {result['reconstruction']:.2f}, KL {result['kl']:.2f})")
    print("KL per latent dimension: " + " ".join(f"{v:.3f}" for v in result["kl_per_dim"])
          + f"  ({n_active} of {model.latent_dim} active units: variance of the encoder mean "
            f"over the data > 0.01)")
    if args.iwae_k:
        iwae = evaluate.iwae_log_likelihood(model, images, k=args.iwae_k)
        print(f"importance-weighted log p(x), K={args.iwae_k}: {iwae['log_px']:.2f} +- "
              f"{iwae['log_px_se']:.2f} nats (ELBO: {-result['loss']:.2f})")
    return 0


def cmd_sample(args):
    checkpoint = _open(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "samples.png"
    if out.suffix not in (".png", ".npy"):
        raise UsageError(f"numvae: error: --out must end in .png or .npy; got {out.name}", code=2)
    if not out.parent.is_dir():
        raise UsageError(f"numvae: error: cannot write {out}: folder {out.parent} does not exist")
    rng = np.random.default_rng(args.seed)
    if out.suffix == ".npy":
        samples = checkpoint.model.sample(args.n, rng)
        with atomic_write(out) as file:
            np.save(file, samples)
    else:
        from . import plots
        plots.prior_samples(checkpoint.model, n=args.n, rng=rng, path=out)
    print(f"wrote {args.n} samples to {out}")
    return 0


def cmd_plot(args):
    checkpoint = _open(args.checkpoint)
    folder = _make_out_dir(args.out or Path(args.checkpoint).parent)
    _save_figures(checkpoint.model, checkpoint.history, _test_data(checkpoint, args), folder)
    return 0


def cmd_inspect(args):
    from . import inspect as inspect_module
    return inspect_module.run_cli(args)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample,
            "plot": cmd_plot, "inspect": cmd_inspect}


if __name__ == "__main__":
    sys.exit(main())
