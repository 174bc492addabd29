"""``numvae inspect``: trace one training step, forward then backward, row by row."""
import sys

import numpy as np

from numvae.commands.common import (
    UsageError,
    add_preparation_options,
    int_in,
    prepare_test_images,
    seed_option,
)
from numvae.diagnostics.inspect import trace_step
from numvae.io import datasets
from numvae.model.architectures import ARCHITECTURES
from numvae.model.priors import PRIORS
from numvae.model.two_layer import TwoLayerVAE
from numvae.model.vae import VAE
from numvae.training.checkpoint import load_checkpoint


def add_parser(commands):
    p = commands.add_parser("inspect", help="trace one training step, forward and backward",
                            description="Trace one training step of CHECKPOINT's model (or "
                            "of a fresh one) on a few test images: every quantity of the "
                            "forward pass and every gradient of the backward pass, one row "
                            "each, with its shape, formula and a summary of its values.")
    p.add_argument("checkpoint", nargs="?",
                   help="a checkpoint (default: a fresh slides' VAE on the embedded subset)")
    p.add_argument("--batch-size", type=int_in(1, 1000), default=4, help="images in the step")
    p.add_argument("--check", action="store_true",
                   help="add finite-difference checks of each gradient, parameters and "
                        "intermediate quantities (float64; the two-layer model: parameters)")
    p.add_argument("--show", metavar="NAME", help="print the full array of one quantity")
    p.add_argument("--seed", type=seed_option, default=0,
                   help="seeds the fresh model's weights and the step's draws")
    add_preparation_options(p.add_argument_group("data"))
    fresh = p.add_argument_group("a fresh model (without CHECKPOINT)")
    fresh.add_argument("--architecture", choices=sorted(ARCHITECTURES), default="mlp",
                       help="conv: rows for each convolution's forward and backward step")
    fresh.add_argument("--prior", choices=sorted(PRIORS), default="standard_normal",
                       help="p(z): standard_normal or mixture")
    fresh.add_argument("--conditional", action="store_true",
                       help="a conditional VAE: rows for the one-hot labels")
    return p


def _model_and_batch(args):
    checkpoint = None
    if args.checkpoint:
        checkpoint = load_checkpoint(args.checkpoint, max_memory=args.max_memory)
        model, source = checkpoint.model, args.checkpoint
    else:
        model = VAE(784, 128, 2, architecture=args.architecture, prior=args.prior,
                    n_classes=10 if args.conditional else None, seed=args.seed,
                    max_memory=args.max_memory)
        source = f"a freshly initialised slides' VAE (seed {args.seed})"
        if (args.architecture, args.prior, args.conditional) != ("mlp", "standard_normal", False):
            source = (f"a freshly initialised VAE ({args.architecture}, {args.prior} prior"
                      f"{', conditional' if args.conditional else ''}; seed {args.seed})")
    if model.input_dim == 784:
        data = datasets.load_mnist_mini()[1]
    else:
        data = datasets.make_toy(args.batch_size, side=int(np.sqrt(model.input_dim)),
                                 seed=args.seed)
        if data.images.shape[1] != model.input_dim:
            raise UsageError(f"numvae: error: no built-in data of width {model.input_dim} to inspect")
    x = data.images[: args.batch_size]
    if checkpoint is not None:  # prepared as in training (binarised, say), and said so
        x = prepare_test_images(checkpoint, x, args, print)
    return model, source, x, data.labels[: args.batch_size]


def run(args):
    model, source, x, labels = _model_and_batch(args)
    model.rng = np.random.default_rng(args.seed)
    n_entries = None if model.n_params() < 5000 else 20
    trace = trace_step(model, x, y=labels if model.n_classes else None, check=args.check,
                       n_entries=n_entries)
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
        if isinstance(trace.model, TwoLayerVAE):  # its intermediate rows carry no fd error
            what = ("each parameter gradient (perturbing the parameter; the two-layer model's "
                    "intermediate gradients are not checked)")
        else:
            what = ("each gradient (a parameter's: perturbing the parameter; an intermediate's: "
                    "perturbing that quantity and re-running the rest of the step)")
        print(f"fd error: max relative error of central differences (h = 1e-5, float64) over "
              f"{scope} of {what}; below 1e-6 is agreement.")
    return 0
