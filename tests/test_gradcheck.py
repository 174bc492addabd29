import numpy as np
import pytest

from helpers import param_vector, tiny_model
from numvae import Sigmoid
from numvae.diagnostics.gradcheck import (
    check_arrays,
    check_layer,
    check_model,
    check_model_directions,
    directional_check,
    numerical_gradient,
    relative_error,
)


def test_numerical_gradient_of_a_known_function():
    x = np.array([0.3, -1.2, 2.0])
    grad = numerical_gradient(lambda: np.sum(x**3), x)
    np.testing.assert_allclose(grad, 3 * x**2, rtol=1e-8)


def test_checker_catches_a_missing_factor_of_one_half():
    class HalfWrongSigmoid(Sigmoid):
        def backward(self, dy, cache):
            return 2 * super().backward(dy, cache)  # as if a factor of 1/2 had been lost

    x = np.random.default_rng(0).normal(size=(3, 4))
    assert check_layer(HalfWrongSigmoid(), x)["x"] > 0.3
    assert check_layer(Sigmoid(), x)["x"] < 1e-6


@pytest.mark.parametrize("check", [check_model, check_model_directions])
def test_checker_catches_a_wrong_kl_gradient(monkeypatch, check):
    from numvae.model import kl
    correct = kl.kl_divergence_backward

    def wrong(mean, log_var):  # dKL/dlog_var without its factor 0.5
        dmean, dlog_var = correct(mean, log_var)
        return dmean, 2 * dlog_var

    model = tiny_model(seed=1)
    x = np.random.default_rng(0).uniform(size=(4, 10))
    assert max(check(model, x).values()) < 1e-6
    monkeypatch.setattr(kl, "kl_divergence_backward", wrong)
    assert check(model, x)["encoder.log_var.b"] > 0.01


def test_float32_model_is_checked_in_float64():
    import numvae
    model = numvae.VAE(784, 128, 2, seed=0)
    x = np.random.default_rng(0).uniform(size=(4, 784))
    errors = check_model(model, x, n_entries=5)
    assert model.dtype == np.float32  # the user's model is untouched
    assert max(errors.values()) < 1e-5, errors


def test_relative_error_scale():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert abs(relative_error([1.0, 2.0], [1.0, 1.0]) - 0.5) < 1e-12


# --- every entry at once: directional derivatives (eq. C2) ---------------------------

def _slides_model_and_batch():
    import numvae
    model = numvae.VAE(784, shared_dim=128, latent_dim=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).uniform(size=(8, 784))
    return model, x


def test_directional_check_of_the_whole_slides_model():
    """All 444,404 entries, 8 directions per array: correct gradients agree to ~1e-6
    (the loss is ~550 nats at initialisation, hence the roundoff); parameters are restored."""
    model, x = _slides_model_and_batch()
    before = param_vector(model)
    errors = check_model_directions(model, x, n_directions=8)
    assert set(errors) == set(model.params)
    assert max(errors.values()) < 1e-4, errors
    assert np.array_equal(param_vector(model), before)


def test_directional_check_catches_a_halved_array_and_one_wrong_entry():
    """Fake analytic gradients: one whole array halved gives 0.5; a single entry of the
    200,704-entry decoder output weight doubled is still far above the roundoff level."""
    from numvae.diagnostics.gradcheck import _float64_loss
    model, x = _slides_model_and_batch()
    model, x, eps, analytic = _float64_loss(model, x, None, seed=0)
    f = lambda: model.loss(x, eps)  # noqa: E731
    name = "decoder.decompressor.4.W"
    arrays = {name: model.params[name]}
    assert directional_check(f, arrays, analytic)[name] < 1e-4
    halved = {name: 0.5 * analytic[name]}
    assert abs(directional_check(f, arrays, halved)[name] - 0.5) < 1e-3
    one_wrong = {name: analytic[name].copy()}
    flat = one_wrong[name].reshape(-1)
    i = np.flatnonzero(np.abs(flat) > np.median(np.abs(flat)))[0]  # a typical, not a large, entry
    flat[i] *= 2
    assert directional_check(f, arrays, one_wrong)[name] > 1e-4


def test_gradcheck_options_are_checked():
    model = tiny_model()
    x = np.random.default_rng(0).uniform(size=(2, 10))
    with pytest.raises(ValueError, match="n_directions must be"):
        check_model_directions(model, x, n_directions=0)
    with pytest.raises(ValueError, match="h must be"):
        check_model_directions(model, x, h=-1e-5)
    with pytest.raises(ValueError, match="n_entries must be"):
        check_model(model, x, n_entries=0)


def test_gradcheck_names_a_missing_or_misshapen_analytic_gradient_and_restores_on_error():
    w = np.array([1.0, 2.0, 3.0])
    f = lambda: float(np.sum(w**2))  # noqa: E731
    for check in (check_arrays, directional_check):
        with pytest.raises(ValueError, match=r"analytic has no gradient for 'w'"):
            check(f, {"w": w}, {})
        with pytest.raises(ValueError, match=r"analytic\['w'\] has shape \(2,\); expected \(3,\)"):
            check(f, {"w": w}, {"w": np.zeros(2)})

    def failing():
        raise RuntimeError("the loss failed")
    for check in (check_arrays, directional_check):
        with pytest.raises(RuntimeError):
            check(failing, {"w": w}, {"w": 2 * w})
        assert np.array_equal(w, [1.0, 2.0, 3.0])  # not left perturbed


# --- a check cannot pass vacuously --------------------------------------------------------

def test_sampled_entries_are_drawn_where_the_analytic_gradient_is_not_zero():
    """Two of 200 entries matter, and their gradient is wrong by a factor 1/2: drawn among
    all entries, a few samples miss them and the check passes; drawn among the non-zero
    entries (the default), it fails every time."""
    w = np.random.default_rng(0).normal(size=200)
    f = lambda: float(np.sum(w[:2] ** 2))  # noqa: E731
    wrong = np.zeros(200)
    wrong[:2] = w[:2]  # 2 w without its 2
    uniform = [check_arrays(f, {"w": w}, {"w": wrong}, n_entries=3, seed=s, nonzero_only=False)["w"]
               for s in range(5)]
    assert min(uniform) == 0.0  # the vacuous pass the default prevents
    for seed in range(5):
        error = check_arrays(f, {"w": w}, {"w": wrong}, n_entries=3, seed=seed)["w"]
        assert abs(error - 0.5) < 1e-6 and error.checked == 2 and not error.zero_everywhere


def test_a_gradient_zero_everywhere_is_said_so_in_the_result():
    w = np.random.default_rng(1).normal(size=(4, 5))
    constant = check_arrays(lambda: 3.0, {"w": w}, {"w": np.zeros((4, 5))}, n_entries=3)["w"]
    assert constant == 0.0 and constant.zero_everywhere and constant.checked == 3
    assert "zero everywhere" in repr(constant) and "zero everywhere" in str(constant)
    # a gradient wrongly zero everywhere still meets the non-zero numeric one
    wrongly_zero = check_arrays(lambda: float(np.sum(w**2)), {"w": w}, {"w": np.zeros((4, 5))},
                                n_entries=3)["w"]
    assert wrongly_zero == 1.0 and wrongly_zero.zero_everywhere


def test_check_model_says_which_parameters_have_a_gradient_zero_everywhere():
    model = tiny_model(seed=2)
    model.params["encoder.compressor.0.b"][...] = -100.0  # every first-layer ReLU is dead
    x = np.random.default_rng(0).uniform(size=(3, 10))
    errors = check_model(model, x, n_entries=2)
    dead = {name for name, error in errors.items() if error.zero_everywhere}
    assert dead == {"encoder.compressor.0.W", "encoder.compressor.0.b", "encoder.compressor.2.W"}
    assert max(errors.values()) < 1e-6
    assert "zero everywhere" in repr(errors["encoder.compressor.0.W"])
    assert "zero everywhere" not in repr(errors["encoder.mean.W"])
