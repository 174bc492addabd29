"""The terms of the (negative) ELBO, each function followed by its gradient.

Notation (the slides', see docs/derivations.md): x is the data (batch, input_dim),
``mean`` and ``log_var`` are mu_phi(x) and log sigma_phi^2(x), (batch, latent_dim).
Every loss here returns one value per example (summed over dimensions); averaging over
the batch is the caller's business, so the same functions serve training and evaluation.
"""
import numpy as np

from .layers import as_float_array, sigmoid


class NumericalError(FloatingPointError):
    """A quantity that must be finite is not (overflow, NaN)."""


def safe_exp(a, name):
    """exp(a), raising NumericalError naming ``name`` instead of warning on overflow."""
    with np.errstate(over="ignore"):
        out = np.exp(a)
    if not np.isfinite(out).all():
        raise NumericalError(
            f"exp({name}) is not finite: {name} reached {np.nanmax(a):.4g} "
            f"(or is NaN); training has diverged, try a smaller learning rate")
    return out


# --- KL(q(z|x) || p(z)) --------------------------------------------------------------

def kl_divergence(mean, log_var):
    """Analytic KL(N(mean, diag(exp(log_var))) || N(0, I)) per example (eq. K1).

    KL = 0.5 * sum_j (mean_j^2 + exp(log_var_j) - 1 - log_var_j).
    mean, log_var: (batch, latent_dim) -> (batch,).
    """
    return np.sum(kl_divergence_per_dim(mean, log_var), axis=-1)


def kl_divergence_per_dim(mean, log_var):
    """The terms of eq. K1 before the sum over j: 0.5 (mean_j^2 + exp(log_var_j) - 1 - log_var_j).

    The KL of each latent dimension, (batch, latent_dim); dimensions near 0 are unused.
    """
    var = safe_exp(log_var, "log_var")
    return 0.5 * (mean * mean + var - 1.0 - log_var)


def kl_divergence_backward(mean, log_var):
    """Gradient of ``kl_divergence`` (eq. K2): dKL/dmean = mean, dKL/dlog_var = 0.5 (exp(log_var) - 1).

    Returns (dmean, dlog_var), each (batch, latent_dim), for a loss equal to the sum over
    the batch of the per-example KL.
    """
    dmean = mean.copy()
    dlog_var = 0.5 * (safe_exp(log_var, "log_var") - 1.0)
    return dmean, dlog_var


# --- Bernoulli likelihood -------------------------------------------------------------

def softplus(a):
    """log(1 + exp(a)), stable for any a: max(a, 0) + log1p(exp(-|a|)).

    exp(-|a|) never overflows, and log1p keeps its relative precision where it is tiny.
    Computed in place, in two new arrays instead of six (it is the training step's
    largest elementwise work).
    """
    a = as_float_array(a)
    out = np.abs(a, out=np.empty_like(a))  # out=: an array even for 0-d input
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(a, 0)
    return out


def bernoulli_nll(logits, x):
    """-log p(x|z) for p = sigmoid(logits), fused with the sigmoid (eq. B3).

    -log p(x|z) = sum_i [softplus(a_i) - x_i a_i], exact even where sigmoid(a) rounds to
    0 or 1 (the staged form below would take log 0 there).
    logits, x: (batch, input_dim) -> (batch,). x may be grey levels in [0, 1].
    """
    return np.sum(softplus(logits) - x * logits, axis=-1)


def bernoulli_nll_backward(logits, x, probs=None):
    """Gradient of ``bernoulli_nll`` with respect to the logits: sigmoid(a) - x (eq. B4).

    ``probs``: sigmoid(logits) if the caller already has it (the decoder's output), so
    that the sigmoid is not computed twice.
    """
    return (sigmoid(logits) if probs is None else probs) - x


def bernoulli_nll_from_probs(probs, x):
    """Staged form -sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)] (eq. B1).

    Kept as the test oracle of the fused form; it is infinite where p_i is exactly 0 or 1.
    probs, x: (batch, input_dim) -> (batch,).
    """
    return -np.sum(x * np.log(probs) + (1 - x) * np.log1p(-probs), axis=-1)


def bernoulli_nll_from_probs_backward(probs, x):
    """Gradient of ``bernoulli_nll_from_probs``: (p - x) / (p (1 - p)) (eq. B2)."""
    return (probs - x) / (probs * (1 - probs))


# --- Gaussian likelihood --------------------------------------------------------------

def gaussian_nll(prediction, x, sigma=1.0):
    """-log N(x; prediction, sigma^2 I) per example, constants included (eq. G1).

    = sum_i (x_i - prediction_i)^2 / (2 sigma^2) + (input_dim / 2) log(2 pi sigma^2).
    prediction, x: (batch, input_dim) -> (batch,).
    """
    residual = x - prediction
    n_dims = x.shape[-1]
    return (np.sum(residual * residual, axis=-1) / (2 * sigma**2)
            + 0.5 * n_dims * np.log(2 * np.pi * sigma**2))


def gaussian_nll_backward(prediction, x, sigma=1.0):
    """Gradient of ``gaussian_nll`` with respect to the prediction: (prediction - x) / sigma^2 (eq. G2)."""
    return (prediction - x) / sigma**2


# --- The slides' loss -----------------------------------------------------------------

def seed_loss(prediction, target, mean, log_var, kl_weight=1.0):
    """The slides' ``loss_fn``, exactly as written there (eq. S1), summed over the batch:

        sum (prediction - target)^2 + kl_weight * sum(mean^2 + exp(log_var) - log_var).

    How it relates to the ELBO: per example, with N = input_dim, M = latent_dim,

        seed_loss = 2 * [negative ELBO with sigma^2 = 1 and KL weight kl_weight]
                    - N log(2 pi) + kl_weight * M.

    So its squared error is the Gaussian likelihood with sigma^2 = 1, the whole loss is
    doubled, and it drops the constants N/2 log(2 pi sigma^2) and the "-1" inside the KL.
    None of these change the minimiser (at kl_weight = 1), but the value is not in nats.
    (Read with the slides' "||x - mu||^2 / sigma^2" alone, it would be sigma^2 = 1/2 with
    the KL counted twice.) Returns a float.
    """
    residual = prediction - target
    kl_part = np.sum(mean * mean + safe_exp(log_var, "log_var") - log_var)
    return float(np.sum(residual * residual) + kl_weight * kl_part)


def seed_loss_backward(prediction, target, mean, log_var, kl_weight=1.0):
    """Gradient of ``seed_loss`` (eq. S2): returns (dprediction, dmean, dlog_var) =
    (2 (prediction - target), 2 kl_weight mean, kl_weight (exp(log_var) - 1))."""
    dprediction = 2.0 * (prediction - target)
    dmean = 2.0 * kl_weight * mean
    dlog_var = kl_weight * (safe_exp(log_var, "log_var") - 1.0)
    return dprediction, dmean, dlog_var
