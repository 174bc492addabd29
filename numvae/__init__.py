"""numvae: a variational auto-encoder in NumPy, every gradient derived by hand.

    >>> import numvae
    >>> model = numvae.VAE(784, shared_dim=128, latent_dim=2, seed=0)

The names below and the subpackages (``numvae.model``, ``numvae.nn``, ...) are imported on first
use (PEP 562's module ``__getattr__``): ``import numvae`` alone imports nothing
heavy, so that the ``numvae`` command can catch Ctrl-C from its very start.
"""
import importlib
import importlib.util

from numvae import moved

moved.install()  # numvae 0.2's module paths (numvae.losses, ...) import with a warning

__version__ = "0.3.0"
__all__ = ["VAE", "Adam", "FastAdam", "SGD", "Dense", "ReLU", "Sigmoid", "Tanh", "Sequential",
           "set_threads"]
_HOME = {"VAE": "model.vae", "Adam": "training.optim", "FastAdam": "training.optim_fast",
         "SGD": "training.optim", "Dense": "nn.layers", "ReLU": "nn.layers",
         "Sigmoid": "nn.layers", "Tanh": "nn.layers", "Sequential": "nn.layers",
         "set_threads": "nn.threads"}  # its module


def __getattr__(name):
    """``numvae.VAE`` and the others, or a submodule, imported when first asked for."""
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    # dunder names (asked for by tools such as doctest) are never modules: skip the search
    if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
