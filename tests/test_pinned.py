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
