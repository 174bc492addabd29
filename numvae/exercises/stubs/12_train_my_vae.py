"""Exercise 12, the capstone: train the slides' VAE with your own functions, draw its figures.

Your vae_loss_and_grad (exercise 08, built on 06) gives the mean negative ELBO of a batch
and every parameter's gradient, (V1)-(V6); your adam_step (exercise 09, (O2)) updates one array
in place. Put them together into the training loop, the slides' optimisation of the ELBO:

    for each step t = 1, 2, ...:
        batch = the examples order[t - 1] of x; eps = eps[t - 1]
        loss, grads = vae_loss_and_grad(batch, params, eps)
        one adam_step per parameter, with its own m and v (zeros at the start) and this t

Paste your two functions below (or import them), then write train_my_vae. The grader hands
it the slides' VAE's initial weights (784 -> 256 -> 128 -> 2 and back, float64), the order
of the examples and the eps of every step, and compares your first 50 losses (batch 128)
with numvae's own training on the same inputs, to a relative 1e-9: one wrong step and every
loss after it differs. Then run this file (``python 12_train_my_vae.py``): a longer run of
your loop, and the slides' two figures from your model (numvae draws them; the parameters
are yours).
"""
import numpy as np


def vae_loss_and_grad(x, params, eps):
    """Exercise 08: -> (loss, grads). Paste yours here."""
    raise NotImplementedError("paste your vae_loss_and_grad of exercise 08")


def adam_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """Exercise 09: one Adam step in place. Paste yours here."""
    raise NotImplementedError("paste your adam_step of exercise 09")


def train_my_vae(x, params, order, eps, lr=1e-3):
    """Train ``params`` (a dict of float64 arrays, updated IN PLACE) on the images ``x``
    (n, 784): step t uses the batch x[order[t]] (order: (steps, batch_size) indices) and
    eps[t] (eps: (steps, batch_size, latent_dim)). Returns the list of the losses, one per
    step, each computed before that step's update."""
    raise NotImplementedError("write train_my_vae")


if __name__ == "__main__":
    from numvae.exercises.capstone import draw_figures
    draw_figures(train_my_vae, epochs=5, out="capstone_figures")
