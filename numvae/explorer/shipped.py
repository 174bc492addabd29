"""The model ``numvae explore`` shows when given no checkpoint: the slides' VAE (latent 2,
shared 128) trained on full MNIST, shipped as ``numvae/data/explorer-slides-mnist.npz``,
a numvae checkpoint without optimiser state or history (parameters, configuration and
the generator's state only; see numvae/data/README.md for how it was made).
"""
from importlib import resources

from numvae.training.checkpoint import load_checkpoint, save_checkpoint

SHIPPED_NAME = "explorer-slides-mnist.npz"


def shipped_path():
    """The shipped model's file inside the installed package."""
    return resources.files("numvae").joinpath("data", SHIPPED_NAME)


def load_shipped():
    """The shipped slides' model (float32)."""
    with resources.as_file(shipped_path()) as path:
        return load_checkpoint(path).model


def parameters_only(checkpoint, out):
    """Write the model of ``checkpoint`` to ``out`` without its optimiser state and
    history: a checkpoint of about half the size that ``load_checkpoint`` reads as usual."""
    return save_checkpoint(out, load_checkpoint(checkpoint).model)
