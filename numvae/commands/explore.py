"""``numvae explore``: one self-contained HTML page to see a model in a browser (the latent
plane, Encode, one training step), written by ``numvae.explorer``."""
from pathlib import Path

import numpy as np

from numvae.commands.common import UsageError, open_checkpoint, output_file, seed_option
from numvae.io import datasets


def add_parser(commands):
    p = commands.add_parser(
        "explore", help="write an HTML page to explore a model in a browser",
        description="Write one self-contained HTML page (no network) showing the model's "
                    "latent plane decoded live, the Encode panel and one training step, "
                    "forward and backward, with its gradients checked in the page.")
    p.add_argument("checkpoint", nargs="?",
                   help="a checkpoint (default: the slides' model shipped with numvae, "
                        "trained on full MNIST)")
    p.add_argument("--out", help="the .html file to write (default: explorer.html next to "
                   "the checkpoint, or numvae-explorer.html here); an existing file is "
                   "refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--data-dir", help="folder holding the MNIST IDX files: the scatter shows "
                   "its 10,000 test images (default: the 2,000 of the embedded subset)")
    p.add_argument("--seed", type=seed_option, default=0,
                   help="seed of the step panel's eps (default 0)")
    return p


def _test_set(model, data_dir, seed):
    """The test images (n, input_dim) and labels whose encoder means make the scatter."""
    if model.input_dim != 784:
        side = int(round(np.sqrt(model.input_dim)))
        if side * side != model.input_dim:
            raise UsageError(f"numvae: error: no built-in data of width {model.input_dim} to explore")
        data = datasets.make_toy(2000, side=side, seed=seed)
    elif data_dir:
        data = datasets.load_mnist(data_dir, download=False)[1]
    else:
        data = datasets.load_mnist_mini()[1]
    return data.images, data.labels


def run(args):
    from numvae.explorer.page import (
        write_explorer,  # late: the page's files are read on use
    )
    from numvae.explorer.shipped import load_shipped
    if args.checkpoint:
        model = open_checkpoint(args.checkpoint).model
        default = Path(args.checkpoint).parent / "explorer.html"
    else:
        model, default = load_shipped(), Path("numvae-explorer.html")
    out = output_file(args.out or default, ".html", args.overwrite)
    images, labels = _test_set(model, args.data_dir, args.seed)
    bundle = write_explorer(out, model, images, labels, seed=args.seed)
    for panel, reason in bundle["missing"].items():
        print(f"numvae explore: panel {panel!r} is not drawn: {reason}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): open it in a browser")
    return 0
