"""Exercise 07: the slides' ``loss_fn``, exactly as written there (docs/derivations.md, (S1)).

    loss_fn = function(prediction, target, mean, log_var, kl_weight) {
      reconstruction = nnf_mse_loss(prediction, target, reduction = "sum")
      kl_div = mean$square() + log_var$exp() - log_var
      reconstruction + kl_weight * kl_div$sum()
    }

That is: sum (prediction - target)^2 + kl_weight * sum(mean^2 + exp(log_var) - log_var),
summed over everything, returned as a Python float. Note: the slides' KL has no -1 and no
1/2 (derivations.md, section 7, says what that changes).

prediction, target: (batch, input_dim); mean, log_var: (batch, latent_dim). Classic mistakes
the grader names: the exact KL instead of the slides', std vs variance, a mean where a sum is
meant, kl_weight applied to the wrong term.
"""
import numpy as np


def loss_fn(prediction, target, mean, log_var, kl_weight=1.0):
    """(S1) -> a float."""
    raise NotImplementedError("write loss_fn")
