"""The networks of the encoder and the decoder: one class per architecture, one registry.

An architecture builds the layers of the encoder's ``compressor`` (input -> shared
features, then the posterior's heads are added by ``numvae.model.networks.Encoder``) and of the
decoder's ``decompressor`` up to the logits (the Sigmoid is added by ``numvae.model.networks.Decoder``).
Like the parts, it has ``name``, ``settings()`` (its ``numvae.VAE`` keyword arguments,
stored in the checkpoint's "architecture" entry) and ``from_config(config)``.

    "mlp"   the slides': Dense-activation pairs (encoder_hidden, decoder_hidden)
    "conv"  for square images: two stride-2 convolutions down, two transposed up
"""
import math

from numvae.nn.conv import FastConv2d, FastConvTranspose2d, Flatten, Reshape
from numvae.nn.layers import ACTIVATIONS, Dense
from numvae.nn.memory import keep_freed_memory


def mlp(sizes, activation, rng, dtype):
    """Dense-activation pairs through ``sizes`` (a list of widths), as a flat layer list."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [Dense(n_in, n_out, rng=rng, dtype=dtype), ACTIVATIONS[activation]()]
    return layers


class MLP:
    """Encoder Dense(input_dim, 256) - act - Dense(256, shared_dim) - act; decoder
    Dense(latent_dim, 32) - act - Dense(32, 256) - act - Dense(256, input_dim) (slides:
    "Setting up the encoder/decoder"; the hidden widths are ``encoder_hidden`` and
    ``decoder_hidden``)."""
    name = "mlp"

    def __init__(self, encoder_hidden=(256,), decoder_hidden=(32, 256)):
        self.encoder_hidden, self.decoder_hidden = tuple(encoder_hidden), tuple(decoder_hidden)

    def settings(self):
        return {"encoder_hidden": self.encoder_hidden, "decoder_hidden": self.decoder_hidden}

    @classmethod
    def from_config(cls, config):
        return cls(config["encoder_hidden"], config["decoder_hidden"])

    def compressor(self, input_dim, shared_dim, activation, rng, dtype, n_classes=0):
        """The encoder's layers; a conditional model's input has ``n_classes`` more columns."""
        return mlp([input_dim + n_classes, *self.encoder_hidden, shared_dim], activation, rng,
                   dtype)

    def decompressor(self, latent_dim, input_dim, activation, rng, dtype, n_classes=0):
        """The decoder's layers up to the logits; input [z, onehot(y)] of a conditional model."""
        widths = [latent_dim + n_classes, *self.decoder_hidden]
        return mlp(widths, activation, rng, dtype) + [Dense(widths[-1], input_dim, rng=rng,
                                                            dtype=dtype)]


def square_side(input_dim, divisor):
    """The side of the square images that ``input_dim`` values hold, if it is a multiple of
    ``divisor`` (so that each stride-2 convolution halves it exactly); else ValueError."""
    side = math.isqrt(input_dim)
    if side * side != input_dim or side % divisor:
        raise ValueError(f"the conv architecture needs square images whose side is a multiple "
                         f"of {divisor} (28 x 28 = 784 for MNIST); input_dim {input_dim} is "
                         + ("not a square" if side * side != input_dim
                            else f"{side} x {side}"))
    return side


class Conv:
    """For square images of side H (a multiple of 4; 28 for MNIST), with ``CHANNELS`` =
    (32, 64) and 4 x 4 kernels, stride 2, padding 1 (each halves the side, eq. CV1):

    encoder  Reshape(1, H, H) - Conv2d(1, 32) - act - Conv2d(32, 64) - act - Flatten
             - Dense(64 (H/4)^2, shared_dim) - act           1xHxH -> 32xH/2 -> 64xH/4
    decoder  Dense(latent_dim, 64 (H/4)^2) - act - Reshape(64, H/4, H/4)
             - ConvTranspose2d(64, 32) - act - ConvTranspose2d(32, 1) - Flatten

    with the fast channels-last layers (``numvae.nn.conv.FastConv2d``), whose results equal
    the textbook ones. ``encoder_hidden`` and ``decoder_hidden`` are not used. Building either
    half asks glibc to keep freed memory for the next step (``numvae.nn.memory``: the same
    numbers, a fifth of the step saved; ``NUMVAE_KEEP_MEMORY=0`` turns it off).
    """
    name = "conv"
    CHANNELS = (32, 64)
    KERNEL = dict(kernel_size=4, stride=2, padding=1)

    def settings(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls()

    @staticmethod
    def _no_labels(n_classes):
        if n_classes:
            raise ValueError("the conv architecture takes no labels: a conditional model "
                             "(n_classes) needs architecture='mlp'")

    def compressor(self, input_dim, shared_dim, activation, rng, dtype, n_classes=0):
        self._no_labels(n_classes)
        side = square_side(input_dim, 4)
        (c1, c2), act = self.CHANNELS, ACTIVATIONS[activation]
        keep_freed_memory()  # FAST PATH: the step's temporaries reused, not zeroed afresh
        return [Reshape((1, side, side)),
                FastConv2d(1, c1, **self.KERNEL, rng=rng, dtype=dtype), act(),
                FastConv2d(c1, c2, **self.KERNEL, rng=rng, dtype=dtype), act(), Flatten(),
                Dense(c2 * (side // 4) ** 2, shared_dim, rng=rng, dtype=dtype), act()]

    def decompressor(self, latent_dim, input_dim, activation, rng, dtype, n_classes=0):
        self._no_labels(n_classes)
        side = square_side(input_dim, 4)
        (c1, c2), act = self.CHANNELS, ACTIVATIONS[activation]
        keep_freed_memory()  # FAST PATH, as in compressor
        return [Dense(latent_dim, c2 * (side // 4) ** 2, rng=rng, dtype=dtype), act(),
                Reshape((c2, side // 4, side // 4)),
                FastConvTranspose2d(c2, c1, **self.KERNEL, rng=rng, dtype=dtype), act(),
                FastConvTranspose2d(c1, 1, **self.KERNEL, rng=rng, dtype=dtype), Flatten()]


ARCHITECTURES = {part.name: part for part in (MLP, Conv)}
