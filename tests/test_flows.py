"""The inverse autoregressive flow (posterior="iaf", eqs. IF1-IF6): the masked layer, the
MADE's masks, each step's triangular Jacobian and its log-determinant (numerically), log q
by the change of variables, and every gradient against central differences in float64."""
import math

import numpy as np
import pytest

from helpers import tiny_model, vae
from numvae import interop
from numvae.diagnostics import evaluate
from numvae.diagnostics.gradcheck import (
    check_arrays,
    check_layer,
    check_model,
    check_model_directions,
)
from numvae.io import datasets
from numvae.model.posteriors import IAF
from numvae.nn.flows import IAFStep, MaskedDense, made_masks
from numvae.training.checkpoint import load_checkpoint, save_checkpoint

RNG = np.random.default_rng(0)
X = np.random.default_rng(2).uniform(size=(4, 10))


def iaf_model(**kwargs):
    options = dict(seed=1, posterior="iaf", flow_steps=2, flow_hidden=(5, 4), activation="tanh")
    options.update(kwargs)
    return tiny_model(**options)


def test_masked_dense_gradient_and_its_mask():
    mask = made_masks(np.array([2, 1, 3]), (4,))[0]
    layer = MaskedDense(mask, rng=np.random.default_rng(1), dtype=np.float64)
    errors = check_layer(layer, RNG.normal(size=(5, 3)))
    assert max(errors.values()) < 1e-8, errors
    assert np.all(layer.grads["W"][mask == 0] == 0) and np.all(layer.params["W"][mask == 0] == 0)
    layer.params["W"][...] = 7.0  # a cut weight has no effect, whatever its value
    y = layer.forward(np.ones((1, 3)))[0][0]
    np.testing.assert_allclose(y, 7.0 * mask.sum(axis=0) + layer.params["b"])


@pytest.mark.parametrize("order", [[1, 2, 3, 4], [4, 3, 2, 1], [2, 4, 1, 3]])
def test_made_output_i_sees_only_inputs_before_it(order):
    masks = made_masks(np.array(order), (6, 5))
    reach = masks[0]
    for mask in masks[1:]:
        reach = (reach @ mask) > 0                               # input j -> output k paths
    order = np.array(order)
    allowed = order[:, None] < np.concatenate([order, order])[None, :]
    assert not np.any(reach & ~allowed)
    assert np.any(reach)                                          # and it is not cut entirely


def numeric_jacobian(f, z, h=1e-6):
    """J[r, i, j] = d f(z)[r, i] / d z[r, j], by central differences, row by row."""
    rows, dim = z.shape
    jacobian = np.empty((rows, dim, dim))
    for j in range(dim):
        step = np.zeros_like(z)
        step[:, j] = h
        jacobian[:, :, j] = (f(z + step) - f(z - step)) / (2 * h)
    return jacobian


@pytest.mark.parametrize("reverse", [False, True])
def test_each_step_is_triangular_in_its_order_with_log_det_sum_log_sigma(reverse):
    step = IAFStep(4, 3, (6,), reverse, np.random.default_rng(3), np.float64)
    for layer in step.layers.values():                     # far from the identity: a real test
        for key, value in layer.params.items():
            mask = layer.mask if key == "W" and hasattr(layer, "mask") else 1.0
            value += RNG.normal(scale=0.7, size=value.shape) * mask
    z, h = RNG.normal(size=(5, 4)), RNG.normal(size=(5, 3))
    jacobian = numeric_jacobian(lambda v: step.forward(v, h)[0], z)
    order = step.order
    later = order[None, :] > order[:, None]                 # j comes after i in the step's order
    assert np.max(np.abs(jacobian[:, later])) < 1e-9
    _, cache = step.forward(z, h)
    np.testing.assert_allclose(np.diagonal(jacobian, axis1=1, axis2=2), cache["sigma"], atol=1e-8)
    log_det = np.linalg.slogdet(jacobian)[1]
    np.testing.assert_allclose(log_det, cache["log_sigma"].sum(axis=1), atol=1e-7)
    assert (order == np.arange(4, 0, -1)).all() == reverse


def test_steps_alternate_their_order_and_start_near_the_identity():
    posterior = IAF(steps=3, hidden=(8,)).build(5, np.random.default_rng(0), np.float64)
    assert [list(step.order) for step in posterior.flow] == [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1],
                                                              [1, 2, 3, 4, 5]]
    for step in posterior.flow:
        assert np.all(step.made[-1].params["b"][5:] == 2.0)
        z, h = RNG.normal(size=(50, 5)), RNG.normal(size=(50, 8))
        assert step.forward(z, h)[1]["sigma"].mean() > 0.75


def test_log_q_is_the_change_of_variables():
    """log q(z_T|x) = log N(z_0) - log |det dz_T/dz_0| with the whole flow's Jacobian."""
    model = iaf_model(flow_steps=3)
    posterior = model.posterior
    heads, _ = model.encoder.forward(X)
    eps = RNG.standard_normal((2, 4, 3))
    z, cache = posterior.rsample(heads, eps)
    h = np.tile(heads["context"], (2, 1))

    def flow(z0):
        for step in posterior.flow:
            z0 = step.forward(z0, h)[0]
        return z0
    np.testing.assert_allclose(flow(cache["z0"]), z, rtol=1e-12)
    log_det = np.linalg.slogdet(numeric_jacobian(flow, cache["z0"]))[1].reshape(2, 4)
    std = np.exp(0.5 * heads["log_var"])
    log_q0 = np.sum(-0.5 * eps ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi), axis=-1)
    np.testing.assert_allclose(posterior.log_prob(cache), log_q0 - log_det, atol=1e-7)


def test_log_prob_backward_against_central_differences():
    """The log-determinant's gradient, for the heads and every flow parameter (IF6)."""
    model = iaf_model()
    posterior = model.posterior
    heads = {name: value.copy() for name, value in model.encoder.forward(X)[0].items()}
    eps = RNG.standard_normal((3, 4, 3))
    weights = RNG.uniform(0.5, 2.0, size=(3, 4))

    def f():
        return float(np.sum(weights * posterior.log_prob(posterior.rsample(heads, eps)[1])))
    _, cache = posterior.rsample(heads, eps)
    for grad in posterior.grads.values():
        grad[...] = 0.0                       # the backward adds into them
    dz, dheads = posterior.log_prob_backward(weights, cache)
    assert not dz.any()                       # all of it goes to the heads and parameters
    analytic = {**dheads, **{name: grad.copy() for name, grad in posterior.grads.items()}}
    errors = check_arrays(f, {**heads, **posterior.params}, analytic)
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("objective,n_samples", [("elbo", 1), ("elbo", 3), ("iwae", 4)])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_model_gradient_matches_central_differences(objective, n_samples, likelihood):
    model = iaf_model(objective=objective, n_samples=n_samples, likelihood=likelihood)
    assert any(name.startswith("posterior.steps.1.made.4") for name in model.params)
    eps = np.random.default_rng(3).standard_normal((n_samples, 4, 3))
    errors = check_model(model, X, eps)
    assert max(errors.values()) < 1e-6, errors


def test_full_size_gradient_along_random_directions():
    model = vae(784, 200, 50, encoder_hidden=(200,), decoder_hidden=(200, 200),
                       activation="tanh", posterior="iaf", flow_steps=2, flow_hidden=(100,),
                       objective="iwae", n_samples=3, dtype=np.float64, seed=0)
    x = datasets.binarize(np.random.default_rng(0).uniform(size=(3, 784)), np.random.default_rng(1))
    errors = check_model_directions(model, x, n_directions=3)
    assert max(errors.values()) < 1e-5, errors


def test_settings_checkpoint_export_and_evaluation(tmp_path):
    assert tiny_model(flow_steps=3).config["posterior"] == {"name": "diagonal_gaussian"}
    model = iaf_model()
    assert model.config["posterior"] == {"name": "iaf", "steps": 2, "hidden": (5, 4)}
    save_checkpoint(tmp_path / "c.npz", model)
    loaded = load_checkpoint(tmp_path / "c.npz").model
    assert loaded.config == model.config
    for name in model.params:
        np.testing.assert_array_equal(loaded.params[name], model.params[name])
    names = interop.to_state_dict(model)
    assert names["posterior.steps.0.made.0.weight"].shape == (5, 3)   # (out, in)
    assert "posterior.steps.0.made.0.bias" not in names
    assert "posterior.steps.0.context.weight" in names and "encoder.context.weight" in names
    result = evaluate.evaluate_elbo(model, X)
    assert np.isfinite(result["loss"]) and np.isnan(result["kl_per_dim"]).all()
    log_px = evaluate.iwae_log_likelihood(model, X, k=200)["log_px"]
    assert -result["loss"] - 0.5 < log_px                          # above the ELBO, roughly
    count, variance = evaluate.active_units(model, X)
    assert variance.shape == (3,)


@pytest.mark.parametrize("bad", [dict(flow_steps=0), dict(flow_hidden=()),
                                 dict(flow_hidden=(3, -1))])
def test_bad_flow_settings_are_named(bad):
    setting = next(iter(bad)).replace("flow_", "")  # IAF(steps=..., hidden=...)
    with pytest.raises(ValueError, match=f"{setting} must"):
        iaf_model(**bad)


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_the_inspector_traces_a_flow_step(objective):
    from numvae.diagnostics.inspect import trace_step
    model = iaf_model(objective=objective, n_samples=2)
    trace = trace_step(model, X, check=True)
    assert "context" in trace.names() and "z0" in trace.names()
    assert "IF3" in trace.table() and ("IW1" in trace.table()) == (objective == "iwae")


def test_figures_and_the_evaluate_command_handle_a_flow(tmp_path, capsys):
    from numvae import plots
    from numvae.commands.cli import main
    model = vae(64, 16, 2, encoder_hidden=(16,), decoder_hidden=(16,), posterior="iaf",
                       flow_steps=2, flow_hidden=(8,), seed=0)
    data = datasets.make_toy(60, seed=0)
    paths = plots.save_all(model, {}, data.images, data.labels, tmp_path)
    assert all(path.exists() for path in paths.values())
    save_checkpoint(tmp_path / "c.npz", model, None, {}, {"meta": {"dataset": "toy"}})
    assert main(["evaluate", str(tmp_path / "c.npz"), "--iwae-k", "5", "--n", "20"]) == 0
    assert "KL per latent dimension: n/a n/a" in capsys.readouterr().out


def test_a_forward_pass_leaves_the_flows_gradients_alone():
    """The flow's grads are zeroed by VAE.backward, not by a forward pass: evaluating the
    model (forward only) between a backward and the optimiser's step changes nothing, and
    two backward passes in a row give the same gradient (no accumulation across steps)."""
    model = iaf_model()
    eps = RNG.standard_normal((2, len(X), 3))
    model.loss_and_grad(X, eps)
    first = {name: grad.copy() for name, grad in model.grads.items()}
    assert any(np.abs(grad).max() > 0 for name, grad in first.items()
               if name.startswith("posterior."))
    model.forward(X[::-1].copy(), RNG.standard_normal((1, len(X), 3)))   # an evaluation
    for name, grad in model.grads.items():
        np.testing.assert_array_equal(grad, first[name], err_msg=name)
    model.loss_and_grad(X, eps)
    for name, grad in model.grads.items():
        np.testing.assert_array_equal(grad, first[name], err_msg=name)
