"""Exercise 09: one step of Adam (Kingma & Ba 2015, Algorithm 1), in place.

Read docs/derivations.md, section 9, (O2). With g the gradient and t the step number
(t = 1 at the first step):

    m <- beta1 m + (1 - beta1) g             v <- beta2 v + (1 - beta2) g^2
    m_hat = m / (1 - beta1^t)                v_hat = v / (1 - beta2^t)
    param <- param - lr m_hat / (sqrt(v_hat) + eps)

Update ``param``, ``m`` and ``v`` IN PLACE (``param -= ...``, ``m[...] = ...``): the caller
keeps its arrays, so rebinding the names inside the function changes nothing for it.
Return nothing. param, grad, m, v: arrays of one shape. Classic mistakes the grader names:
a missing bias correction, t + 1 in the corrections, m_hat = m divided in place (an
alias), eps inside the square root, a sign, an update that is not in place. Kingma & Ba's
"efficient" form passes, with a note.
"""
import numpy as np


def adam_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """(O2) one update of param, m, v in place; returns None."""
    raise NotImplementedError("write adam_step")
