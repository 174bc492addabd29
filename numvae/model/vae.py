"""The slides' VAE, composed of parts: encoder q_phi(z|x), reparameterisation, decoder
p_theta(x|z), prior and objective (the networks in numvae/model/networks.py; the parts in
likelihoods.py, posteriors.py, priors.py, kl.py and objectives.py beside it).

Read top to bottom: construction, forward, backward, then the verbs ``encode``,
``expected_z``, ``decode`` and ``sample``. ``forward`` returns a cache of every named
quantity; ``backward(cache)`` consumes it and returns every gradient it computed, as the
named steps of docs/derivations.md, section "The VAE's backward pass" (eqs. V1-V6).
"""
import warnings

import numpy as np

from numvae.model import size
from numvae.model.architectures import ARCHITECTURES
from numvae.model.kl import kl_part_of
from numvae.model.labels import check_labels, condition
from numvae.model.networks import Decoder, Encoder, parameter_owners
from numvae.model.parts import (
    PART_KINDS,
    build_parts,
    deprecated_settings,
    flat_settings,
    part_entry,
)
from numvae.nn.layers import ACTIVATIONS, Owned
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


class VAE:
    """The slides' VAE with hand-written gradients.

    The network's settings:
    input_dim, shared_dim, latent_dim: data width (784 for MNIST), the encoder's shared
        layer's width, latent width; encoder_hidden, decoder_hidden: hidden widths;
    activation: "relu" (the slides') or "tanh" (``numvae.nn.layers.ACTIVATIONS``);
    architecture: "mlp" (the slides' Dense layers) or "conv" (square images);
    n_classes: C for a conditional VAE, whose encoder reads [x, onehot(y)] and decoder
        [z, onehot(y)] (eq. CD1); None: unconditional (any labels are ignored);
    dtype: float32 for training, float64 for gradient checks;
    seed: seeds ``self.rng``, the generator of eps and of every initial value: the parts'
        first (posterior, prior), then the encoder's and the decoder's;
    max_memory: what a model and a step may take (bytes, or '8G'; None: min(4 GiB, half
        the memory)): larger settings are refused before any allocation (``size``).
    Its parts, each an object with its settings or a registry name (default settings):
    likelihood (``Gaussian(sigma=0.5)``), posterior (``IAF(steps=2, hidden=(200,))``), prior
    (``GaussianMixture(components=10)``), objective (``ELBO(kl_weight=0.5, n_samples=2)``,
    ``IWAE(k=5)``). The model builds its own copy of each part (``build``).
    0.2's keywords sigma, kl_weight, n_samples, prior_components, flow_steps, flow_hidden
    still set the parts named by strings, with a DeprecationWarning; they go in 0.4.

    ``params`` and ``grads`` are dicts with the same keys (e.g. ``"encoder.mean.W"``);
    ``params`` holds the very arrays an optimiser updates in place. ``config`` holds the
    settings, part by part, as a checkpoint stores them (``VAE.from_config`` reads it).
    """

    def __init__(self, input_dim, shared_dim, latent_dim, *, encoder_hidden=(256,),
                 decoder_hidden=(32, 256), activation="relu", architecture="mlp",
                 n_classes=None, dtype=np.float32, seed=None, likelihood="bernoulli",
                 posterior="diagonal_gaussian", prior="standard_normal", objective="elbo",
                 max_memory=None, **deprecated):
        check_vae_config(input_dim, shared_dim, latent_dim, dtype, seed)
        widths = (check_widths(encoder_hidden, "encoder_hidden"),
                  check_widths(decoder_hidden, "decoder_hidden"))
        check_choice(activation, "activation", ACTIVATIONS)
        check_choice(architecture, "architecture", ARCHITECTURES)
        specs = dict(likelihood=likelihood, posterior=posterior, prior=prior, objective=objective)
        parts = build_parts(specs, deprecated_settings(deprecated))
        # sizes first: settings of 10**9 are refused here, before any array is allocated
        settings = dict(input_dim=input_dim, shared_dim=shared_dim, latent_dim=latent_dim,
                        encoder_hidden=widths[0], decoder_hidden=widths[1],
                        architecture=architecture, n_classes=n_classes)
        for kind, part in parts.items():
            settings.update({kind: part.name, **flat_settings(part)})
        self.budget = size.check_model(settings, np.dtype(dtype).itemsize, max_memory)
        self.dtype, self.rng = np.dtype(dtype), np.random.default_rng(seed)
        self.latent_dim = int(latent_dim)
        for kind in PART_KINDS:  # the model's own copy, its initial values drawn from self.rng
            fresh = type(parts[kind])(**parts[kind].settings())
            setattr(self, kind, fresh.build(self.latent_dim, self.rng, self.dtype))
        try:  # a pair with no KL (a point mass under the ELBO) is refused here, not at a step
            kl_part_of(self)
        except ValueError as err:
            raise ValueError(f"objective {self.objective.name!r}: {err}") from None
        self.n_classes = 0 if n_classes is None else check_positive_int(n_classes, "n_classes")
        self.network = ARCHITECTURES[architecture].from_config(
            dict(encoder_hidden=widths[0], decoder_hidden=widths[1]))
        self.network_config = dict(input_dim=int(input_dim), shared_dim=int(shared_dim),
                                   latent_dim=self.latent_dim, **self.network.settings(),
                                   activation=activation)
        if n_classes is not None:  # only a conditional model has the setting
            self.network_config["n_classes"] = self.n_classes
        self.input_dim = int(input_dim)
        rng, extra = self.rng, self.n_classes
        self.encoder = Encoder(self.network.compressor(input_dim, shared_dim, activation, rng,
                                                       self.dtype, extra),
                               int(shared_dim), self.posterior.head_widths(self.latent_dim),
                               rng, self.dtype)
        self.decoder = Decoder(self.network.decompressor(latent_dim, input_dim, activation, rng,
                                                         self.dtype, extra))
        owners = list(self.parameter_owners())
        self.params = Owned({name: (layer.params, key) for name, layer, key in owners})
        self.grads = Owned({name: (layer.grads, key) for name, layer, key in owners})

    @classmethod
    def from_config(cls, config, seed=None, max_memory=None):
        """The model that ``config`` (the shape of ``VAE.config``) describes."""
        network = dict(config["architecture"])
        architecture = network.pop("name")
        return cls(**network, architecture=architecture, dtype=config["dtype"], seed=seed,
                   max_memory=max_memory, **{kind: config[kind] for kind in PART_KINDS})

    @property
    def config(self):
        """The settings, part by part, as checkpoints store them: {"architecture": {"name":
        "mlp", "input_dim": 784, ...}, "likelihood": {"name": "gaussian", "sigma": 0.5},
        "posterior": ..., "prior": ..., "objective": ..., "dtype": "float32"}."""
        return {"architecture": {"name": self.network.name, **self.network_config},
                **{kind: part_entry(getattr(self, kind)) for kind in PART_KINDS},
                "dtype": self.dtype.name}

    @property
    def n_samples(self):
        return self.objective.n_samples

    def parameter_owners(self):
        """(name, owner, key) of every parameter, in the order of the slides' modules
        (``numvae.model.networks.parameter_owners``)."""
        return parameter_owners(self.encoder, self.decoder, [("posterior", self.posterior),
                                                             ("prior", self.prior)])

    def __repr__(self):
        network = ", ".join(f"{k}={v!r}" for k, v in self.network_config.items())
        parts = ", ".join(f"{kind}={type(getattr(self, kind)).__name__}("
                          + ", ".join(f"{k}={v!r}" for k, v in getattr(self, kind).settings().items())
                          + ")" for kind in PART_KINDS)
        return f"VAE({network}, architecture={self.network.name!r}, {parts}, dtype={self.dtype.name})"

    def n_params(self):
        return sum(value.size for value in self.params.values())

    def copy(self, dtype=None):
        """A deep copy, optionally in another dtype (``model.copy(np.float64)`` for gradient checks)."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        clone = VAE.from_config({**self.config, "dtype": dtype.name}, max_memory=self.budget.limit)
        for name, value in self.params.items():
            clone.params[name][...] = value
        clone.rng.bit_generator.state = self.rng.bit_generator.state
        return clone

    # --- data in ----------------------------------------------------------------------

    def check_data(self, x, name="x"):
        """A batch (batch, input_dim) of finite values the likelihood can model, in ``dtype``."""
        return check_data(x, self.input_dim, self.dtype, name, support=self.likelihood.check_data)

    def check_labels(self, y, batch):
        """The labels y (batch,) of a conditional model, checked (integers in [0, n_classes));
        None for an unconditional model, which ignores them."""
        return check_labels(y, self.n_classes, batch) if self.n_classes else None

    def condition(self, a, y):
        """[a, onehot(y)] (eq. CD1), or ``a`` for y None (``numvae.model.labels.condition``)."""
        return condition(a, y, self.n_classes)

    def draw_eps(self, batch_size, n_samples=None):
        """eps ~ N(0, I) of shape (n_samples, batch, latent_dim), from ``self.rng``."""
        n_samples = self.n_samples if n_samples is None else n_samples
        eps = self.rng.standard_normal((n_samples, batch_size, self.latent_dim))
        return eps.astype(self.dtype, copy=False)

    # --- forward and backward ---------------------------------------------------------

    def forward(self, x, eps=None, *, y=None, kl_weight=None):
        """The forward pass and the loss terms (eq. V1), with z from the posterior's
        reparameterisation (eq. R1 for the slides').

        x: (batch, input_dim). eps: None (drawn from ``self.rng``), (batch, latent_dim) or
        (S, batch, latent_dim). y: the labels (batch,) of a conditional model (eq. CD1).
        kl_weight: None for the objective's own, or another (KL warm-up).
        Returns the cache: the named quantities ``x``, the posterior's (``mean, log_var,
        std, eps`` (S, batch, latent_dim)), ``z`` (S * batch, latent_dim), ``logits,
        output`` (S * batch, input_dim), the terms ``reconstruction, kl`` (batch,) and
        ``loss`` (float), and what ``backward`` needs.
        """
        x = self.check_data(x)
        batch = x.shape[0]
        y = self.check_labels(y, batch)
        eps = (self.draw_eps(batch) if eps is None
               else check_eps(eps, batch, self.latent_dim, self.dtype))
        kl_weight = (self.objective.kl_weight if kl_weight is None
                     else check_nonnegative_float(kl_weight, "kl_weight"))
        n_samples = eps.shape[0]
        self.budget.check_step(batch, n_samples)  # two products: sizes before memory
        x_rows = x if n_samples == 1 else np.tile(x, (n_samples, 1))  # row s * batch + b
        # a diverging model overflows somewhere in here: reported by name below, not by a warning
        with np.errstate(over="ignore", invalid="ignore"):
            heads, encoder_cache = self.encoder.forward(self.condition(x, y))
            z, posterior_cache = self.posterior.rsample(heads, eps)
            (logits, output), decoder_cache = self.decoder.forward(self.condition(z, y))
            nll = self.likelihood.nll(logits, x_rows, output).reshape(n_samples, batch)
            terms, objective_cache = self.objective.forward(nll, z, posterior_cache,
                                                            self.posterior, self.prior, kl_weight)
        if not np.isfinite(terms["loss"]):
            part = "reconstruction" if not np.isfinite(terms["reconstruction"]).all() else "KL"
            raise NumericalError(f"the loss is not finite ({part} term: {terms['loss']}); "
                                 f"training has diverged, try a smaller learning rate")
        caches = dict(encoder=encoder_cache, posterior=posterior_cache, decoder=decoder_cache,
                      objective=objective_cache)
        return dict(x=x, y=y, x_rows=x_rows, **posterior_cache, z=z, logits=logits,
                    output=output, **terms, caches=caches)

    def backward(self, cache):
        """The gradient of ``cache["loss"]``, written into ``self.grads`` (eqs. V2-V6).

        Returns every intermediate gradient by name (the inspector shows them): the
        likelihood's steps, ``dlogits``, the decoder's ``decoder_steps``, ``dz``, each
        head's gradient from z, from the KL and their sum, and the encoder's steps.
        """
        caches = cache["caches"]
        # a part's own parameters (a flow's) get gradient along two paths, through z and
        # through log q, each adding into the part's grads: start at zero (PyTorch's zero_grad)
        for part in (self.posterior, self.prior):
            for grad in getattr(part, "grads", {}).values():
                grad[...] = 0.0
        # a diverging model overflows somewhere in here: fit names the non-finite gradient
        with np.errstate(over="ignore", invalid="ignore"):
            # V2: from the loss back through the likelihood and the decoder to z
            dnll, dz_kl, dheads_kl = self.objective.backward(caches["objective"])
            dlogits, likelihood_steps = self.likelihood.nll_backward(
                dnll, cache["logits"], cache["x_rows"], cache["output"])
            decoder_steps = self.decoder.backward_from_logits(dlogits, caches["decoder"])
            dz = decoder_steps[0][:, :self.latent_dim]  # CD1: the labels' columns are data
            dz = dz if dz_kl is None else dz + dz_kl
            # V3: through the reparameterisation, to the posterior's heads
            dheads_z = self.posterior.rsample_backward(dz, caches["posterior"])
            # V4 (the KL's gradient, above) and V5: the two paths meet at each head and add
            dheads = {name: dheads_z[name] + dheads_kl[name] for name in dheads_z}
            # V6: through the encoder's heads and shared compressor
            encoder_steps = self.encoder.backward(dheads, caches["encoder"])
        return dict(likelihood=likelihood_steps, dlogits=dlogits, decoder_steps=decoder_steps,
                    dz=dz, dheads_from_z=dheads_z, dheads_from_kl=dheads_kl, dheads=dheads,
                    encoder_steps=encoder_steps)

    def loss_terms(self, x, eps=None, *, y=None, kl_weight=None):
        """``forward`` under its 0.2 name (deprecated: it goes in 0.4)."""
        warnings.warn("VAE.loss_terms is deprecated and goes in numvae 0.4: call "
                      "VAE.forward, which returns the same cache", DeprecationWarning,
                      stacklevel=2)
        return self.forward(x, eps, y=y, kl_weight=kl_weight)

    def loss(self, x, eps=None, *, y=None):
        """The training loss (mean negative ELBO per example, in nats, at kl_weight = 1)."""
        return self.forward(x, eps, y=y)["loss"]

    def loss_and_grad(self, x, eps=None, *, y=None, kl_weight=None):
        """Training loss (eq. V1) and its exact gradient, written into ``self.grads``.

        loss = (1/B) sum_b [ (1/S) sum_s -log p(x_b | z_bs) + kl_weight * KL_b ].
        Returns the loss as a float.
        """
        cache = self.forward(x, eps, y=y, kl_weight=kl_weight)
        self.backward(cache)
        return cache["loss"]

    # --- the verbs: encode, expected_z, decode, sample --------------------------------

    def encode(self, x, y=None):
        """The parameters of q_phi(z|x) (mean, log_var for the slides'): x (batch,
        input_dim) -> a tuple of (batch, width) arrays, in the order of
        ``posterior.heads``. A conditional model needs the labels y (batch,)."""
        x = self.check_data(x)
        heads, _ = self.encoder.forward(self.condition(x, self.check_labels(y, len(x))))
        return tuple(heads[name] for name in self.posterior.heads)

    def expected_z(self, x, y=None, rng=None):
        """E_q[z|x]: (batch, latent_dim); the ``mean`` head of a Gaussian, an average of
        draws from ``rng`` (default ``self.rng``) for a flow."""
        heads = dict(zip(self.posterior.heads, self.encode(x, y)))
        return self.posterior.expected_z(heads, self.rng if rng is None else rng)

    def decode(self, z, y=None, *, logits=False):
        """Decoder output sigmoid(a) (Bernoulli probabilities / Gaussian mean) for z (rows,
        latent_dim), or its pre-activation a with ``logits=True``: (rows, input_dim). A
        conditional model needs the labels y (batch,), rows = S * batch (they repeat)."""
        z = check_latent(z, self.latent_dim, self.dtype)
        y = self.check_labels(y, len(z) if y is None or not len(y) or len(z) % len(y) else len(y))
        (a, output), _ = self.decoder.forward(self.condition(z, y))
        return a if logits else output

    def sample(self, n, rng=None, *, y=None):
        """n draws of the decoder output for z ~ p(z): (n, input_dim), from ``rng`` (default
        ``self.rng``). A conditional model draws digit y (n,); by default every class in
        turn, 0, 1, ..., C - 1, 0, 1, ..."""
        rng = self.rng if rng is None else rng
        n = check_positive_int(n, "n")
        if y is None and self.n_classes:
            y = np.arange(n) % self.n_classes
        return self.decode(self.prior.sample(n, rng), y)

