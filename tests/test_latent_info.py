"""Rate, distortion, mutual information and marginal KL (numvae.diagnostics.latent_info)
against a linear-Gaussian model, where each is known in closed form:

    x ~ N(0, Sx),   q(z|x) = N(A x, diag(v)),   p(z) = N(0, I),   p(x|z) = N(B z, s^2 I).

Then q_bar(z) = N(0, C) with C = A Sx A' + diag(v), and (eqs. LI1-LI3)
    R = 1/2 [sum v + tr(A Sx A') - M - sum log v],
    I = 1/2 [log det C - sum log v],
    KL(q_bar || p) = 1/2 [tr C - M - log det C],
    D = E||x - B z||^2 / (2 s^2) + (N/2) log(2 pi s^2),
        E||x - B z||^2 = tr((I - B A) Sx (I - B A)') + tr(B diag(v) B').
"""
import math

import numpy as np
import pytest

from numvae.diagnostics.evaluate import active_units, evaluate_elbo
from numvae.diagnostics.latent_info import (
    format_latent_information,
    gaussian_log_density,
    latent_information,
    mutual_information,
)
from numvae.model.vae import VAE


class _Part:
    def __init__(self, name):
        self.name = name


class LinearGaussian:
    """The linear-Gaussian model above, with the few verbs latent_information reads."""
    dtype = np.dtype(np.float64)
    posterior, prior = _Part("diagonal_gaussian"), _Part("standard_normal")

    def __init__(self, A, v, B, s):
        self.A, self.v, self.B, self.s = A, v, B, s
        self.latent_dim = A.shape[0]

    def check_data(self, x, name):
        return np.asarray(x, np.float64)

    def check_labels(self, y, n):
        return None

    def forward(self, x, eps, *, y=None, kl_weight=1.0):
        mean = x @ self.A.T
        log_var = np.tile(np.log(self.v), (len(x), 1))
        z = mean + np.sqrt(self.v) * eps[0]
        residual = x - z @ self.B.T
        n = x.shape[1]
        reconstruction = (np.sum(residual ** 2, axis=1) / (2 * self.s ** 2)
                          + 0.5 * n * math.log(2 * math.pi * self.s ** 2))
        kl = 0.5 * np.sum(mean ** 2 + self.v - 1.0 - np.log(self.v), axis=1)
        return dict(mean=mean, log_var=log_var, reconstruction=reconstruction, kl=kl)

    def closed_form(self, cov_x):
        A, v, B, s, M = self.A, self.v, self.B, self.s, self.latent_dim
        C = A @ cov_x @ A.T + np.diag(v)
        rate = 0.5 * (v.sum() + np.trace(A @ cov_x @ A.T) - M - np.log(v).sum())
        info = 0.5 * (np.linalg.slogdet(C)[1] - np.log(v).sum())
        marginal = 0.5 * (np.trace(C) - M - np.linalg.slogdet(C)[1])
        lost = np.eye(len(cov_x)) - B @ A
        squared = np.trace(lost @ cov_x @ lost.T) + np.trace(B @ np.diag(v) @ B.T)
        distortion = squared / (2 * s ** 2) + 0.5 * len(cov_x) * math.log(2 * math.pi * s ** 2)
        return dict(rate=rate, mutual_info=info, marginal_kl=marginal, distortion=distortion)


def _linear_case(scale, v, n_images, seed=0):
    rng = np.random.default_rng(seed)
    cov_x = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]])
    x = rng.multivariate_normal(np.zeros(3), cov_x, size=n_images)
    A = scale * np.array([[0.8, -0.4, 0.3], [0.2, 0.9, -0.5]])
    B = np.array([[0.7, 0.1], [-0.3, 0.8], [0.4, -0.2]])
    return LinearGaussian(A, np.asarray(v, float), B, 0.6), x, cov_x


def test_each_number_matches_the_linear_gaussian_closed_form():
    model, x, cov_x = _linear_case(1.0, [0.3, 0.5], 4000)
    exact = model.closed_form(cov_x)
    got = latent_information(model, x, n_images=4000, n_draws=2, seed=1)
    assert 1.0 < exact["mutual_info"] < 3.0 < math.log(4000)  # far below the cap
    # each figure is an average over 4,000 images (and two draws each): about 3 standard
    # errors of the mean (0.02 for the rate, 0.056 for the distortion, 0.014 for I), the
    # estimator's own bias (a lower bound, LI4) inside
    for key, tolerance in [("rate", 0.06), ("distortion", 0.17), ("mutual_info", 0.05),
                           ("marginal_kl", 0.06)]:
        assert got[key] == pytest.approx(exact[key], abs=tolerance), key
    assert got["marginal_kl"] == pytest.approx(got["rate"] - got["mutual_info"], abs=1e-12)
    assert got["negative_elbo"] == pytest.approx(got["rate"] + got["distortion"], abs=1e-12)
    assert got["active_units"] == 2 and got["n_images"] == 4000
    assert got["kl_per_dim"].sum() == pytest.approx(got["rate"], rel=1e-12)


def test_the_estimate_stops_at_log_f_when_the_code_says_more():
    # posteriors far narrower than their spread: the true I is ~10 nats, log 50 = 3.9
    model, x, cov_x = _linear_case(3.0, [1e-4, 1e-4], 50)
    assert model.closed_form(cov_x)["mutual_info"] > 8.0
    got = latent_information(model, x, n_images=50, seed=2)
    assert got["mutual_info_cap"] == pytest.approx(math.log(50))
    assert math.log(50) - 0.05 < got["mutual_info"] <= math.log(50) + 1e-12


def test_an_encoder_that_ignores_x_holds_no_information():
    model, x, _ = _linear_case(0.0, [0.7, 1.3], 300)
    got = latent_information(model, x, n_images=300, seed=3)
    assert abs(got["mutual_info"]) < 1e-12      # every posterior is the aggregate one
    assert got["marginal_kl"] == pytest.approx(got["rate"], abs=1e-12)
    assert got["active_units"] == 0


def test_mutual_information_is_the_same_in_blocks():
    rng = np.random.default_rng(4)
    mean, log_var = rng.normal(size=(40, 3)), rng.normal(scale=0.3, size=(40, 3))
    whole = mutual_information(mean, log_var, np.random.default_rng(5), n_draws=2)
    blocks = mutual_information(mean, log_var, np.random.default_rng(5), n_draws=2,
                                max_entries=7 * 40 * 3)
    assert blocks["value"] == pytest.approx(whole["value"], abs=1e-12)
    assert whole["value"] <= whole["cap"] and whole["se"] > 0


def test_gaussian_log_density_is_the_product_of_univariate_densities():
    z = np.array([[0.3, -1.2]])
    mean, log_var = np.array([[0.1, 0.4], [-1.0, 2.0]]), np.array([[-0.5, 0.2], [0.3, -1.0]])
    got = gaussian_log_density(z, mean, log_var)
    for b in range(2):
        density = 1.0
        for j in range(2):
            var = math.exp(log_var[b, j])
            density *= math.exp(-(z[0, j] - mean[b, j]) ** 2 / (2 * var)) / math.sqrt(2 * math.pi * var)
        assert got[0, b] == pytest.approx(math.log(density), rel=1e-12)


def test_on_a_vae_the_rate_is_the_elbo_kl_and_the_units_are_burdas():
    model = VAE(12, 8, 3, encoder_hidden=(10,), decoder_hidden=(10,), dtype=np.float64, seed=0)
    x = (np.random.default_rng(0).random((60, 12)) > 0.5).astype(np.float64)
    got = latent_information(model, x, n_images=50, seed=0)
    elbo = evaluate_elbo(model, x[:50])
    assert got["rate"] == pytest.approx(elbo["kl"], rel=1e-12)  # the analytic K1, same images
    # an untrained encoder barely depends on x: I is near 0, its estimate within noise of it
    assert -3 * got["mutual_info_se"] <= got["mutual_info"] <= math.log(50)
    assert got["active_units"] == active_units(model, x[:50])[0]
    line = format_latent_information(got)
    assert "rate R" in line and "I_q" in line and "log 50 = 3.91" in line


def test_a_flow_posterior_has_no_mutual_information_here():
    model = VAE(12, 8, 2, encoder_hidden=(10,), decoder_hidden=(10,), posterior="iaf",
                dtype=np.float64, seed=0)
    x = (np.random.default_rng(0).random((30, 12)) > 0.5).astype(np.float64)
    got = latent_information(model, x, n_images=30)
    assert got["mutual_info"] is None and got["marginal_kl"] is None
    assert "I_q n/a" in format_latent_information(got)


def test_bad_subset_size_is_refused():
    model, x, _ = _linear_case(1.0, [0.3, 0.5], 10)
    with pytest.raises(ValueError, match="n_images"):
        latent_information(model, x, n_images=0)


def test_train_records_the_numbers_per_epoch_and_evaluate_prints_them(tmp_path, capsys):
    import json

    from helpers import run_cli
    out = tmp_path / "run"
    code, stdout, _ = run_cli(["train", "--dataset", "toy", "--latent-dim", "2", "--shared-dim",
                               "16", "--no-plots", "--batch-size", "64", "--epochs", "2",
                               "--out", str(out)], capsys)
    assert code == 0, stdout
    history = json.loads((out / "history.json").read_text())
    for key in ("rate", "distortion", "mutual_info", "marginal_kl", "active_units"):
        assert len(history[key]) == 2 and all(v is not None for v in history[key]), key
    assert set(history["kl_per_dim"]) == {"z0", "z1"}
    assert "mutual_info" in (out / "history.csv").read_text().splitlines()[0].split(",")
    latent = json.loads((out / "metrics.json").read_text())["latent"]
    assert latent["mutual_info"] <= latent["mutual_info_cap"]
    assert latent["marginal_kl"] == pytest.approx(latent["rate"] - latent["mutual_info"])
    code, stdout, _ = run_cli(["evaluate", str(out / "checkpoint.npz"), "--iwae-k", "0",
                               "--info-n", "100"], capsys)
    assert code == 0 and "I_q" in stdout and "log 100 = 4.61" in stdout
    assert "marginal KL" in stdout and "active units" in stdout
