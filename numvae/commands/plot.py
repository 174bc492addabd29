"""``numvae plot``: make the figures of a run again from its checkpoint."""
from pathlib import Path

from numvae.commands.common import (
    add_data_options,
    make_out_dir,
    open_checkpoint,
    save_figures,
    test_data,
)


def add_parser(commands):
    p = commands.add_parser("plot", help="make the figures again from a checkpoint",
                            description="Make the figures of a training run again from its "
                            "checkpoint: the history, reconstructions, samples, the latent "
                            "space and the KL per dimension, on the test images of the data "
                            "set it was trained on.")
    p.add_argument("checkpoint", help="a checkpoint written by numvae train or import")
    p.add_argument("--out", help="folder for the PNGs (default: the checkpoint's folder)")
    add_data_options(p)
    return p


def run(args):
    checkpoint = open_checkpoint(args.checkpoint, args.max_memory)
    folder = make_out_dir(args.out, Path(args.checkpoint).parent)
    save_figures(checkpoint.model, checkpoint.history, test_data(checkpoint, args), folder)
    return 0
