"""The encoder's distribution q_phi(z|x): one class per posterior, one registry.

A posterior names the encoder ``heads`` it needs and their widths (``head_widths``; each
a Dense layer on the shared features, named ``encoder.<head>`` like the slides' modules;
its own parameters, if any, in ``params``/``grads`` join the model's as
``posterior.<name>``) and has

* ``rsample(heads, eps)``: z drawn by reparameterisation, (S * batch, latent_dim), and
  a cache; ``rsample_backward(dz, cache)``: the gradient of each head from dL/dz;
* ``log_prob(cache)``: log q(z|x) of those draws, (S, batch), and its backward
  ``log_prob_backward(dlog_q, cache)`` (for Monte Carlo KLs and weighted bounds).

A new posterior is one class here plus one entry in ``POSTERIORS``: ``IAF``, the inverse
autoregressive flow (its pieces in ``numvae.nn.flows``), is one; it also has parameters of its
own and a third head, ``context``. ``expected_z(heads, rng)`` gives E_q[z|x] (for the
active units and the figures).

Like every part, a posterior holds its settings (``IAF(steps=2, hidden=(200,))``), which
``settings()`` returns as its constructor's keyword arguments, and ``build(latent_dim,
rng, dtype)`` makes it ready for a model, drawing any initial values from ``rng`` (the
model's generator); ``numvae.model.parts`` makes one from a name.
"""
import math

import numpy as np

from numvae.nn.flows import IAFStep
from numvae.nn.layers import Owned
from numvae.validation import check_positive_int, check_widths, safe_exp

LOG_2PI = math.log(2 * math.pi)


def reparameterise(mean, log_var, eps):
    """z = mean + exp(0.5 log_var) * eps (eq. R1), and std = exp(0.5 log_var).

    log_var is log sigma^2, so the standard deviation is exp(0.5 log_var). mean, log_var:
    (batch, latent_dim); eps: (S, batch, latent_dim) or (batch, latent_dim) -> z the shape
    of eps, std (batch, latent_dim).
    """
    std = safe_exp(0.5 * log_var, "0.5 * log_var")            # sigma = exp(log_var / 2)
    return mean + std * eps, std


class DiagonalGaussian:
    """q(z|x) = N(mean, diag(exp(log_var))): the slides' encoder with two heads."""
    name = "diagonal_gaussian"
    heads = ("mean", "log_var")
    # for the inspector: the quantities of rsample's cache, and each head's gradient from z
    formulas = {"std": "std = exp(0.5 log_var)  (R1)",
                "eps": "eps ~ N(0, I), shape (S, batch, latent_dim)",
                "z": "z = mean + std * eps  (R1)"}
    backward_formulas = {"mean": "sum_s dL/dz * 1  (V3)",
                         "log_var": "sum_s dL/dz * 0.5 exp(0.5 log_var) eps  (V3)"}

    flat_names = {}

    def settings(self):
        return {}

    def build(self, latent_dim, rng, dtype):
        return self

    def head_widths(self, latent_dim):
        """{head: width} of the encoder heads this posterior reads."""
        return {name: latent_dim for name in self.heads}

    def rsample(self, heads, eps):
        """z = mean + exp(0.5 log_var) * eps (eq. R1), one row per (sample, example).

        heads: {"mean", "log_var"} each (batch, latent_dim); eps: (S, batch, latent_dim).
        Returns z (S * batch, latent_dim) and the cache (mean, log_var, std, eps).
        """
        mean, log_var = heads["mean"], heads["log_var"]
        z, std = reparameterise(mean, log_var, eps)                 # (S, batch, latent_dim)
        z = z.reshape(-1, mean.shape[-1])                           # (S * batch, latent_dim)
        return z, dict(mean=mean, log_var=log_var, std=std, eps=eps)

    def rsample_backward(self, dz, cache):
        """dz (S * batch, latent_dim) -> {"mean": dmean, "log_var": dlog_var} (eq. V3).

        dz/dmean = 1 and dz/dlog_var = 0.5 exp(0.5 log_var) eps; each summed over the S samples.
        """
        eps = cache["eps"]
        dz_per_sample = dz.reshape(eps.shape)                       # (S, batch, latent_dim)
        return {"mean": dz_per_sample.sum(axis=0),
                "log_var": (dz_per_sample * (0.5 * cache["std"] * eps)).sum(axis=0)}

    def log_prob(self, cache):
        """log q(z|x) of the draws z = mean + std * eps (eq. I1): (S, batch).

        Since (z - mean) / std = eps: sum_j [-eps_j^2 / 2 - log_var_j / 2 - log(2 pi) / 2].
        """
        eps, log_var = cache["eps"], cache["log_var"]
        latent_dim = eps.shape[-1]
        return (-0.5 * np.sum(eps * eps, axis=-1) - 0.5 * np.sum(log_var, axis=-1)
                - 0.5 * latent_dim * LOG_2PI)

    def log_prob_backward(self, dlog_q, cache):
        """Gradient of L(log q(z|x)) with dL/dlog_q = ``dlog_q`` (S, batch) (eq. K4).

        log q is a function of z, mean and log_var; with u = (z - mean) / std = eps:
        d/dz = -u / std, d/dmean = u / std, d/dlog_var = (u^2 - 1) / 2 (each an explicit
        partial derivative, the others held fixed). Returns dz (S * batch, latent_dim) and
        {"mean", "log_var"} (batch, latent_dim), summed over the S samples.
        """
        eps, std = cache["eps"], cache["std"]
        weight = dlog_q[..., None]                                   # (S, batch, 1)
        dz_explicit = -weight * eps / std                            # (S, batch, latent_dim)
        heads = {"mean": -dz_explicit.sum(axis=0),
                 "log_var": (weight * 0.5 * (eps * eps - 1.0)).sum(axis=0)}
        return dz_explicit.reshape(-1, eps.shape[-1]), heads

    def expected_z(self, heads, rng=None):
        """E_q[z|x] = mean, exactly: (batch, latent_dim)."""
        return heads["mean"]


class PointMass:
    """q(z|x) = delta(z - mean): a deterministic encoder, one head. With the objective
    "reconstruction" (no KL term) the VAE is then the plain autoencoder of the slides'
    first section, (e*, d*) = argmin L(x, d(e(x))), trained with the same ``fit``.

    z does not depend on eps: the S rows of a sample are the same ``mean``. A point mass
    has no density, so ``log_prob`` (and any KL to a prior) does not exist.
    """
    name = "point"
    heads = ("mean",)
    has_density = False          # no log_prob: no KL, no importance-weighted bound
    formulas = {"z": "z = mean, for each of the S samples (eps unused)"}
    backward_formulas = {"mean": "sum_s dL/dz  (no noise: z = mean)"}

    flat_names = {}

    def settings(self):
        return {}

    def build(self, latent_dim, rng, dtype):
        return self

    def head_widths(self, latent_dim):
        return {"mean": latent_dim}

    def rsample(self, heads, eps):
        """z = mean, repeated for each of the S samples: (S * batch, latent_dim). eps
        (S, batch, latent_dim) only sets S; the cache keeps it, as every posterior's does."""
        mean = heads["mean"]
        z = np.tile(mean, (eps.shape[0], 1))                        # (S * batch, latent_dim)
        return z, dict(mean=mean, eps=eps)

    def rsample_backward(self, dz, cache):
        """dz (S * batch, latent_dim) -> {"mean": sum_s dz}: dz/dmean = 1 for every sample."""
        return {"mean": dz.reshape(cache["eps"].shape).sum(axis=0)}

    def expected_z(self, heads, rng=None):
        """E_q[z|x] = mean: the point itself, (batch, latent_dim)."""
        return heads["mean"]

    def log_prob(self, cache):
        raise ValueError("a point mass has no density, so no log q(z|x): no KL to the prior "
                         "and no importance-weighted bound; train a point-mass posterior with "
                         "objective=\"reconstruction\"")

    def log_prob_backward(self, dlog_q, cache):
        self.log_prob(cache)



class IAF:
    """q(z|x): the diagonal Gaussian followed by T inverse autoregressive steps (IF1-IF6).

    Settings: ``steps`` T and ``hidden``, the hidden widths of each step's MADE. Heads:
    ``mean``, ``log_var`` (latent_dim each) and ``context`` (hidden[0]). ``build`` makes
    the steps (``flow``, a list of ``numvae.nn.flows.IAFStep``), their initial weights drawn
    from the model's generator; parameters ``steps.<t>.made.<k>.W`` etc., joining the
    model's as ``posterior.steps...``. Their gradient comes along two paths, through z_T
    (``rsample_backward``) and through the log-determinants (``log_prob_backward``): both
    add into ``grads``, so they are set to zero before a backward pass (``VAE.backward``
    does), as PyTorch's ``zero_grad`` does.
    """
    name = "iaf"
    heads = ("mean", "log_var", "context")
    flat_names = {"flow_steps": "steps", "flow_hidden": "hidden"}
    formulas = {"std": "std = exp(0.5 log_var)  (R1)", "eps": "eps ~ N(0, I), (S, batch, latent_dim)",
                "z0": "z_0 = mean + std * eps  (R1)",
                "z": "z_t = sigma_t z_{t-1} + (1 - sigma_t) m_t, t = 1..T  (IF3)"}
    backward_formulas = {"mean": "sum_s dL/dz_0  (IF6)",
                         "log_var": "sum_s dL/dz_0 * 0.5 std eps  (IF6)",
                         "context": "sum_s sum_t dL/dh from each step  (IF5)"}

    def __init__(self, *, steps=1, hidden=(50,)):
        self.steps = check_positive_int(steps, "steps")
        self.hidden = check_widths(hidden, "hidden")
        if not self.hidden:
            raise ValueError("hidden must have at least one width; got ()")
        self.gaussian = DiagonalGaussian()
        self.flow, self.params, self.grads = [], {}, {}  # built for a latent width by build

    def settings(self):
        return {"steps": self.steps, "hidden": self.hidden}

    def build(self, latent_dim, rng, dtype):
        """The T steps for a latent space of ``latent_dim``, their weights drawn from ``rng``
        (the model's generator): returns self."""
        self.flow = [IAFStep(latent_dim, self.hidden[0], self.hidden, t % 2 == 1, rng, dtype)
                     for t in range(self.steps)]
        owners = {f"steps.{t}.{name}.{key}": (layer.params, key)
                  for t, step in enumerate(self.flow) for name, layer in step.layers.items()
                  for key in layer.params}
        self.params = Owned(owners)
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        return self

    def head_widths(self, latent_dim):
        return {"mean": latent_dim, "log_var": latent_dim, "context": self.hidden[0]}

    def rsample(self, heads, eps):
        """z_T (S * batch, latent_dim) from eps (S, batch, latent_dim), and the cache."""
        z, cache = self.gaussian.rsample(heads, eps)                       # z_0 (R1)
        h = np.tile(heads["context"], (eps.shape[0], 1))                   # row s * batch + b
        cache.update(context=heads["context"], z0=z, steps=[])
        log_det = np.zeros(len(z), z.dtype)
        for step in self.flow:
            z, step_cache = step.forward(z, h)
            log_det += step_cache["log_sigma"].sum(axis=1)
            cache["steps"].append(step_cache)
        cache["log_det"] = log_det.reshape(eps.shape[:2])                  # (S, batch)
        return z, cache

    def _backward(self, dz, dlog_det, cache):
        """Back through the steps to z_0, then to the heads (IF5, IF6); each layer's
        gradient is added into ``grads``."""
        dh = 0.0
        for t in range(self.steps - 1, -1, -1):
            step = self.flow[t]
            dz, dh_t = step.backward(dz, dlog_det, cache["steps"][t])
            dh = dh + dh_t                                 # every step reads the same h
            for name, layer in step.layers.items():
                for key, grad in layer.grads.items():
                    self.grads[f"steps.{t}.{name}.{key}"] += grad
        heads = self.gaussian.rsample_backward(dz, cache)
        heads["context"] = dh.reshape(*cache["eps"].shape[:2], -1).sum(axis=0)
        return heads

    def rsample_backward(self, dz, cache):
        """dL/dz_T (S * batch, latent_dim) -> {head: gradient}, and the flow's into ``grads``."""
        return self._backward(dz, None, cache)

    def log_prob(self, cache):
        """log q(z_T|x) = log N(z_0; mean, std^2) - sum_t sum_i log sigma_t,i (IF4): (S, batch)."""
        return self.gaussian.log_prob(cache) - cache["log_det"]

    def log_prob_backward(self, dlog_q, cache):
        """The gradient of L(log q) for dL/dlog_q = ``dlog_q`` (S, batch) (eq. IF6).

        log q is written as a function of eps and the heads (the noise held fixed), so its
        whole gradient goes to the heads and the flow's parameters, and dz is 0: the
        Gaussian part gives d/dmean = 0, d/dlog_var = -1/2 per dimension; the
        log-determinants, -dlog_q each, go back through the steps. Returns dz (zeros,
        (S * batch, latent_dim)) and {head: gradient}.
        """
        heads = self._backward(np.zeros_like(cache["z0"]), -dlog_q.reshape(-1), cache)
        heads["log_var"] = heads["log_var"] - 0.5 * dlog_q.sum(axis=0)[:, None]
        return np.zeros_like(cache["z0"]), heads

    def expected_z(self, heads, rng, n_samples=100):
        """E_q[z|x] estimated from ``n_samples`` draws: (batch, latent_dim)."""
        eps = rng.standard_normal((n_samples, *heads["mean"].shape)).astype(heads["mean"].dtype)
        z, _ = self.rsample(heads, eps)
        return z.reshape(eps.shape).mean(axis=0)


POSTERIORS = {part.name: part for part in (DiagonalGaussian, PointMass, IAF)}
