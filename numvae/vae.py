"""The VAE of the slides: encoder q_phi(z|x), reparameterisation, decoder p_theta(x|z).

The backward pass of ``VAE.loss_and_grad`` is spelled out as the named steps of
docs/derivations.md, section "The VAE's backward pass" (eqs. V1-V6).
"""
import numpy as np

from . import losses
from .layers import Dense, ReLU, Sequential, Sigmoid
from .validation import check_data, check_eps, check_latent, check_vae_config

LIKELIHOODS = ("bernoulli", "gaussian")


def _mlp(sizes, rng, dtype):
    """Dense-ReLU pairs through ``sizes`` (a list of widths), as a flat layer list."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(n_in, n_out, rng=rng, dtype=dtype), ReLU()]
    return layers


class Encoder:
    """q_phi(z|x) = N(mean, diag(exp(log_var))) (slides: "Setting up the encoder").

    compressor: Dense(input_dim, 256) - ReLU - Dense(256, shared_dim) - ReLU,
    then two heads Dense(shared_dim, latent_dim) for ``mean`` and ``log_var``.
    """

    def __init__(self, input_dim, shared_dim, latent_dim, hidden, rng, dtype):
        self.compressor = Sequential(*_mlp([input_dim, *hidden, shared_dim], rng, dtype))
        self.mean = Dense(shared_dim, latent_dim, rng=rng, dtype=dtype)
        self.log_var = Dense(shared_dim, latent_dim, rng=rng, dtype=dtype)

    def forward(self, x):
        """x: (batch, input_dim) -> mean, log_var: (batch, latent_dim)."""
        shared = self.compressor.forward(x)
        return self.mean.forward(shared), self.log_var.forward(shared)

    def backward(self, dmean, dlog_var):
        """The two heads share the compressor: their gradients meet there and are added."""
        self.dshared = self.mean.backward(dmean) + self.log_var.backward(dlog_var)
        self.compressor.backward(self.dshared, need_input_grad=False)


class Decoder:
    """p_theta(x|z) (slides: "Setting up the decoder").

    decompressor: Dense(latent_dim, 32) - ReLU - Dense(32, 256) - ReLU - Dense(256, input_dim)
    - Sigmoid. The last Dense gives the ``logits`` a, the Sigmoid the ``output`` sigmoid(a):
    Bernoulli probabilities, or the Gaussian mean mu_theta(z).
    """

    def __init__(self, latent_dim, input_dim, hidden, rng, dtype):
        widths = [latent_dim, *hidden]
        layers = _mlp(widths, rng, dtype)
        layers += [Dense(widths[-1], input_dim, rng=rng, dtype=dtype), Sigmoid()]
        self.decompressor = Sequential(*layers)
        self.to_logits = self.decompressor[:-1]  # the same layers, without the Sigmoid
        self.sigmoid = self.decompressor[-1]

    def forward(self, z):
        """z: (batch, latent_dim) -> logits, output: (batch, input_dim)."""
        logits = self.to_logits.forward(z)
        return logits, self.sigmoid.forward(logits)

    def backward_from_logits(self, dlogits):
        """dL/dlogits -> dL/dz. The Sigmoid's backward is left to the caller: the
        Bernoulli loss fuses it (dL/dlogits = sigmoid(a) - x), the Gaussian one does not."""
        return self.to_logits.backward(dlogits)


class VAE:
    """The slides' VAE with hand-written gradients.

    Parameters
    ----------
    input_dim, shared_dim, latent_dim : int
        Data width (784 for MNIST), width of the encoder's shared layer, latent width.
    encoder_hidden, decoder_hidden : tuple of int
        Hidden widths of the compressor (before ``shared_dim``) and the decompressor.
    likelihood : "bernoulli" or "gaussian"
        p_theta(x|z): Bernoulli(sigmoid(a)) or N(sigmoid(a), sigma^2 I).
    sigma : float
        Standard deviation of the Gaussian likelihood (ignored for Bernoulli).
    kl_weight : float
        Weight of the KL term in the training loss (1 gives the exact negative ELBO).
    n_samples : int
        Monte Carlo samples of z per example in the training loss.
    dtype : numpy float type
        float32 for training (the default); gradient checks use float64.
    seed : int or None
        Seeds ``self.rng``, the generator for initial weights and for ``eps``.

    ``params`` and ``grads`` are dicts with the same keys (e.g. ``"encoder.mean.W"``);
    ``params`` holds the very arrays an optimiser updates in place.
    """

    def __init__(self, input_dim, shared_dim, latent_dim, *, encoder_hidden=(256,),
                 decoder_hidden=(32, 256), likelihood="bernoulli", sigma=1.0, kl_weight=1.0,
                 n_samples=1, dtype=np.float32, seed=None):
        check_vae_config(input_dim, shared_dim, latent_dim, encoder_hidden, decoder_hidden,
                         likelihood, sigma, kl_weight, n_samples, dtype, seed)
        self.config = dict(input_dim=int(input_dim), shared_dim=int(shared_dim),
                           latent_dim=int(latent_dim),
                           encoder_hidden=tuple(int(h) for h in encoder_hidden),
                           decoder_hidden=tuple(int(h) for h in decoder_hidden),
                           likelihood=likelihood, sigma=float(sigma),
                           kl_weight=float(kl_weight), n_samples=int(n_samples))
        self.input_dim, self.latent_dim = int(input_dim), int(latent_dim)
        self.likelihood, self.sigma = likelihood, float(sigma)
        self.kl_weight, self.n_samples = float(kl_weight), int(n_samples)
        self.dtype = np.dtype(dtype)
        self.rng = np.random.default_rng(seed)
        self.encoder = Encoder(input_dim, shared_dim, latent_dim, self.config["encoder_hidden"],
                               self.rng, self.dtype)
        self.decoder = Decoder(latent_dim, input_dim, self.config["decoder_hidden"],
                               self.rng, self.dtype)
        self._gather_parameters()

    def _dense_layers(self):
        """(name, Dense layer) pairs in the order of the slides' modules."""
        for index, layer in enumerate(self.encoder.compressor.layers):
            if isinstance(layer, Dense):
                yield f"encoder.compressor.{index}", layer
        yield "encoder.mean", self.encoder.mean
        yield "encoder.log_var", self.encoder.log_var
        for index, layer in enumerate(self.decoder.decompressor.layers):
            if isinstance(layer, Dense):
                yield f"decoder.decompressor.{index}", layer

    def _gather_parameters(self):
        """Move every parameter and gradient into one flat array each, ``flat_params`` and
        ``flat_grads`` (n_params,), each layer keeping views into them; name the views in
        ``params`` and ``grads``. Why: Adam can then update the whole model in one sweep of
        a dozen NumPy calls instead of a dozen calls per array (see ``numvae.optim``)."""
        layers = list(self._dense_layers())
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

    # --- forward ----------------------------------------------------------------------

    def encode(self, x):
        """mean, log_var of q_phi(z|x): x (batch, input_dim) -> two (batch, latent_dim)."""
        x = check_data(x, self.input_dim, self.likelihood, self.dtype)
        return self.encoder.forward(x)

    def decode(self, z):
        """Decoder output sigmoid(a) (Bernoulli probabilities / Gaussian mean) for z (batch, latent_dim)."""
        z = check_latent(z, self.latent_dim, self.dtype)
        return self.decoder.forward(z)[1]

    def sample(self, n, rng=None):
        """n draws of the decoder output for z ~ p(z) = N(0, I): (n, input_dim)."""
        rng = self.rng if rng is None else rng
        return self.decode(rng.standard_normal((n, self.latent_dim)))

    def draw_eps(self, batch_size, n_samples=None):
        """eps ~ N(0, I) of shape (n_samples, batch, latent_dim), from ``self.rng``."""
        n_samples = self.n_samples if n_samples is None else n_samples
        eps = self.rng.standard_normal((n_samples, batch_size, self.latent_dim))
        return eps.astype(self.dtype, copy=False)

    def forward(self, x, eps=None):
        """One forward pass with the reparameterisation z = mean + exp(0.5 log_var) * eps (eq. R1).

        x: (batch, input_dim). eps: None (drawn from ``self.rng``), (batch, latent_dim), or
        (n_samples, batch, latent_dim). Returns a dict of the named quantities
        ``mean, log_var, std, eps`` ((S, batch, latent_dim) for eps), ``z``
        (S * batch, latent_dim), ``logits, output`` (S * batch, input_dim); the same dict
        is kept as ``self.cache`` for the backward pass.
        """
        x = check_data(x, self.input_dim, self.likelihood, self.dtype)
        batch = x.shape[0]
        eps = (self.draw_eps(batch) if eps is None
               else check_eps(eps, batch, self.latent_dim, self.dtype))
        mean, log_var = self.encoder.forward(x)                       # (batch, latent_dim)
        std = losses.safe_exp(0.5 * log_var, "0.5 * log_var")         # sigma = exp(log_var / 2)
        z = (mean + std * eps).reshape(-1, self.latent_dim)           # (S * batch, latent_dim)
        logits, output = self.decoder.forward(z)                      # (S * batch, input_dim)
        self.cache = dict(x=x, mean=mean, log_var=log_var, std=std, eps=eps, z=z,
                          logits=logits, output=output)
        return self.cache

    # --- loss -------------------------------------------------------------------------

    def reconstruction_nll(self, x, logits, output):
        """-log p_theta(x|z) per row (eq. B3 or G1): (rows, input_dim) -> (rows,)."""
        if self.likelihood == "bernoulli":
            return losses.bernoulli_nll(logits, x)
        return losses.gaussian_nll(output, x, self.sigma)

    def loss_terms(self, x, eps=None):
        """Forward pass and the per-example loss terms (no gradient).

        Returns a dict with ``reconstruction`` (batch,), the Monte Carlo average over the
        S samples of -log p(x|z); ``kl`` (batch,), the analytic KL; and ``loss``, the float
        mean over the batch of reconstruction + kl_weight * kl.
        """
        # a diverging model overflows somewhere in here: report it by name below, not by a warning
        with np.errstate(over="ignore", invalid="ignore"):
            c = self.forward(x, eps)
            n_samples, batch = c["eps"].shape[:2]
            x_rows = c["x"] if n_samples == 1 else np.tile(c["x"], (n_samples, 1))
            reconstruction = self.reconstruction_nll(x_rows, c["logits"], c["output"])
            reconstruction = reconstruction.reshape(n_samples, batch).mean(axis=0)
            kl = losses.kl_divergence(c["mean"], c["log_var"])
            loss = float(np.mean(reconstruction + self.kl_weight * kl))
        if not np.isfinite(loss):
            part = "reconstruction" if not np.isfinite(reconstruction).all() else "KL"
            raise losses.NumericalError(f"the loss is not finite ({part} term: {loss}); "
                                        f"training has diverged, try a smaller learning rate")
        self.terms = dict(reconstruction=reconstruction, kl=kl, loss=loss, x_rows=x_rows)
        return self.terms

    def loss(self, x, eps=None):
        """The training loss (mean negative ELBO per example, in nats, at kl_weight = 1)."""
        return self.loss_terms(x, eps)["loss"]

    def loss_and_grad(self, x, eps=None):
        """Training loss (eq. V1) and its exact gradient, written into ``self.grads``.

        loss = (1/B) sum_b [ (1/S) sum_s -log p(x_b | z_bs) + kl_weight * KL_b ].
        Returns the loss as a float.
        """
        terms = self.loss_terms(x, eps)
        # a diverging model overflows somewhere in the backward pass: fit then reports the
        # non-finite gradient by name, instead of a warning from deep inside NumPy
        with np.errstate(over="ignore", invalid="ignore"):
            self.backward()
        return terms["loss"]

    def backward(self):
        """Gradient of the last ``loss_terms`` loss, into ``self.grads`` (eqs. V2-V6)."""
        c, terms = self.cache, self.terms
        n_samples, batch = c["eps"].shape[:2]
        rows = n_samples * batch  # each (sample, example) row carries weight 1 / (S B)

        # V2: reconstruction gradient, from the loss back through the decoder to z.
        if self.likelihood == "bernoulli":
            dlogits = losses.bernoulli_nll_backward(c["logits"], terms["x_rows"],
                                                    probs=c["output"])               # B4
            dlogits /= rows  # in place: a new array from the line above
            doutput = None  # fused: the Sigmoid's own backward is skipped
        else:
            doutput = losses.gaussian_nll_backward(c["output"], terms["x_rows"], self.sigma) / rows
            dlogits = self.decoder.sigmoid.backward(doutput)                             # D4
        dz = self.decoder.backward_from_logits(dlogits)                 # (S * batch, latent_dim), like z
        dz_per_sample = dz.reshape(n_samples, batch, self.latent_dim)

        # V3: reparameterisation z = mean + exp(0.5 log_var) * eps:
        #     dz/dmean = 1, dz/dlog_var = 0.5 * exp(0.5 log_var) * eps; sum over the S samples.
        dmean_from_z = dz_per_sample.sum(axis=0)
        dlog_var_from_z = (dz_per_sample * (0.5 * c["std"] * c["eps"])).sum(axis=0)

        # V4: analytic KL gradient, dKL/dmean = mean, dKL/dlog_var = 0.5 (exp(log_var) - 1).
        dmean_kl, dlog_var_kl = losses.kl_divergence_backward(c["mean"], c["log_var"])
        kl_scale = self.kl_weight / batch

        # V5: the two paths meet at mean and log_var: their gradients are added.
        dmean = dmean_from_z + kl_scale * dmean_kl
        dlog_var = dlog_var_from_z + kl_scale * dlog_var_kl

        # V6: through the encoder's heads and shared compressor.
        self.encoder.backward(dmean, dlog_var)
        self.backward_cache = dict(doutput=doutput, dlogits=dlogits, dz=dz, dmean_from_z=dmean_from_z,
                                   dlog_var_from_z=dlog_var_from_z, dmean_kl=kl_scale * dmean_kl,
                                   dlog_var_kl=kl_scale * dlog_var_kl, dmean=dmean,
                                   dlog_var=dlog_var)

    # --- copies -----------------------------------------------------------------------

    def copy(self, dtype=None):
        """A deep copy, optionally in another dtype (``model.copy(np.float64)`` for gradient checks)."""
        dtype = self.dtype if dtype is None else dtype
        clone = VAE(**self.config, dtype=dtype)
        for name, value in self.params.items():
            clone.params[name][...] = value
        clone.rng.bit_generator.state = self.rng.bit_generator.state
        return clone
