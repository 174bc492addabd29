"""The short seeded float64 runs whose results tests/test_pinned.py pins.

The expected values in tests/data/pinned_0_1_0.npz and the version-1 checkpoint
tests/data/checkpoint_v1.npz were written by numvae 0.1.0 (commit 80a7efa), before the
redesign into parts, with ``python tests/pinned_run.py --write``. The redesign must
change no result: the tests rerun these functions with today's code and compare.
"""
import sys
from pathlib import Path

import numpy as np

import numvae
from numvae.model.likelihoods import Bernoulli, Gaussian
from numvae.model.objectives import ELBO
from numvae.training import loop

DATA = Path(__file__).resolve().parent / "data"
CASES = {  # name: VAE keyword arguments (besides the tiny architecture)
    "bernoulli": dict(likelihood=Bernoulli(), objective=ELBO(kl_weight=0.5, n_samples=2)),
    "gaussian": dict(likelihood=Gaussian(sigma=0.7), objective=ELBO(kl_weight=1.0, n_samples=1)),
}


def pinned_data():
    rng = np.random.default_rng(1234)
    return rng.uniform(size=(40, 10))


def pinned_run(name):
    """Two epochs of ``fit`` (batch 16, KL warm-up over the first epoch, dynamic
    binarisation for the Bernoulli case) of a tiny float64 model with Adam."""
    model = numvae.VAE(10, 6, 3, encoder_hidden=(7,), decoder_hidden=(5, 6), dtype=np.float64,
                       seed=5, **CASES[name])
    optimizer = numvae.Adam(model.params, lr=5e-3)
    history = loop.fit(model, optimizer, pinned_data(), epochs=2, batch_size=16, seed=9,
                        kl_warmup_epochs=1, binarize=name == "bernoulli", progress=False,
                        log=None)
    return model, optimizer, history


if __name__ == "__main__" and "--write" in sys.argv:
    from numvae.training.checkpoint import save_checkpoint
    expected = {}
    for case in CASES:
        model, optimizer, history = pinned_run(case)
        expected[f"{case}/train_loss"] = np.array(history["train_loss"])
        for key, value in model.params.items():
            expected[f"{case}/param/{key}"] = value
        if case == "bernoulli":
            save_checkpoint(DATA / "checkpoint_v1.npz", model, optimizer, history,
                            {"epoch": 2, "step": 0})
            x = pinned_data()
            elbo = numvae.diagnostics.evaluate.evaluate_elbo(model, x, seed=3)
            iwae = numvae.diagnostics.evaluate.iwae_log_likelihood(model, x, k=20, seed=4)
            expected["checkpoint_v1/elbo"] = np.array([elbo["loss"], elbo["reconstruction"],
                                                       elbo["kl"]])
            expected["checkpoint_v1/iwae"] = iwae["per_example"]
    np.savez(DATA / "pinned_0_1_0.npz", **expected)
