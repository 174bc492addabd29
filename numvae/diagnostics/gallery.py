"""A gallery of bugs that real VAE code shipped, each as a small part or function that
plugs into numvae's VAE, beside the property check that catches it
(``numvae.diagnostics.properties``). For teaching: tutorials/23_bug_gallery.py trains each
beside the correct model on the same seeds; tests/test_gallery.py shows that each fails
its check and that the correct model passes every check.

    model = with_bug(VAE(784, 128, 2, seed=0), "std_is_variance")

``BUGS`` lists, per bug: what it is, the source that shipped or reported it, and the check
that catches it. A bug part keeps the name of the part it replaces (the mean-over-pixels
likelihood still calls itself "bernoulli"), as the buggy code did: the checks must find it
from what it computes.
"""
import numpy as np

from numvae.model.kl import GaussianKL
from numvae.model.likelihoods import Bernoulli, bernoulli_nll
from numvae.model.objectives import ELBO
from numvae.model.posteriors import DiagonalGaussian
from numvae.validation import safe_exp


class StdIsVariance(DiagonalGaussian):
    """The bug: z = mean + exp(log_var) * eps, the variance used as the standard deviation,
    while the KL (K1) reads exp(log_var) as the variance (numpy-ml's VAE). Its backward is
    right for its forward: dz/dlog_var = exp(log_var) eps."""

    def rsample(self, heads, eps):
        mean, log_var = heads["mean"], heads["log_var"]
        std = safe_exp(log_var, "log_var")                           # the bug: not 0.5 * log_var
        z = (mean + std * eps).reshape(-1, mean.shape[-1])
        return z, dict(mean=mean, log_var=log_var, std=std, eps=eps)

    def rsample_backward(self, dz, cache):
        eps = cache["eps"]
        dz_per_sample = dz.reshape(eps.shape)
        return {"mean": dz_per_sample.sum(axis=0),
                "log_var": (dz_per_sample * cache["std"] * eps).sum(axis=0)}


class ClosedFormELBO(ELBO):
    """The ELBO with the closed-form KL (K1) whatever the posterior's class: what code with
    the std bug computes (its KL never sees the sampler)."""

    def forward(self, nll, z, posterior_cache, posterior, prior, kl_weight):
        kl_part = GaussianKL()
        kl, kl_cache = kl_part.forward(z, posterior_cache, posterior, prior)
        reconstruction = nll.mean(axis=0)
        loss = float(np.mean(reconstruction + kl_weight * kl))
        return (dict(reconstruction=reconstruction, kl=kl, loss=loss),
                dict(kl_part=kl_part, kl_cache=kl_cache, shape=nll.shape, kl_weight=kl_weight))


class MeanOverPixels(Bernoulli):
    """The bug: -log p(x|z) averaged over the N pixels instead of summed (a framework's
    default reduction="mean"): the reconstruction shrinks N times, so the KL weighs N times
    more, as beta = N would."""

    def nll(self, logits, x, output=None):
        return bernoulli_nll(logits, x) / logits.shape[-1]

    def nll_backward(self, dnll, logits, x, output):
        return super().nll_backward(np.asarray(dnll) / logits.shape[-1], logits, x, output)


class NegatedKL(ELBO):
    """The bug: the KL with its sign flipped, 0.5 sum(1 + log_var - mean^2 - exp(log_var))
    added where its negative belongs: the loss rewards moving away from the prior."""

    def forward(self, nll, z, posterior_cache, posterior, prior, kl_weight):
        terms, cache = super().forward(nll, z, posterior_cache, posterior, prior, -kl_weight)
        terms["kl"] = -terms["kl"]          # the term as the buggy code reports it: negative
        return terms, cache


class BetaIgnored(ELBO):
    """The bug: beta is a setting (``kl_weight``) that the loss never reads: every beta
    trains the plain ELBO."""

    def forward(self, nll, z, posterior_cache, posterior, prior, kl_weight):
        return super().forward(nll, z, posterior_cache, posterior, prior, 1.0)


def unspanning_grid(n):
    """The bug: a figure's latent grid on linspace(-1, 1), the prior's 16% to 84% quantiles
    only: the figure shows the middle of the latent space as if it were all of it."""
    return np.linspace(-1.0, 1.0, n)


def reconstruction_as_log_px(model, images, seed=0):
    """The bug: minus the mean reconstruction term, reported as log p(x). It exceeds the
    ELBO by the whole KL, and log p(x) by the KL minus the gap."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((1, len(images), model.latent_dim)).astype(model.dtype)
    return -float(np.mean(model.forward(images, eps, kl_weight=1.0)["reconstruction"]))


def with_bug(model, bug):
    """``model`` with the part of ``bug`` (a key of ``BUGS`` whose bug is a part) put in
    place of the correct one. Returns the model (changed in place)."""
    settings = dict(kl_weight=model.objective.kl_weight, n_samples=model.n_samples)
    parts = {"std_is_variance": [("posterior", StdIsVariance()),
                                 ("objective", ClosedFormELBO(**settings))],
             "mean_over_pixels": [("likelihood", MeanOverPixels())],
             "negated_kl": [("objective", NegatedKL(**settings))],
             "beta_ignored": [("objective", BetaIgnored(**settings))]}
    if bug not in parts:
        raise ValueError(f"bug must be one of {', '.join(repr(k) for k in parts)} (the others "
                         f"are in the data or a function, not a part); got {bug!r}")
    for kind, part in parts[bug]:
        setattr(model, kind, part)
    return model


BUGS = {
    "std_is_variance": dict(
        what="exp(log_var) used as the standard deviation in the sampler",
        source="numpy-ml's VAE (noise * exp(log_var) + mean, today); keras #3283; "
               "HIPS/autograd #453", check="posterior_variance"),
    "mean_over_pixels": dict(
        what="the reconstruction averaged over pixels where the likelihood sums them",
        source="pytorch/examples #234, #290 (fixed by PR #296); keras #6015; keras-io #270",
        check="loss_composition"),
    "negated_kl": dict(
        what="the KL's sign flipped",
        source="FluxML/model-zoo PR #147 (shipped and fixed); asked in pytorch/examples #824",
        check="kl_sign"),
    "beta_ignored": dict(
        what="beta written as a setting but never applied to the KL",
        source="beta-VAE questions: keras #9495, pytorch/examples PR #728",
        check="loss_composition"),
    "grey_bernoulli": dict(
        what="a Bernoulli likelihood on grey-level MNIST, its value read as a log-likelihood",
        source="pytorch/examples #460 (open); pyro #529, #1773", check="bernoulli_data"),
    "unspanning_grid": dict(
        what="a latent grid that does not span the prior", source="a figure's grid on "
        "linspace(-1, 1); Kingma & Welling (2014), fig. 4, map the grid through the inverse "
        "Gaussian CDF", check="grid_spans_prior"),
    "reconstruction_as_log_px": dict(
        what="the reconstruction term reported as log p(x)",
        source="tensorflow-generative-model-collections #13", check="reported_log_px"),
}
