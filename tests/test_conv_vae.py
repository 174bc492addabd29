"""The convolutional VAE (``architecture="conv"``): its layers and parameter names, its
whole gradient against central differences in float64, the input sizes it refuses, and
its checkpoint and safetensors round trips. (torch autograd checks it too, in
tests/test_interop_torch.py.)"""
import json

import numpy as np
import pytest

import numvae
from numvae.diagnostics.gradcheck import check_model
from numvae.nn.conv import FastConv2d
from numvae.training.checkpoint import load_checkpoint, save_checkpoint


def tiny_conv(**kwargs):
    """8 x 8 images: 1x8x8 -> 32x4x4 -> 64x2x2 -> 5 -> (2, 2); tanh: no kink to straddle."""
    options = dict(architecture="conv", activation="tanh", dtype=np.float64, seed=0)
    options.update(kwargs)
    return numvae.VAE(64, 5, 2, **options)


def test_layers_and_parameter_names_follow_the_slides_modules():
    model = numvae.VAE(784, 128, 2, architecture="conv", seed=0)
    assert repr(model.encoder.compressor) == (
        "Sequential(Reshape((1, 28, 28)), Conv2d(1, 32, 4, stride=2, padding=1), ReLU(), "
        "Conv2d(32, 64, 4, stride=2, padding=1), ReLU(), Flatten(), Dense(3136, 128), ReLU())")
    assert repr(model.decoder.decompressor).endswith("Flatten(), Sigmoid())")
    assert isinstance(model.encoder.compressor[1], FastConv2d)             # the fast path
    shapes = {name: value.shape for name, value in model.params.items()}
    assert shapes["encoder.compressor.1.W"] == (32, 1, 4, 4)
    assert shapes["encoder.compressor.3.W"] == (64, 32, 4, 4)
    assert shapes["encoder.compressor.6.W"] == (3136, 128)
    assert shapes["encoder.mean.W"] == (128, 2)
    assert shapes["decoder.decompressor.0.W"] == (2, 3136)
    assert shapes["decoder.decompressor.3.W"] == (64, 32, 4, 4)     # ConvTranspose2d: (in, out)
    assert shapes["decoder.decompressor.5.W"] == (32, 1, 4, 4)
    assert model.config["architecture"]["name"] == "conv"
    assert "encoder_hidden" not in model.config["architecture"]
    x = np.random.default_rng(0).uniform(size=(3, 784)).astype(np.float32)
    cache = model.forward(x)
    assert cache["logits"].shape == (3, 784) and np.isfinite(cache["loss"])


def test_whole_gradient_against_central_differences():
    model = tiny_conv()
    rng = np.random.default_rng(1)
    x, eps = rng.uniform(size=(3, 64)), rng.standard_normal((2, 3, 2))
    errors = check_model(model, x, eps, n_entries=12)
    assert len(errors) == len(model.params) == 16
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("input_dim, words", [(10, "not a square"), (36, "6 x 6"),
                                              (100, "10 x 10")])
def test_input_sizes_the_conv_stack_cannot_take_are_refused(input_dim, words):
    with pytest.raises(ValueError, match=f"square images whose side is a multiple of 4.*{words}"):
        numvae.VAE(input_dim, 5, 2, architecture="conv")


def test_unknown_architecture_is_refused_by_name():
    with pytest.raises(ValueError, match="architecture"):
        numvae.VAE(64, 5, 2, architecture="transformer")


def test_checkpoint_round_trip(tmp_path):
    model = tiny_conv(dtype=np.float32)
    optimizer = numvae.FastAdam(model.params, lr=1e-2)
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(6, 64)).astype(np.float32)
    eps = rng.standard_normal((1, 6, 2)).astype(np.float32)
    losses = []
    for _ in range(5):
        losses.append(model.loss_and_grad(x, eps))
        optimizer.step(model.grads)
    assert losses[-1] < losses[0]
    path = save_checkpoint(tmp_path / "c.npz", model, optimizer)
    with np.load(path) as npz:
        stored = json.loads(str(npz["config"]))
    assert stored["architecture"] == {"name": "conv", "input_dim": 64, "shared_dim": 5,
                                      "latent_dim": 2, "activation": "tanh"}
    assert stored == json.loads(json.dumps(model.config))
    loaded = load_checkpoint(path)
    assert loaded.model.config == model.config
    assert all(np.array_equal(loaded.model.params[n], v) for n, v in model.params.items())


def test_safetensors_keep_conv_weights_in_pytorchs_layout(tmp_path):
    pytest.importorskip("safetensors")
    from numvae.interop import load_safetensors, save_safetensors, to_state_dict
    model = tiny_conv()
    state = to_state_dict(model)
    assert state["encoder.compressor.1.weight"].shape == (32, 1, 4, 4)        # as it is
    assert state["encoder.compressor.6.weight"].shape == (5, 256)             # Dense: transposed
    loaded = load_safetensors(save_safetensors(model, tmp_path / "m.safetensors"))
    assert loaded.config == model.config
    assert all(loaded.params[n].tobytes() == v.tobytes() for n, v in model.params.items())


def test_command_line_trains_a_conv_model_with_a_mixture_prior(tmp_path, capsys):
    from numvae.commands.cli import main
    out = tmp_path / "run"
    code = main(["train", "--dataset", "toy", "--latent-dim", "2", "--shared-dim", "8",
                 "--no-plots", "--epochs", "1", "--architecture", "conv", "--prior", "mixture",
                 "--prior-components", "3", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    model = load_checkpoint(out / "checkpoint.npz").model
    assert model.config["architecture"]["name"] == "conv"
    assert model.config["prior"] == {"name": "mixture", "components": 3}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kl_per_dim"] == [None, None]          # a Monte Carlo KL: no split
    assert main(["evaluate", str(out / "checkpoint.npz"), "--iwae-k", "5"]) == 0
    assert "KL per latent dimension: n/a n/a" in capsys.readouterr().out


def test_no_gradient_is_computed_for_the_images():
    """The encoder stops at its first convolution: neither it nor the Reshape before it
    computes a gradient for the data (col2im would cost time for nothing)."""
    model = tiny_conv()
    cache = model.forward(np.random.default_rng(3).uniform(size=(2, 64)))
    steps = model.backward(cache)["encoder_steps"]["compressor"]
    assert steps[0] is None and steps[1] is None and steps[2].shape == (2, 32, 4, 4)


def test_inspect_a_fresh_conv_model_shows_each_convolution(capsys):
    from numvae.commands.cli import main
    assert main(["inspect", "--architecture", "conv", "--prior", "mixture"]) == 0
    out = capsys.readouterr().out
    for formula in ("(CV1, CV2)", "(CV4)", "(CV5)", "(CV6)", "(CV7)", "reshaped back"):
        assert formula in out, formula
    assert "conv, mixture prior" in out
