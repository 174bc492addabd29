"""numvae: a variational auto-encoder in NumPy, every gradient derived by hand.

    >>> import numvae
    >>> model = numvae.VAE(784, shared_dim=128, latent_dim=2, seed=0)

The names below, and the modules ``import numvae`` used to load, are imported on
first use (PEP 562's module ``__getattr__``): ``import numvae`` alone imports
nothing heavy, so that the ``numvae`` command can catch Ctrl-C from its start.
"""
import importlib

__version__ = "0.1.0"
__all__ = ["VAE", "Adam", "SGD", "Dense", "ReLU", "Sigmoid", "Tanh", "Sequential"]
_HOME = {"VAE": "vae", "Adam": "optim", "SGD": "optim", "Dense": "layers", "ReLU": "layers",
         "Sigmoid": "layers", "Tanh": "layers", "Sequential": "layers"}
_MODULES = ("layers", "losses", "optim", "validation", "vae")


def __getattr__(name):
    """``numvae.VAE`` and the others from their module, imported when first asked for."""
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    if name in _MODULES:  # a submodule becomes an attribute of its package once imported
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__, *_MODULES])
