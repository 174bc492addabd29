"""The VAE and its parts, each a small class with the same few methods:

* ``vae``: the model (``VAE``), composed of the networks and the parts below;
* ``networks``: its encoder and decoder;
* ``parts``: the one place where a name becomes a part object (``build_parts``);
* ``likelihoods``: p(x|z) (Bernoulli, Gaussian) with their formulas (eqs. B1-B4, G1-G2);
* ``posteriors``: q(z|x) (diagonal Gaussian, point mass, IAF) and the reparameterisation;
* ``priors``: p(z) (standard normal, Gaussian mixture);
* ``kl``: the KL term, its value and its gradient (eqs. K1-K4);
* ``objectives``: what training minimises (ELBO, IWAE, reconstruction; the slides' loss);
* ``architectures``: the encoder's and decoder's networks (dense, convolutional);
* ``labels``: class labels of a conditional model.
"""
