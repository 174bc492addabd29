"""Exercise 06: the slides' whole VAE forward pass (their ``vae_gen``).

Encoder as in exercise 02; then (R1) z = mean + exp(0.5 log_var) * eps; then the decoder

    output = sigmoid(ReLU(ReLU(z @ W0 + b0) @ W2 + b2) @ W4 + b4)   # latent -> 32 -> 256 -> input

with parameters named "decoder.decompressor.0.W", ".0.b", ".2.W", ".2.b", ".4.W", ".4.b".
See docs/derivations.md, sections 3 (R1) and 8 (D1, D3, D4). ``params`` is a dict of float64
arrays (W: (in, out), b: (out,)); the grader uses small widths, so read the sizes from the
arrays. eps: (batch, latent_dim).

Return a dict with "mean", "log_var", "z" (each (batch, latent_dim)) and "output"
(batch, input_dim), the decoder's probabilities. Classic mistakes the grader names:
exp(log_var) used as the standard deviation, the logits returned instead of sigmoid(logits),
a ReLU of the decoder left out.
"""
import numpy as np


def vae_forward(x, params, eps):
    """x: (batch, input_dim), eps: (batch, latent_dim) -> dict mean, log_var, z, output."""
    raise NotImplementedError("write vae_forward")
