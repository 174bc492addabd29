"""Exercise 01: a Dense layer, and the backward passes of Dense, ReLU and sigmoid.

Write the four functions below, then grade them with ``numvae exercise check 01_dense.py``.
The backward passes are yours to derive: below are the shapes, the conventions and the
equation to start from, not the result. docs/derivations.md, section 8 "Layers", derives
(D1)-(D4): read it after trying, or when stuck.

* (D1) y = x @ W + b, with x of shape (batch, in), W of shape (in, out), b of shape (out,):
  y[n, j] = sum_i x[n, i] W[i, j] + b[j].
* (D2) Given dy = dL/dy, of shape (batch, out), return dx, dW, db. Convention: each
  ``d<name>`` is the gradient of the loss L with respect to ``<name>`` and has exactly the
  shape of ``<name>``. Start from the chain rule on one entry, dL/dW[i, j] = sum_n sum_k
  dL/dy[n, k] dy[n, k]/dW[i, j], work out dy[n, k]/dW[i, j] from (D1), then write the sums
  as matrix products (no Python loops). The same for x and for b (b is added to every row).
* (D3) ReLU y = max(x, 0), applied entry by entry; x is the ReLU's input. Start from
  dy_i/dx_i on either side of 0 (at exactly 0, take 0).
* (D4) sigmoid y = 1 / (1 + exp(-x)), entry by entry. The function receives the sigmoid's
  OUTPUT y, not x: differentiate, then write dy/dx with y alone.

The grader uses random float64 arrays of several shapes, with non-square W, and checks
dense_backward against central differences of your own dense_forward as well as against
numvae's gradient. It names the classic mistakes when it sees them.
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
