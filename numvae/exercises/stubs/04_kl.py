"""Exercise 04: the KL divergence KL(N(mean, diag(exp(log_var))) || N(0, I)) and its gradient.

Read docs/derivations.md, section 2, (K1) and (K2).

* (K1) KL = 0.5 * sum_j (mean_j^2 + exp(log_var_j) - 1 - log_var_j), one value per example.
* (K2) the gradient of the SUM over the batch of the KL, with respect to mean and log_var.

mean, log_var: (batch, latent_dim). Classic mistakes the grader names: the missing -1, a
missing 1/2, exp(0.5 log_var) where the variance exp(log_var) is meant, a sign, a mean
where a sum is meant.
"""
import numpy as np


def kl_divergence(mean, log_var):
    """(K1) mean, log_var: (batch, latent_dim) -> KL: (batch,)."""
    raise NotImplementedError("write kl_divergence")


def kl_divergence_backward(mean, log_var):
    """(K2) -> (dmean, dlog_var), each (batch, latent_dim), for the loss sum_b KL_b."""
    raise NotImplementedError("write kl_divergence_backward")
