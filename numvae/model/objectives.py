"""What training minimises, made of the parts: the KL term and the objective.

The KL term KL(q(z|x) || p(z)) is analytic where a formula is registered for the pair
(posterior, prior) in ``ANALYTIC_KL``, and a Monte Carlo estimate otherwise; both have
``forward(z, cache, posterior, prior) -> (kl (batch,), cache)`` and
``backward(dkl, cache) -> (dz or None, {head: gradient})``.

An objective turns the per-sample negative log-likelihoods and the KL into the loss,
and back: ``forward(nll, z, posterior_cache, posterior, prior, kl_weight) -> (terms,
cache)`` and ``backward(cache) -> (dnll, dz or None, {head: gradient})``. ``OBJECTIVES``
is its registry: ``ELBO`` and ``IWAE``, the importance-weighted bound; ``FreeBitsELBO``
(free bits, in ``numvae.model.free_bits``).
"""
import numpy as np

from numvae.model.free_bits import FreeBitsELBO
from numvae.model.kl import NoKL, kl_term
from numvae.validation import check_nonnegative_float, check_positive_int, safe_exp


class ELBO:
    """The negative ELBO with S samples of z per example (eq. V1):

        L = (1/B) sum_b [ (1/S) sum_s -log p(x_b | z_bs) + kl_weight * KL_b ].

    kl_weight = 1 is the negative ELBO itself; other values are beta-VAEs and KL warm-up.
    """
    name = "elbo"
    supports_kl_weight = True
    formula = "L = mean_batch(reconstruction + kl_weight * kl)  (V1)"

    flat_names = {"kl_weight": "kl_weight", "n_samples": "n_samples"}

    def __init__(self, *, kl_weight=1.0, n_samples=1):
        self.kl_weight = check_nonnegative_float(kl_weight, "kl_weight")
        self.n_samples = check_positive_int(n_samples, "n_samples")

    def settings(self):
        return {"kl_weight": self.kl_weight, "n_samples": self.n_samples}

    def build(self, latent_dim, rng, dtype):
        return self

    def forward(self, nll, z, posterior_cache, posterior, prior, kl_weight):
        """nll: (S, batch) -log p(x|z) of each draw. Returns the terms (``reconstruction``
        and ``kl`` (batch,), the float ``loss``) and the cache for ``backward``."""
        kl_part = kl_term(posterior, prior)
        kl, kl_cache = kl_part.forward(z, posterior_cache, posterior, prior)
        reconstruction = nll.mean(axis=0)                             # (batch,)
        loss = float(np.mean(reconstruction + kl_weight * kl))
        terms = dict(reconstruction=reconstruction, kl=kl, loss=loss)
        return terms, dict(kl_part=kl_part, kl_cache=kl_cache, shape=nll.shape,
                           kl_weight=kl_weight)

    def backward(self, cache):
        """Returns dL/dnll (a number: each (sample, example) row weighs 1 / (S B)), the KL's
        dL/dz (or None) and its {head: gradient} (eqs. V2, V4)."""
        n_samples, batch = cache["shape"]
        dz_kl, dheads_kl = cache["kl_part"].backward(cache["kl_weight"] / batch, cache["kl_cache"])
        return 1.0 / (n_samples * batch), dz_kl, dheads_kl


class Reconstruction:
    """The autoencoder's loss: the mean reconstruction term and no KL,

        L = (1/B) sum_b (1/S) sum_s -log p(x_b | z_bs),

    with -log p(x|z) the likelihood's (the squared error / (2 sigma^2) plus a constant for
    the Gaussian). ``kl_weight`` is 0: ``terms["kl"]`` holds zeros. With the "point"
    posterior this is the slides' autoencoder; with a Gaussian posterior, a VAE at beta = 0.
    """
    name = "reconstruction"
    formula = "L = mean_batch(reconstruction): no KL term"
    kl_weight = 0.0
    supports_kl_weight = False  # no KL term to weigh (nor warm up)

    flat_names = {"n_samples": "n_samples"}
    flat_fixed = {"kl_weight": 0.0}  # what 0.2's flat configuration held

    def __init__(self, *, n_samples=1):
        self.n_samples = check_positive_int(n_samples, "n_samples")

    def settings(self):
        return {"n_samples": self.n_samples}

    def build(self, latent_dim, rng, dtype):
        return self

    def kl_term(self, posterior, prior):
        return NoKL()

    def forward(self, nll, z, posterior_cache, posterior, prior, kl_weight):
        """As ``ELBO.forward`` with the KL replaced by zeros; ``kl_weight`` is ignored."""
        kl_part = NoKL()
        kl, kl_cache = kl_part.forward(z, posterior_cache, posterior, prior)
        reconstruction = nll.mean(axis=0)                             # (batch,)
        terms = dict(reconstruction=reconstruction, kl=kl, loss=float(np.mean(reconstruction)))
        return terms, dict(kl_part=kl_part, kl_cache=kl_cache, shape=nll.shape, kl_weight=0.0)

    def backward(self, cache):
        """dL/dnll = 1 / (S B) for every row; no dz and zero head gradients from a KL."""
        n_samples, batch = cache["shape"]
        dz_kl, dheads_kl = cache["kl_part"].backward(0.0, cache["kl_cache"])
        return 1.0 / (n_samples * batch), dz_kl, dheads_kl


class IWAE:
    """The negative importance-weighted bound with K samples of z per example (eq. IW1,
    Burda, Grosse & Salakhutdinov 2016):

        L = -(1/B) sum_b log (1/K) sum_k w_bk,
        log w_bk = log p(x_b|z_bk) + log p(z_bk) - log q(z_bk|x_b).

    K = 1 is the ELBO with a Monte Carlo KL; the bound tightens as K grows. It has no KL
    term to weigh, so a ``kl_weight`` other than 1 (or a KL warm-up) is refused.
    """
    name = "iwae"
    formula = "L = -mean_batch log mean_k w_k,  log w = -nll + log p(z) - log q(z|x)  (IW1)"
    supports_kl_weight = False
    # FAST PATH switch (issue 26): backward sets the negligible weights to exact zeros
    # (``drop_negligible_weights``); False for the textbook backward, bit for bit, on one
    # model (``model.objective.fast_backward = False``) or on all (``IWAE.fast_backward``)
    fast_backward = True

    flat_names = {"n_samples": "k"}

    def __init__(self, *, k=1):
        self.k = check_positive_int(k, "k")
        self.n_samples, self.kl_weight = self.k, 1.0  # the K draws of z per example

    def settings(self):
        return {"k": self.k}

    def build(self, latent_dim, rng, dtype):
        return self

    @staticmethod
    def check_flat(flat):
        """0.2's flat settings (``numvae.model.parts``) may name a kl_weight: it must be 1."""
        check_kl_weight_is_one(flat.get("kl_weight", 1.0))

    def forward(self, nll, z, posterior_cache, posterior, prior, kl_weight):
        """nll: (K, batch) -log p(x|z_k). Returns the terms and the cache for ``backward``.

        Terms: ``bound`` (batch,), log (1/K) sum_k w_k; ``loss`` = -mean(bound), the
        trained quantity; for the history (as the ELBO reports them), ``reconstruction``
        (batch,), the mean over the K draws of -log p(x|z_k), and ``kl`` (batch,), the KL
        (analytic where ``ANALYTIC_KL`` has the pair, else K3): their sum is the negative
        ELBO of the same draws, which the bound exceeds.
        """
        check_kl_weight_is_one(kl_weight)
        log_w = log_weights(nll, z, posterior_cache, posterior, prior)  # (K, batch), eq. I1
        # log-sum-exp: subtract the max
        top = log_w.max(axis=0)
        log_sum = top + np.log(np.exp(log_w - top).sum(axis=0))       # (batch,)
        normalised = np.exp(log_w - log_sum)                          # w~_k, sums to 1 over k (IW2)
        bound = log_sum - np.log(log_w.shape[0])
        kl_part = kl_term(posterior, prior)
        kl, _ = kl_part.forward(z, posterior_cache, posterior, prior)
        terms = dict(reconstruction=nll.mean(axis=0), kl=kl, bound=bound,
                     loss=float(-np.mean(bound)))
        return terms, dict(normalised=normalised, z=z, posterior_cache=posterior_cache,
                           posterior=posterior, prior=prior, kl_part=_BoundPaths(kl_part),
                           kl_weight=1.0)

    def backward(self, cache):
        """dL/dlog w_bk = -w~_bk / B (eq. IW2), sent down the three terms of log w:

        dL/dnll = w~ / B (the (K * batch,) row weights), dL/dlog p = -w~ / B and
        dL/dlog q = w~ / B (through ``prior.log_prob_backward`` and
        ``posterior.log_prob_backward``, as the Monte Carlo KL's, eq. IW3). Returns
        (dnll, dz, {head: gradient}).
        """
        normalised = cache["normalised"]                              # (K, batch)
        if self.fast_backward:  # FAST PATH: w~ below eps^2 to 0 (no subnormal numbers below)
            normalised = drop_negligible_weights(normalised)
        weight = normalised / normalised.shape[1]                     # w~ / B
        dz_q, dheads = cache["posterior"].log_prob_backward(weight, cache["posterior_cache"])
        dz_p = cache["prior"].log_prob_backward(-weight.reshape(-1), cache["z"])
        return weight.reshape(-1), dz_q + dz_p, dheads


def log_weights(nll, z, posterior_cache, posterior, prior):
    """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) (eq. I1), each term from the
    parts: nll (K, batch), -log p(x|z_k); z (K * batch, latent_dim), drawn by the posterior
    (``posterior_cache`` its cache). Returns (K, batch)."""
    log_q = posterior.log_prob(posterior_cache)                       # (K, batch)
    log_p = prior.log_prob(z).reshape(log_q.shape)                    # (K, batch)
    return -nll + log_p - log_q


def drop_negligible_weights(normalised):
    """FAST PATH of ``IWAE.backward`` (issue 26): the normalised weights w~ (K, batch) of
    eq. IW2 with every weight below eps^2 set to 0 (eps: machine epsilon of their dtype,
    eps^2 = 1.4e-14 in float32, 4.9e-32 in float64). Returns a new array.

    Why: each example's largest weight is at least 1/K, so a dropped row changes the
    gradient by less than K eps^2 = K eps * eps of its rounding unit (for K * eps < 1, far
    below it), but its products, w~ / B * (sigmoid(a) - x) and the decoder's products
    after it, underflow into subnormal numbers, which an Intel CPU computes some hundred
    times slower than normal ones (the K = 50 IWAE step took 153 ms with them, 47 ms
    without, docs/performance.md, "Both cores"). A zero row costs nothing extra.
    """
    cut = np.finfo(normalised.dtype).eps ** 2
    return np.where(normalised < cut, 0.0, normalised).astype(normalised.dtype, copy=False)


class _BoundPaths:
    """For the inspector: the formulas of the IWAE's log q and log p paths (what the ELBO
    shows as its KL term's)."""
    backward_formulas = {head: "sum_k w~_k / B * explicit partials of log q  (IW2, IW3)"
                         for head in ("mean", "log_var", "context")}

    def __init__(self, kl_part):
        self.formula = f"{kl_part.formula}; reported only, the loss is the bound (IW1)"


def check_kl_weight_is_one(kl_weight):
    """The importance-weighted bound has no KL term: refuse any weight but 1."""
    if kl_weight != 1.0:
        raise ValueError(f"kl_weight={kl_weight!r} has no meaning for objective='iwae' (the "
                         f"importance-weighted bound has no separate KL term to weigh; nor "
                         f"has KL warm-up); use objective='elbo' for a weighted KL")


OBJECTIVES = {part.name: part for part in (ELBO, Reconstruction, IWAE, FreeBitsELBO)}


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
