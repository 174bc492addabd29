"""numvae's VAE as PyTorch modules, written from the formulas of docs/derivations.md in
torch's own operations: PyTorch's autograd then differentiates them, a second opinion on
numvae's hand-written backward passes. Built and filled by ``numvae.interop.to_torch``;
this module imports torch, so nothing in numvae imports it but ``to_torch``, when called.

The modules hold the slides' names, which are the names ``numvae export`` writes:

    encoder.compressor    nn.Sequential (Linear and activations; the conv architecture's
                          Unflatten, Conv2d, Flatten)
    encoder.mean, encoder.log_var (and encoder.context for the flow): nn.Linear heads
    posterior.steps.<t>.made, .context     the flow's steps (MaskedLinear, Tanh)
    decoder.decompressor  nn.Sequential ending in nn.Sigmoid
    prior.logits, prior.means, prior.log_var    the Gaussian mixture prior's parameters
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)


class MaskedLinear(nn.Linear):
    """y = x (W * M)^T + b with a fixed 0/1 mask M of the weight's shape (out, in) (eq. IF1).
    The mask is a buffer the state dict does not hold: it follows from the configuration."""

    def __init__(self, mask, bias=True):
        super().__init__(mask.shape[1], mask.shape[0], bias=bias)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class IAFStep(nn.Module):
    """z_t = sigma * z_{t-1} + (1 - sigma) * m, [m, s] = MADE(z_{t-1}) + context(h) in its
    first layer, sigma = sigmoid(s) (eqs. IF2, IF3)."""

    def __init__(self, made_layers, context):
        super().__init__()
        self.made = nn.Sequential(*made_layers)
        self.context = context

    def forward(self, z, h):
        """z (rows, D), h (rows, context width) -> z_t (rows, D), sum_i log sigma_i (rows,)."""
        a = self.made[0](z) + self.context(h)
        for layer in self.made[1:]:
            a = layer(a)
        m, s = a.chunk(2, dim=1)
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m, F.logsigmoid(s).sum(1)


class GaussianMixturePrior(nn.Module):
    """p(z) = sum_k softmax(logits)_k N(z; means_k, diag(exp(log_var_k))) (eq. GM1)."""

    def __init__(self, n_components, latent_dim):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.means = nn.Parameter(torch.zeros(n_components, latent_dim))
        self.log_var = nn.Parameter(torch.zeros(n_components, latent_dim))

    def log_prob(self, z):
        """z (rows, M) -> log p(z) (rows,), by torch's logsumexp."""
        diff = z[:, None, :] - self.means                                  # (rows, K, M)
        log_normal = -0.5 * ((diff ** 2 / torch.exp(self.log_var)).sum(-1)
                             + self.log_var.sum(-1) + z.shape[1] * LOG_2PI)
        return torch.logsumexp(torch.log_softmax(self.logits, 0) + log_normal, dim=1)


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I): no parameters."""

    def log_prob(self, z):
        return (-0.5 * z ** 2 - 0.5 * LOG_2PI).sum(1)


def bernoulli_nll(x, logits, sigma):
    """-log p(x|z) = sum_d BCE(sigmoid(a_d), x_d), from the logits a: (rows,)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)


def gaussian_nll(x, logits, sigma):
    """-log N(x; sigmoid(a), sigma^2 I) = |x - sigmoid(a)|^2 / (2 sigma^2) + D/2 log(2 pi sigma^2)."""
    variance = sigma ** 2
    return (((x - torch.sigmoid(logits)) ** 2).sum(1) / (2 * variance)
            + x.shape[1] / 2 * math.log(2 * math.pi * variance))


NEGATIVE_LOG_LIKELIHOODS = {"bernoulli": bernoulli_nll, "gaussian": gaussian_nll}


class VAE(nn.Module):
    """The VAE; ``forward(x, eps, y=None)`` is numvae's training loss for the same x and eps:
    the mean over the batch of the objective (the negative ELBO with its KL weight, the
    negative importance-weighted bound, or the reconstruction term alone)."""

    def __init__(self, encoder, decoder, prior, settings, posterior_steps=None):
        super().__init__()
        self.encoder, self.decoder, self.prior = encoder, decoder, prior
        if posterior_steps is not None:
            self.posterior = nn.Module()
            self.posterior.steps = nn.ModuleList(posterior_steps)
        self.settings = dict(settings)  # likelihood, sigma, objective, kl_weight, posterior, ...

    def forward(self, x, eps, y=None):
        """x (batch, input_dim); eps (batch, latent_dim) or (S, batch, latent_dim); y (batch,)
        the labels of a conditional model -> the loss, a scalar."""
        n_classes = self.settings["n_classes"]
        onehot = F.one_hot(y, n_classes).to(x.dtype) if n_classes else x[:, :0]
        shared = self.encoder.compressor(torch.cat([x, onehot], 1))
        mean = self.encoder.mean(shared)
        log_var = self.encoder.log_var(shared) if hasattr(self.encoder, "log_var") else None
        eps = eps if eps.dim() == 3 else eps.unsqueeze(0)                  # (S, batch, M)
        n_samples, batch, latent_dim = eps.shape
        z, log_q = self.sample(shared, mean, log_var, eps)                 # (S * batch, M)
        z_in = torch.cat([z, onehot.repeat(n_samples, 1)], 1)
        logits = self.decoder.decompressor[:-1](z_in)                       # before the Sigmoid
        nll = NEGATIVE_LOG_LIKELIHOODS[self.settings["likelihood"]](
            x.repeat(n_samples, 1), logits, self.settings["sigma"]).reshape(n_samples, batch)
        objective = self.settings["objective"]
        if objective == "reconstruction":
            return nll.mean()
        log_p = self.prior.log_prob(z).reshape(n_samples, batch)
        if objective == "iwae":                                             # eqs. I1, IW1
            log_w = -nll + log_p - log_q
            return -(torch.logsumexp(log_w, 0) - math.log(n_samples)).mean()
        if self.settings["analytic_kl"]:                                    # eq. K1
            kl = 0.5 * (mean ** 2 + torch.exp(log_var) - 1 - log_var).sum(1)
        else:                                                               # Monte Carlo KL
            kl = (log_q - log_p).mean(0)
        return (nll.mean(0) + self.settings["kl_weight"] * kl).mean()

    def sample(self, shared, mean, log_var, eps):
        """z = mean + exp(0.5 log_var) eps (R1), then the flow's steps (IF3), and log q(z|x)
        (IF4): z (S * batch, M), log_q (S, batch). A point mass: z = mean, no log q."""
        n_samples, batch, latent_dim = eps.shape
        if log_var is None:                                                 # a point mass
            return mean.repeat(n_samples, 1), None
        z = (mean + torch.exp(0.5 * log_var) * eps).reshape(-1, latent_dim)
        log_q = (-0.5 * eps ** 2 - 0.5 * log_var - 0.5 * LOG_2PI).sum(-1).reshape(-1)
        if hasattr(self, "posterior"):
            h = self.encoder.context(shared).repeat(n_samples, 1)
            for step in self.posterior.steps:
                z, log_det = step(z, h)
                log_q = log_q - log_det
        return z, log_q.reshape(n_samples, batch)
