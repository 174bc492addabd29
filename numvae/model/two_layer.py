"""A VAE with two stochastic layers (Burda, Grosse & Salakhutdinov 2016, section 5): zeta
(z1, width M1) below, xi (z2, width M2) on top, every conditional a diagonal Gaussian from
its own small network, every gradient by hand (docs/derivations.md, section 18, eqs.
H1-H8; zeta and xi are that section's symbols).

    inference   q(zeta|x) q(xi|zeta):  x -> net ``q_z1`` -> zeta -> net ``q_z2`` -> xi
    generation  p(xi) p(zeta|xi) p(x|zeta):  xi ~ N(0, I) -> net ``p_z1`` -> zeta -> ``p_x`` -> x

What the one-layer words mean here:

* ``latent_dim`` is M2, the top layer's width: what ``sample`` draws from the prior and what
  ``encode`` returns, so that a model with M2 = 2 puts xi on the plane;
* ``noise_dim`` = M1 + M2 is the width of eps: eps[..., :M1] draws zeta, eps[..., M1:] xi;
* ``encode(x)``: q(xi|zeta)'s mean and log-variance at zeta = E_q[zeta|x];
* ``decode(xi)``: the decoder's output at zeta = the mean of p(zeta|xi);
* ``sample(n)``: drawn top-down, xi ~ p(xi), then zeta ~ p(zeta|xi), then the output.

The parts are numvae's own: ``DiagonalGaussian`` (reparameterisation R1, log q, I1, its
gradient, K4) for both posteriors and the density p(zeta|xi), ``StandardNormal`` for p(xi),
the likelihood (B3/B4 or G1/G2) for p(x|zeta), the analytic KL (K1, K2) of the ELBO.
"""
import numpy as np

from numvae.model import size
from numvae.model.architectures import mlp
from numvae.model.kl import kl_divergence, kl_divergence_backward
from numvae.model.likelihoods import LIKELIHOODS
from numvae.model.networks import Decoder
from numvae.model.objectives import check_kl_weight_is_one
from numvae.model.parts import make_part
from numvae.model.posteriors import DiagonalGaussian
from numvae.model.priors import StandardNormal
from numvae.model.two_layer_parts import (
    INITS,
    GaussianNet,
    density_cache,
    elbo_weights,
    glorot_uniform,
    iwae_weights,
    mean_image_logits,
)
from numvae.nn.layers import ACTIVATIONS, Dense
from numvae.validation import (
    NumericalError,
    check_choice,
    check_data,
    check_eps,
    check_latent,
    check_nonnegative_float,
    check_positive_int,
    check_vae_config,
    check_widths,
)

OBJECTIVES = ("elbo", "iwae")
NETWORKS = ("q_z1", "q_z2", "p_z1", "p_x")  # parameter name prefixes, in this order


class TwoLayerVAE:
    """q(zeta|x) q(xi|zeta) and p(xi) p(zeta|xi) p(x|zeta) (eq. H1), trained by the ELBO
    (eq. H2: KL of zeta by Monte Carlo, of xi analytic) or the IWAE bound (eq. H3).

    Parameters
    ----------
    input_dim : int
    latent_dims : the widths M1 and M2 of zeta and xi (Burda et al.: (100, 50))
    hidden : two tuples of widths: the deterministic layers between x and zeta, and between
        zeta and xi (the default: Burda et al.'s published code, which experiments/iwae_table
        trains; before, (100, 100) and (50, 50)); the generative networks mirror them
        (p(zeta|xi) reads xi through the second reversed, p(x|zeta) zeta the first reversed).
    activation, likelihood, sigma : as for ``numvae.VAE``
    objective : "elbo" or "iwae"; n_samples : S (or K); kl_weight : beta (ELBO only)
    init : "glorot" (the default, Burda et al.'s code: W ~ U(+-sqrt(6 / (n_in + n_out))),
        b = 0) or "pytorch" (as ``numvae.nn.Dense`` draws W and b: the start before, and
        what a stored configuration without ``init`` was built with)
    dtype, seed, max_memory : as for ``numvae.VAE`` (sizes are checked before any array is
        allocated, ``numvae.model.size``)

    ``params`` and ``grads`` are dicts with the same keys (``q_z1.body.0.W``, ...), views
    into ``flat_params`` and ``flat_grads``; ``config`` holds the constructor's arguments.

    Burda et al.'s whole start is the defaults and ``set_output_bias(train.mean(axis=0))``,
    a step the caller takes, not ``fit``: ``fit`` also continues trained models (docs/burda.md).
    """

    def __init__(self, input_dim=784, latent_dims=(100, 50), hidden=((200, 200), (100, 100)),
                 *, activation="tanh", likelihood="bernoulli", sigma=1.0, objective="elbo",
                 n_samples=1, kl_weight=1.0, init="glorot", dtype=np.float32, seed=None,
                 max_memory=None):
        m1, m2, hidden = check_layer_sizes(latent_dims, hidden)
        check_vae_config(input_dim, m1, m2, dtype, seed)
        check_nonnegative_float(kl_weight, "kl_weight")
        check_positive_int(n_samples, "n_samples")
        for value, name, choices in [(activation, "activation", ACTIVATIONS),
                                     (likelihood, "likelihood", LIKELIHOODS),
                                     (objective, "objective", dict.fromkeys(OBJECTIVES)),
                                     (init, "init", dict.fromkeys(INITS))]:
            check_choice(value, name, choices)
        if objective == "iwae":
            check_kl_weight_is_one(kl_weight)
        self.budget = size.check_layers(  # sizes first, as numvae.VAE's (numvae.model.size)
            size.two_layer_layers(input_dim, (m1, m2), hidden), (input_dim, 0), n_samples,
            np.dtype(dtype).itemsize, max_memory)
        self.dtype, self.rng = np.dtype(dtype), np.random.default_rng(seed)
        self.likelihood = make_part("likelihood", likelihood, dict(sigma=sigma))  # checks sigma
        self.posterior, self.prior = DiagonalGaussian(), StandardNormal().build(m2)
        self.objective = _Objective(objective, int(n_samples), float(kl_weight))
        self.config = dict(model="two_layer", input_dim=int(input_dim), latent_dims=(m1, m2),
                           hidden=hidden, activation=activation, likelihood=likelihood,
                           **self.likelihood.settings(), objective=objective,
                           n_samples=int(n_samples), kl_weight=float(kl_weight), init=init)
        self.dims = (m1, m2)
        rng, dt = self.rng, self.dtype
        self.q_z1 = GaussianNet(input_dim, hidden[0], m1, activation, rng, dt)
        self.q_z2 = GaussianNet(m1, hidden[1], m2, activation, rng, dt)
        self.p_z1 = GaussianNet(m2, hidden[1][::-1], m1, activation, rng, dt)
        to_x = hidden[0][::-1]
        self.decoder = Decoder(mlp([m1, *to_x], activation, rng, dt)
                               + [Dense(to_x[-1], input_dim, rng=rng, dtype=dt)])
        self.n_classes = 0
        self._gather_parameters()
        if init == "glorot":  # drawn again, after PyTorch's default, from the same generator
            glorot_uniform(self._layers_with_parameters(), rng)

    input_dim = property(lambda self: self.config["input_dim"])
    latent_dim = property(lambda self: self.dims[1])          # M2: the top layer xi
    noise_dim = property(lambda self: sum(self.dims))         # M1 + M2: eps's width
    n_samples = property(lambda self: self.objective.n_samples)

    def _layers_with_parameters(self):
        for prefix in NETWORKS[:3]:
            yield from getattr(self, prefix).layers_with_parameters(prefix)
        for index, layer in enumerate(self.decoder.decompressor.layers):
            if layer.params:
                yield f"p_x.decompressor.{index}", layer

    def _gather_parameters(self):
        """One flat buffer for the parameters and one for the gradients, each layer keeping
        views into them (as ``numvae.VAE`` does, for the fast Adam's single sweep)."""
        layers = list(self._layers_with_parameters())
        total = sum(value.size for _, layer in layers for value in layer.params.values())
        self.flat_params = np.empty(total, self.dtype)
        self.flat_grads = np.zeros(total, self.dtype)
        self.params, self.grads, offset = {}, {}, 0
        for prefix, layer in layers:
            for key, value in layer.params.items():
                span = slice(offset, offset + value.size)
                layer.params[key] = self.flat_params[span].reshape(value.shape)
                layer.params[key][...] = value
                layer.grads[key] = self.flat_grads[span].reshape(value.shape)
                self.params[f"{prefix}.{key}"] = layer.params[key]
                self.grads[f"{prefix}.{key}"] = layer.grads[key]
                offset += value.size

    def set_output_bias(self, pixel_means):
        """Start p(x|zeta) at the training images' mean: the output layer's bias becomes
        logit(clip(p, 0.001, 0.999)) of ``pixel_means`` (input_dim,), as in Burda et al.'s
        code. Without it the first epochs go to learning the mean image, while the KL
        switches off the units of zeta and xi that would have carried the rest."""
        output = [layer for layer in self.decoder.decompressor.layers if layer.params][-1]
        output.params["b"][...] = mean_image_logits(pixel_means, self.input_dim)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "model")
        return f"TwoLayerVAE({args}, dtype={self.dtype.name})"

    def n_params(self):
        return self.flat_params.size

    # --- data in, data out ----------------------------------------------------------

    def check_data(self, x, name="x"):
        return check_data(x, self.input_dim, self.dtype, name, support=self.likelihood.check_data)

    def check_labels(self, y, batch):
        """None: the model is unconditional and ignores labels."""

    def encode(self, x, y=None):
        """(mean, log_var) of q(xi|zeta) at zeta = E_q[zeta|x]: two (batch, M2) arrays."""
        heads1, _ = self.q_z1.forward(self.check_data(x))
        heads2, _ = self.q_z2.forward(heads1["mean"])
        return heads2["mean"], heads2["log_var"]

    def expected_latents(self, x, rng, n_draws=100):
        """E_q[zeta|x] (batch, M1), exactly the mean head, and E_q[xi|x] (batch, M2) =
        E_{q(zeta|x)}[mean of q(xi|zeta)], from ``n_draws`` draws of zeta (eq. H8)."""
        heads1, _ = self.q_z1.forward(self.check_data(x))
        eps = rng.standard_normal((n_draws, *heads1["mean"].shape)).astype(self.dtype)
        zeta, _ = self.posterior.rsample(heads1, eps)
        heads2, _ = self.q_z2.forward(zeta)
        return heads1["mean"], heads2["mean"].reshape(n_draws, len(x), -1).mean(axis=0)

    def decode(self, z, y=None):
        """The output sigmoid(a) at zeta = the mean of p(zeta|xi), for xi (batch, M2)."""
        heads, _ = self.p_z1.forward(check_latent(z, self.latent_dim, self.dtype))
        return self.decode_z1(heads["mean"])

    def decode_z1(self, zeta):
        """The output sigmoid(a) for zeta (batch, M1): p(x|zeta)'s probabilities (or mean)."""
        return self.decoder.forward(check_latent(zeta, self.dims[0], self.dtype))[0][1]

    def sample_z1(self, xi, rng):
        """zeta ~ p(zeta|xi) for xi (batch, M2): (batch, M1), by reparameterisation (R1)."""
        heads, _ = self.p_z1.forward(check_latent(xi, self.latent_dim, self.dtype))
        eps = rng.standard_normal((1, *heads["mean"].shape)).astype(self.dtype)
        return self.posterior.rsample(heads, eps)[0]

    def sample(self, n, rng=None, *, y=None):
        """n outputs drawn top-down: xi ~ N(0, I), zeta ~ p(zeta|xi), then sigmoid(a(zeta))."""
        rng = self.rng if rng is None else rng
        xi = self.prior.sample(check_positive_int(n, "n"), rng)
        return self.decode_z1(self.sample_z1(xi, rng))

    def draw_eps(self, batch_size, n_samples=None):
        """eps ~ N(0, I), (n_samples, batch, M1 + M2), from ``self.rng``."""
        n_samples = self.n_samples if n_samples is None else n_samples
        eps = self.rng.standard_normal((n_samples, batch_size, self.noise_dim))
        return eps.astype(self.dtype, copy=False)

    # --- forward and backward ---------------------------------------------------------

    def _stochastic_pass(self, x, eps):
        """x (batch, N), eps (S, batch, M1 + M2) -> the five log-densities of eq. H1 (each
        (S, batch)), the analytic KL of xi (S, batch), and every named quantity."""
        m1 = self.dims[0]
        n_samples, batch = eps.shape[:2]
        heads1, net_q1 = self.q_z1.forward(x)
        z1, post1 = self.posterior.rsample(heads1, eps[..., :m1])             # R1
        heads2, net_q2 = self.q_z2.forward(z1)                                # (S B, M2)
        z2, post2 = self.posterior.rsample(heads2, eps[..., m1:].reshape(1, n_samples * batch, -1))
        prior1, net_p1 = self.p_z1.forward(z2)                                # (S B, M1)
        density1 = density_cache(z1, prior1)                                  # H4
        (logits, output), net_px = self.decoder.forward(z1)
        shape = (n_samples, batch)
        # -log p(x|zeta) sums over the last axis: x (batch, N) broadcasts over the S draws
        by_draw = (n_samples, batch, -1)
        log_densities = dict(
            nll=self.likelihood.nll(logits.reshape(by_draw), x, output.reshape(by_draw)),
            log_q_z1=self.posterior.log_prob(post1),
            log_q_z2=self.posterior.log_prob(post2).reshape(shape),
            log_p_z1=self.posterior.log_prob(density1).reshape(shape),
            log_p_z2=self.prior.log_prob(z2).reshape(shape))
        analytic_kl = kl_divergence(heads2["mean"], heads2["log_var"]).reshape(shape)  # K1
        named = dict(z1=z1, z2=z2, mean=heads2["mean"], log_var=heads2["log_var"],
                     z1_mean=heads1["mean"], z1_log_var=heads1["log_var"],
                     prior_z1_mean=prior1["mean"], prior_z1_log_var=prior1["log_var"],
                     logits=logits, output=output)
        caches = dict(q_z1=net_q1, post1=post1, q_z2=net_q2, post2=post2, p_z1=net_p1,
                      density1=density1, p_x=net_px)
        return log_densities, analytic_kl, named, caches

    def forward(self, x, eps=None, *, y=None, kl_weight=None):
        """The loss and every named quantity (eqs. H1-H3).

        x: (batch, input_dim); eps: None (drawn from ``self.rng``), (batch, M1 + M2) or
        (S, batch, M1 + M2); kl_weight: None (the model's) or another (ELBO only).
        Returns the cache: ``x``, ``eps``, ``z1`` (S * batch, M1), ``z2`` (S * batch, M2),
        ``mean``/``log_var`` (q(xi|zeta)'s heads, (S * batch, M2): the top layer, whose KL
        per dimension ``evaluate_elbo`` reports), ``logits``, ``output``, the terms
        ``reconstruction``, ``kl`` (= ``kl_z1`` + ``kl_z2``), each (batch,), ``loss``, and
        the five log-densities (S, batch) of eq. H1 in ``log_densities``.
        """
        x = self.check_data(x)
        eps = (self.draw_eps(len(x)) if eps is None
               else check_eps(eps, len(x), self.noise_dim, self.dtype))
        kl_weight = (self.objective.kl_weight if kl_weight is None
                     else check_nonnegative_float(kl_weight, "kl_weight"))
        # a diverging model overflows somewhere in here: reported by name below, not by a warning
        with np.errstate(over="ignore", invalid="ignore"):
            log_densities, analytic_kl, named, caches = self._stochastic_pass(x, eps)
            terms, weights = self.objective.weights(log_densities, analytic_kl, kl_weight)
        if not np.isfinite(terms["loss"]):
            raise NumericalError(f"the loss is not finite ({terms['loss']}); training has "
                                 f"diverged, try a smaller learning rate")
        return dict(x=x, y=None, eps=eps, **named, **terms, log_densities=log_densities,
                    weights=weights, caches=caches)

    def backward(self, cache):
        """The gradient of ``cache["loss"]`` into ``self.grads`` (eqs. H4-H7); returns the
        intermediate gradients by name: ``dlogits``, ``dz1_from_x``, ``dz1_from_prior``,
        ``dz1_from_q_z2``, ``dz1_from_log_q``, ``dz1``, ``dz2``, the heads' (three nets)."""
        c, g = cache["caches"], cache["weights"]
        with np.errstate(over="ignore", invalid="ignore"):
            # H5 role 1: zeta decoded into x (B4 or G2, then D2 through p_x)
            x_rows = np.tile(cache["x"], (len(cache["eps"]), 1))            # row s B + b
            dlogits, _ = self.likelihood.nll_backward(g["nll"].reshape(-1), cache["logits"],
                                                      x_rows, cache["output"])
            dz1_from_x = self.decoder.backward_from_logits(dlogits, c["p_x"])[0]
            # H4: log p(zeta|xi), explicit partials in zeta and in p_z1's heads (K4's form)
            dz1_from_prior, dprior1 = self.posterior.log_prob_backward(
                g["log_p_z1"].reshape(1, -1), c["density1"])
            dz2_from_prior, _ = self.p_z1.backward(dprior1, c["p_z1"])        # into xi
            dheads2, dz2 = self._top_layer_backward(dz2_from_prior, g, cache, c)  # H6: all of xi's
            # H5 role 2: zeta conditions q(xi|zeta)
            dz1_from_q_z2, _ = self.q_z2.backward(dheads2, c["q_z2"])
            dz1_from_log_q, dheads1_q = self.posterior.log_prob_backward(g["log_q_z1"], c["post1"])
            dz1 = dz1_from_x + dz1_from_prior + dz1_from_q_z2 + dz1_from_log_q  # H5: four paths add
            # H7: through zeta's reparameterisation to q(zeta|x)'s heads and network
            dheads1_z = self.posterior.rsample_backward(dz1, c["post1"])
            dheads1 = {name: dheads1_z[name] + dheads1_q[name] for name in dheads1_z}
            self.q_z1.backward(dheads1, c["q_z1"], need_input_grad=False)
        return dict(dlogits=dlogits, dz1_from_x=dz1_from_x, dz1_from_prior=dz1_from_prior,
                    dz1_from_q_z2=dz1_from_q_z2, dz1_from_log_q=dz1_from_log_q, dz1=dz1,
                    dz2=dz2, dheads_z2=dheads2, dheads_z1=dheads1, dheads_p_z1=dprior1)

    def _top_layer_backward(self, dz2_from_prior, g, cache, c):
        """H6: xi's gradient from p(zeta|xi)'s network (``dz2_from_prior`` in), log p(xi) and
        log q(xi|zeta) (the IWAE's, K4), then through xi's reparameterisation (V3) to
        q(xi|zeta)'s heads, where the analytic KL's gradient (K2, the ELBO's) adds. Returns
        (heads, dz2: all of xi's gradient)."""
        post2 = c["post2"]
        dheads = {name: 0.0 for name in self.posterior.heads}
        dz2 = dz2_from_prior
        if g["log_p_z2"] is not None:
            dz2 = dz2 + self.prior.log_prob_backward(g["log_p_z2"].reshape(-1), cache["z2"])
        if g["log_q_z2"] is not None:
            dz2_q, dheads = self.posterior.log_prob_backward(g["log_q_z2"].reshape(1, -1), post2)
            dz2 = dz2 + dz2_q
        if g["kl_z2"] is not None:
            dmean, dlog_var = kl_divergence_backward(cache["mean"], cache["log_var"])
            row = g["kl_z2"].reshape(-1, 1)
            dheads = {"mean": dheads["mean"] + row * dmean,
                      "log_var": dheads["log_var"] + row * dlog_var}
        dheads_z = self.posterior.rsample_backward(dz2, post2)
        return {name: dheads_z[name] + dheads[name] for name in dheads_z}, dz2

    def loss(self, x, eps=None, *, y=None):
        return self.forward(x, eps)["loss"]

    def loss_terms(self, x, eps=None, *, y=None, kl_weight=None):
        return self.forward(x, eps, kl_weight=kl_weight)

    def loss_and_grad(self, x, eps=None, *, y=None, kl_weight=None):
        """The loss (eq. H2 or H3) and its gradient, written into ``self.grads``."""
        cache = self.forward(x, eps, kl_weight=kl_weight)
        self.backward(cache)
        return cache["loss"]

    def log_weights(self, x, eps, y=None):
        """log w_k (eq. H1) of the K draws: x (batch, N), eps (K, batch, M1 + M2) -> (K, batch)."""
        d, _, _, _ = self._stochastic_pass(x, eps)
        return -d["nll"] + d["log_p_z1"] + d["log_p_z2"] - d["log_q_z1"] - d["log_q_z2"]

    @classmethod
    def from_config(cls, config, max_memory=None):
        """The model a checkpoint's or a safetensors file's configuration describes:
        ``config`` (JSON: lists for tuples) with ``"model": "two_layer"`` and ``dtype``;
        ``max_memory`` as for ``numvae.VAE``. No ``init``: written before it existed, with
        PyTorch's start (then the only one), which the model is built with again."""
        arguments = {"init": "pytorch"}
        arguments.update((key, value) for key, value in config.items() if key != "model")
        if config.get("model") != "two_layer":
            raise ValueError(f"model must be 'two_layer'; got {config.get('model')!r}")
        arguments["latent_dims"] = tuple(arguments["latent_dims"])
        arguments["hidden"] = tuple(tuple(widths) for widths in arguments["hidden"])
        return cls(**arguments, max_memory=max_memory)

    def copy(self, dtype=None):
        """A deep copy, optionally in another dtype (float64 for gradient checks)."""
        arguments = {k: v for k, v in self.config.items() if k != "model"}
        clone = TwoLayerVAE(**arguments, dtype=self.dtype if dtype is None else dtype,
                            max_memory=self.budget.limit)
        for name, value in self.params.items():
            clone.params[name][...] = value
        clone.rng.bit_generator.state = self.rng.bit_generator.state
        return clone


class _Objective:
    """The objective: its settings as the training loop reads them (name, n_samples,
    kl_weight, supports_kl_weight) and ``weights``, the loss and dL/d(each log-density)
    (eq. H2 for "elbo", H3 for "iwae")."""

    def __init__(self, name, n_samples, kl_weight):
        self.name, self.n_samples, self.kl_weight = name, n_samples, kl_weight
        self.supports_kl_weight = name == "elbo"

    def settings(self):
        return {"n_samples": self.n_samples, "kl_weight": self.kl_weight}

    def weights(self, log_densities, analytic_kl, kl_weight):
        if self.name == "elbo":
            return elbo_weights(log_densities, analytic_kl, kl_weight)
        check_kl_weight_is_one(kl_weight)  # the bound has no KL term to weigh
        return iwae_weights(log_densities, analytic_kl)


def check_layer_sizes(latent_dims, hidden):
    """M1, M2 and (hidden widths to zeta, hidden widths to xi), or one clear error."""
    try:
        m1, m2 = check_widths(latent_dims, "latent_dims")
        to_zeta, to_xi = (check_widths(h, "hidden") for h in hidden)
    except (TypeError, ValueError):
        to_zeta = to_xi = ()
    if not (to_zeta and to_xi):
        raise ValueError(f"latent_dims must be two positive widths M1 and M2 and hidden two "
                         f"non-empty tuples of positive widths; got latent_dims="
                         f"{latent_dims!r}, hidden={hidden!r}")
    return m1, m2, (to_zeta, to_xi)
