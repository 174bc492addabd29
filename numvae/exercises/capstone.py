"""The capstone's payoff: a longer run of the student's own training loop, and the slides'
two figures drawn from the model it trained.

    >>> from numvae.exercises.capstone import draw_figures      # doctest: +SKIP
    >>> draw_figures(train_my_vae, epochs=5, out="capstone_figures")

The student's ``train_my_vae(x, params, order, eps, lr)`` (exercise 12) trains the slides'
VAE on mnist-mini from numvae's initial weights; the trained parameters are then put into a
numvae VAE of the same shape only so that numvae's plots can draw "Representation of the
latent space for MNIST" (the test images' encoder means) and "Sampling the latent space for
MNIST" (the decoder's outputs on a grid). Runs in the calling process: it is the student's
own run, not a grade.
"""
from pathlib import Path

import numpy as np

from numvae.exercises.specs import capstone_inputs
from numvae.io.datasets import load_mnist_mini
from numvae.model.vae import VAE


def train_longer(train_my_vae, epochs, batch_size=128, lr=1e-3, seed=12):
    """Run the student's loop for ``epochs`` passes over mnist-mini's 10,000 training images
    (the last partial batch dropped). Returns (the numvae VAE holding the trained
    parameters, the losses)."""
    steps = epochs * (10_000 // batch_size)
    params = capstone_inputs(1, batch_size, seed)[1]  # numvae's initial weights
    images = load_mnist_mini()[0].images.astype(np.float64)
    rng = np.random.default_rng(seed)
    per_epoch = len(images) // batch_size
    order = np.concatenate([rng.permutation(len(images))[: per_epoch * batch_size]
                            .reshape(per_epoch, batch_size) for _ in range(epochs)])
    eps = rng.standard_normal((steps, batch_size, 2))
    losses = train_my_vae(images, params, order, eps, lr)
    model = VAE(784, 128, 2, dtype=np.float64, seed=seed)
    for name, value in model.params.items():
        value[...] = params[name]  # the student's trained weights, numvae's names
    return model, [float(loss) for loss in losses]


def draw_figures(train_my_vae, epochs=5, out="capstone_figures"):
    """Train with the student's loop for ``epochs`` epochs, then save the slides' two
    figures into ``out`` (latent_space.png, latent_grid.png). Returns their paths."""
    from numvae import plots  # late: matplotlib is slow to import
    model, losses = train_longer(train_my_vae, epochs)
    if not np.all(np.isfinite(losses)):
        raise FloatingPointError("your training diverged (a loss is not finite): no figure")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    test = load_mnist_mini()[1]
    paths = {"latent_space": folder / "latent_space.png", "latent_grid": folder / "latent_grid.png"}
    plots.latent_space(model, test.images, test.labels, path=paths["latent_space"])
    plots.latent_grid(model, path=paths["latent_grid"])
    print(f"your loss: {losses[0]:.1f} at the first step, {np.mean(losses[-50:]):.1f} over the "
          f"last 50 (of {len(losses)}); figures: {paths['latent_space']}, {paths['latent_grid']}")
    return paths
