"""What the latent code holds: rate, distortion, mutual information, marginal KL, active units.

For images x_1..x_F (a fixed subset of the data, F = 1,000 by default) and the model's
encoder q(z|x), prior p(z) and likelihood p(x|z), in nats per image
(docs/derivations.md, section 18):

    rate            R~ = (1/F) sum_b KL(q(z|x_b) || p(z))                    (eq. LI1)
    distortion      D~ = (1/F) sum_b E_q[-log p(x_b|z)]                      (eq. LI1)
    mutual info     I~ = (1/F) sum_b KL(q(z|x_b) || q_bar(z)),
                    q_bar(z) = (1/F) sum_b' q(z|x_b'), the aggregate posterior (eq. LI2)
    marginal KL     KL(q_bar || p) = R~ - I~  ("ELBO surgery")             (eq. LI3)

-ELBO = R~ + D~. ``mutual_information`` is the Monte Carlo estimate of I~ (eq. LI4): it
cannot exceed log F, is unbiased for the F images and, in expectation, a lower bound on the
mutual information under the whole data distribution. Shown, with the closed forms of a
linear-Gaussian model, in tests/test_latent_info.py.
"""
import math

import numpy as np

from numvae.diagnostics.evaluate import active_units
from numvae.model.kl import kl_divergence_per_dim
from numvae.model.posteriors import reparameterise
from numvae.validation import NumericalError, check_positive_int

LOG_2PI = math.log(2 * math.pi)
ACTIVE_THRESHOLD = 0.01  # Burda et al.'s: Var_x E_q[z_u|x] > 0.01


def _finite(values, quantity):
    if not np.isfinite(values).all():
        raise NumericalError(f"{quantity} is not finite ({np.sum(~np.isfinite(values))} of "
                             f"{np.size(values)} values); the model is diverged or damaged")
    return values


def gaussian_log_density(z, mean, log_var):
    """log N(z; mean_b', diag(exp(log_var_b'))) for every row of z and every b' (eq. LI4):

        log q(z|x_b') = -1/2 sum_j [ (z_j - mean_b'j)^2 / exp(log_var_b'j) + log_var_b'j + log 2 pi ].

    z: (rows, latent_dim); mean, log_var: (F, latent_dim) -> (rows, F).
    """
    diff = z[:, None, :] - mean[None, :, :]                        # (rows, F, latent_dim)
    inv_var = np.exp(-log_var)[None, :, :]                         # 1 / sigma^2
    return -0.5 * np.sum(diff * diff * inv_var + log_var[None, :, :] + LOG_2PI, axis=-1)


def mutual_information(mean, log_var, rng, *, n_draws=1, max_entries=4_000_000):
    """Monte Carlo estimate of I~ = (1/F) sum_b KL(q(z|x_b) || q_bar(z)) (eqs. LI2, LI4):

        I^ = (1/(F S)) sum_b sum_s [ log q(z_bs|x_b) - log (1/F) sum_b' q(z_bs|x_b') ],
        z_bs = mean_b + exp(log_var_b / 2) * eps_bs,   eps_bs ~ N(0, I)  (eq. R1).

    The aggregate posterior q_bar is the mixture of the F posteriors, evaluated exactly,
    so I^ is unbiased for I~ of these F images; each term is at most log F (the mixture
    holds its own component with weight 1/F), so I^ <= log F. mean, log_var: (F,
    latent_dim), a diagonal Gaussian posterior per image; rng: a numpy Generator (eps);
    n_draws: S; max_entries: the largest (rows, F, latent_dim) block held at once.
    Returns dict(value, se (the spread of the F per-image terms / sqrt F), cap = log F,
    per_image (F,)).
    """
    mean, log_var = np.asarray(mean, np.float64), np.asarray(log_var, np.float64)
    n_images, latent_dim = mean.shape
    n_draws = check_positive_int(n_draws, "n_draws")
    eps = rng.standard_normal((n_draws, n_images, latent_dim))
    z = reparameterise(mean, log_var, eps)[0].reshape(-1, latent_dim)  # row s * F + b (R1)
    own = np.tile(np.arange(n_images), n_draws)                      # b of each row
    rows = max(1, max_entries // (n_images * latent_dim))
    terms = np.empty(len(z))
    for start in range(0, len(z), rows):
        block = gaussian_log_density(z[start:start + rows], mean, log_var)   # (rows, F)
        top = block.max(axis=1, keepdims=True)                      # log-sum-exp: subtract the max
        log_mixture = top[:, 0] + np.log(np.exp(block - top).sum(axis=1)) - math.log(n_images)
        log_own = block[np.arange(len(block)), own[start:start + rows]]
        terms[start:start + len(block)] = log_own - log_mixture
    per_image = _finite(terms.reshape(n_draws, n_images).mean(axis=0), "the mutual information")
    se = per_image.std(ddof=1) / math.sqrt(n_images) if n_images > 1 else float("nan")
    return dict(value=float(per_image.mean()), se=float(se), cap=math.log(n_images),
                per_image=per_image)


def _subset_terms(model, images, labels, batch_size, rng):
    """One pass of the model (KL weight 1, one z per image): the rate and distortion terms
    (F,) and the posterior heads (F, latent_dim), in float64."""
    kl, rec, means, log_vars = [], [], [], []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        eps = rng.standard_normal((1, len(x), model.latent_dim)).astype(model.dtype)
        y = None if labels is None else labels[start:start + batch_size]
        cache = model.forward(x, eps, y=y, kl_weight=1.0)
        kl.append(cache["kl"])
        rec.append(cache["reconstruction"])
        means.append(cache["mean"])
        log_vars.append(cache.get("log_var", np.full(cache["mean"].shape, np.nan)))  # none: a point
    return [np.concatenate(parts).astype(np.float64) for parts in (kl, rec, means, log_vars)]


def latent_information(model, images, *, labels=None, n_images=1000, n_draws=1, seed=0,
                       batch_size=500):
    """Rate, distortion, mutual information, marginal KL and active units of ``model`` on
    the first ``n_images`` of ``images`` (n, input_dim) (eqs. LI1-LI4), in nats per image.

    The rate is the model's KL term (analytic K1 for the slides' model), the distortion a
    one-draw Monte Carlo estimate of the reconstruction term; both from ``model.forward``
    with KL weight 1, so rate + distortion is the negative ELBO whatever beta the model
    trains with. The mutual information needs a diagonal Gaussian posterior (it evaluates
    q(z|x_b') at every z): for others it and the marginal KL are None.
    Returns dict(rate, distortion, negative_elbo, mutual_info, mutual_info_se,
    mutual_info_cap, marginal_kl, active_units, kl_per_dim (latent_dim,) or None, n_images).
    """
    n_images = check_positive_int(n_images, "n_images")
    images = model.check_data(images[:n_images], "images")
    labels = model.check_labels(None if labels is None else labels[:len(images)], len(images))
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore", invalid="ignore"):  # checked below, by name
        kl, rec, mean, log_var = _subset_terms(model, images, labels,
                                               check_positive_int(batch_size, "batch_size"), rng)
    rate = float(np.mean(_finite(kl, "the rate (KL term)")))
    distortion = float(np.mean(_finite(rec, "the distortion (reconstruction term)")))
    if model.posterior.name in ("diagonal_gaussian", "point"):  # E_q[z|x] is the mean head
        variance = _finite(mean.var(axis=0), "the variance of the encoder means")
        n_active = int(np.sum(variance > ACTIVE_THRESHOLD))
    else:  # a flow: E_q[z|x] by draws
        n_active = active_units(model, images, labels=labels, threshold=ACTIVE_THRESHOLD)[0]
    result = dict(rate=rate, distortion=distortion, negative_elbo=rate + distortion,
                  mutual_info=None, mutual_info_se=None, mutual_info_cap=math.log(len(images)),
                  marginal_kl=None, active_units=n_active, kl_per_dim=None,
                  n_images=len(images))
    if model.posterior.name != "diagonal_gaussian":
        return result  # q(z|x) of a flow cannot be evaluated at another image's z
    info = mutual_information(mean, log_var, rng, n_draws=n_draws)
    result.update(mutual_info=info["value"], mutual_info_se=info["se"],
                  marginal_kl=rate - info["value"])
    if model.prior.name == "standard_normal":  # K1 holds per dimension
        result["kl_per_dim"] = kl_divergence_per_dim(mean, log_var).mean(axis=0)
    return result


def format_latent_information(info):
    """One line of the numbers, for the commands and the tutorials."""
    line = (f"rate R {info['rate']:.2f}, distortion D {info['distortion']:.2f} (R + D = "
            f"-ELBO {info['negative_elbo']:.2f})")
    if info["mutual_info"] is None:
        line += ", I_q n/a (not a diagonal Gaussian posterior)"
    else:
        line += (f", I_q {info['mutual_info']:.2f} +- {info['mutual_info_se']:.2f} (at most "
                 f"log {info['n_images']} = {info['mutual_info_cap']:.2f}), marginal KL "
                 f"{info['marginal_kl']:.2f}")
    return line + f", {info['active_units']} active units  [nats per image]"


HISTORY_KEYS = ("rate", "distortion", "mutual_info", "mutual_info_se", "marginal_kl",
                "active_units")


def record_latent_information(history, info):
    """Append ``info`` (from ``latent_information``) to a ``fit`` history as the last epoch's:
    one list per number in ``HISTORY_KEYS`` and ``history["kl_per_dim"]`` = {"z<j>": list}
    (null where not measured). Epochs before the first measurement (a run resumed from an
    older checkpoint) are padded with null, so that every list has one entry per epoch."""
    n_epochs = len(history["epoch"])
    columns = {key: info[key] for key in HISTORY_KEYS}
    per_dim = history.setdefault("kl_per_dim", {})
    if info["kl_per_dim"] is not None:
        columns.update({f"z{j}": float(v) for j, v in enumerate(info["kl_per_dim"])})
    for key, value in columns.items():
        target = per_dim if key.startswith("z") and key[1:].isdigit() else history
        values = target.setdefault(key, [])
        values.extend([None] * (n_epochs - 1 - len(values)))
        values.append(value)
    return history


def latent_information_callback(images, *, labels=None, n_images=1000, seed=0):
    """A ``fit`` callback: after each finished epoch, measure ``latent_information`` on the
    first ``n_images`` of ``images`` (the same subset, the same eps, every epoch) and record
    it in the history. Place it before the callback that saves the history."""
    def measure(state):
        if state["interrupted"]:
            return  # the epoch is not finished: nothing to measure
        info = latent_information(state["model"], images, labels=labels, n_images=n_images,
                                  seed=seed)
        record_latent_information(state["history"], info)
    return measure
