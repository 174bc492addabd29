"""numvae: a variational auto-encoder in NumPy, every gradient derived by hand.

    >>> import numvae
    >>> model = numvae.VAE(784, shared_dim=128, latent_dim=2, seed=0)
"""
from .layers import Dense, ReLU, Sequential, Sigmoid, Tanh
from .optim import SGD, Adam
from .optim_fast import FastAdam
from .vae import VAE

__version__ = "0.2.0"
__all__ = ["VAE", "Adam", "FastAdam", "SGD", "Dense", "ReLU", "Sigmoid", "Tanh", "Sequential"]
