"""``numvae sample``: decode draws z ~ p(z) into images (a PNG picture or a .npy array)."""
from pathlib import Path

import numpy as np

from numvae.commands.common import (
    UsageError,
    images_option,
    int_in,
    open_checkpoint,
    output_file,
    seed_option,
)
from numvae.io.files import atomic_write


def add_parser(commands):
    p = commands.add_parser("sample", help="decode samples z ~ p(z) into images",
                            description="Draw codes z from CHECKPOINT's prior p(z) (the "
                            "standard normal, or the learnt mixture) and decode them: a PNG "
                            "grid of images, or their pixel means as a .npy array.")
    p.add_argument("checkpoint", help="a checkpoint written by numvae train or import")
    p.add_argument("--n", type=images_option, default=64, help="images to draw")
    p.add_argument("--seed", type=seed_option, default=0, help="seeds the draws of z")
    p.add_argument("--label", type=int_in(0, 10_000),
                   help="the digit a conditional model draws (default: every class in turn)")
    p.add_argument("--out", help="a .png picture or a .npy array (default: samples.png next "
                   "to the checkpoint); an existing file is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p


def run(args):
    checkpoint = open_checkpoint(args.checkpoint, args.max_memory)
    out = output_file(args.out or Path(args.checkpoint).parent / "samples.png",
                      (".png", ".npy"), args.overwrite)
    rng = np.random.default_rng(args.seed)
    model = checkpoint.model
    if args.label is not None and not model.n_classes:
        raise UsageError("numvae: error: --label needs a conditional model (numvae train "
                         "--conditional); this one is not", code=2)
    if args.label is not None and args.label >= model.n_classes:
        raise UsageError(f"numvae: error: --label {args.label}: the model has classes 0 .. "
                         f"{model.n_classes - 1}", code=2)
    y = None if args.label is None else np.full(args.n, args.label)
    if out.suffix == ".npy":
        samples = model.sample(args.n, rng, y=y)
        with atomic_write(out) as file:
            np.save(file, samples)
    else:
        from numvae import plots
        plots.prior_samples(model, n=args.n, rng=rng, label=args.label, path=out)
    print(f"wrote {args.n} samples to {out}")
    return 0
