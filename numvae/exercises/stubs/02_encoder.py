"""Exercise 02: the slides' encoder q(z|x) = N(mean, diag(exp(log_var))).

The slides' encoder (docs/derivations.md, section 8 "Layers", (D1) and (D3)):

    shared  = ReLU(ReLU(x @ W0 + b0) @ W2 + b2)       # the compressor: input -> 256 -> shared
    mean    = shared @ Wm + bm                          # two linear heads, no activation
    log_var = shared @ Wv + bv

``params`` is a dict of float64 arrays named as in numvae: "encoder.compressor.0.W",
"encoder.compressor.0.b", "encoder.compressor.2.W", "encoder.compressor.2.b",
"encoder.mean.W", "encoder.mean.b", "encoder.log_var.W", "encoder.log_var.b"
(W of shape (in, out), b of shape (out,)). It may hold the decoder's parameters too:
ignore them. The grader uses small widths: read the sizes from the arrays, never write
256 or 2 in your code.

Classic mistakes the grader names: an activation after the heads, a ReLU of the
compressor left out, the two heads swapped.
"""
import numpy as np


def encoder_forward(x, params):
    """x: (batch, input_dim) -> (mean, log_var), each (batch, latent_dim)."""
    raise NotImplementedError("write encoder_forward")
