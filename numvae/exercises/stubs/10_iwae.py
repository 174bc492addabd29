"""Exercise 10: the importance-weighted bound, by log-sum-exp.

Read docs/derivations.md, section 11, (I2). Given log importance weights log w_k for
k = 1..K, per example,

    L_K = log (1/K) sum_k exp(log_weights[:, k]).

Log-weights of a VAE are large negative numbers (-10,000 is possible): exp underflows to 0
and log(0) = -inf. Subtract the largest log-weight of each row before exp and add it back
after the log (the log-sum-exp trick).

log_weights: (batch, K) -> (batch,). Classic mistakes the grader names: a log-sum-exp that
overflows or underflows, a maximum taken over the whole batch instead of each row's, the
maximum not added back, the missing 1/K (a sum where the mean is meant).
"""
import numpy as np


def iwae_bound(log_weights):
    """(I2) log_weights: (batch, K) -> (batch,)."""
    raise NotImplementedError("write iwae_bound")
