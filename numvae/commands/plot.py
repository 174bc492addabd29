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
    p = commands.add_parser("plot", help="make the figures again from a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--out", help="folder for the PNGs (default: the checkpoint's folder)")
    add_data_options(p)
    return p


def run(args):
    checkpoint = open_checkpoint(args.checkpoint, args.max_memory)
    folder = make_out_dir(args.out, Path(args.checkpoint).parent)
    save_figures(checkpoint.model, checkpoint.history, test_data(checkpoint, args), folder)
    return 0
