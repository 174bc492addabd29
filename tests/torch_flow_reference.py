"""The flow posterior and the importance-weighted bound in PyTorch, written from the
formulas (docs/derivations.md, sections 13 and 14), not from numvae's code.

PyTorch has no standard MADE, so this module fixes the names that ``numvae.interop``
writes for ``posterior="iaf"``: ``posterior.steps.<t>.made`` (an nn.Sequential of
``MaskedLinear`` and Tanh; its first layer without bias), ``posterior.steps.<t>.context``
(nn.Linear), and the encoder's third head ``encoder.context``. The masks are buffers that
the state dict does not hold (they follow from the configuration). Import it only after
``pytest.importorskip("torch")``.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class MaskedLinear(nn.Linear):
    """y = x (W * M)^T + b with a fixed 0/1 mask M of the weight's shape (out, in)."""

    def __init__(self, mask, bias=True):
        super().__init__(mask.shape[1], mask.shape[0], bias=bias)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


def masks(order, hidden):
    """Germain et al.'s masks, in torch's (out, in) layout: hidden unit k has degree
    1 + k mod (D - 1); a unit sees degrees <= its own; output i sees degrees < order[i]."""
    d = len(order)
    degrees = [torch.tensor(order)]
    degrees += [1 + torch.arange(width) % max(d - 1, 1) for width in hidden]
    result = [(after[:, None] >= before[None, :]).double()
              for before, after in zip(degrees[:-1], degrees[1:])]
    out = torch.tensor(list(order) * 2)
    result.append((out[:, None] > degrees[-1][None, :]).double())
    return result


class Step(nn.Module):
    def __init__(self, latent_dim, hidden, reverse):
        super().__init__()
        order = list(range(latent_dim, 0, -1)) if reverse else list(range(1, latent_dim + 1))
        mask = masks(order, hidden)
        layers = [MaskedLinear(mask[0], bias=False)]
        for m in mask[1:]:
            layers += [nn.Tanh(), MaskedLinear(m)]
        self.made = nn.Sequential(*layers)
        self.context = nn.Linear(hidden[0], hidden[0])

    def forward(self, z, h):
        """z_t = sigma z + (1 - sigma) m and sum_i log sigma_i (IF3)."""
        a = self.made[0](z) + self.context(h)
        for layer in self.made[1:]:
            a = layer(a)
        m, s = a.chunk(2, dim=1)
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m, F.logsigmoid(s).sum(1)


def mlp(widths):
    layers = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(n_in, n_out), nn.Tanh()]
    return layers


class FlowVAE(nn.Module):
    """Tanh MLPs, the IAF posterior, a Bernoulli decoder; ``loss`` is the negative ELBO
    (Monte Carlo KL) or the negative importance-weighted bound."""

    def __init__(self, input_dim, shared_dim, latent_dim, encoder_hidden, decoder_hidden,
                 flow_steps, flow_hidden):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.compressor = nn.Sequential(*mlp([input_dim, *encoder_hidden, shared_dim]))
        self.encoder.mean = nn.Linear(shared_dim, latent_dim)
        self.encoder.log_var = nn.Linear(shared_dim, latent_dim)
        self.encoder.context = nn.Linear(shared_dim, flow_hidden[0])
        self.posterior = nn.Module()
        self.posterior.steps = nn.ModuleList(Step(latent_dim, flow_hidden, t % 2 == 1)
                                             for t in range(flow_steps))
        widths = [latent_dim, *decoder_hidden]
        self.decoder = nn.Module()
        self.decoder.decompressor = nn.Sequential(*mlp(widths), nn.Linear(widths[-1], input_dim),
                                                  nn.Sigmoid())

    def log_weights(self, x, eps):
        """log p(x|z_k) + log p(z_k) - log q(z_k|x): (K, batch)."""
        shared = self.encoder.compressor(x)
        mean, log_var = self.encoder.mean(shared), self.encoder.log_var(shared)
        k, batch, d = eps.shape
        z = (mean + torch.exp(0.5 * log_var) * eps).reshape(-1, d)
        log_q = (-0.5 * eps ** 2 - 0.5 * log_var - 0.5 * math.log(2 * math.pi)).sum(-1).reshape(-1)
        h = self.encoder.context(shared).repeat(k, 1)
        for step in self.posterior.steps:
            z, log_det = step(z, h)
            log_q = log_q - log_det
        logits = self.decoder.decompressor[:-1](z)
        log_px = -F.binary_cross_entropy_with_logits(logits, x.repeat(k, 1), reduction="none").sum(1)
        log_pz = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(1)
        return (log_px + log_pz - log_q).reshape(k, batch)

    def loss(self, x, eps, objective):
        log_w = self.log_weights(x, eps)
        if objective == "iwae":
            return -(torch.logsumexp(log_w, 0) - math.log(eps.shape[0])).mean()
        return -log_w.mean()
