"""Exercise 05: the Bernoulli negative log-likelihood from logits, and its gradient.

Read docs/derivations.md, section 5, (B3); derive (B4) yourself (the section derives it
too: read it after trying). With p = sigmoid(a), a the decoder's logits:

* (B3) -log p(x|z) = sum_i [softplus(a_i) - x_i a_i], softplus(a) = log(1 + exp(a)),
  summed over the pixels i: one value per example. It must be finite for logits of
  +-1000: write softplus so that exp never overflows (max(a, 0) + log1p(exp(-|a|))).
* (B4) the gradient of the SUM over the batch of (B3) with respect to the logits, of the
  shape of the logits. Start from d/da of softplus(a) - x a for one pixel: the derivative
  of log(1 + exp(a)) is a function you have met in exercise 01.

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
