"""The gallery of shipped VAE bugs (numvae.diagnostics.gallery): each fails the property
check that BUGS names for it, and the correct model passes every check."""
import functools

import numpy as np
import pytest

from helpers import vae
from numvae.diagnostics.evaluate import iwae_log_likelihood
from numvae.diagnostics.gallery import (
    BUGS,
    reconstruction_as_log_px,
    unspanning_grid,
    with_bug,
)
from numvae.diagnostics.properties import check_properties, format_findings
from numvae.io import datasets
from numvae.plots.latent import gaussian_grid
from numvae.training.loop import fit
from numvae.training.optim import Adam


@functools.cache
def _data():
    """(grey blobs, the same blobs thresholded at 0.3: binary, and sharp enough that the
    code holds a few nats)."""
    toy = datasets.make_toy(600, seed=0)
    return toy.images, (toy.images > 0.3).astype(np.float32)


def _model(bug=None, epochs=40):
    """The toy's VAE (64 pixels, latent 2), trained on the binary blobs; with ``bug`` put in
    before training, as the buggy code would have trained."""
    model = vae(64, 16, 2, encoder_hidden=(32,), decoder_hidden=(32,), kl_weight=1.0, seed=0)
    if bug is not None:
        with_bug(model, bug)
    fit(model, Adam(model.params, lr=1e-2), _data()[1], epochs=epochs, batch_size=50, seed=0,
        progress=False, log=None)
    return model


@functools.cache
def _correct():
    return _model()


def _findings(model, **options):
    return {f.name: f for f in check_properties(model, _data()[1], n_images=200, **options)}


def test_the_correct_model_passes_every_check():
    model = _correct()
    reported = iwae_log_likelihood(model, _data()[1][:200], k=50, seed=1)["log_px"]
    findings = _findings(model, grid=gaussian_grid(15), reported_log_px=reported)
    assert len(findings) == 7
    assert all(f.passed for f in findings.values()), format_findings(findings.values())


@pytest.mark.parametrize("bug", ["std_is_variance", "mean_over_pixels", "negated_kl",
                                 "beta_ignored"])
def test_each_bug_in_a_part_fails_its_check(bug):
    findings = _findings(_model(bug, epochs=3))
    check = BUGS[bug]["check"]
    assert not findings[check].passed, findings[check].line


def test_grey_levels_under_a_bernoulli_fail_unless_called_a_cross_entropy():
    grey = _data()[0]
    model = _correct()
    assert _findings(model)["bernoulli_data"].passed                  # binary data pass
    found = {f.name: f for f in check_properties(model, grey, n_images=200)}
    assert not found["bernoulli_data"].passed and "cross-entropy" in found["bernoulli_data"].line
    found = {f.name: f for f in check_properties(model, grey, n_images=200,
                                                 reported_as="cross-entropy")}
    assert found["bernoulli_data"].passed


def test_a_grid_that_misses_the_prior_fails():
    finding = _findings(_correct(), grid=unspanning_grid(15))["grid_spans_prior"]
    assert not finding.passed and "0.159" in finding.line


def test_the_reconstruction_term_is_not_log_px():
    model = _correct()
    finding = _findings(model, reported_log_px=reconstruction_as_log_px(model, _data()[1][:200]))
    assert not finding["reported_log_px"].passed, finding["reported_log_px"].line


def test_every_bug_names_a_source_and_a_check_that_exists():
    names = {f.name for f in check_properties(_correct(), _data()[1], n_images=20,
                                              grid=gaussian_grid(5), reported_log_px=-30.0)}
    for bug, entry in BUGS.items():
        assert entry["check"] in names and entry["source"] and entry["what"], bug
    with pytest.raises(ValueError, match="bug must be one of"):
        with_bug(_correct(), "grey_bernoulli")
