"""The exercises (numvae/exercises): the reference answers, the grader, its hints, the command.

The reference is checked against numvae and against numbers worked out by hand; the grader
against numvae's own functions, an independent plain-NumPy solution (exercise_solution.py),
that solution broken one classic mistake at a time, and the untouched stubs.
"""
import inspect
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import numvae
from numvae import exercises
from numvae.commands.cli import main
from numvae.diagnostics.evaluate import iwae_log_likelihood, log_weights
from numvae.diagnostics.gradcheck import check_arrays
from numvae.exercises import grader
from numvae.exercises import reference as ref
from numvae.exercises.mistakes import HINTS
from numvae.exercises.specs import vae_params

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = Path(__file__).with_name("exercise_solution.py")
sys.path.insert(0, str(SOLUTION.parent))
import exercise_solution as solution  # noqa: E402


def grade(path):
    return {result.function: result for result in grader.check_file(path)}


def write(tmp_path, source, name="student.py"):
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    return path


# --- the reference, by hand and against numvae ------------------------------------------

def test_reference_dense_relu_sigmoid_by_hand():
    x, W, b = np.array([[1.0, 2.0]]), np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]]), np.ones(3)
    np.testing.assert_array_equal(ref.dense_forward(x, W, b), [[2.0, 3.0, 9.0]])
    dx, dW, db = ref.dense_backward(np.array([[1.0, 1.0, 1.0]]), x, W)
    np.testing.assert_array_equal(dx, [[3.0, 4.0]])
    np.testing.assert_array_equal(dW, [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(db, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(ref.relu_backward(np.array([[5.0, 7.0]]),
                                                    np.array([[-1.0, 2.0]])),
                                  [[0.0, 7.0]])
    assert ref.sigmoid_backward(np.array([2.0]), np.array([0.5]))[0] == 0.5


def test_reference_sigmoid_backward_matches_numvaes_sigmoid_layer():
    rng = np.random.default_rng(6)
    a, dy = 4 * rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    y, dx, _ = ref._layer_forward_backward(numvae.Sigmoid(), a, dy)
    np.testing.assert_allclose(ref.sigmoid_backward(dy, y), dx, rtol=1e-14)


def test_reference_dense_on_non_square_batches():
    rng = np.random.default_rng(1)
    x, W, b, dy = (rng.normal(size=s) for s in [(5, 3), (3, 7), (7,), (5, 7)])
    np.testing.assert_allclose(ref.dense_forward(x, W, b), x @ W + b, rtol=1e-13)
    for got, want in zip(ref.dense_backward(dy, x, W), (dy @ W.T, x.T @ dy, dy.sum(axis=0))):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_reference_losses_by_hand():
    assert ref.kl_divergence(np.array([[0.0, 1.0]]), np.zeros((1, 2)))[0] == 0.5
    np.testing.assert_allclose(ref.kl_divergence(np.zeros((1, 1)), np.log([[2.0]])),
                               [0.5 * (2 - 1 - math.log(2))], rtol=1e-14)
    dmean, dlog_var = ref.kl_divergence_backward(np.array([[3.0]]), np.log([[5.0]]))
    assert (dmean[0, 0], dlog_var[0, 0]) == (3.0, pytest.approx(2.0, rel=1e-14))
    nll = ref.bernoulli_nll(np.array([[0.0, 1000.0, -1000.0]]), np.ones((1, 3)))
    np.testing.assert_allclose(nll, [math.log(2) + 1000.0], rtol=1e-14)
    loss = ref.loss_fn(np.array([[1.0, 2.0]]), np.zeros((1, 2)), np.ones((1, 1)),
                       np.zeros((1, 1)), kl_weight=0.5)
    assert loss == 5.0 + 0.5 * 2.0


def test_reference_reparameterisation_by_hand_and_in_the_vae():
    z = ref.reparameterise(np.array([[1.0]]), np.log([[4.0]]), np.array([[0.5]]))
    assert z[0, 0] == pytest.approx(2.0, rel=1e-14)  # 1 + sqrt(4) * 0.5
    dmean, dlog_var = ref.reparameterise_backward(np.ones((1, 1)), np.ones((1, 1)),
                                                  np.log([[4.0]]), np.array([[0.5]]))
    assert (dmean[0, 0], dlog_var[0, 0]) == (1.0, pytest.approx(0.5, rel=1e-14))
    rng = np.random.default_rng(2)
    params = vae_params(rng, (8, 6, 5, 3, 4, 7))
    x, eps = rng.uniform(size=(4, 8)), rng.normal(size=(4, 3))
    out = ref.vae_forward(x, params, eps)
    np.testing.assert_allclose(ref.reparameterise(out["mean"], out["log_var"], eps), out["z"],
                               rtol=1e-13)


def test_reference_vae_matches_a_plain_numpy_vae_and_finite_differences():
    rng = np.random.default_rng(3)
    params = vae_params(rng, (9, 7, 5, 2, 4, 6))
    x, eps = rng.uniform(size=(3, 9)), rng.normal(size=(3, 2))
    mine, theirs = ref.vae_forward(x, params, eps), solution.vae_forward(x, params, eps)
    for name in ("mean", "log_var", "z", "output"):
        np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-12)
    np.testing.assert_allclose(ref.encoder_forward(x, params), solution.encoder_forward(x, params),
                               rtol=1e-12)
    loss, grads = ref.vae_loss_and_grad(x, params, eps)
    assert loss == pytest.approx(solution.vae_loss_and_grad(x, params, eps)[0], rel=1e-12)
    errors = check_arrays(lambda: ref.vae_loss_and_grad(x, params, eps)[0], params, grads)
    assert max(errors.values()) < 1e-7, errors


def test_reference_adam_by_hand_and_against_numvae_over_steps():
    param, grad = np.array([1.0, -2.0]), np.array([0.5, -4.0])
    m, v = np.zeros(2), np.zeros(2)
    ref.adam_step(param, grad, m, v, t=1, lr=0.1)
    # t = 1 from m = v = 0: m_hat = g, v_hat = g^2, a step of lr * g / (|g| + eps)
    np.testing.assert_allclose(param, [1.0 - 0.1, -2.0 + 0.1], rtol=1e-7)
    rng = np.random.default_rng(4)
    start, grads = rng.normal(size=(3, 2)), rng.normal(size=(5, 3, 2))
    optimiser = numvae.Adam({"w": start.copy()}, lr=0.01, betas=(0.8, 0.99))
    param, m, v = start.copy(), np.zeros((3, 2)), np.zeros((3, 2))
    for t, g in enumerate(grads, start=1):
        optimiser.step({"w": g})
        ref.adam_step(param, g, m, v, t, lr=0.01, beta1=0.8, beta2=0.99)
    np.testing.assert_allclose(param, optimiser.params["w"], rtol=1e-12)
    np.testing.assert_allclose(m, optimiser.m["w"], rtol=1e-12)
    np.testing.assert_allclose(v, optimiser.v["w"], rtol=1e-12)


def test_reference_adam_at_a_large_t_against_numvae():
    rng = np.random.default_rng(7)
    start, g = rng.normal(size=4), rng.normal(size=4)
    m, v = 0.1 * rng.normal(size=4), rng.uniform(0.001, 0.01, size=4)
    optimiser = numvae.Adam({"w": start.copy()})
    optimiser.t = 9_999  # the state after 9,999 steps, set through Adam's attributes
    optimiser.m["w"][...], optimiser.v["w"][...] = m, v
    optimiser.step({"w": g})
    param = start.copy()
    ref.adam_step(param, g, m, v, 10_000)
    np.testing.assert_allclose(param - start, optimiser.params["w"] - start, rtol=1e-10)


def test_reference_iwae_bound_by_hand_and_against_numvae():
    np.testing.assert_allclose(ref.iwae_bound(np.array([[0.0, math.log(3.0)]])), [math.log(2.0)],
                               rtol=1e-14)
    assert ref.iwae_bound(np.full((1, 4), -10_000.0))[0] == pytest.approx(-10_000.0, rel=1e-15)
    model = numvae.VAE(6, 5, 2, encoder_hidden=(4,), decoder_hidden=(3, 5), dtype=np.float64,
                       seed=0)
    x = np.random.default_rng(5).uniform(size=(3, 6))
    numvaes = iwae_log_likelihood(model, x, k=7, seed=9)["per_example"]
    eps = np.random.default_rng(9).standard_normal((7, 3, 2))  # the draws numvae makes
    np.testing.assert_allclose(ref.iwae_bound(log_weights(model, x, eps).T), numvaes, rtol=1e-12)


# --- the grader: right answers pass -----------------------------------------------------

NUMVAE_AS_A_STUDENT = """
from numvae.exercises.reference import (dense_forward, dense_backward, relu_backward,
    sigmoid_backward, encoder_forward, reparameterise, reparameterise_backward, vae_forward,
    vae_loss_and_grad, adam_step, iwae_bound, train_my_vae)
from numvae.model.kl import kl_divergence, kl_divergence_backward
from numvae.model.likelihoods import (bernoulli_nll, bernoulli_nll_backward, gaussian_nll,
    gaussian_nll_backward)
from numvae.model.objectives import seed_loss as loss_fn
"""


def test_numvae_functions_pass_as_a_students_file(tmp_path, capsys):
    path = write(tmp_path, NUMVAE_AS_A_STUDENT)
    results = grade(path)
    assert list(results) == grader.known_functions()
    assert all(r.status == grader.PASSED and r.message == "" for r in results.values()), results
    assert main(["exercise", "check", str(path)]) == 0
    assert "19 of 19 passed" in capsys.readouterr().out


def test_a_plain_numpy_solution_passes():
    results = grade(SOLUTION)
    assert len(results) == 18 and all(r.status == grader.PASSED for r in results.values()), results


# --- the grader: each classic mistake, named --------------------------------------------

ONE_HALF = ("dlog_var = dz * 0.5 * np.exp(0.5 * log_var) * eps",
            "dlog_var = dz * np.exp(0.5 * log_var) * eps")
STD_AS_VAR = ("std = np.exp(0.5 * log_var)\n    return", "std = np.exp(log_var)\n    return")
KL = "0.5 * np.sum(mean**2 + np.exp(log_var) - 1 - log_var, axis=1)"
NO_MINUS_ONE = (KL, "0.5 * np.sum(mean**2 + np.exp(log_var) - log_var, axis=1)")
NO_HALF = (KL, "np.sum(mean**2 + np.exp(log_var) - 1 - log_var, axis=1)")
GAUSSIAN = "squared / (2 * sigma**2) + 0.5 * n_pixels * np.log(2 * np.pi * sigma**2)"
DGAUSSIAN = "return (prediction - x) / sigma**2"
ENCODER_H = 'p = params\n    h = relu(x @ p["encoder.compressor.0.W"] + p["encoder.compressor.0.b"])'
DECODER_H2 = 'h2 = relu(h1 @ p["decoder.decompressor.2.W"] + p["decoder.decompressor.2.b"])'
DMEAN = "dmean = dz + mean / batch"
DLOG_VAR = "dlog_var = dz * 0.5 * std * eps + 0.5 * (np.exp(log_var) - 1) / batch"
DSHARED = 'dshared = dmean @ p["encoder.mean.W"].T + dlog_var @ p["encoder.log_var.W"].T'
# (function checked, hint expected, replacements in exercise_solution.py)
MUTATIONS = [
    ("dense_backward", "sign", [("return dx, dW, db", "return -dx, -dW, -db")]),
    ("dense_backward", "dW_transposed", [("dW = x.T @ dy", "dW = dy.T @ x")]),
    ("dense_backward", "db_not_summed", [("db = dy.sum(axis=0)", "db = dy")]),
    ("dense_backward", "mean_vs_sum", [("db = dy.sum(axis=0)", "db = dy.mean(axis=0)")]),
    ("relu_backward", "relu_mask", [("return dy * (x > 0)", "return dy * (dy > 0)")]),
    ("sigmoid_backward", "sigmoid_of_output",
     [("return dy * y * (1 - y)", "return dy * sigmoid(y) * (1 - sigmoid(y))")]),
    ("encoder_forward", "relu_on_heads",
     [("return mean, log_var\n\n\ndef reparameterise",
       "return relu(mean), relu(log_var)\n\n\ndef reparameterise")]),
    ("reparameterise", "std_vs_var", [STD_AS_VAR]),
    ("reparameterise_backward", "half", [ONE_HALF]),
    ("reparameterise_backward", "std_vs_var",
     [(ONE_HALF[0], "dlog_var = dz * np.exp(log_var) * eps")]),
    ("kl_divergence", "kl_minus_one", [NO_MINUS_ONE]),
    ("kl_divergence", "half", [NO_HALF]),
    ("kl_divergence", "std_vs_var", [(KL, KL.replace("np.exp(log_var)", "np.exp(0.5 * log_var)"))]),
    ("kl_divergence", "sign", [(KL, KL.replace("- 1 - log_var", "- 1 + log_var"))]),
    ("kl_divergence", "mean_vs_sum", [(KL, KL.replace("np.sum", "np.mean"))]),
    ("kl_divergence_backward", "kl_minus_one",
     [("dlog_var = 0.5 * (np.exp(log_var) - 1)\n", "dlog_var = 0.5 * np.exp(log_var)\n")]),
    ("kl_divergence_backward", "half",
     [("dlog_var = 0.5 * (np.exp(log_var) - 1)\n", "dlog_var = np.exp(log_var) - 1\n")]),
    ("kl_divergence_backward", "sign",
     [("dlog_var = 0.5 * (np.exp(log_var) - 1)\n", "dlog_var = 0.5 * (1 - np.exp(log_var))\n")]),
    ("kl_divergence_backward", "mean_vs_sum",
     [("dmean = mean\n", "dmean = mean / len(mean)\n")]),
    ("bernoulli_nll", "softplus",
     [("return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))", "return np.log(1 + np.exp(a))")]),
    ("bernoulli_nll", "softplus",  # finite, but wrong at +-1000: clipped probabilities
     [("np.sum(softplus(logits) - x * logits, axis=1)",
       "-np.sum(x * np.log(np.clip(sigmoid(logits), 1e-12, 1 - 1e-12)) + (1 - x) * "
       "np.log(np.clip(1 - sigmoid(logits), 1e-12, 1)), axis=1)")]),
    ("bernoulli_nll", "sign", [("softplus(logits) - x * logits", "x * logits - softplus(logits)")]),
    ("bernoulli_nll", "mean_vs_sum", [("np.sum(softplus(logits) - x * logits, axis=1)",
                                       "np.mean(softplus(logits) - x * logits, axis=1)")]),
    ("bernoulli_nll_backward", "sign",
     [("return sigmoid(logits) - x", "return x - sigmoid(logits)")]),
    ("bernoulli_nll_backward", "mean_vs_sum",
     [("return sigmoid(logits) - x", "return (sigmoid(logits) - x) / len(x)")]),
    ("vae_forward", "std_vs_var", [STD_AS_VAR]),
    ("vae_forward", "logits_not_probs", [('"output": sigmoid(logits)}', '"output": logits}')]),
    ("loss_fn", "slides_kl", [("kl_div = mean**2 + np.exp(log_var) - log_var",
                               "kl_div = 0.5 * (mean**2 + np.exp(log_var) - 1 - log_var)")]),
    ("loss_fn", "std_vs_var", [("kl_div = mean**2 + np.exp(log_var)",
                                "kl_div = mean**2 + np.exp(0.5 * log_var)")]),
    ("loss_fn", "mean_vs_sum", [("np.sum((prediction - target) ** 2)",
                                 "np.mean((prediction - target) ** 2)")]),
    ("loss_fn", "kl_weight", [("reconstruction + kl_weight * np.sum(kl_div)",
                               "kl_weight * reconstruction + np.sum(kl_div)")]),
    ("vae_loss_and_grad", "mean_vs_sum", [("loss = np.mean(bernoulli_nll",
                                           "loss = np.sum(bernoulli_nll")]),
    ("vae_loss_and_grad", "std_vs_var", [("std = np.exp(0.5 * log_var)\n    z =",
                                          "std = np.exp(log_var)\n    z =")]),
    ("vae_loss_and_grad", "kl_minus_one", [NO_MINUS_ONE]),
    ("vae_loss_and_grad", "half", [NO_HALF]),
    ("vae_loss_and_grad", "sign", [("return float(loss), g",
                                    "return float(loss), {k: -d for k, d in g.items()}")]),
    ("adam_step", "adam_bias", [("m_hat = m / (1 - beta1**t)", "m_hat = m"),
                                ("v_hat = v / (1 - beta2**t)", "v_hat = v")]),
    ("adam_step", "adam_bias", [("v_hat = v / (1 - beta2**t)", "v_hat = v")]),
    ("adam_step", "sign", [("param -= lr", "param += lr")]),
    ("adam_step", "in_place", [("m *= beta1\n    m += (1 - beta1) * grad",
                                "m = beta1 * m + (1 - beta1) * grad")]),
    ("iwae_bound", "lse_overflow", [("top = log_weights.max(axis=1, keepdims=True)",
                                     "top = 0 * log_weights.max(axis=1, keepdims=True)")]),
    ("iwae_bound", "lse_overflow", [("top = log_weights.max(axis=1, keepdims=True)",
                                     "top = np.minimum(log_weights.max(axis=1, keepdims=True), 0)")]),
    ("gaussian_nll", "gaussian_constant", [(GAUSSIAN, "squared / (2 * sigma**2)")]),
    ("gaussian_nll", "sigma_squared", [(GAUSSIAN, GAUSSIAN.replace("sigma**2", "sigma"))]),
    ("gaussian_nll", "half", [(GAUSSIAN, GAUSSIAN.replace("(2 * sigma**2)", "sigma**2"))]),
    ("gaussian_nll", "mean_vs_sum", [("np.sum((x - prediction) ** 2, axis=1)",
                                      "np.mean((x - prediction) ** 2, axis=1)")]),
    ("gaussian_nll_backward", "sigma_squared", [(DGAUSSIAN, "return (prediction - x) / sigma")]),
    ("gaussian_nll_backward", "half", [(DGAUSSIAN, "return (prediction - x) / (2 * sigma**2)")]),
    ("gaussian_nll_backward", "sign", [(DGAUSSIAN, "return (x - prediction) / sigma**2")]),
    ("gaussian_nll_backward", "mean_vs_sum", [(DGAUSSIAN, DGAUSSIAN + " / len(x)")]),
    ("iwae_bound", "mean_vs_sum", [("np.log(np.mean(np.exp(log_weights - top)",
                                    "np.log(np.sum(np.exp(log_weights - top)")]),
    # issue 22: the mistakes that had no hint
    ("encoder_forward", "compressor_relu", [(ENCODER_H, ENCODER_H.replace(
        'relu(x @ p["encoder.compressor.0.W"] + p["encoder.compressor.0.b"])',
        'x @ p["encoder.compressor.0.W"] + p["encoder.compressor.0.b"]'))]),
    ("encoder_forward", "heads_swapped", [("return mean, log_var\n\n\ndef reparameterise",
                                           "return log_var, mean\n\n\ndef reparameterise")]),
    ("reparameterise_backward", "std_vs_var",
     [(ONE_HALF[0], "dlog_var = dz * 0.5 * np.exp(log_var) * eps")]),
    ("vae_forward", "decoder_relu", [(DECODER_H2, DECODER_H2.replace("relu(", "(", 1))]),
    ("vae_loss_and_grad", "kl_grad_sign", [(DMEAN, "dmean = dz - mean / batch"),
                                           (DLOG_VAR, DLOG_VAR.replace("+ 0.5", "- 0.5"))]),
    ("vae_loss_and_grad", "fork_assign", [(DMEAN, "dmean = mean / batch"),
                                          (DLOG_VAR, "dlog_var = 0.5 * (np.exp(log_var) - 1) / batch")]),
    ("vae_loss_and_grad", "head_dropped", [(DSHARED, 'dshared = dmean @ p["encoder.mean.W"].T')]),
    ("vae_loss_and_grad", "half", [(DLOG_VAR, DLOG_VAR.replace("dz * 0.5 * std", "dz * std"))]),
    ("vae_loss_and_grad", "relu_mask", [
        ("(dlogits @ p[\"decoder.decompressor.4.W\"].T) * (h2 > 0)",
         "relu_from_dy(dlogits @ p[\"decoder.decompressor.4.W\"].T)"),
        ("(dh2 @ p[\"decoder.decompressor.2.W\"].T) * (h1 > 0)",
         "relu_from_dy(dh2 @ p[\"decoder.decompressor.2.W\"].T)"),
        ("dshared = dshared * (shared > 0)", "dshared = relu_from_dy(dshared)"),
        ("(dshared @ p[\"encoder.compressor.2.W\"].T) * (h > 0)",
         "relu_from_dy(dshared @ p[\"encoder.compressor.2.W\"].T)"),
        ("def relu(a):", "def relu_from_dy(dy):\n    return dy * (dy > 0)\n\n\ndef relu(a):")]),
    ("adam_step", "adam_t_plus_one", [("m_hat = m / (1 - beta1**t)", "m_hat = m / (1 - beta1**(t + 1))"),
                                      ("v_hat = v / (1 - beta2**t)", "v_hat = v / (1 - beta2**(t + 1))")]),
    ("adam_step", "adam_alias", [("m_hat = m / (1 - beta1**t)", "m_hat = m\n    m_hat /= 1 - beta1**t")]),
    ("adam_step", "eps_in_sqrt", [("(np.sqrt(v_hat) + eps)", "np.sqrt(v_hat + eps)")]),
    ("iwae_bound", "lse_global_max", [("top = log_weights.max(axis=1, keepdims=True)",
                                       "top = np.full((len(log_weights), 1), log_weights.max())")]),
    ("iwae_bound", "lse_not_added_back", [("return top[:, 0] + np.log(np.mean(", "return np.log(np.mean(")]),
    ("gaussian_nll", "gaussian_log_sigma", [(GAUSSIAN, GAUSSIAN.replace("np.log(2 * np.pi * sigma**2)",
                                                                          "np.log(2 * np.pi * sigma)"))]),
    ("gaussian_nll_backward", "gaussian_grad_variance", [(DGAUSSIAN, "return prediction - x")]),
]


def mutated_solution(tmp_path, replacements):
    source = SOLUTION.read_text(encoding="utf-8")
    for old, new in replacements:
        assert source.count(old) == 1, f"the mutation's text is not once in the solution: {old!r}"
        source = source.replace(old, new)
    return write(tmp_path, source)


@pytest.mark.parametrize("function, hint, replacements", MUTATIONS,
                         ids=[f"{f}-{h}" for f, h, _ in MUTATIONS])
def test_a_classic_mistake_fails_with_its_hint(tmp_path, function, hint, replacements):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = grade(mutated_solution(tmp_path, replacements))[function]
    assert result.status == grader.WRONG
    assert HINTS[hint] in result.message, result.message
    assert not caught, [str(w.message) for w in caught]  # overflow is a hint, not a warning


def test_each_exercise_lists_every_hint_its_functions_can_give():
    from numvae.exercises.mistakes import MISTAKES
    from numvae.exercises.specs import SPECS
    for exercise in exercises.EXERCISES:
        possible = set()
        for function in exercise.functions:
            possible |= {key.split(":")[0] for key in MISTAKES.get(function, {})}
            possible.add(SPECS[function].overflow_hint)
        possible |= {"dW_transposed", "db_not_summed"} if exercise.name == "01_dense" else set()
        possible |= {"in_place"} if exercise.name == "09_adam" else set()
        assert possible - {"not_finite"} == set(exercise.hints), exercise.name


def test_every_hint_an_exercise_lists_has_a_wrong_file_that_shows_it():
    tested = {(function, hint) for function, hint, _ in MUTATIONS}
    for exercise in exercises.EXERCISES:
        for hint in exercise.hints:
            assert any((f, hint) in tested for f in exercise.functions), (exercise.name, hint)
            assert hint in HINTS


# --- the grader: which of forward and backward is wrong -----------------------------------

KL_FILE = """
import numpy as np
def kl_divergence(mean, log_var):
    return {factor} * np.sum(mean**2 + np.exp(log_var) - 1 - log_var, axis=1)
def kl_divergence_backward(mean, log_var):
    return {factor_back} * mean, {factor_back} * 0.5 * (np.exp(log_var) - 1)
"""


def test_a_wrong_backward_disagrees_with_the_students_own_forward(tmp_path):
    path = write(tmp_path, KL_FILE.format(factor=0.5, factor_back=2.0))
    results = grade(path)
    assert results["kl_divergence"].status == grader.PASSED
    message = results["kl_divergence_backward"].message
    assert "disagrees with central differences of your kl_divergence as well" in message
    assert "the mistake is in the gradient" in message


def test_a_backward_consistent_with_a_wrong_forward_says_the_forward_is_wrong(tmp_path):
    path = write(tmp_path, KL_FILE.format(factor=1.0, factor_back=2.0))
    results = grade(path)
    assert results["kl_divergence"].status == grader.WRONG
    message = results["kl_divergence_backward"].message
    assert results["kl_divergence_backward"].status == grader.WRONG
    assert ("It agrees with central differences of your kl_divergence: so your kl_divergence "
            "is wrong too; fix it first.") in message


def test_a_right_backward_passes_and_points_at_a_wrong_forward(tmp_path):
    results = grade(write(tmp_path, KL_FILE.format(factor=1.0, factor_back=1.0)))
    assert results["kl_divergence_backward"].status == grader.PASSED
    assert results["kl_divergence_backward"].message == (
        "but central differences of your kl_divergence disagree with it (dmean: relative "
        "error 0.5): fix kl_divergence")


def test_a_wrong_vae_gradient_is_located_in_the_order_of_the_backward_pass(tmp_path):
    """Forgetting the KL's share of dL/dmean (the fork, V5): the decoder's gradients and
    log_var's are right, and the first wrong one reported is the mean head's."""
    path = mutated_solution(tmp_path, [("dmean = dz + mean / batch", "dmean = dz")])
    message = grade(path)["vae_loss_and_grad"].message
    assert message.startswith("grads[encoder.mean.b] differs from numvae's"), message
    assert "the gradients nearer the output, checked before it, are right" in message
    assert "disagrees with central differences of your loss as well (grads[encoder.mean.b]" in message


# --- the grader: the student's errors are theirs ----------------------------------------

def test_an_exception_in_the_students_code_names_their_file_and_line(tmp_path):
    path = write(tmp_path, "import numpy as np\n\n\ndef iwae_bound(log_weights):\n"
                           "    k = log_weights.shape[1]\n    return log_weights[:, k]\n")
    message = grade(path)["iwae_bound"].message
    assert message.startswith("your code raised IndexError"), message
    assert message.endswith("(student.py, line 6, in iwae_bound: return log_weights[:, k])")


def test_a_file_that_cannot_be_imported_is_reported_not_raised(tmp_path):
    results = grade(write(tmp_path, "import numpy as np\n\ndef iwae_bound(x)\n    return x\n"))
    assert results["student.py"].status == grader.WRONG
    assert "could not be imported: SyntaxError" in results["student.py"].message
    assert "line 3" in results["student.py"].message
    results = grade(write(tmp_path, "import numpy as np\nnp.zeros(2)[5]\n", "other.py"))
    assert "IndexError" in results["other.py"].message and "line 2" in results["other.py"].message


def test_a_wrong_signature_or_sys_exit_is_reported_not_raised(tmp_path):
    source = "import sys\ndef relu_backward(dy):\n    return dy\ndef iwae_bound(w):\n    sys.exit(3)\n"
    results = grade(write(tmp_path, source))
    assert results["relu_backward"].message == ("your code raised TypeError: relu_backward() takes "
                                                "1 positional argument but 2 were given")
    assert results["iwae_bound"].message.startswith("your code raised SystemExit: 3 (student.py, line 5")
    assert "SystemExit" in grade(write(tmp_path, "exit()\n", "quits.py"))["quits.py"].message


def test_a_file_without_exercise_functions_fails(tmp_path, capsys):
    path = write(tmp_path, "def helper():\n    return 1\n")
    assert "defines none of the exercise functions" in grade(path)["student.py"].message
    assert main(["exercise", "check", str(path)]) == 1


def test_not_done_yet_also_through_a_helper_and_an_edited_file_is_read_again(tmp_path):
    source = ("import numpy as np\ndef softplus(a):\n    raise NotImplementedError\n"
              "def bernoulli_nll(logits, x):\n    return np.sum(softplus(logits) - x * logits, axis=1)\n")
    path = write(tmp_path, source)
    assert grade(path)["bernoulli_nll"] == ("bernoulli_nll", grader.NOT_DONE, "it calls softplus")
    path.write_text(source.replace("raise NotImplementedError",
                                   "return np.logaddexp(0, a)"))
    assert grade(path)["bernoulli_nll"].status == grader.PASSED


def test_a_function_that_writes_into_its_inputs_does_not_spoil_the_check(tmp_path):
    source = ("import numpy as np\ndef kl_divergence(mean, log_var):\n    mean **= 2\n"
              "    return 0.5 * np.sum(mean + np.exp(log_var) - 1 - log_var, axis=1)\n")
    assert grade(write(tmp_path, source))["kl_divergence"].status == grader.PASSED


# --- the stubs --------------------------------------------------------------------------

SIGNATURES = {  # from issue 12, independent of numvae/exercises/__init__.py
    "01_dense": {"dense_forward": "(x, W, b)", "dense_backward": "(dy, x, W)",
                 "relu_backward": "(dy, x)", "sigmoid_backward": "(dy, y)"},
    "02_encoder": {"encoder_forward": "(x, params)"},
    "03_reparameterisation": {"reparameterise": "(mean, log_var, eps)",
                              "reparameterise_backward": "(dz, mean, log_var, eps)"},
    "04_kl": {"kl_divergence": "(mean, log_var)", "kl_divergence_backward": "(mean, log_var)"},
    "05_bernoulli": {"bernoulli_nll": "(logits, x)", "bernoulli_nll_backward": "(logits, x)"},
    "06_vae_forward": {"vae_forward": "(x, params, eps)"},
    "07_loss_fn": {"loss_fn": "(prediction, target, mean, log_var, kl_weight=1.0)"},
    "08_vae_backward": {"vae_loss_and_grad": "(x, params, eps)"},
    "09_adam": {"adam_step": "(param, grad, m, v, t, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)"},
    "10_iwae": {"iwae_bound": "(log_weights)"},
    "11_gaussian": {"gaussian_nll": "(prediction, x, sigma=1.0)",
                    "gaussian_nll_backward": "(prediction, x, sigma=1.0)"},
    "12_train_my_vae": {"train_my_vae": "(x, params, order, eps, lr=0.001)"},
}


def test_stubs_have_the_signatures_a_docstring_with_a_label_and_are_not_done(capsys):
    labels = set(re.findall(r"\*\*\(([A-Z]\d)\)\*\*",
                            (ROOT / "docs" / "derivations.md").read_text()))
    assert [e.name for e in exercises.EXERCISES] == list(SIGNATURES)
    for exercise in exercises.EXERCISES:
        path = exercises.stub_path(exercise.name)
        module = grader.load_student(path)
        assert set(re.findall(r"\(([A-Z]\d)\)", module.__doc__)) & labels, exercise.name
        for function, signature in SIGNATURES[exercise.name].items():
            assert str(inspect.signature(getattr(module, function))) == signature
        assert exercise.functions == tuple(SIGNATURES[exercise.name])
        assert main(["exercise", "check", str(path)]) == 1
        out, err = capsys.readouterr()
        lines = out.splitlines()
        # the capstone's stub also holds the two functions of 08 and 09 it builds on
        expected = (["vae_loss_and_grad", "adam_step"] if exercise.name == "12_train_my_vae"
                    else []) + list(exercise.functions)
        assert lines[:-1] == [f"{f}: not done yet" for f in expected], out
        assert "Traceback" not in out + err


def test_a_stub_in_a_real_process_exits_1_without_a_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "numvae", "exercise", "check",
                           str(exercises.stub_path("09_adam"))],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == "adam_step: not done yet"
    assert "Traceback" not in done.stdout + done.stderr


def test_the_library_never_imports_the_command_line():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = ("import sys, numvae.exercises.grader; "
            "print(sorted(m for m in sys.modules if m.startswith(('numvae.commands.cli', 'numvae.commands'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


# --- start and list -----------------------------------------------------------------------

def test_start_copies_fresh_stubs_and_refuses_to_replace_them(tmp_path):
    written = exercises.start(tmp_path / "mine")
    assert [p.name for p in written] == [f"{e.name}.py" for e in exercises.EXERCISES]
    for path in written:
        assert path.read_bytes() == exercises.stub_path(path.stem).read_bytes()
    written[3].write_text("# my work\n")
    with pytest.raises(exercises.StubsExist) as error:
        exercises.start(tmp_path / "mine")
    assert len(error.value.existing) == len(exercises.EXERCISES)
    assert written[3].read_text() == "# my work\n"
    exercises.start(tmp_path / "mine", overwrite=True)
    assert written[3].read_bytes() == exercises.stub_path("04_kl").read_bytes()


def test_the_command_lists_starts_and_refuses(tmp_path, capsys):
    assert main(["exercise", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [f"{e.name}.py" for e in exercises.EXERCISES]
    folder = tmp_path / "class"
    assert main(["exercise", "start", str(folder)]) == 0
    (folder / "01_dense.py").write_text("# my work\n")
    capsys.readouterr()
    assert main(["exercise", "start", str(folder)]) == 1
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1 and "--overwrite" in err and "01_dense.py" in err
    assert (folder / "01_dense.py").read_text() == "# my work\n"
    assert main(["exercise", "start", str(folder), "--overwrite"]) == 0
    assert "NotImplementedError" in (folder / "01_dense.py").read_text()
    assert main(["exercise", "check", str(folder / "missing.py")]) == 2  # a usage error
    capsys.readouterr()
    assert main(["exercise", "check", str(folder)]) == 1  # a whole folder: nothing done yet
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "01_dense.py:" and lines[1] == "dense_forward: not done yet"
    assert lines[-1] == f"0 of {len(grader.known_functions())} passed"
    assert main(["exercise", "frobnicate"]) == 2


def test_a_loss_off_by_a_constant_with_right_gradients_says_so(tmp_path):
    """A KL without its -1 in exercise 08: the loss differs, every gradient is right; the
    message must not send the student to fix gradients that are right."""
    message = grade(mutated_solution(tmp_path, [NO_MINUS_ONE]))["vae_loss_and_grad"].message
    assert message.startswith("loss differs from numvae's"), message
    assert "Your gradients are right: only the loss's value is off." in message
    assert "wrong too" not in message and HINTS["kl_minus_one"] in message


EFFICIENT_ADAM = ("    m_hat = m / (1 - beta1**t)\n    v_hat = v / (1 - beta2**t)\n"
                  "    param -= lr * m_hat / (np.sqrt(v_hat) + eps)",
                  "    lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)\n"
                  "    param -= lr_t * m / (np.sqrt(v) + eps)")


def test_kingma_and_bas_efficient_adam_passes_with_a_note(tmp_path):
    result = grade(mutated_solution(tmp_path, [EFFICIENT_ADAM]))["adam_step"]
    assert result.status == grader.PASSED
    assert result.message.startswith("accepted as Kingma & Ba's efficient form"), result.message
    assert grade(SOLUTION)["adam_step"].message == ""  # Algorithm 1 itself gets no note


def test_the_broken_vae_switched_off_is_numvaes():
    """mistakes' plain VAE (numvae/exercises/broken_vae.py) without a mistake equals the
    reference: otherwise its variants would name mistakes the student did not make."""
    from numvae.exercises import broken_vae
    rng = np.random.default_rng(11)
    params = vae_params(rng, (9, 7, 5, 3, 4, 6))
    x, eps = rng.uniform(size=(4, 9)), rng.normal(size=(4, 3))
    out, want = broken_vae.forward(x, params, eps), ref.vae_forward(x, params, eps)
    for name in ("mean", "log_var", "z", "output"):
        np.testing.assert_allclose(out[name], want[name], rtol=1e-12)
    loss, grads = broken_vae.loss_and_grad(x, params, eps)
    want_loss, want_grads = ref.vae_loss_and_grad(x, params, eps)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for name, grad in want_grads.items():
        np.testing.assert_allclose(grads[name], grad, rtol=1e-10, atol=1e-14)


# the results a backward stub must leave to the student (issue 22: derive, don't transcribe)
RESULTS = {"01_dense": ["x^T @ dy", "x.T @ dy", "dy @ W^T", "dy @ W.T", "y * (1 - y)",
                        "dy where x > 0"],
           "03_reparameterisation": ["0.5 * exp(0.5", "dz * "],
           "04_kl": ["exp(log_var) - 1)", "dmean = mean"],
           "05_bernoulli": ["sigmoid(a) - x", "p - x"],
           "11_gaussian": ["(prediction - x) / sigma"]}


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_a_backward_stub_gives_the_start_not_the_result(name):
    text = exercises.stub_path(name).read_text(encoding="utf-8")
    assert "Start from" in text or "start from" in text or name in ("03_reparameterisation",
                                                                    "04_kl", "11_gaussian")
    for result in RESULTS[name]:
        assert result not in text, (name, result)


# --- the capstone (exercise 12) -----------------------------------------------------------

CAPSTONE_LOOP = """

def train_my_vae(x, params, order, eps, lr=1e-3):
    m = {name: np.zeros_like(value) for name, value in params.items()}
    v = {name: np.zeros_like(value) for name, value in params.items()}
    losses = []
    for t, (batch, step_eps) in enumerate(zip(order, eps), start=1):
        loss, grads = vae_loss_and_grad(x[batch], params, step_eps)
        for name in params:
            adam_step(params[name], grads[name], m[name], v[name], t, lr)
        losses.append(loss)
    return losses
"""


def test_the_capstone_trains_like_numvae_to_1e_9_and_a_wrong_step_is_found(tmp_path):
    """The plain solution's own 08 and 09 in a student's loop: its 50 losses equal numvae's
    training on the same weights, batches and eps; Adam's t stuck at 1 differs from step 3."""
    path = write(tmp_path, SOLUTION.read_text(encoding="utf-8") + CAPSTONE_LOOP)
    assert grade(path)["train_my_vae"] == ("train_my_vae", grader.PASSED, "")
    stuck = write(tmp_path, path.read_text().replace("grads[name], m[name], v[name], t, lr)",
                                                       "grads[name], m[name], v[name], 1, lr)"),
                  "stuck.py")
    result = grade(stuck)["train_my_vae"]
    # step 1's loss comes before any update and step 2's after the first (t = 1 either way)
    assert result.status == grader.WRONG and "first at step 3" in result.message, result


def test_the_capstone_reference_is_numvaes_training():
    """reference.train_my_vae against numvae's fit-free loop written here: VAE.loss_and_grad
    then Adam.step, on the capstone's inputs (3 steps of batch 8)."""
    from numvae.exercises.specs import capstone_inputs
    images, params, order, eps = capstone_inputs(3, 8, seed=1)
    model = numvae.VAE(784, 128, 2, dtype=np.float64, seed=1)
    optimiser = numvae.Adam(model.params, lr=1e-3)
    want = []
    for batch, step_eps in zip(order, eps):
        want.append(model.loss_and_grad(images[batch], step_eps))
        optimiser.step(model.grads)
    got = ref.train_my_vae(images, params, order, eps)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(params["decoder.decompressor.4.W"],
                               model.params["decoder.decompressor.4.W"], rtol=1e-12)
    assert want[0] > want[-1]


def test_the_capstone_draws_the_slides_figures_from_the_students_parameters(tmp_path):
    """draw_figures puts the student's trained parameters into the model it draws: a fake
    loop that sets every parameter to 0.01 and returns made-up losses."""
    from numvae.exercises import capstone
    seen = {}

    def fake_loop(x, params, order, eps, lr):
        seen.update(steps=len(order), batch=order.shape[1], eps=eps.shape)
        for value in params.values():
            value[...] = 0.01
        return [550.0] * len(order)

    model, losses = capstone.train_longer(fake_loop, epochs=1)
    assert seen == {"steps": 78, "batch": 128, "eps": (78, 128, 2)} and len(losses) == 78
    assert all(np.all(value == 0.01) for value in model.params.values())
    paths = capstone.draw_figures(fake_loop, epochs=1, out=tmp_path / "figures")
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["latent_grid.png",
                                                                          "latent_space.png"]
    assert all(path.stat().st_size > 1000 for path in paths.values())
