"""The encoder and the decoder of the VAE: the networks around the posterior and the
likelihood (slides: "Setting up the encoder", "Setting up the decoder"). Their layers come
from an architecture (``numvae.model.architectures``); ``numvae.model.vae.VAE`` composes them.
"""
from numvae.nn.layers import Dense, Sequential, Sigmoid


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


def parameter_owners(encoder, decoder, parts):
    """(name, owner, key) of every parameter, in the order of the slides' modules: the
    encoder's layers and heads, the decoder's layers, then the parts with parameters of
    their own, ``parts`` [(prefix, part)]. The owner (a layer or a part) holds the
    parameter in ``params[key]`` and its gradient in ``grads[key]``."""
    owners = [(f"encoder.compressor.{i}", layer) for i, layer in enumerate(encoder.compressor.layers)]
    owners += [(f"encoder.{name}", head) for name, head in encoder.heads.items()]
    owners += [(f"decoder.decompressor.{i}", layer)
               for i, layer in enumerate(decoder.decompressor.layers)]
    for prefix, owner in owners + list(parts):
        for key in getattr(owner, "params", {}):
            yield f"{prefix}.{key}", owner, key
