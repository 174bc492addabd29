"""``numvae inspect``: trace one training step, forward then backward, row by row."""
import sys

import numpy as np

from .. import datasets
from ..checkpoint import load_checkpoint
from ..inspect import trace_step
from ..vae import VAE
from .common import UsageError, nonnegative_int, positive_int


def add_parser(commands):
    p = commands.add_parser("inspect", help="trace one training step, forward and backward")
    p.add_argument("checkpoint", nargs="?",
                   help="a checkpoint (default: a fresh slides' VAE on the embedded subset)")
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--check", action="store_true",
                   help="add finite-difference checks of each gradient, parameters and "
                        "intermediate quantities (float64)")
    p.add_argument("--show", metavar="NAME", help="print the full array of one quantity")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    return p


def _model_and_batch(args):
    if args.checkpoint:
        model, source = load_checkpoint(args.checkpoint).model, args.checkpoint
    else:
        model = VAE(784, 128, 2, seed=args.seed)
        source = "a freshly initialised slides' VAE (seed %d)" % args.seed
    if model.input_dim == 784:
        images = datasets.load_mnist_mini()[1].images
    else:
        images = datasets.make_toy(args.batch_size, side=int(np.sqrt(model.input_dim)),
                                   seed=args.seed).images
        if images.shape[1] != model.input_dim:
            raise UsageError(f"numvae: error: no built-in data of width {model.input_dim} to inspect")
    return model, source, images[: args.batch_size]


def run(args):
    model, source, x = _model_and_batch(args)
    model.rng = np.random.default_rng(args.seed)
    n_entries = None if model.n_params() < 5000 else 20
    trace = trace_step(model, x, check=args.check, n_entries=n_entries)
    if args.show:
        try:
            row = trace[args.show]
        except KeyError as err:
            raise UsageError(f"numvae: error: {err.args[0]}") from None
        print(f"{row.name}  {row.shape}  {row.formula}")
        with np.printoptions(threshold=sys.maxsize, linewidth=120, precision=5, suppress=True):
            print(row.value)
        return 0
    print(f"One training step of {source} on {len(x)} test images "
          f"({'float64' if args.check else trace.model.dtype.name}):")
    print(trace.table())
    if args.check:
        scope = "every entry" if n_entries is None else f"{n_entries} random entries"
        print(f"fd error: max relative error of central differences (h = 1e-5, float64) over "
              f"{scope} of each gradient (a parameter's: perturbing the parameter; an "
              f"intermediate's: perturbing that quantity and re-running the rest of the "
              f"step); below 1e-6 is agreement.")
    return 0
