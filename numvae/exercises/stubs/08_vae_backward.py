"""Exercise 08: the VAE's loss and the gradient of every parameter, by hand.

Read docs/derivations.md, sections 1 and 4, (V1)-(V6). With the forward pass of exercise 06:

* (V1) loss = mean over the batch of [bernoulli_nll(logits, x) + KL(mean, log_var)], the mean
  negative ELBO with one sample of z per example (exercises 04 and 05);
* (V2)-(V6) backward: from the logits through the decoder to z, through the
  reparameterisation to mean and log_var, add the KL's gradient there (the fork), then
  through the two heads (their gradients add at the shared layer) and the compressor.

x: (batch, input_dim) in [0, 1]; eps: (batch, latent_dim); params as in exercise 06.
Return (loss, grads): loss a float, grads a dict with the same names and shapes as params.
The grader compares with central differences of your own loss and with numvae's gradient.
Classic mistakes it names: a sum over the batch where the mean is meant, std vs variance,
the missing -1 or 1/2 in the KL, a sign, the KL's gradient with the wrong sign, the fork's
two gradients assigned instead of added, a head dropped at the shared layer, the
reparameterisation's 1/2, ReLU masks taken from dy. Otherwise it names the first wrong
gradient in the order of the backward pass.
"""
import numpy as np


def vae_loss_and_grad(x, params, eps):
    """-> (loss, grads): the mean negative ELBO (float) and {name: dloss/dparam}."""
    raise NotImplementedError("write vae_loss_and_grad")
