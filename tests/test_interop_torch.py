"""PyTorch as a second, independent oracle: the same model in numvae and in torch
(``numvae.interop.to_torch``, its loss written in torch's operations) gives the same loss
and, by torch autograd, the same gradients as numvae's hand-written backward pass; the
exported file loads strictly into that module; and the round trip numvae -> torch ->
trained -> numvae is bit for bit. Skipped where torch is not installed."""
import numpy as np
import pytest

from helpers import vae

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
from numvae.interop import load_safetensors, save_safetensors, to_torch  # noqa: E402

torch.set_num_threads(1)  # tiny products: threads only cost (and the cores are shared)

SLIDES = dict(input_dim=784, shared_dim=128, latent_dim=2)
EXAMPLES = dict(input_dim=784, shared_dim=400, latent_dim=20, encoder_hidden=(),
                decoder_hidden=(400,))
CASES = {
    "slides": dict(SLIDES),
    "examples": dict(EXAMPLES),
    "gaussian": dict(SLIDES, likelihood="gaussian", sigma=0.5, kl_weight=0.7),
    "monte-carlo-samples": dict(SLIDES, n_samples=3),
    "mixture-prior": dict(SLIDES, prior="mixture", prior_components=4, n_samples=2),
    "conv": dict(SLIDES, architecture="conv"),
    "iwae": dict(SLIDES, activation="tanh", objective="iwae", n_samples=3),
    "autoencoder": dict(SLIDES, posterior="point", objective="reconstruction"),
    "mixture-iwae": dict(SLIDES, prior="mixture", prior_components=3, objective="iwae",
                         n_samples=2),
}


def relative_error(ours, theirs):
    """max |ours - theirs| / max |theirs|, over a whole array."""
    return np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))


def mirror(model, path):
    """``to_torch(model)``, and the exported file loaded into it, strictly: the module's
    names and layouts are the file's, and it holds the file's tensors."""
    module = to_torch(model)
    save_safetensors(model, path)
    exported = safetensors_torch.load_file(str(path))
    for name, tensor in module.state_dict().items():
        assert torch.equal(tensor, exported[name]), name
    module.load_state_dict(exported, strict=True)
    return module


def batch(model, size=8, seed=0):
    """x (size, input_dim) in [0, 1] and eps (n_samples, size, latent_dim), in the model's dtype."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(size, model.input_dim)).astype(model.dtype)
    eps = rng.standard_normal((model.n_samples, size, model.latent_dim)).astype(model.dtype)
    return x, eps


def torch_grads(module, x, eps):
    """torch's loss and {numvae name: gradient in numvae's layout} by autograd."""
    module.zero_grad()
    loss = module(torch.from_numpy(x), torch.from_numpy(eps))
    loss.backward()
    grads = {}
    for name, param in module.named_parameters():
        prefix, last = name.rsplit(".", 1)
        grad = param.grad.numpy()
        if last not in ("weight", "bias"):              # the mixture prior's own names
            grads[name] = grad
            continue
        flip = last == "weight" and grad.ndim == 2    # Dense only: conv weights keep their layout
        grads[prefix + (".W" if last == "weight" else ".b")] = grad.T if flip else grad
    return loss.item(), grads


@pytest.mark.parametrize("case", CASES)
def test_same_loss_in_float32(case, tmp_path):
    model = vae(**CASES[case], seed=0)
    module = mirror(model, tmp_path / "m.safetensors")
    x, eps = batch(model, size=16)
    ours = model.loss_and_grad(x, eps)
    with torch.no_grad():
        theirs = module(torch.from_numpy(x), torch.from_numpy(eps)).item()
    assert abs(ours - theirs) / abs(theirs) < 1e-6, (ours, theirs)


@pytest.mark.parametrize("case", CASES)
def test_every_gradient_equals_torch_autograd_in_float64(case, tmp_path):
    model = vae(**CASES[case], dtype=np.float64, seed=1)
    module = mirror(model, tmp_path / "m.safetensors")
    x, eps = batch(model)
    ours = model.loss_and_grad(x, eps)
    theirs, grads = torch_grads(module, x, eps)
    assert abs(ours - theirs) / abs(theirs) < 1e-12
    assert set(grads) == set(model.grads)
    errors = {name: relative_error(model.grads[name], grads[name]) for name in grads}
    assert max(errors.values()) < 1e-10, errors


def test_a_wrong_gradient_is_caught(tmp_path):
    """The oracle can fail: halve one gradient (a lost factor) and the comparison sees it."""
    model = vae(**SLIDES, dtype=np.float64, seed=1)
    module = mirror(model, tmp_path / "m.safetensors")
    x, eps = batch(model)
    model.loss_and_grad(x, eps)
    model.grads["encoder.log_var.b"] *= 0.5
    _, grads = torch_grads(module, x, eps)
    assert relative_error(model.grads["encoder.log_var.b"], grads["encoder.log_var.b"]) > 0.1


def test_round_trip_through_torch_training_is_bit_for_bit(tmp_path):
    model = vae(**SLIDES, seed=0)
    module = mirror(model, tmp_path / "from_numvae.safetensors")
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.rand(32, 784, generator=generator)
        eps = torch.randn(32, 2, generator=generator)
        optimizer.zero_grad()
        module(x, eps).backward()
        optimizer.step()
    path = tmp_path / "from_torch.safetensors"
    safetensors_torch.save_file(module.state_dict(), str(path))     # PyTorch's own writer
    lines = []
    back = load_safetensors(path, announce=lines.append)            # no numvae metadata
    assert back.config == model.config and "assumed likelihood='bernoulli'" in lines[0]
    changed = 0
    for name, tensor in module.state_dict().items():
        prefix, last = name.rsplit(".", 1)
        held = back.params[prefix + (".W" if last == "weight" else ".b")]
        expected = tensor.numpy().T if last == "weight" else tensor.numpy()
        assert held.dtype == expected.dtype and held.tobytes() == expected.tobytes(), name
        changed += not np.array_equal(held, model.params[prefix + (".W" if last == "weight"
                                                                   else ".b")])
    assert changed == 14                                  # training moved every tensor


def test_the_mirror_has_the_slides_modules():
    """encoder.compressor (Linear, ReLU, ...), the heads, decoder.decompressor ending in
    Sigmoid; weights (out, in) as nn.Linear holds them; float32 as the model."""
    from torch import nn
    module = to_torch(vae(**SLIDES, seed=0))
    assert [type(layer) for layer in module.encoder.compressor] == [nn.Linear, nn.ReLU] * 2
    assert isinstance(module.encoder.mean, nn.Linear) and isinstance(module.encoder.log_var,
                                                                     nn.Linear)
    assert [type(layer) for layer in module.decoder.decompressor] == [nn.Linear, nn.ReLU] * 2 + [
        nn.Linear, nn.Sigmoid]
    assert module.encoder.compressor[0].weight.shape == (256, 784)
    assert module.encoder.compressor[0].weight.dtype == torch.float32
    tanh = to_torch(vae(**SLIDES, activation="tanh", seed=0))
    assert type(tanh.encoder.compressor[1]) is nn.Tanh


def test_the_mirror_is_a_copy():
    """Training the module leaves the numvae model as it was."""
    model = vae(**SLIDES, seed=0)
    before = {name: value.copy() for name, value in model.params.items()}
    module = to_torch(model)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(1.0)
    assert all(np.array_equal(before[name], model.params[name]) for name in before)


def test_conditional_model_equals_torch_autograd(tmp_path):
    """A conditional VAE (n_classes=10, eq. CD1), in float64, against the reference module
    fed the same one-hot labels; its safetensors file keeps n_classes."""
    model = vae(**SLIDES, n_classes=10, n_samples=2, dtype=np.float64, seed=2)
    module = mirror(model, tmp_path / "m.safetensors")
    assert load_safetensors(tmp_path / "m.safetensors").config == model.config
    x, eps = batch(model)
    y = np.random.default_rng(3).integers(0, 10, size=len(x))
    ours = model.loss_and_grad(x, eps, y=y)
    module.zero_grad()
    theirs = module(torch.from_numpy(x), torch.from_numpy(eps), torch.from_numpy(y))
    theirs.backward()
    assert abs(ours - theirs.item()) / abs(theirs.item()) < 1e-12
    for name, param in module.named_parameters():
        prefix, last = name.rsplit(".", 1)
        grad = param.grad.numpy()
        ours_grad = model.grads[prefix + (".W" if last == "weight" else ".b")]
        assert relative_error(ours_grad, grad.T if last == "weight" else grad) < 1e-10, name


@pytest.mark.parametrize("objective,n_samples", [("elbo", 2), ("iwae", 4)])
def test_flow_posterior_and_bound_against_torch_autograd(tmp_path, objective, n_samples):
    """The IAF posterior (IF1-IF6) and the IWAE bound (IW1-IW3): numvae's export loads
    strictly into the mirror, whose autograd gives numvae's loss and gradients."""
    model = vae(20, 8, 3, encoder_hidden=(9,), decoder_hidden=(7, 6), activation="tanh",
                       posterior="iaf", flow_steps=2, flow_hidden=(5, 4), objective=objective,
                       n_samples=n_samples, dtype=np.float64, seed=0)
    module = mirror(model, tmp_path / "flow.safetensors")
    x, eps = batch(model)
    x = (x > 0.5).astype(np.float64)
    loss = model.loss_and_grad(x, eps)
    module.zero_grad()
    theirs = module(torch.from_numpy(x), torch.from_numpy(eps))
    theirs.backward()
    assert loss == pytest.approx(theirs.item(), rel=1e-12)
    for name, param in module.named_parameters():
        prefix, last = name.rsplit(".", 1)
        grad = param.grad.numpy()
        ours = model.grads[prefix + (".W" if last == "weight" else ".b")]
        np.testing.assert_allclose(ours, grad.T if last == "weight" else grad, rtol=1e-9,
                                   atol=1e-12, err_msg=name)
