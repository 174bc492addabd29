"""The redesign into parts changes no result: short seeded float64 runs and a version-1
checkpoint, written by numvae 0.1.0 before the change (see tests/pinned_run.py), give
the same numbers today. float64 only: float32 matrix products round differently from
one CPU to another, so their bits are not pinned."""
import numpy as np
import pytest

from numvae.diagnostics import evaluate
from numvae.training.checkpoint import load_checkpoint
from pinned_run import CASES, DATA, pinned_data, pinned_run

EXPECTED = np.load(DATA / "pinned_0_1_0.npz")


@pytest.mark.parametrize("case", sorted(CASES))
def test_short_run_gives_the_pinned_loss_and_parameters(case):
    model, _, history = pinned_run(case)
    np.testing.assert_allclose(history["train_loss"], EXPECTED[f"{case}/train_loss"], rtol=1e-12)
    for name, value in model.params.items():
        np.testing.assert_allclose(value, EXPECTED[f"{case}/param/{name}"], rtol=1e-12,
                                   atol=1e-15, err_msg=name)


def test_version_1_checkpoint_loads_and_evaluates_to_the_same_numbers():
    checkpoint = load_checkpoint(DATA / "checkpoint_v1.npz")
    model = checkpoint.model
    reference, _, _ = pinned_run("bernoulli")
    for name, value in reference.params.items():
        assert np.array_equal(model.params[name], value), name
    x = pinned_data()
    elbo = evaluate.evaluate_elbo(model, x, seed=3)
    np.testing.assert_allclose([elbo["loss"], elbo["reconstruction"], elbo["kl"]],
                               EXPECTED["checkpoint_v1/elbo"], rtol=1e-12)
    iwae = evaluate.iwae_log_likelihood(model, x, k=20, seed=4)
    np.testing.assert_allclose(iwae["per_example"], EXPECTED["checkpoint_v1/iwae"], rtol=1e-12)
    assert checkpoint.optimizer.t == 6 and checkpoint.history["epoch"] == [1, 2]


# numbers that numvae at a364edb (format 2's last commit) printed for its fixtures: the
# ELBO (loss, reconstruction, KL) with seed 3 and the K = 20 IWAE per example with seed 4
VERSION_2 = {
    "checkpoint_v2_flow_mixture": (
        [11.983459657447266, 11.563517027641627, 0.4199426298056389],
        [-12.171283205878424, -12.567250378298121, -12.38743569376291, -11.262725049098302,
         -9.577943656621802, -11.79906990822312, -11.530601651124709, -12.62716362056828,
         -11.470232114976271, -10.81294231899743]),
    "checkpoint_v2_iwae_conditional": (
        [11.146014024099646, 11.056946959272206, 0.0890670648274417],
        [-11.163356809694273, -11.507196662953703, -11.84872422535519, -10.6241926415575,
         -10.749941408765435, -10.64679505077884, -10.80114037585414, -11.261782729026043,
         -10.823322525720696, -10.288060644518607]),
}


@pytest.mark.parametrize("name", sorted(VERSION_2))
def test_version_2_checkpoint_loads_and_evaluates_to_the_same_numbers(name):
    """Fixtures written by numvae at a364edb (a Gaussian likelihood with sigma 0.5, a
    two-step flow, a three-component mixture prior, kl_weight 0.5, two samples; and a
    conditional model under the K = 3 IWAE), three FastAdam steps each."""
    checkpoint = load_checkpoint(DATA / f"{name}.npz")
    rng = np.random.default_rng(7)
    x = (rng.random((10, 16)) < 0.4).astype(np.float64)
    labels = np.arange(10) % 3 if checkpoint.model.n_classes else None
    elbo = evaluate.evaluate_elbo(checkpoint.model, x, labels=labels, seed=3)
    expected_elbo, expected_iwae = VERSION_2[name]
    np.testing.assert_allclose([elbo["loss"], elbo["reconstruction"], elbo["kl"]],
                               expected_elbo, rtol=1e-12)
    iwae = evaluate.iwae_log_likelihood(checkpoint.model, x, labels=labels, k=20, seed=4)
    np.testing.assert_allclose(iwae["per_example"], expected_iwae, rtol=1e-12)
    assert checkpoint.optimizer.t == 3 and checkpoint.history["epoch"] == [1]
