"""numvae.model.parts: the VAE from part objects, strings made parts in one place, 0.2's
keywords deprecated, and VAE.config in the shape checkpoints store."""
import json
import warnings

import numpy as np
import pytest

import numvae
from numvae.model import parts
from numvae.model.likelihoods import Bernoulli, Gaussian
from numvae.model.objectives import ELBO, IWAE, Reconstruction
from numvae.model.posteriors import IAF, DiagonalGaussian, PointMass
from numvae.model.priors import GaussianMixture, StandardNormal
from numvae.training.checkpoint import load_checkpoint, save_checkpoint

TINY = dict(encoder_hidden=(7,), decoder_hidden=(5,), dtype=np.float64, seed=3)


def test_the_issues_example_builds_each_part_with_its_settings():
    model = numvae.VAE(16, 8, 2, likelihood=Gaussian(sigma=0.5),
                       posterior=IAF(steps=2, hidden=(12,)),
                       prior=GaussianMixture(components=4), objective=IWAE(k=5), **TINY)
    assert model.likelihood.sigma == 0.5 and model.objective.k == model.n_samples == 5
    assert model.posterior.steps == len(model.posterior.flow) == 2
    assert model.prior.params["means"].shape == (4, 2)
    assert model.config == {
        "architecture": {"name": "mlp", "input_dim": 16, "shared_dim": 8, "latent_dim": 2,
                         "encoder_hidden": (7,), "decoder_hidden": (5,), "activation": "relu"},
        "likelihood": {"name": "gaussian", "sigma": 0.5},
        "posterior": {"name": "iaf", "steps": 2, "hidden": (12,)},
        "prior": {"name": "mixture", "components": 4}, "objective": {"name": "iwae", "k": 5},
        "dtype": "float64"}
    assert repr(model).startswith("VAE(input_dim=16, shared_dim=8, latent_dim=2, encoder_hidden=(7,)")
    assert "posterior=IAF(steps=2, hidden=(12,))" in repr(model)


def test_a_name_is_the_part_with_its_default_settings():
    by_name = numvae.VAE(16, 8, 2, likelihood="gaussian", posterior="iaf", prior="mixture",
                         objective="iwae", **TINY)
    by_object = numvae.VAE(16, 8, 2, likelihood=Gaussian(), posterior=IAF(),
                           prior=GaussianMixture(), objective=IWAE(), **TINY)
    assert by_name.config == by_object.config
    for name, value in by_name.params.items():  # the same draws from the same seed
        assert np.array_equal(value, by_object.params[name]), name


def test_the_model_builds_its_own_copy_of_a_part():
    prior = GaussianMixture(components=3)
    a, b = (numvae.VAE(16, 8, 2, prior=prior, seed=seed) for seed in (0, 1))
    assert a.prior is not prior and a.prior is not b.prior and prior.params == {}
    assert not np.array_equal(a.prior.params["means"], b.prior.params["means"])


@pytest.mark.parametrize("old, part, value", [
    ("sigma", ("likelihood", "gaussian"), 0.5),
    ("kl_weight", ("objective", "elbo"), 0.25),
    ("n_samples", ("objective", "iwae"), 3),
    ("prior_components", ("prior", "mixture"), 4),
    ("flow_steps", ("posterior", "iaf"), 2),
    ("flow_hidden", ("posterior", "iaf"), (9,)),
])
def test_old_keywords_still_work_with_a_deprecation_warning(old, part, value):
    kind, name = part
    with pytest.warns(DeprecationWarning, match=rf"VAE\({old}=\.\.\.\) is deprecated and goes "
                                                rf"in numvae 0.4: the setting belongs to the {kind}"):
        model = numvae.VAE(16, 8, 2, **{kind: name, old: value}, **TINY)
    setting = getattr(model, kind).flat_names[old]
    assert getattr(model, kind).settings()[setting] == value


def test_a_part_object_and_its_old_keyword_together_are_an_error_in_one_line():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError) as caught:
            numvae.VAE(16, 8, 2, likelihood=Gaussian(sigma=0.5), sigma=0.3, **TINY)
    message = str(caught.value)
    assert "\n" not in message
    assert message == ("sigma= and a likelihood part object both set the likelihood: give the "
                       "setting to the part only, e.g. likelihood=Gaussian(sigma=...)")


def test_an_unknown_keyword_is_still_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'sigmaa'"):
        numvae.VAE(16, 8, 2, sigmaa=0.5)


@pytest.mark.parametrize("bad, words", [
    (lambda: Gaussian(sigma=0), "sigma must be a positive finite number"),
    (lambda: ELBO(kl_weight=-1), "kl_weight must be"),
    (lambda: IWAE(k=0), "k must be a positive integer"),
    (lambda: GaussianMixture(components=0), "components must be a positive integer"),
    (lambda: IAF(steps=0), "steps must be a positive integer"),
    (lambda: IAF(hidden=()), "hidden must have at least one width"),
    (lambda: numvae.VAE(16, 8, 2, likelihood="poisson"), "likelihood must be one of"),
    (lambda: numvae.VAE(16, 8, 2, prior=3), "prior must be a part object"),
])
def test_each_part_checks_its_own_settings(bad, words):
    with pytest.raises((ValueError, TypeError), match=words):
        bad()


def test_a_part_with_parameters_refuses_to_build_without_a_generator():
    with pytest.raises(TypeError, match="GaussianMixture.build needs rng="):
        GaussianMixture(components=2).build(3, None, np.float64)
    with pytest.raises(TypeError, match="MaskedDense needs rng="):
        IAF(steps=1, hidden=(4,)).build(3, None, np.float64)


@pytest.mark.parametrize("kind, spec, expected", [
    ("likelihood", "gaussian", Gaussian), ("posterior", {"name": "point"}, PointMass),
    ("prior", {"name": "mixture", "prior_components": 4}, GaussianMixture),  # format 2's name
    ("prior", {"name": "standard_normal"}, StandardNormal),
    ("objective", {"name": "iwae", "n_samples": 5}, IWAE),                   # format 2's name
    ("objective", {"name": "reconstruction", "kl_weight": 0.0, "n_samples": 2}, Reconstruction),
    ("posterior", DiagonalGaussian(), DiagonalGaussian), ("likelihood", Bernoulli(), Bernoulli),
])
def test_make_part_reads_names_entries_and_objects(kind, spec, expected):
    part = parts.make_part(kind, spec)
    assert type(part) is expected
    assert parts.make_part(kind, parts.part_entry(part)).settings() == part.settings()


def test_command_line_settings_go_to_the_part_that_has_them_and_iwae_refuses_a_kl_weight():
    flat = dict(sigma=0.5, kl_weight=1.0, n_samples=4, prior_components=3, flow_steps=2,
                flow_hidden=(6,))
    built = parts.build_parts(dict(likelihood="bernoulli", objective="iwae"), flat)
    assert built["likelihood"].settings() == {} and built["objective"].k == 4
    with pytest.raises(ValueError, match="kl_weight=0.5 has no meaning for objective='iwae'"):
        parts.build_parts(dict(objective="iwae"), dict(kl_weight=0.5))


def test_flat_and_nested_configurations_convert_both_ways():
    flat = dict(input_dim=16, shared_dim=8, latent_dim=2, architecture="mlp",
                encoder_hidden=(7,), decoder_hidden=(5,), activation="relu",
                likelihood="gaussian", sigma=0.5, posterior="iaf", flow_steps=2,
                flow_hidden=(6,), prior="mixture", prior_components=3, objective="elbo",
                kl_weight=0.5, n_samples=2, n_classes=4)
    config = parts.config_from_flat({**flat, "dtype": "float64"})
    assert config["posterior"] == {"name": "iaf", "steps": 2, "hidden": (6,)}
    assert config["architecture"]["n_classes"] == 4 and config["dtype"] == "float64"
    assert parts.flat_config(config) == flat
    assert list(parts.flat_config(config)) == list(flat)  # 0.2's order, for the same bytes
    with pytest.raises(ValueError, match="unknown setting 'sigmaa'"):
        parts.config_from_flat({**flat, "sigmaa": 1.0})


def test_config_is_what_the_checkpoint_stores_and_rebuilds_the_model(tmp_path):
    model = numvae.VAE(16, 8, 2, likelihood=Gaussian(sigma=0.5), prior=GaussianMixture(components=3),
                       objective=ELBO(kl_weight=0.5, n_samples=2), n_classes=3, **TINY)
    path = save_checkpoint(tmp_path / "c.npz", model)
    with np.load(path) as npz:
        assert int(npz["format_version"]) == 3
        assert json.loads(str(npz["config"])) == json.loads(json.dumps(model.config))
    loaded = load_checkpoint(path).model
    assert loaded.config == model.config == numvae.VAE.from_config(model.config).config
    for name, value in model.params.items():
        assert np.array_equal(loaded.params[name], value), name
    assert model.copy(np.float32).config == {**model.config, "dtype": "float32"}


def test_loss_terms_is_forward_under_its_old_name_and_warns():
    model = numvae.VAE(16, 8, 2, **TINY)
    x, eps = np.full((2, 16), 0.5), np.zeros((1, 2, 2))
    with pytest.warns(DeprecationWarning, match="VAE.loss_terms is deprecated .* VAE.forward"):
        terms = model.loss_terms(x, eps)
    assert terms["loss"] == model.forward(x, eps)["loss"]
