"""``numvae sample``: decode draws z ~ p(z) into images (a PNG picture or a .npy array)."""
from pathlib import Path

import numpy as np

from .._io import atomic_write
from .common import UsageError, nonnegative_int, open_checkpoint, positive_int


def add_parser(commands):
    p = commands.add_parser("sample", help="decode samples z ~ N(0, I) into images")
    p.add_argument("checkpoint")
    p.add_argument("--n", type=positive_int, default=64)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--label", type=nonnegative_int,
                   help="the digit a conditional model draws (default: every class in turn)")
    p.add_argument("--out", help="a .png picture or a .npy array (default: samples.png next "
                   "to the checkpoint)")
    return p


def run(args):
    checkpoint = open_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "samples.png"
    if out.suffix not in (".png", ".npy"):
        raise UsageError(f"numvae: error: --out must end in .png or .npy; got {out.name}", code=2)
    if not out.parent.is_dir():
        raise UsageError(f"numvae: error: cannot write {out}: folder {out.parent} does not exist")
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
        from .. import plots
        plots.prior_samples(model, n=args.n, rng=rng, label=args.label, path=out)
    print(f"wrote {args.n} samples to {out}")
    return 0
