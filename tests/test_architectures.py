"""numvae.model.architectures: the layers each architecture builds, their shapes, and the
refusals (images that are not square, labels for the conv architecture)."""
import numpy as np
import pytest

from numvae.model.architectures import ARCHITECTURES, MLP, Conv, square_side
from numvae.nn.conv import FastConv2d, FastConvTranspose2d, Flatten, Reshape
from numvae.nn.layers import Dense, ReLU, Sequential, Tanh


def widths(layers):
    return [layer.params["W"].shape for layer in layers if isinstance(layer, Dense)]


def test_the_mlp_builds_the_slides_layers():
    rng = np.random.default_rng(0)
    mlp = MLP()
    compressor = mlp.compressor(784, 128, "relu", rng, np.float32)
    decompressor = mlp.decompressor(2, 784, "relu", rng, np.float32)
    assert [type(layer) for layer in compressor] == [Dense, ReLU, Dense, ReLU]
    assert widths(compressor) == [(784, 256), (256, 128)]
    assert [type(layer) for layer in decompressor] == [Dense, ReLU, Dense, ReLU, Dense]
    assert widths(decompressor) == [(2, 32), (32, 256), (256, 784)]  # up to the logits


def test_the_mlp_takes_hidden_widths_labels_and_the_activation():
    rng = np.random.default_rng(0)
    mlp = MLP.from_config({"encoder_hidden": (7, 5), "decoder_hidden": ()})
    assert mlp.settings() == {"encoder_hidden": (7, 5), "decoder_hidden": ()}
    compressor = mlp.compressor(12, 4, "tanh", rng, np.float64, n_classes=3)
    assert widths(compressor) == [(15, 7), (7, 5), (5, 4)]  # 12 pixels + 3 one-hot columns
    assert all(isinstance(layer, Tanh) for layer in compressor[1::2])
    assert widths(mlp.decompressor(2, 12, "tanh", rng, np.float64, n_classes=3)) == [(5, 12)]


def test_the_conv_layers_halve_the_side_twice():
    rng = np.random.default_rng(0)
    conv = Conv()
    compressor = Sequential(*conv.compressor(64, 6, "relu", rng, np.float64))
    decompressor = Sequential(*conv.decompressor(2, 64, "relu", rng, np.float64))
    assert isinstance(compressor.layers[0], Reshape) and isinstance(compressor.layers[1],
                                                                    FastConv2d)
    assert isinstance(decompressor.layers[3], FastConvTranspose2d)
    assert isinstance(decompressor.layers[-1], Flatten)
    shared, _ = compressor.forward(rng.random((3, 64)))               # 8 x 8 -> 4 -> 2
    assert shared.shape == (3, 6) and widths(compressor.layers)[0] == (64 * 2 * 2, 6)
    logits, _ = decompressor.forward(rng.standard_normal((3, 2)))     # 2 -> 4 -> 8
    assert logits.shape == (3, 64)


@pytest.mark.parametrize("input_dim, message", [(780, "not a square"), (36, "6 x 6")])
def test_the_conv_architecture_needs_square_images_of_a_side_divisible_by_4(input_dim, message):
    assert square_side(784, 4) == 28
    with pytest.raises(ValueError, match=message):
        square_side(input_dim, 4)


def test_the_conv_architecture_takes_no_labels():
    with pytest.raises(ValueError, match="takes no labels"):
        Conv().compressor(784, 8, "relu", np.random.default_rng(0), np.float32, n_classes=10)


def test_the_registry_holds_both_by_name():
    assert ARCHITECTURES == {"mlp": MLP, "conv": Conv}
