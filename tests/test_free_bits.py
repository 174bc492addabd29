"""Free bits (numvae.model.free_bits, eqs. FB1, FB2): the value from independently computed
parts, the gradient by central differences in float64, and the limits tau = 0 (the ELBO)
and tau above every dimension's KL (no KL gradient at all)."""
import numpy as np
import pytest

from numvae.diagnostics.gradcheck import check_model
from numvae.model.free_bits import FreeBitsELBO
from numvae.model.objectives import ELBO
from numvae.model.vae import VAE


def _model(free_bits, objective="free_bits", kl_weight=1.7):
    part = (FreeBitsELBO(free_bits=free_bits, kl_weight=kl_weight) if objective == "free_bits"
            else ELBO(kl_weight=kl_weight))
    return VAE(10, 8, 4, encoder_hidden=(9,), decoder_hidden=(7,), activation="tanh",
               objective=part, dtype=np.float64, seed=3)


def _batch():
    rng = np.random.default_rng(0)
    x = (rng.random((6, 10)) > 0.5).astype(np.float64)
    return x, rng.standard_normal((1, 6, 4))


def _kappa(model, x):
    """Each dimension's batch-averaged KL, from the encoder's heads and K1 written out."""
    mean, log_var = model.encode(x)
    return (0.5 * (mean ** 2 + np.exp(log_var) - 1.0 - log_var)).mean(axis=0)


def _floor_between(kappa):
    """A floor halfway between two dimensions' KLs: some above it, some below, none near."""
    ordered = np.sort(kappa)
    gaps = np.diff(ordered)
    i = int(np.argmax(gaps))
    return float(0.5 * (ordered[i] + ordered[i + 1])), float(gaps[i])


def test_the_loss_is_fb1_from_the_parts():
    x, eps = _batch()
    kappa = _kappa(_model(0.0), x)
    tau, _ = _floor_between(kappa)
    model = _model(tau)
    terms = model.forward(x, eps)
    elbo_terms = _model(0.0, objective="elbo").forward(x, eps)  # same seed: same weights
    floored = np.maximum(kappa, tau).sum()
    assert 0 < np.sum(kappa > tau) < 4
    assert terms["loss"] == pytest.approx(elbo_terms["reconstruction"].mean() + 1.7 * floored,
                                          rel=1e-12)
    assert np.allclose(terms["kl"], elbo_terms["kl"])   # the reported KL is the true one
    assert terms["kl_floored"] == pytest.approx(floored, rel=1e-12)


def test_the_gradient_passes_central_differences_with_dimensions_on_both_sides():
    x, eps = _batch()
    tau, gap = _floor_between(_kappa(_model(0.0), x))
    assert gap > 1e-3   # h = 1e-6 moves each KL by far less than the distance to the floor
    errors = check_model(_model(tau), x, eps, h=1e-6)
    assert max(errors.values()) < 1e-6, errors


def test_tau_zero_is_the_elbo_and_a_high_floor_removes_the_kl_gradient():
    x, eps = _batch()
    for tau, reference in [(0.0, _model(0.0, "elbo")), (1e3, _model(0.0, "elbo", kl_weight=0.0))]:
        model = _model(tau)
        model.loss_and_grad(x, eps)
        reference.loss_and_grad(x, eps)
        for name in model.grads:
            assert np.allclose(model.grads[name], reference.grads[name], atol=1e-12), (tau, name)


def test_free_bits_refuse_a_kl_without_a_split_by_dimension():
    with pytest.raises(ValueError, match="objective 'free_bits': free bits need the KL of each"):
        VAE(10, 8, 2, objective=FreeBitsELBO(free_bits=0.5), prior="mixture", seed=0)
    with pytest.raises(ValueError, match="free_bits"):
        VAE(10, 8, 2, objective=FreeBitsELBO(free_bits=-1.0), seed=0)


def test_the_setting_survives_a_copy():
    model = _model(0.3)
    assert model.config["objective"]["free_bits"] == 0.3 and model.copy().objective.free_bits == 0.3
