"""Exercise 03: the reparameterisation trick and its gradient.

Read docs/derivations.md, section 3, (R1), and section 4, (V3).

* (R1) z = mean + exp(0.5 * log_var) * eps: log_var is log sigma^2, so the standard
  deviation sigma is exp(0.5 * log_var).
* (V3) Given dz = dL/dz, return dL/dmean and dL/dlog_var (z depends on mean and log_var
  entry by entry).

All arrays have shape (batch, latent_dim). Classic mistakes the grader names:
exp(log_var) used as the standard deviation (std vs variance, in the forward or the
backward), a missing 1/2.
"""
import numpy as np


def reparameterise(mean, log_var, eps):
    """z = mean + exp(0.5 log_var) * eps (R1). mean, log_var, eps: (batch, latent_dim) -> z."""
    raise NotImplementedError("write reparameterise")


def reparameterise_backward(dz, mean, log_var, eps):
    """(V3) dz: (batch, latent_dim) -> (dmean, dlog_var), each (batch, latent_dim)."""
    raise NotImplementedError("write reparameterise_backward")
