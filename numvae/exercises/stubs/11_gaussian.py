"""Exercise 11: the Gaussian negative log-likelihood and its gradient.

Read docs/derivations.md, section 6, (G1) and (G2). For a decoder whose output is the mean
of N(prediction, sigma^2 I), per example,

* (G1) -log p(x|z) = sum_i (x_i - prediction_i)^2 / (2 sigma^2) + (N / 2) log(2 pi sigma^2),
  N the number of pixels (keep the constant: it makes the value a log-density in nats);
* (G2) the gradient of the SUM over the batch with respect to the prediction.

sigma is the standard deviation (a positive number), so sigma^2 is the variance.
prediction, x: (batch, input_dim). Classic mistakes the grader names: the constant left
out or with log(2 pi sigma), sigma where sigma^2 is meant (std vs variance), the
gradient without its 1/sigma^2, a missing 1/2, a sign, a mean where a sum is meant.
"""
import numpy as np


def gaussian_nll(prediction, x, sigma=1.0):
    """(G1) prediction, x: (batch, input_dim) -> (batch,)."""
    raise NotImplementedError("write gaussian_nll")


def gaussian_nll_backward(prediction, x, sigma=1.0):
    """(G2) -> dprediction: (batch, input_dim), for the loss sum_b gaussian_nll_b."""
    raise NotImplementedError("write gaussian_nll_backward")
