"""Exercise 05: the Bernoulli negative log-likelihood from logits, and its gradient.

Read docs/derivations.md, section 5, (B3) and (B4). With p = sigmoid(a):

* (B3) -log p(x|z) = sum_i [softplus(a_i) - x_i a_i], softplus(a) = log(1 + exp(a)),
  summed over the pixels i: one value per example. It must be finite for logits of
  +-1000: write softplus so that exp never overflows (max(a, 0) + log1p(exp(-|a|))).
* (B4) the gradient of the SUM over the batch with respect to the logits: sigmoid(a) - x.

logits, x: (batch, input_dim), x in [0, 1]. Classic mistakes the grader names: an
overflowing softplus, a sign, a mean where a sum is meant.
"""
import numpy as np


def bernoulli_nll(logits, x):
    """(B3) logits, x: (batch, input_dim) -> (batch,)."""
    raise NotImplementedError("write bernoulli_nll")


def bernoulli_nll_backward(logits, x):
    """(B4) -> dlogits: (batch, input_dim), for the loss sum_b bernoulli_nll_b."""
    raise NotImplementedError("write bernoulli_nll_backward")
