"""Evaluation: the ELBO on a data set, KL per latent dimension, and the importance-weighted
estimate of log p(x) (Burda, Grosse & Salakhutdinov, 2016).

Evaluation always uses the negative ELBO (KL weight 1), whatever ``kl_weight`` the
model trains with; with one z per example, ``evaluate_elbo`` gives an unbiased estimate of
it, not its exact value. All values are in nats per example.
"""
import math

import numpy as np

from numvae.model import objectives
from numvae.model.kl import kl_part_of
from numvae.validation import NumericalError, check_positive_int

MAX_K = 1_000_000  # importance samples per example: 200 times the paper's 5000


def _batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _finite(values, quantity):
    """``values``, or a NumericalError naming ``quantity`` if any is NaN or infinite: no
    figure that is not finite is ever reported as a result."""
    if not np.isfinite(values).all():
        raise NumericalError(f"{quantity} is not finite ({np.sum(~np.isfinite(values))} of "
                             f"{np.size(values)} values); the model is diverged or damaged")
    return values


def _per_dimension_result(kl_part, values):
    """The KL per latent dimension, checked finite; a Monte Carlo KL has no such split and
    reports NaN for every dimension by design (``MonteCarloKL.per_dimension``): that NaN
    means "not defined", never a computed figure, and the callers print it so."""
    if not kl_part.has_per_dimension:
        return values
    return _finite(values, "the KL per latent dimension")


def _labels(model, labels, n):
    """The labels of a conditional model's images, checked once: (n,); None otherwise."""
    return model.check_labels(labels, n)


def noise_width(model):
    """The width of eps: ``latent_dim``, or a two-layer model's ``noise_dim`` (M1 + M2)."""
    return getattr(model, "noise_dim", model.latent_dim)


def _encode(model, x, y):
    """The posterior's parameters {head: (batch, width)} for x (batch, input_dim) with
    labels y (or None)."""
    return dict(zip(model.posterior.heads, model.encode(x, y)))


def evaluate_elbo(model, images, *, labels=None, batch_size=1000, seed=0):
    """Mean negative ELBO over ``images`` (n, input_dim), one z sample per example: an
    unbiased estimate (the reconstruction term is a one-sample Monte Carlo estimate; the KL
    is the model's KL part, analytic for the slides' model). ``labels`` (n,): a conditional
    model's labels; every function here takes them.

    Returns a dict: ``loss`` (mean negative ELBO), ``loss_se`` (its standard error over
    examples), ``reconstruction`` and ``kl`` (means of the two parts), ``kl_per_dim``
    ((latent_dim,) mean KL of each latent dimension; NaN where the KL is a Monte Carlo
    estimate, eq. K3, which has no split by dimension) and ``n``.
    """
    images = model.check_data(images, "images")
    batch_size = check_positive_int(batch_size, "batch_size")
    labels = _labels(model, labels, len(images))
    rng = np.random.default_rng(seed)
    reconstruction, kl, kl_per_dim = [], [], np.zeros(model.latent_dim)
    kl_part = kl_part_of(model)
    for rows in _batches(len(images), batch_size):
        x = images[rows]
        eps = rng.standard_normal((1, len(x), noise_width(model))).astype(model.dtype)
        c = model.forward(x, eps, y=None if labels is None else labels[rows], kl_weight=1.0)
        reconstruction.append(c["reconstruction"])
        kl.append(c["kl"])
        with np.errstate(over="ignore", invalid="ignore"):  # checked below, by name
            kl_per_dim += kl_part.per_dimension(c).sum(axis=0)
    reconstruction = _finite(np.concatenate(reconstruction).astype(np.float64),
                             "the reconstruction term")
    kl = _finite(np.concatenate(kl).astype(np.float64), "the KL term")
    negative_elbo = reconstruction + kl
    return dict(loss=float(negative_elbo.mean()),
                loss_se=float(negative_elbo.std(ddof=1) / math.sqrt(len(images)))
                if len(images) > 1 else float("nan"),
                reconstruction=float(reconstruction.mean()), kl=float(kl.mean()),
                kl_per_dim=_per_dimension_result(kl_part, kl_per_dim / len(images)),
                n=len(images))


def kl_per_dimension(model, images, *, labels=None, batch_size=1000):
    """Mean KL of each latent dimension over the data: (latent_dim,). Dimensions with KL
    near 0 are unused ("inactive"): the encoder sends them to the prior for every x.
    NaN for a posterior and prior with a Monte Carlo KL (a flow's): use ``active_units``.
    A two-layer model: its top layer's (K1 at q(z2|z1), one draw of z1 per image)."""
    if hasattr(model, "expected_latents"):
        return evaluate_elbo(model, images, batch_size=batch_size)["kl_per_dim"]
    images = model.check_data(images, "images")
    labels = _labels(model, labels, len(images))
    kl_part = kl_part_of(model)
    total = np.zeros(model.latent_dim)
    for rows in _batches(len(images), batch_size):
        with np.errstate(over="ignore", invalid="ignore"):  # checked below, by name
            heads = _encode(model, images[rows], None if labels is None else labels[rows])
            total += kl_part.per_dimension(heads).sum(axis=0)
    return _per_dimension_result(kl_part, total / len(images))


def active_units(model, images, *, labels=None, threshold=0.01, batch_size=1000, seed=0):
    """Burda et al.'s active units: dimensions u with Cov_x(E_q[z_u | x]) > threshold.

    It reads the posterior only, so it holds for any prior; with a Monte Carlo KL (a
    mixture prior, a flow), where ``kl_per_dimension`` is NaN, it is the measure of which
    dimensions are used. E_q[z|x] is the posterior's ``expected_z``: the ``mean`` head of a
    diagonal Gaussian, an average of draws (from a generator seeded by ``seed``) for a flow.
    Returns (number of active units, the variance of each dimension's mean: (latent_dim,)).
    """
    images = model.check_data(images, "images")
    labels = _labels(model, labels, len(images))
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore", invalid="ignore"):  # checked below, by name
        means = np.concatenate([
            model.expected_z(images[rows], None if labels is None else labels[rows], rng)
            for rows in _batches(len(images), batch_size)])
        variance = means.astype(np.float64).var(axis=0)
    variance = _finite(variance, "the variance of the encoder means")
    return int(np.sum(variance > threshold)), variance


def active_units_per_layer(model, images, *, threshold=0.01, batch_size=1000, seed=0):
    """Burda et al.'s active units of each stochastic layer of a two-layer model (eq. H8):
    zeta's u with Cov_x(E_q[zeta_u | x]) > threshold, and xi's with Cov_x(E_q[xi_u | x]) >
    threshold, E_q[xi|x] averaged over draws of zeta (``model.expected_latents``, from a
    generator seeded by ``seed``). Returns {"z1": (count, variances (M1,)), "z2": (count,
    variances (M2,))}."""
    images = model.check_data(images, "images")
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore", invalid="ignore"):  # checked below, by name
        layers = [model.expected_latents(images[rows], rng)
                  for rows in _batches(len(images), batch_size)]
    result = {}
    for index, name in enumerate(("z1", "z2")):
        variance = np.concatenate([means[index] for means in layers]).astype(np.float64).var(axis=0)
        variance = _finite(variance, f"the variance of the encoder means of {name}")
        result[name] = (int(np.sum(variance > threshold)), variance)
    return result


def log_weights(model, x, eps, y=None):
    """The log importance weights of the model for x (``numvae.model.objectives.log_weights``,
    eq. I1), z_k drawn from q with the noise eps.

    x: (batch, input_dim), eps: (K, batch, latent_dim), y: checked labels (batch,) of a
    conditional model, or None -> (K, batch). A model with its own ``log_weights`` (the
    two-layer one, eq. H1: both layers' densities) computes them itself.
    """
    if hasattr(model, "log_weights"):
        return model.log_weights(x, eps, y)
    heads = _encode(model, x, y)                                  # each (batch, latent_dim)
    z, posterior_cache = model.posterior.rsample(heads, eps)      # (K * batch, latent_dim)
    n_samples, batch = eps.shape[:2]
    logits = model.decode(z, y, logits=True).reshape(n_samples, batch, -1)  # (K, batch, input_dim)
    # -log p(x|z) sums over the last axis, so x (batch, input_dim) broadcasts over K
    nll = model.likelihood.nll(logits, x)
    return objectives.log_weights(nll, z, posterior_cache, model.posterior, model.prior)


def iwae_log_likelihood(model, images, *, labels=None, k=5000, batch_size=None, max_rows=2000,
                        seed=0):
    """Importance-weighted estimate of log p(x) with K samples (eq. I2), per example:

        log p(x) >= log (1/K) sum_k w_k,   w_k = p(x, z_k) / q(z_k | x),  z_k ~ q(z|x).

    K = 1 is the ELBO; the bound tightens as K grows and tends to log p(x). The K samples
    are drawn in chunks so that at most ``max_rows`` decoded images are in memory at once,
    and combined with a running log-sum-exp (subtract the max so exp cannot overflow).
    ``k`` is at most ``MAX_K``, and a chunk's memory within the model's limit
    (``numvae.model.size``), both checked before the first draw.
    Returns a dict with ``log_px`` (mean over examples), ``log_px_se``, ``per_example`` (n,).
    """
    images = model.check_data(images, "images")
    labels = _labels(model, labels, len(images))
    k = check_positive_int(k, "k")
    if k > MAX_K:
        raise ValueError(f"k must be at most {MAX_K:,} importance samples per example (the "
                         f"paper's is 5000); got {k:,}")
    max_rows = check_positive_int(max_rows, "max_rows")
    rng = np.random.default_rng(seed)
    if batch_size is None:
        batch_size = max(1, min(len(images), max_rows // min(k, max_rows)))
    batch_size = check_positive_int(batch_size, "batch_size")
    model.budget.check_step(batch_size, max(1, max_rows // batch_size),
                            "iwae_log_likelihood: a chunk")
    per_example = []
    for rows in _batches(len(images), batch_size):
        x = images[rows]
        chunk = max(1, max_rows // len(x))
        running_max = np.full(len(x), -np.inf)
        running_sum = np.zeros(len(x))  # sum_k exp(log w_k - running_max)
        for start in range(0, k, chunk):
            eps = rng.standard_normal((min(chunk, k - start), len(x), noise_width(model)))
            # a damaged or diverged model overflows in here: reported by name below
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                log_w = log_weights(model, x, eps.astype(model.dtype),
                                    None if labels is None else labels[rows]).astype(np.float64)
                new_max = np.maximum(running_max, log_w.max(axis=0))
                running_sum = (running_sum * np.exp(running_max - new_max)
                               + np.exp(log_w - new_max).sum(axis=0))
            running_max = new_max
        with np.errstate(divide="ignore", invalid="ignore"):
            per_example.append(running_max + np.log(running_sum) - math.log(k))
    per_example = _finite(np.concatenate(per_example), "the importance-weighted log p(x)")
    se = per_example.std(ddof=1) / math.sqrt(len(per_example)) if len(per_example) > 1 else float("nan")
    return dict(log_px=float(per_example.mean()), log_px_se=float(se), per_example=per_example, k=k)
