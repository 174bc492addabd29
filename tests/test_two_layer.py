"""The two-stochastic-layer VAE (numvae.model.two_layer, eqs. H1-H7): its gradients against
central differences in float64 and against PyTorch autograd (skipped without torch), its
log-weights against the five densities written out here, and the rest of its interface
(sampling top-down, training with fit, checkpoints, evaluation)."""
import json
import math

import numpy as np
import pytest

from numvae.diagnostics import evaluate
from numvae.diagnostics.gradcheck import check_model
from numvae.model.two_layer import TwoLayerVAE
from numvae.training import loop
from numvae.training.checkpoint import load_checkpoint, save_checkpoint
from numvae.training.optim_fast import FastAdam

X = (np.random.default_rng(2).uniform(size=(5, 10)) < 0.4).astype(np.float64)
SIZES = dict(input_dim=10, latent_dims=(4, 3), hidden=((6, 5), (5, 4)))


def tiny(dtype=np.float64, seed=1, init="pytorch", **settings):
    """PyTorch's start unless asked: no bias is zero, so none can hide a wrong gradient."""
    return TwoLayerVAE(**SIZES, **settings, init=init, dtype=dtype, seed=seed)


def eps_for(n_samples, seed=3):
    return np.random.default_rng(seed).standard_normal((n_samples, 5, 7))


@pytest.mark.parametrize("settings", [
    dict(), dict(n_samples=3, kl_weight=0.5), dict(objective="iwae", n_samples=4),
    dict(likelihood="gaussian", sigma=0.7, n_samples=2),
    dict(likelihood="gaussian", objective="iwae", n_samples=3, activation="relu"),
    dict(objective="iwae", n_samples=2, init="glorot")])
def test_gradient_matches_central_differences(settings):
    errors = check_model(tiny(**settings), X, eps_for(settings.get("n_samples", 1)))
    assert len(errors) == 30  # 4 networks: every W and b of q_z1, q_z2, p_z1 and p_x
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_dropping_zetas_second_role_is_caught(objective):
    """zeta conditions q(xi|zeta) (eq. H5): without that path the check fails (> 1e-3)."""
    model = tiny(objective=objective, n_samples=2)
    backward = model.q_z2.backward

    def without_input_gradient(dheads, cache, need_input_grad=True):
        dz1, steps = backward(dheads, cache, need_input_grad)
        return np.zeros_like(dz1), steps
    model.q_z2.backward = without_input_gradient
    errors = check_model(model, X, eps_for(2))
    assert max(errors[name] for name in errors if name.startswith("q_z1")) > 1e-3


def gaussian_log_density(point, mean, log_var):
    """log N(point; mean, diag(exp(log_var))) summed over the last axis, written out."""
    return np.sum(-0.5 * (point - mean) ** 2 / np.exp(log_var) - 0.5 * log_var
                  - 0.5 * math.log(2 * math.pi), axis=-1)


def test_log_weights_are_the_five_densities_of_both_layers():
    model = tiny(objective="iwae", n_samples=4)
    eps = eps_for(4)
    cache = model.forward(X, eps)
    z1, z2 = cache["z1"].reshape(4, 5, 4), cache["z2"].reshape(4, 5, 3)
    q1 = gaussian_log_density(z1, cache["z1_mean"], cache["z1_log_var"])
    q2 = gaussian_log_density(z2, cache["mean"].reshape(4, 5, 3),
                              cache["log_var"].reshape(4, 5, 3))
    p1 = gaussian_log_density(z1, cache["prior_z1_mean"].reshape(4, 5, 4),
                              cache["prior_z1_log_var"].reshape(4, 5, 4))
    p2 = gaussian_log_density(z2, 0.0, 0.0)
    a = cache["logits"].reshape(4, 5, 10)
    log_px = np.sum(X * a - np.logaddexp(0.0, a), axis=-1)
    expected = log_px + p1 + p2 - q1 - q2
    np.testing.assert_allclose(evaluate.log_weights(model, X, eps), expected, rtol=1e-12)
    bound = np.log(np.mean(np.exp(expected), axis=0))
    assert cache["loss"] == pytest.approx(-bound.mean(), rel=1e-12)
    # z1 = mean + std * eps[..., :M1] and z2 from eps[..., M1:] (the layout of eps)
    np.testing.assert_allclose(z1, cache["z1_mean"] + np.exp(0.5 * cache["z1_log_var"])
                               * eps[..., :4], rtol=1e-12)


def test_the_elbo_uses_the_analytic_kl_of_the_top_layer():
    """-ELBO = R + [log q(zeta|x) - log p(zeta|xi)] + KL(q(xi|zeta) || N(0, I)) (eq. H2)."""
    model = tiny(n_samples=2, kl_weight=0.5)
    cache = model.forward(X, eps_for(2))
    d = cache["log_densities"]
    mean, log_var = cache["mean"], cache["log_var"]
    kl_top = 0.5 * np.sum(mean**2 + np.exp(log_var) - 1 - log_var, axis=1).reshape(2, 5)
    np.testing.assert_allclose(cache["kl_z2"], kl_top.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cache["kl_z1"], (d["log_q_z1"] - d["log_p_z1"]).mean(axis=0),
                               rtol=1e-12)
    expected = np.mean(d["nll"].mean(axis=0) + 0.5 * (cache["kl_z1"] + cache["kl_z2"]))
    assert cache["loss"] == pytest.approx(expected, rel=1e-12)


def test_iwae_refuses_a_kl_weight_and_sizes_are_checked():
    with pytest.raises(ValueError, match="kl_weight=0.5 has no meaning"):
        tiny(objective="iwae", kl_weight=0.5)
    with pytest.raises(ValueError, match="latent_dims must be two positive widths M1 and M2"):
        TwoLayerVAE(10, (4,), ((6,), (5,)))
    with pytest.raises(ValueError, match="hidden two non-empty"):
        TwoLayerVAE(10, (4, 3), ((6,), ()))
    with pytest.raises(ValueError, match="eps has shape"):
        tiny().forward(X, np.zeros((1, 5, 3)))  # the noise is M1 + M2 = 7 wide


def test_sampling_is_top_down_and_the_verbs_have_their_shapes():
    model = tiny()
    assert (model.latent_dim, model.noise_dim) == (3, 7)
    mean, log_var = model.encode(X)
    assert mean.shape == log_var.shape == (5, 3)
    assert model.decode(mean).shape == (5, 10)
    drawn = model.sample(6, np.random.default_rng(0))
    # by hand: xi ~ N(0, I), then zeta ~ p(zeta|xi), then the output, from the same generator
    rng = np.random.default_rng(0)
    xi = rng.standard_normal((6, 3))
    heads, _ = model.p_z1.forward(xi)
    zeta = heads["mean"] + np.exp(0.5 * heads["log_var"]) * rng.standard_normal((6, 4))
    np.testing.assert_allclose(drawn, model.decode_z1(zeta), rtol=1e-12)


def test_fit_trains_it_and_a_checkpoint_resumes_it_exactly(tmp_path):
    images = (np.random.default_rng(5).uniform(size=(40, 10)) < 0.3).astype(np.float32)
    model = TwoLayerVAE(**SIZES, objective="iwae", n_samples=3, seed=0)
    optimizer = FastAdam(model.params, lr=3e-3)
    history = loop.fit(model, optimizer, images, epochs=8, batch_size=10, seed=0,
                       progress=False, log=None, binarize=True)
    assert history["train_loss"][-1] < history["train_loss"][0] - 0.5
    save_checkpoint(tmp_path / "c.npz", model, optimizer, history)
    loaded = load_checkpoint(tmp_path / "c.npz")
    assert isinstance(loaded.model, TwoLayerVAE) and loaded.model.config == model.config
    eps = np.random.default_rng(1).standard_normal((3, 40, 7)).astype(np.float32)
    assert loaded.model.loss_and_grad(images, eps) == model.loss_and_grad(images, eps)
    loaded.optimizer.step(loaded.model.grads)
    optimizer.step(model.grads)
    for name in model.params:
        np.testing.assert_array_equal(loaded.model.params[name], model.params[name])


def test_evaluation_uses_both_layers():
    model = tiny(objective="iwae", n_samples=2)
    result = evaluate.iwae_log_likelihood(model, X, k=200, seed=0)
    elbo = evaluate.evaluate_elbo(model, X, seed=0)
    # the bound with K = 200 lies above the one-draw ELBO on average (by far, here)
    assert result["log_px"] > -elbo["loss"]
    assert elbo["kl_per_dim"].shape == (3,)  # the top layer's analytic KL (K1) per dimension
    layers = evaluate.active_units_per_layer(model, X, threshold=0.0)
    assert [layers["z1"][0], layers["z2"][0]] == [4, 3]
    layers = evaluate.active_units_per_layer(model, X, threshold=np.inf)
    assert [layers["z1"][0], layers["z2"][0]] == [0, 0]


def test_numvae_evaluate_prints_each_layers_active_units(tmp_path, capsys):
    from helpers import run_cli
    model = TwoLayerVAE(64, (4, 3), ((6,), (5,)), seed=0)
    save_checkpoint(tmp_path / "c.npz", model)
    code, stdout, _ = run_cli(["evaluate", str(tmp_path / "c.npz"), "--dataset", "toy",
                               "--iwae-k", "10", "--n", "50"], capsys)
    assert code == 0, stdout
    assert "KL per latent dimension of z2, the top layer (analytic)" in stdout
    assert " of 4 in z1, " in stdout and " of 3 in z2" in stdout and "K=10" in stdout


def test_safetensors_round_trip(tmp_path):
    pytest.importorskip("safetensors")
    from numvae.interop import load_safetensors, save_safetensors
    model = tiny(objective="iwae", n_samples=2, likelihood="gaussian", sigma=0.5)
    save_safetensors(model, tmp_path / "m.safetensors")
    loaded = load_safetensors(tmp_path / "m.safetensors")
    assert isinstance(loaded, TwoLayerVAE) and loaded.config == model.config
    for name in model.params:
        np.testing.assert_array_equal(loaded.params[name], model.params[name])
    assert loaded.dtype == np.float64


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_the_inspector_traces_both_layers_and_checks_every_parameter(objective):
    """numvae inspect on the two-layer model (issue 25): forward rows network by network in
    the order of eq. H1, zeta's four paths (H5) that add up to d z1, and every parameter
    gradient with its central-difference error (float64), equal to the model's own."""
    from numvae.diagnostics.inspect import trace_step
    model = tiny(objective=objective, n_samples=3)
    eps = np.random.default_rng(4).standard_normal((3, len(X), model.noise_dim))
    trace = trace_step(model, X, eps, check=True)
    names = trace.names()
    order = ["x", "eps", "q_z1.body.0", "q_z1.mean", "z1", "q_z2.mean", "z2", "p_z1.log_var",
             "p_x.decompressor.0", "nll", "log_p_z2", "loss", "d logits",
             "p_x.decompressor.0.W (grad)", "d z1 (from p(zeta|xi))", "d p_z1.mean", "d z2",
             "d q_z2.mean", "d z1 (from q(xi|zeta))", "d z1", "d q_z1.log_var",
             "q_z1.body.0.W (grad)"]  # the order in which TwoLayerVAE.backward computes them
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    paths = [trace[f"d z1 (from {path})"].value
             for path in ("x", "p(zeta|xi)", "q(xi|zeta)", "log q(zeta|x)")]
    np.testing.assert_allclose(trace["d z1"].value, sum(paths), rtol=1e-12, atol=1e-15)
    assert all(np.abs(path).max() > 0 for path in paths)  # each path carries something
    for net in ("q_z1", "q_z2", "p_z1"):  # db = sum_batch d head (D2): each head's own row
        for head in ("mean", "log_var"):
            np.testing.assert_allclose(trace[f"d {net}.{head}"].value.sum(axis=0),
                                       trace[f"{net}.{head}.b (grad)"].value, rtol=1e-12)
    if objective == "elbo":  # each term weighs w = 1 / (S B): rows from the forward rows alone
        w, value = 1.0 / eps.shape[0] / len(X), (lambda name: trace[name].value)
        eps1 = eps[..., :4].reshape(-1, 4)
        sigma1 = np.tile(np.exp(0.5 * value("q_z1.log_var")), (3, 1))  # rows s B + b
        np.testing.assert_allclose(value("d z1 (from log q(zeta|x))"), w * -eps1 / sigma1,
                                   rtol=1e-10)                                      # K4
        e_over_sigma = (value("z1") - value("p_z1.mean")) / np.exp(value("p_z1.log_var"))
        np.testing.assert_allclose(value("d z1 (from p(zeta|xi))"), w * e_over_sigma,
                                   rtol=1e-10)                                      # H4
        np.testing.assert_allclose(value("d p_z1.mean"), -w * e_over_sigma, rtol=1e-10)
        np.testing.assert_allclose(value("d q_z2.mean") - value("d z2"),
                                   w * value("q_z2.mean"), rtol=1e-10, atol=1e-15)  # K2
    np.testing.assert_array_equal(trace["eps"].value, eps)
    twin = model.copy(np.float64)  # the traced step again on an independent copy
    twin.loss_and_grad(X, eps)
    checked = {row.name[: -len(" (grad)")]: row for row in trace if row.name.endswith(" (grad)")}
    assert set(checked) == set(model.params)
    for name, row in checked.items():
        assert row.fd_error < 1e-6, (name, row.fd_error)
        np.testing.assert_array_equal(row.value, twin.grads[name])
    assert trace["loss"].value == pytest.approx(twin.loss(X, eps))


def test_numvae_inspect_traces_a_two_layer_checkpoint(tmp_path, capsys):
    from helpers import run_cli
    save_checkpoint(tmp_path / "c.npz", TwoLayerVAE(64, (4, 3), ((6,), (5,)), seed=0))
    code, stdout, _ = run_cli(["inspect", str(tmp_path / "c.npz"), "--batch-size", "2",
                               "--check"], capsys)
    assert code == 0, stdout
    assert "d z1 (from q(xi|zeta))" in stdout and "the four paths add  (H5)" in stdout
    assert "the two-layer model's intermediate gradients are not checked" in stdout
    code, stdout, _ = run_cli(["inspect", str(tmp_path / "c.npz"), "--show", "d z2"], capsys)
    assert code == 0 and "d z2  (4, 3)" in stdout  # S = 1 draw of a batch of 4


def test_numvae_plot_puts_the_top_layer_on_the_plane(tmp_path, capsys):
    from helpers import run_cli
    from numvae.plots.latent import encoder_means
    model = TwoLayerVAE(64, (4, 2), ((6,), (5,)), seed=0)
    save_checkpoint(tmp_path / "c.npz", model)
    code, stdout, _ = run_cli(["plot", str(tmp_path / "c.npz"), "--dataset", "toy", "--out",
                               str(tmp_path / "figures")], capsys)
    assert code == 0, stdout
    assert {p.name for p in (tmp_path / "figures").glob("*.png")} >= {
        "latent_space.png", "latent_grid.png", "prior_samples.png", "kl_per_dimension.png"}
    images = (np.random.default_rng(0).uniform(size=(7, 64)) < 0.5).astype(np.float32)
    expected = model.expected_latents(images, np.random.default_rng(0))[1]  # E_q[z2|x], H8
    np.testing.assert_array_equal(encoder_means(model, images), expected)


def test_the_defaults_are_burdas_code_and_pytorchs_start_stays_available():
    """The default model is the one experiments/iwae_table trains (Burda et al.'s code):
    widths 200-200 to zeta and 100-100 to xi, init="glorot": every W in
    +-sqrt(6 / (n_in + n_out)) and spread over it, every b = 0; init="pytorch" keeps
    PyTorch's U(+-1/sqrt(n_in)) for W and b."""
    import inspect
    defaults = {name: p.default for name, p in
                inspect.signature(TwoLayerVAE).parameters.items()}
    assert defaults["latent_dims"] == (100, 50) and defaults["init"] == "glorot"
    assert defaults["hidden"] == ((200, 200), (100, 100))
    model = TwoLayerVAE(40, (8, 4), ((30, 20), (12, 10)), seed=0)
    assert model.config["init"] == "glorot"
    for name, value in model.params.items():
        if name.endswith(".b"):
            assert not value.any(), name
            continue
        glorot, pytorch = math.sqrt(6 / sum(value.shape)), 1 / math.sqrt(value.shape[0])
        assert np.abs(value).max() <= glorot, name
        # the uniform's variance a^2 / 3, within 35 % even for the smallest layer (32 weights)
        assert value.var() == pytest.approx(glorot**2 / 3, rel=0.35), name
        assert abs(value.var() - glorot**2 / 3) < abs(value.var() - pytorch**2 / 3), name
    pytorch = TwoLayerVAE(40, (8, 4), ((30, 20), (12, 10)), init="pytorch", seed=0)
    assert pytorch.config["init"] == "pytorch"
    assert all(np.abs(value).max() <= 1 / math.sqrt(len(value) if value.ndim == 1 else
                                                    value.shape[0]) + 1e-7
               for name, value in pytorch.params.items() if name.endswith(".W"))
    assert any(value.any() for name, value in pytorch.params.items() if name.endswith(".b"))
    with pytest.raises(ValueError, match="init must be one of 'pytorch', 'glorot'; got 'xavier'"):
        tiny(init="xavier")


def test_the_output_bias_starts_every_zeta_at_the_mean_image(tmp_path):
    """set_output_bias(p): logit(clip(p, 0.001, 0.999)) in the output layer, so that with
    Burda et al.'s init (tanh(0) = 0 in every hidden unit at zeta = 0) zeta = 0 decodes to
    the mean image exactly; it travels with the parameters through a checkpoint."""
    pixel_means = np.array([0.0, 0.002, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 0.998, 1.0])
    model = tiny(init="glorot")
    model.set_output_bias(pixel_means)
    expected = np.clip(pixel_means, 0.001, 0.999)
    np.testing.assert_allclose(model.decode_z1(np.zeros((2, 4))), np.tile(expected, (2, 1)),
                               rtol=1e-12)
    save_checkpoint(tmp_path / "c.npz", model)
    loaded = load_checkpoint(tmp_path / "c.npz").model
    np.testing.assert_allclose(loaded.decode_z1(np.zeros((1, 4)))[0], expected, rtol=1e-12)
    for bad in (np.full(9, 0.5), np.full(10, 1.5), np.full(10, np.nan)):
        with pytest.raises(ValueError, match="pixel_means must be the 10 training pixel means"):
            model.set_output_bias(bad)


def hand_network(params, prefix, a, n_layers):
    """tanh(a W + b) through ``n_layers`` layers, then the two heads (or, for p_x, the
    logits): numvae's networks written out from the parameters alone."""
    for index in range(n_layers):
        layer = f"{prefix}.body.{2 * index}" if prefix != "p_x" else f"p_x.decompressor.{2 * index}"
        a = a @ params[f"{layer}.W"] + params[f"{layer}.b"]
        a = np.tanh(a) if prefix != "p_x" or index < n_layers - 1 else a
    if prefix == "p_x":
        return a
    return [a @ params[f"{prefix}.{head}.W"] + params[f"{prefix}.{head}.b"]
            for head in ("mean", "log_var")]


def test_log_weights_and_the_estimate_of_log_px_equal_a_hand_computation():
    """log w = log p(x|zeta) + log p(zeta|xi) + log p(xi) - log q(zeta|x) - log q(xi|zeta)
    (eq. H1), every density and network written here from the parameters, and the
    importance-weighted log p(x) = log mean_k w_k of the draws it makes (eq. I2)."""
    model = tiny(init="glorot")
    model.set_output_bias(np.linspace(0.05, 0.95, 10))
    p = model.params
    eps = np.random.default_rng(7).standard_normal((300, 5, 7))
    mean1, log_var1 = hand_network(p, "q_z1", X, 2)
    z1 = mean1 + np.exp(0.5 * log_var1) * eps[..., :4]
    mean2, log_var2 = hand_network(p, "q_z2", z1, 2)
    z2 = mean2 + np.exp(0.5 * log_var2) * eps[..., 4:]
    prior_mean, prior_log_var = hand_network(p, "p_z1", z2, 2)
    logits = hand_network(p, "p_x", z1, 3)
    log_px_given_z1 = np.sum(X * logits - np.logaddexp(0.0, logits), axis=-1)
    expected = (log_px_given_z1 + gaussian_log_density(z1, prior_mean, prior_log_var)
                + gaussian_log_density(z2, 0.0, 0.0) - gaussian_log_density(z1, mean1, log_var1)
                - gaussian_log_density(z2, mean2, log_var2))
    np.testing.assert_allclose(model.log_weights(X, eps), expected, rtol=1e-10)
    # iwae_log_likelihood draws eps (K, batch, M1 + M2) from default_rng(seed) in one chunk here
    drawn = np.random.default_rng(3).standard_normal((300, 5, 7))
    estimate = evaluate.iwae_log_likelihood(model, X, k=300, seed=3, max_rows=1500)
    log_w = model.log_weights(X, drawn)
    by_hand = np.log(np.mean(np.exp(log_w - log_w.max(0)), axis=0)) + log_w.max(0)
    np.testing.assert_allclose(estimate["per_example"], by_hand, rtol=1e-10)


OLD_SIZES = dict(input_dim=10, latent_dims=(4, 3), hidden=((6, 5), (5, 4)))


def without_init(config_text):
    """A stored configuration as files written before ``init`` existed hold it."""
    config = json.loads(config_text)
    del config["init"]
    return json.dumps(config)


def assert_loaded_as_written(loaded, model):
    assert loaded.config["init"] == "pytorch"            # not the new default, "glorot"
    assert loaded.config["hidden"] == ((6, 5), (5, 4)) and loaded.dims == (4, 3)
    for name in model.params:
        np.testing.assert_array_equal(loaded.params[name], model.params[name])


def test_a_checkpoint_without_init_loads_as_the_model_it_was(tmp_path):
    """Checkpoints of the first two-layer models (PyTorch's start, no ``init`` in their
    configuration) keep that start: a row resumed from one is recognised as the old model."""
    model = TwoLayerVAE(**OLD_SIZES, init="pytorch", seed=0)
    save_checkpoint(tmp_path / "new.npz", model)
    with np.load(tmp_path / "new.npz") as stored:
        arrays = dict(stored)
    arrays["config"] = np.array(without_init(str(arrays["config"])))
    np.savez(tmp_path / "old.npz", **arrays)
    assert_loaded_as_written(load_checkpoint(tmp_path / "old.npz").model, model)


def test_a_safetensors_file_without_init_loads_as_the_model_it_was(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from numvae.interop import load_safetensors, save_safetensors
    model = TwoLayerVAE(**OLD_SIZES, init="pytorch", seed=0)
    save_safetensors(model, tmp_path / "new.safetensors")
    with safe_open(str(tmp_path / "new.safetensors"), framework="np") as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    metadata["numvae.config"] = without_init(metadata["numvae.config"])
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata=metadata)
    assert_loaded_as_written(load_safetensors(tmp_path / "old.safetensors"), model)
