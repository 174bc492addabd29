"""The property checks (numvae.diagnostics.properties) on their own: the independent
formulas agree with numvae's parts, the grid's boundary, and which checks apply to which
model. (tests/test_gallery.py shows each failing on a bug it was written for.)"""
import numpy as np
import pytest

from helpers import vae
from numvae.diagnostics.properties import (
    check_grid,
    check_properties,
    independent_kl,
    independent_nll,
)
from numvae.plots.latent import gaussian_grid


def _x(n=30, width=12, seed=0):
    return (np.random.default_rng(seed).random((n, width)) > 0.5).astype(np.float64)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_the_independent_formulas_agree_with_the_parts(likelihood):
    model = vae(12, 8, 3, encoder_hidden=(10,), decoder_hidden=(10,), likelihood=likelihood,
                sigma=0.7, dtype=np.float64, seed=0)
    x = _x()
    cache = model.forward(x, np.random.default_rng(1).standard_normal((1, 30, 3)))
    nll = independent_nll(model, cache["logits"], cache["output"], x)
    assert np.allclose(nll, cache["reconstruction"], rtol=1e-12)
    assert np.allclose(independent_kl(model, cache), cache["kl"], rtol=1e-12)


def test_a_grid_must_reach_the_5_and_95_percent_quantiles():
    model = vae(12, 8, 2, seed=0)
    assert check_grid(model, gaussian_grid(10)).passed          # 0.5 / 10 = 0.05 exactly
    assert not check_grid(model, gaussian_grid(9)).passed       # 0.5 / 9 = 0.056
    both = np.stack([gaussian_grid(15), np.linspace(-1, 1, 15)], axis=1)
    assert not check_grid(model, both).passed                   # every dimension must


def test_checks_that_do_not_apply_say_so():
    iwae = vae(12, 8, 2, encoder_hidden=(10,), decoder_hidden=(10,), objective="iwae",
               n_samples=3, likelihood="gaussian", seed=0)
    found = {f.name: f for f in check_properties(iwae, _x(), n_images=20)}
    assert found["loss_composition"].passed and "skipped" in found["loss_composition"].line
    assert found["bernoulli_data"].line == "skipped: not a Bernoulli likelihood"
    assert found["kl_sign"].passed and found["posterior_variance"].passed
    flow = vae(12, 8, 2, encoder_hidden=(10,), decoder_hidden=(10,), posterior="iaf", seed=0)
    found = {f.name: f for f in check_properties(flow, _x(), n_images=20)}
    assert "skipped" in found["posterior_variance"].line and found["bound_order"].passed
