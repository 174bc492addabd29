"""The slides' VAE as a PyTorch module, written from the formulas (not from numvae's code).

It fixes the names and layouts that ``numvae.interop`` writes: ``encoder.compressor``
(nn.Sequential of Linear and ReLU), the heads ``encoder.mean`` and ``encoder.log_var``,
``decoder.decompressor`` (nn.Sequential of Linear and ReLU ending in Linear and Sigmoid).
torch autograd then gives a second, independent oracle for numvae's hand-written gradients.
Import it only after ``pytest.importorskip("torch")``.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def mlp(widths):
    """Linear-ReLU pairs through ``widths``, as a flat list (nn.Sequential numbering)."""
    layers = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return layers


class Encoder(nn.Module):
    def __init__(self, input_dim, shared_dim, latent_dim, hidden):
        super().__init__()
        self.compressor = nn.Sequential(*mlp([input_dim, *hidden, shared_dim]))
        self.mean = nn.Linear(shared_dim, latent_dim)
        self.log_var = nn.Linear(shared_dim, latent_dim)

    def forward(self, x):
        """x (batch, input_dim) -> mean, log_var (batch, latent_dim)."""
        shared = self.compressor(x)
        return self.mean(shared), self.log_var(shared)


class Decoder(nn.Module):
    def __init__(self, latent_dim, input_dim, hidden):
        super().__init__()
        widths = [latent_dim, *hidden]
        self.decompressor = nn.Sequential(*mlp(widths), nn.Linear(widths[-1], input_dim),
                                          nn.Sigmoid())

    def logits(self, z):
        """z (rows, latent_dim) -> the last Linear's output a (rows, input_dim), before the Sigmoid."""
        return self.decompressor[:-1](z)

    def forward(self, z):
        return self.decompressor(z)


def conv_compressor(side, shared_dim, channels=(32, 64)):
    """numvae's "conv" encoder: Unflatten, Conv2d(1, 32, 4, 2, 1), ReLU, Conv2d(32, 64, ...),
    ReLU, Flatten, Linear(64 (side/4)^2, shared_dim), ReLU: the same indices as numvae's."""
    c1, c2 = channels
    return nn.Sequential(nn.Unflatten(1, (1, side, side)), nn.Conv2d(1, c1, 4, 2, 1), nn.ReLU(),
                         nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(c2 * (side // 4) ** 2, shared_dim), nn.ReLU())


def conv_decompressor(side, latent_dim, channels=(32, 64)):
    """The mirror image, ending in Flatten and Sigmoid."""
    c1, c2 = channels
    return nn.Sequential(nn.Linear(latent_dim, c2 * (side // 4) ** 2), nn.ReLU(),
                         nn.Unflatten(1, (c2, side // 4, side // 4)),
                         nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),
                         nn.ConvTranspose2d(c1, 1, 4, 2, 1), nn.Flatten(), nn.Sigmoid())


class GaussianMixturePrior(nn.Module):
    """p(z) = sum_k softmax(logits)_k N(z; means_k, diag(exp(log_var_k))): the parameter
    names ``logits`` (K,), ``means`` (K, M), ``log_var`` (K, M) are the ones numvae.interop
    writes for ``prior="mixture"``."""

    def __init__(self, n_components, latent_dim):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.means = nn.Parameter(torch.zeros(n_components, latent_dim))
        self.log_var = nn.Parameter(torch.zeros(n_components, latent_dim))

    def log_prob(self, z):
        """z (rows, M) -> log p(z) (rows,), by torch's logsumexp."""
        diff = z[:, None, :] - self.means                              # (rows, K, M)
        log_normal = -0.5 * ((diff ** 2 / torch.exp(self.log_var)).sum(-1)
                             + self.log_var.sum(-1) + z.shape[1] * math.log(2 * math.pi))
        return torch.logsumexp(torch.log_softmax(self.logits, 0) + log_normal, dim=1)


class VAE(nn.Module):
    """Encoder, reparameterisation z = mean + exp(0.5 log_var) eps, decoder; ``loss`` is
    the mean over the batch of (1/S) sum_s -log p(x|z_s) + kl_weight * KL."""

    def __init__(self, input_dim, shared_dim, latent_dim, encoder_hidden=(256,),
                 decoder_hidden=(32, 256), likelihood="bernoulli", sigma=1.0, kl_weight=1.0,
                 prior="standard_normal", prior_components=10, architecture="mlp",
                 n_classes=None):
        super().__init__()
        self.n_classes = n_classes or 0   # a conditional VAE reads [x, onehot(y)], [z, onehot(y)]
        self.encoder = Encoder(input_dim + self.n_classes, shared_dim, latent_dim, encoder_hidden)
        self.decoder = Decoder(latent_dim + self.n_classes, input_dim, decoder_hidden)
        if architecture == "conv":
            side = math.isqrt(input_dim)
            self.encoder.compressor = conv_compressor(side, shared_dim)
            self.decoder.decompressor = conv_decompressor(side, latent_dim)
        if prior == "mixture":
            self.prior = GaussianMixturePrior(prior_components, latent_dim)
        self.likelihood, self.sigma, self.kl_weight = likelihood, sigma, kl_weight

    def loss(self, x, eps, y=None):
        """x (batch, input_dim); eps (batch, latent_dim) or (S, batch, latent_dim); y (batch,)
        the labels of a conditional model -> scalar."""
        onehot = F.one_hot(y, self.n_classes).to(x.dtype) if self.n_classes else x[:, :0]
        mean, log_var = self.encoder(torch.cat([x, onehot], 1))
        eps = eps if eps.dim() == 3 else eps.unsqueeze(0)          # (S, batch, latent_dim)
        n_samples, batch, latent_dim = eps.shape
        z = mean + torch.exp(0.5 * log_var) * eps                  # (S, batch, latent_dim)
        z_in = torch.cat([z.reshape(-1, latent_dim), onehot.repeat(n_samples, 1)], 1)
        logits = self.decoder.logits(z_in)                         # (S * batch, input_dim)
        x_rows = x.repeat(n_samples, 1)
        if self.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(logits, x_rows, reduction="none").sum(1)
        else:
            variance = self.sigma ** 2
            nll = (((x_rows - torch.sigmoid(logits)) ** 2).sum(1) / (2 * variance)
                   + x.shape[1] / 2 * math.log(2 * math.pi * variance))
        reconstruction = nll.reshape(n_samples, batch).mean(0)
        if hasattr(self, "prior"):  # no closed form: the Monte Carlo KL over the S draws
            log_q = (-0.5 * eps ** 2 - 0.5 * log_var - 0.5 * math.log(2 * math.pi)).sum(-1)
            log_p = self.prior.log_prob(z.reshape(-1, latent_dim)).reshape(n_samples, batch)
            kl = (log_q - log_p).mean(0)
        else:
            kl = 0.5 * (mean ** 2 + torch.exp(log_var) - 1 - log_var).sum(1)
        return (reconstruction + self.kl_weight * kl).mean()


def from_config(config):
    """The module for a numvae configuration (a dict like ``model.config``)."""
    keys = ("input_dim", "shared_dim", "latent_dim", "encoder_hidden", "decoder_hidden",
            "likelihood", "sigma", "kl_weight", "prior", "prior_components", "architecture",
            "n_classes")
    return VAE(**{key: config[key] for key in keys if key in config})
