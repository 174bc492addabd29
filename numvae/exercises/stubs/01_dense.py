"""Exercise 01: a Dense layer, and the backward passes of ReLU and sigmoid.

Read docs/derivations.md, section 8 "Layers", equations (D1)-(D4). Then fill in the four
functions below and grade them with ``numvae exercise check 01_dense.py``.

* (D1) y = x @ W + b, with x of shape (batch, in), W of shape (in, out), b of shape (out,).
* (D2) dx = dy @ W^T, dW = x^T @ dy, db = the sum over the batch of dy. Each ``d<name>`` is
  the gradient of the loss with respect to ``<name>`` and has exactly the shape of ``<name>``.
* (D3) ReLU y = max(x, 0): dx = dy where x > 0, 0 elsewhere (x is the ReLU's input).
* (D4) sigmoid y = 1 / (1 + exp(-x)): dx = dy * y * (1 - y) (y is the sigmoid's output).

The grader uses random float64 arrays of several shapes, with non-square W, and checks
dense_backward against central differences of your own dense_forward as well as against
numvae's gradient. Classic mistakes it names: a sign, dW transposed, db not summed over the
batch (or averaged), a ReLU mask taken from dy, the sigmoid applied again to its output.
"""
import numpy as np


def dense_forward(x, W, b):
    """y = x @ W + b (D1). x: (batch, in), W: (in, out), b: (out,) -> y: (batch, out)."""
    raise NotImplementedError("write dense_forward")


def dense_backward(dy, x, W):
    """Gradients of the Dense layer (D2). dy: (batch, out), x: (batch, in), W: (in, out)
    -> (dx, dW, db) of shapes (batch, in), (in, out), (out,)."""
    raise NotImplementedError("write dense_backward")


def relu_backward(dy, x):
    """ReLU backward (D3). dy, x: (batch, n), x the ReLU's input -> dx: (batch, n)."""
    raise NotImplementedError("write relu_backward")


def sigmoid_backward(dy, y):
    """Sigmoid backward (D4). dy, y: (batch, n), y the sigmoid's output -> dx: (batch, n)."""
    raise NotImplementedError("write sigmoid_backward")
