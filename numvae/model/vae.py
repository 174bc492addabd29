"""The slides' VAE, composed of parts: encoder q_phi(z|x), reparameterisation, decoder
p_theta(x|z), prior and objective.

    encoder (a Sequential and one Dense head per posterior head)     numvae/model/vae.py
    posterior q(z|x): rsample, log_prob                              numvae/model/posteriors.py
    decoder (a Sequential ending in a Sigmoid)                       numvae/model/vae.py
    likelihood p(x|z): nll and its backward                          numvae/model/likelihoods.py
    prior p(z), the KL term and the objective                        numvae/model/priors.py, objectives.py

``forward`` returns a cache of every named quantity; ``backward(cache)`` consumes it and
returns every gradient it computed, as the named steps of docs/derivations.md, section
"The VAE's backward pass" (eqs. V1-V6).
"""
import numpy as np

from numvae.model.architectures import ARCHITECTURES
from numvae.model.kl import kl_part_of
from numvae.model.labels import check_labels, one_hot
from numvae.model.likelihoods import LIKELIHOODS
from numvae.model.objectives import OBJECTIVES
from numvae.model.posteriors import POSTERIORS
from numvae.model import size
from numvae.model.priors import PRIORS
from numvae.nn.layers import ACTIVATIONS, Dense, Sequential, Sigmoid
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


class Encoder:
    """compressor (the architecture's layers; the slides': Dense(input_dim, 256) - ReLU -
    Dense(256, shared_dim) - ReLU), then one head Dense(shared_dim, width) per head of the
    posterior (slides: "Setting up the encoder": ``mean`` and ``log_var``, each of width
    latent_dim)."""

    def __init__(self, compressor_layers, shared_dim, head_widths, rng, dtype):
        self.compressor = Sequential(*compressor_layers)
        self.heads = {name: Dense(shared_dim, width, rng=rng, dtype=dtype)
                      for name, width in head_widths.items()}

    def forward(self, x):
        """x: (batch, input_dim) -> {head: (batch, latent_dim)}, cache."""
        shared, compressor_cache = self.compressor.forward(x)
        heads = {name: head.forward(shared)[0] for name, head in self.heads.items()}
        return heads, dict(compressor=compressor_cache, shared=shared)

    def backward(self, dheads, cache):
        """{head: gradient} -> the gradient at the shared features and the compressor's steps.

        The heads share the compressor: their gradients meet there and are added (eq. V6).
        """
        parts = [head.backward(dheads[name], cache["shared"]) for name, head in self.heads.items()]
        dshared = parts[0]
        for part in parts[1:]:
            dshared = dshared + part
        steps = self.compressor.backward_steps(dshared, cache["compressor"], need_input_grad=False)
        return dict(shared=dshared, compressor=steps)


class Decoder:
    """decompressor: the architecture's layers up to the logits (the slides': Dense(latent_dim,
    32) - ReLU - Dense(32, 256) - ReLU - Dense(256, input_dim)), then a Sigmoid (slides:
    "Setting up the decoder"). The last layer gives the ``logits`` a, the Sigmoid the
    ``output`` sigmoid(a), read by the likelihood."""

    def __init__(self, layers):
        self.decompressor = Sequential(*layers, Sigmoid())
        self.to_logits = self.decompressor[:-1]  # the same layers, without the Sigmoid
        self.sigmoid = self.decompressor[-1]

    def forward(self, z):
        """z: (rows, latent_dim) -> (logits, output), each (rows, input_dim); cache."""
        logits, cache = self.to_logits.forward(z)
        return (logits, self.sigmoid.forward(logits)[0]), cache

    def backward_from_logits(self, dlogits, cache):
        """dL/dlogits -> the steps of ``Sequential.backward_steps``, entry 0 being dL/dz.
        The Sigmoid's backward belongs to the likelihood (the Bernoulli one fuses it)."""
        return self.to_logits.backward_steps(dlogits, cache)


class VAE:
    """The slides' VAE with hand-written gradients.

    Parameters
    ----------
    input_dim, shared_dim, latent_dim : int
        Data width (784 for MNIST), width of the encoder's shared layer, latent width.
    encoder_hidden, decoder_hidden : tuple of int
        Hidden widths of the compressor (before ``shared_dim``) and the decompressor.
    likelihood : a name in ``numvae.model.likelihoods.LIKELIHOODS``: "bernoulli" or "gaussian"
        p_theta(x|z): Bernoulli(sigmoid(a)) or N(sigmoid(a), sigma^2 I).
    sigma : float
        Standard deviation of the Gaussian likelihood (unused by the Bernoulli one).
    kl_weight : float
        Weight of the KL term in the training loss (1 gives the negative ELBO).
    n_samples : int
        Monte Carlo samples of z per example in the training loss.
    activation : a name in ``numvae.nn.layers.ACTIVATIONS``: "relu" (the slides') or "tanh"
    architecture : a name in ``numvae.model.architectures.ARCHITECTURES``: "mlp" (the slides'
        Dense layers) or "conv" (convolutions, for square images; hidden widths unused)
    n_classes : int or None
        A conditional VAE with C classes: the encoder reads [x, onehot(y)], the decoder
        [z, onehot(y)] (eq. CD1), and every batch comes with its labels y. None: the
        unconditional model (which ignores any labels it is given).
    posterior, prior, objective : names in ``POSTERIORS``, ``PRIORS``, ``OBJECTIVES``
    prior_components : int
        Components K of the "mixture" prior (a setting of that part only).
    flow_steps, flow_hidden : int, tuple of int
        Settings of the flow posterior (``posterior="iaf"``): its number of steps and the
        hidden widths of each step's MADE. Other posteriors ignore them.
    free_bits : float
        The floor tau, in nats per latent dimension, of ``objective="free_bits"`` (a
        setting of that part only).
    dtype : numpy float type
        float32 for training (the default); gradient checks use float64.
    seed : int or None
        Seeds ``self.rng``, the generator for initial weights and for ``eps``.
    max_memory : int, str or None
        The memory a model and a step may take (bytes, or '8G'; None: min(4 GiB, half the
        memory)): larger settings are refused before any allocation (``numvae.model.size``).

    ``params`` and ``grads`` are dicts with the same keys (e.g. ``"encoder.mean.W"``);
    ``params`` holds the very arrays an optimiser updates in place. ``config`` holds the
    settings, as constructor arguments, and is what a checkpoint stores.
    """

    def __init__(self, input_dim, shared_dim, latent_dim, *, encoder_hidden=(256,),
                 decoder_hidden=(32, 256), likelihood="bernoulli", sigma=1.0, kl_weight=1.0,
                 n_samples=1, activation="relu", posterior="diagonal_gaussian",
                 prior="standard_normal", objective="elbo", prior_components=10,
                 flow_steps=1, flow_hidden=(50,), architecture="mlp", n_classes=None,
                 free_bits=0.0, dtype=np.float32, seed=None, max_memory=None):
        check_vae_config(input_dim, shared_dim, latent_dim, sigma, kl_weight, n_samples, dtype,
                         seed)
        encoder_hidden = check_widths(encoder_hidden, "encoder_hidden")
        decoder_hidden = check_widths(decoder_hidden, "decoder_hidden")
        for value, name, registry in [(likelihood, "likelihood", LIKELIHOODS),
                                      (activation, "activation", ACTIVATIONS),
                                      (architecture, "architecture", ARCHITECTURES),
                                      (posterior, "posterior", POSTERIORS),
                                      (prior, "prior", PRIORS), (objective, "objective", OBJECTIVES)]:
            check_choice(value, name, registry)
        settings = dict(input_dim=int(input_dim), shared_dim=int(shared_dim),
                        latent_dim=int(latent_dim), sigma=float(sigma),
                        kl_weight=float(kl_weight), n_samples=int(n_samples),
                        prior_components=prior_components, flow_steps=flow_steps,
                        flow_hidden=flow_hidden, free_bits=free_bits)
        # sizes first: settings of 10**9 are refused here, before any array is allocated
        self.budget = size.check_model(
            dict(settings, encoder_hidden=encoder_hidden, decoder_hidden=decoder_hidden,
                 architecture=architecture, posterior=posterior, prior=prior,
                 n_classes=n_classes), np.dtype(dtype).itemsize, max_memory)
        self.dtype = np.dtype(dtype)
        self.rng = np.random.default_rng(seed)
        # each part reads its own settings; parts with parameters draw them from self.rng
        self.likelihood, self.posterior, self.prior, self.objective = (
            registry[name].from_config(settings, self.rng, self.dtype)
            for registry, name in [(LIKELIHOODS, likelihood), (POSTERIORS, posterior),
                                   (PRIORS, prior), (OBJECTIVES, objective)])
        network = ARCHITECTURES[architecture].from_config(
            dict(encoder_hidden=encoder_hidden, decoder_hidden=decoder_hidden))
        self.config = dict(input_dim=int(input_dim), shared_dim=int(shared_dim),
                           latent_dim=int(latent_dim), architecture=architecture,
                           **network.settings(), activation=activation)
        for kind in ("likelihood", "posterior", "prior", "objective"):
            part = getattr(self, kind)
            self.config.update({kind: part.name, **part.settings()})
        try:  # a pair with no KL (a point mass under the ELBO) is refused here, not at a step
            kl_part_of(self)
        except ValueError as err:
            raise ValueError(f"objective {objective!r}: {err}") from None
        self.n_classes = 0 if n_classes is None else check_positive_int(n_classes, "n_classes")
        if n_classes is not None:  # only a conditional model has the setting
            self.config["n_classes"] = self.n_classes
        c, rng, dtype, n_extra = self.config, self.rng, self.dtype, self.n_classes
        self.encoder = Encoder(network.compressor(c["input_dim"], c["shared_dim"], activation,
                                                  rng, dtype, n_extra),
                               c["shared_dim"], self.posterior.head_widths(c["latent_dim"]),
                               rng, dtype)
        self.decoder = Decoder(network.decompressor(c["latent_dim"], c["input_dim"], activation,
                                                    rng, dtype, n_extra))
        self._gather_parameters()

    @property
    def input_dim(self):
        return self.config["input_dim"]

    @property
    def latent_dim(self):
        return self.config["latent_dim"]

    @property
    def n_samples(self):
        return self.objective.n_samples

    def _layers_with_parameters(self):
        """(name, layer) pairs in the order of the slides' modules."""
        for index, layer in enumerate(self.encoder.compressor.layers):
            if layer.params:
                yield f"encoder.compressor.{index}", layer
        for name, head in self.encoder.heads.items():
            yield f"encoder.{name}", head
        for index, layer in enumerate(self.decoder.decompressor.layers):
            if layer.params:
                yield f"decoder.decompressor.{index}", layer
        # parts with parameters of their own (a flow posterior, a mixture prior)
        for kind in ("posterior", "prior"):
            part = getattr(self, kind)
            if getattr(part, "params", None):
                yield kind, part

    def _gather_parameters(self):
        """Move every parameter and gradient into one flat array each, ``flat_params`` and
        ``flat_grads`` (n_params,), each part keeping views into them; name the views in
        ``params`` and ``grads``. Why: Adam's fast path can then update the whole model in
        one sweep instead of a dozen NumPy calls per array (``numvae.training.optim_fast``)."""
        layers = list(self._layers_with_parameters())
        total = sum(value.size for _, layer in layers for value in layer.params.values())
        self.flat_params = np.empty(total, self.dtype)
        self.flat_grads = np.zeros(total, self.dtype)
        self.params, self.grads = {}, {}
        offset = 0
        for prefix, layer in layers:
            for key, value in layer.params.items():
                span = slice(offset, offset + value.size)
                layer.params[key] = self.flat_params[span].reshape(value.shape)
                layer.params[key][...] = value
                layer.grads[key] = self.flat_grads[span].reshape(value.shape)
                self.params[f"{prefix}.{key}"] = layer.params[key]
                self.grads[f"{prefix}.{key}"] = layer.grads[key]
                offset += value.size

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"VAE({args}, dtype={self.dtype.name})"

    def n_params(self):
        return self.flat_params.size

    # --- data in, data out ----------------------------------------------------------

    def check_data(self, x, name="x"):
        """A batch (batch, input_dim) of finite values the likelihood can model, in ``dtype``."""
        return check_data(x, self.input_dim, self.dtype, name, support=self.likelihood.check_data)

    def check_labels(self, y, batch):
        """The labels y (batch,) of a conditional model, checked (integers in [0, n_classes));
        None for an unconditional model, which ignores them."""
        return check_labels(y, self.n_classes, batch) if self.n_classes else None

    def condition(self, a, y):
        """[a, onehot(y)] (eq. CD1): the encoder's input (a = x) or the decoder's (a = z) of a
        conditional model; a (rows, width), rows = S * batch for S draws per example (the
        labels repeat). y: checked labels (``check_labels``), or None: ``a`` itself."""
        if y is None:
            return a
        return np.concatenate([a, np.tile(one_hot(y, self.n_classes, a.dtype),
                                          (len(a) // len(y), 1))], axis=1)

    def encode(self, x, y=None):
        """The heads of q_phi(z|x) (mean, log_var for the slides'): x (batch, input_dim) ->
        a tuple of (batch, latent_dim) arrays, in the order of ``posterior.heads``. A
        conditional model needs the labels y (batch,)."""
        x = self.check_data(x)
        heads, _ = self.encoder.forward(self.condition(x, self.check_labels(y, len(x))))
        return tuple(heads[name] for name in self.posterior.heads)

    def decode(self, z, y=None):
        """Decoder output sigmoid(a) (Bernoulli probabilities / Gaussian mean) for z (batch,
        latent_dim); a conditional model needs the labels y (batch,)."""
        z = check_latent(z, self.latent_dim, self.dtype)
        return self.decoder.forward(self.condition(z, self.check_labels(y, len(z))))[0][1]

    def sample(self, n, rng=None, *, y=None):
        """n draws of the decoder output for z ~ p(z): (n, input_dim). A conditional model
        draws digit y (n,); by default every class in turn, 0, 1, ..., C - 1, 0, 1, ..."""
        rng = self.rng if rng is None else rng
        n = check_positive_int(n, "n")
        if y is None and self.n_classes:
            y = np.arange(n) % self.n_classes
        return self.decode(self.prior.sample(n, rng), y)

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
        kl_weight: None for the model's own, or another (KL warm-up).
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
        """The forward pass with its loss terms and no gradient: ``reconstruction`` (batch,),
        the Monte Carlo average over the S samples of -log p(x|z); ``kl`` (batch,); ``loss``,
        the float mean over the batch of reconstruction + kl_weight * kl (see ``forward``)."""
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

    # --- copies -----------------------------------------------------------------------

    def copy(self, dtype=None):
        """A deep copy, optionally in another dtype (``model.copy(np.float64)`` for gradient checks)."""
        dtype = self.dtype if dtype is None else dtype
        clone = VAE(**self.config, dtype=dtype, max_memory=self.budget.limit)
        for name, value in self.params.items():
            clone.params[name][...] = value
        clone.rng.bit_generator.state = self.rng.bit_generator.state
        return clone
