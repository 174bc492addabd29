import numpy as np

from numvae import Dense, Sigmoid
from numvae.gradcheck import check_layer, check_model, numerical_gradient, relative_error
from helpers import tiny_model


def test_numerical_gradient_of_a_known_function():
    x = np.array([0.3, -1.2, 2.0])
    grad = numerical_gradient(lambda: np.sum(x**3), x)
    np.testing.assert_allclose(grad, 3 * x**2, rtol=1e-8)


def test_checker_catches_a_missing_factor_of_one_half():
    class HalfWrongSigmoid(Sigmoid):
        def backward(self, dy):
            return 2 * super().backward(dy)  # as if a factor of 1/2 had been lost

    x = np.random.default_rng(0).normal(size=(3, 4))
    assert check_layer(HalfWrongSigmoid(), x)["x"] > 0.3
    assert check_layer(Sigmoid(), x)["x"] < 1e-6


def test_checker_catches_a_wrong_kl_gradient(monkeypatch):
    from numvae import losses
    correct = losses.kl_divergence_backward

    def wrong(mean, log_var):  # dKL/dlog_var without its factor 0.5
        dmean, dlog_var = correct(mean, log_var)
        return dmean, 2 * dlog_var

    model = tiny_model(seed=1)
    x = np.random.default_rng(0).uniform(size=(4, 10))
    assert max(check_model(model, x).values()) < 1e-6
    monkeypatch.setattr(losses, "kl_divergence_backward", wrong)
    assert check_model(model, x)["encoder.log_var.b"] > 0.01


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
