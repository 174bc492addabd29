"""PyTorch autograd as a second oracle for the two-stochastic-layer VAE (eqs. H1-H7): the
same loss written here in torch from the formulas (not from numvae's code), the same
parameters and noise, every gradient equal to 1e-10 in float64. Skipped without torch."""
import math

import numpy as np
import pytest

from numvae.model.two_layer import TwoLayerVAE

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny products: threads only cost (and the cores are shared)

SIZES = dict(input_dim=12, latent_dims=(5, 3), hidden=((7, 6), (6, 4)))


def gaussian_log_density(point, mean, log_var):
    return torch.sum(-0.5 * (point - mean) ** 2 * torch.exp(-log_var) - 0.5 * log_var
                     - 0.5 * math.log(2 * math.pi), dim=-1)


def network(params, prefix, a, activation, n_layers):
    """Dense-activation layers ``prefix.body.<2i>`` then the heads, or for ``p_x`` the
    decompressor's Dense layers with the activation between them (logits at the end)."""
    act = torch.tanh if activation == "tanh" else torch.relu
    if prefix == "p_x":
        for index in range(n_layers):
            a = a @ params[f"p_x.decompressor.{2 * index}.W"] + params[f"p_x.decompressor.{2 * index}.b"]
            a = act(a) if index < n_layers - 1 else a
        return a
    for index in range(n_layers):
        a = act(a @ params[f"{prefix}.body.{2 * index}.W"] + params[f"{prefix}.body.{2 * index}.b"])
    return [a @ params[f"{prefix}.{head}.W"] + params[f"{prefix}.{head}.b"]
            for head in ("mean", "log_var")]


def torch_loss(params, x, eps, config):
    """eqs. H1-H3 in torch: the five densities, then the ELBO (analytic KL on top) or the bound."""
    m1 = config["latent_dims"][0]
    n_samples, batch = eps.shape[:2]
    act = config["activation"]
    mean1, log_var1 = network(params, "q_z1", x, act, 2)
    z1 = (mean1 + torch.exp(0.5 * log_var1) * eps[..., :m1])                  # (S, B, M1)
    mean2, log_var2 = network(params, "q_z2", z1, act, 2)
    z2 = mean2 + torch.exp(0.5 * log_var2) * eps[..., m1:]
    prior_mean, prior_log_var = network(params, "p_z1", z2, act, 2)
    logits = network(params, "p_x", z1, act, 3)
    log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits, x.expand_as(logits), reduction="none").sum(-1)
    log_q1 = gaussian_log_density(z1, mean1, log_var1)
    log_p1 = gaussian_log_density(z1, prior_mean, prior_log_var)
    if config["objective"] == "iwae":
        log_w = (log_px + log_p1 + gaussian_log_density(z2, 0.0, torch.zeros(()))
                 - log_q1 - gaussian_log_density(z2, mean2, log_var2))
        return -(torch.logsumexp(log_w, 0) - math.log(n_samples)).mean()
    kl_top = 0.5 * torch.sum(mean2**2 + torch.exp(log_var2) - 1 - log_var2, dim=-1)
    per_draw = -log_px + config["kl_weight"] * (log_q1 - log_p1 + kl_top)
    return per_draw.mean()


@pytest.mark.parametrize("settings", [dict(n_samples=3, kl_weight=0.6),
                                      dict(objective="iwae", n_samples=4),
                                      dict(objective="iwae", n_samples=2, activation="relu")])
def test_every_gradient_equals_torch_autograd_in_float64(settings):
    # PyTorch's start: no bias is zero, so none can hide a wrong gradient
    model = TwoLayerVAE(**SIZES, **settings, init="pytorch", dtype=np.float64, seed=4)
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(6, 12)) < 0.4).astype(np.float64)
    eps = rng.standard_normal((model.n_samples, 6, 8))
    loss = model.loss_and_grad(x, eps)
    params = {name: torch.tensor(value, requires_grad=True) for name, value in model.params.items()}
    theirs = torch_loss(params, torch.tensor(x), torch.tensor(eps), model.config)
    theirs.backward()
    assert loss == pytest.approx(theirs.item(), rel=1e-12)
    for name, grad in model.grads.items():
        expected = params[name].grad.numpy()
        error = np.max(np.abs(grad - expected)) / np.max(np.abs(expected))
        assert error < 1e-10, (name, error)
