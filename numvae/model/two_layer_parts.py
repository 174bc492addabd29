"""The pieces of the two-stochastic-layer VAE (``numvae.model.two_layer``): a network that
gives a diagonal Gaussian's mean and log-variance, the density of such a Gaussian at a
point it did not draw, and the two objectives written over the five log-densities of
eq. H1. Symbols: zeta for z1, xi for z2 (docs/derivations.md, section 18).
"""
import numpy as np

from numvae.nn.layers import ACTIVATIONS, Dense, Sequential
from numvae.validation import safe_exp

INITS = ("pytorch", "glorot")  # how TwoLayerVAE draws its first parameters


class GaussianNet:
    """The mean and log-variance of a diagonal Gaussian from its condition (eq. H1):
    Dense-activation layers through ``hidden``, then two heads Dense(hidden[-1], width),
    ``mean`` and ``log_var`` (log sigma^2, as everywhere in numvae).

    in_dim: width of the condition (x, zeta or xi); hidden: tuple of widths (at least one).
    """

    def __init__(self, in_dim, hidden, width, activation, rng, dtype):
        layers = []
        for n_in, n_out in zip((in_dim, *hidden[:-1]), hidden):
            layers += [Dense(n_in, n_out, rng=rng, dtype=dtype), ACTIVATIONS[activation]()]
        self.body = Sequential(*layers)
        self.heads = {name: Dense(hidden[-1], width, rng=rng, dtype=dtype)
                      for name in ("mean", "log_var")}

    def forward(self, a):
        """a: (rows, in_dim) -> {"mean", "log_var"} each (rows, width), and the cache."""
        h, body_cache = self.body.forward(a)
        heads = {name: head.forward(h)[0] for name, head in self.heads.items()}
        return heads, dict(body=body_cache, h=h)

    def backward(self, dheads, cache, need_input_grad=True):
        """{"mean", "log_var"} gradients -> dL/da (None without ``need_input_grad``) and
        the body's steps. The two heads read the same h: their gradients add there (D2)."""
        dh = (self.heads["mean"].backward(dheads["mean"], cache["h"])
              + self.heads["log_var"].backward(dheads["log_var"], cache["h"]))
        steps = self.body.backward_steps(dh, cache["body"], need_input_grad)
        return steps[0], dict(h=dh, body=steps)

    def layers_with_parameters(self, prefix):
        """(name, layer) pairs: ``<prefix>.body.<i>``, ``<prefix>.mean``, ``<prefix>.log_var``."""
        for index, layer in enumerate(self.body.layers):
            if layer.params:
                yield f"{prefix}.body.{index}", layer
        for name, head in self.heads.items():
            yield f"{prefix}.{name}", head


def glorot_uniform(layers, rng):
    """Burda et al.'s initialisation (their published code, after Glorot & Bengio 2010 for
    tanh): every W ~ U(-a, a) with a = sqrt(6 / (n_in + n_out)), every b = 0, in place.

    Why not PyTorch's default, U(-1/sqrt(n_in), 1/sqrt(n_in)) for W and b: its weights have a
    third of the variance that keeps a tanh layer's output at the scale of its input, so the
    signal from zeta fades through the two layers to x and through the two to xi, and the
    ELBO's KL switches units off before they carry it (docs/burda.md, "Why the two-layer rows
    started behind"). layers: (name, Dense) pairs; rng: a numpy Generator.
    """
    for _, layer in layers:
        n_in, n_out = layer.params["W"].shape
        bound = np.sqrt(6.0 / (n_in + n_out))
        layer.params["W"][...] = rng.uniform(-bound, bound, (n_in, n_out))
        layer.params["b"][...] = 0.0


def mean_image_logits(pixel_means, input_dim):
    """logit(clip(p, 0.001, 0.999)) of the training images' mean p (input_dim,): the output
    bias with which every zeta decodes, at the start, to the mean image (Burda et al.'s code).
    One clear line for a mean of the wrong shape, not finite, or outside [0, 1]."""
    p = np.asarray(pixel_means, dtype=np.float64)
    if p.shape != (input_dim,) or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError(f"pixel_means must be the {input_dim} training pixel means, each "
                         f"in [0, 1]; got shape {p.shape}"
                         + (f", values from {p.min()} to {p.max()}" if p.size else ""))
    p = np.clip(p, 1e-3, 1 - 1e-3)
    return np.log(p) - np.log1p(-p)


def density_cache(point, heads):
    """What ``DiagonalGaussian.log_prob`` and ``log_prob_backward`` read, for a point that
    the Gaussian did not draw (zeta under the prior p(zeta|xi), eq. H4): the standardised
    point e = (point - mean) / std, laid out as one draw of rows examples.

    point, heads["mean"], heads["log_var"]: (rows, width) -> a cache of (1, rows, width)
    arrays ``eps`` (e), ``std``, ``log_var``, ``mean``.
    """
    log_var = heads["log_var"]
    inverse_std = safe_exp(-0.5 * log_var, "-0.5 * log_var")   # multiply: no division by 0
    e = (point - heads["mean"]) * inverse_std
    return dict(eps=e[None], std=(1.0 / inverse_std)[None], log_var=log_var[None],
                mean=heads["mean"][None])


def elbo_weights(log_densities, analytic_kl, kl_weight):
    """The negative ELBO with S draws (eq. H2) and dL/d(each term) (the numbers of eq. H2).

    log_densities: {"nll", "log_q_z1", "log_p_z1"} each (S, batch); analytic_kl: (S, batch),
    KL(q(xi|zeta_s) || p(xi)) of each draw (K1). Returns the terms (``reconstruction``,
    ``kl``, ``kl_z1``, ``kl_z2`` (batch,), ``loss``) and the weights {term: (S, batch)}.
    """
    n_samples, batch = log_densities["nll"].shape
    kl_z1 = (log_densities["log_q_z1"] - log_densities["log_p_z1"]).mean(axis=0)  # K3
    kl_z2 = analytic_kl.mean(axis=0)
    reconstruction = log_densities["nll"].mean(axis=0)
    loss = float(np.mean(reconstruction + kl_weight * (kl_z1 + kl_z2)))
    one = np.full((n_samples, batch), 1.0 / (n_samples * batch), dtype=analytic_kl.dtype)
    weights = dict(nll=one, log_q_z1=kl_weight * one, log_p_z1=-kl_weight * one,
                   kl_z2=kl_weight * one, log_q_z2=None, log_p_z2=None)
    terms = dict(reconstruction=reconstruction, kl=kl_z1 + kl_z2, kl_z1=kl_z1, kl_z2=kl_z2,
                 loss=loss)
    return terms, weights


def iwae_weights(log_densities, analytic_kl):
    """The negative importance-weighted bound with K draws (eq. H3) and dL/d(each term).

    log w = -nll + log p(zeta|xi) + log p(xi) - log q(zeta|x) - log q(xi|zeta) (eq. H1);
    dL/dlog w_k = -w~_k / B (IW2), sent to each term with its sign. log_densities: the five
    terms, each (K, batch). The terms report the bound and, for the history, the ELBO's
    reconstruction and KL of the same draws (as ``elbo_weights`` computes them).
    """
    d = log_densities
    log_w = -d["nll"] + d["log_p_z1"] + d["log_p_z2"] - d["log_q_z1"] - d["log_q_z2"]
    top = log_w.max(axis=0)                                       # log-sum-exp: subtract the max
    log_sum = top + np.log(np.exp(log_w - top).sum(axis=0))
    normalised = np.exp(log_w - log_sum)                          # w~_k, sums to 1 over k
    bound = log_sum - np.log(log_w.shape[0])
    weight = normalised / log_w.shape[1]                          # w~ / B
    weights = dict(nll=weight, log_q_z1=weight, log_p_z1=-weight, log_q_z2=weight,
                   log_p_z2=-weight, kl_z2=None)
    terms, _ = elbo_weights(d, analytic_kl, 1.0)
    terms.update(bound=bound, loss=float(-np.mean(bound)))
    return terms, weights
