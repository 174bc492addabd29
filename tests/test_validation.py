"""Bad input gets a clear ValueError/TypeError naming the argument; extreme values stay
finite and warning-free (pytest turns warnings into errors); files survive interruptions."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numvae
from helpers import vae
from numvae.diagnostics import evaluate
from numvae.model.kl import kl_divergence
from numvae.model.likelihoods import bernoulli_nll, bernoulli_nll_backward
from numvae.nn.layers import sigmoid
from numvae.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from numvae.validation import NumericalError


def small_model(**kwargs):
    return numvae.VAE(6, 4, 2, encoder_hidden=(5,), decoder_hidden=(5,), seed=0, **kwargs)


@pytest.mark.parametrize("x, message", [
    (np.zeros((64, 28, 28)), r"x has shape \(64, 28, 28\); expected \(batch, 6\): flatten the images first"),
    (np.zeros((3, 5)), r"x has shape \(3, 5\); expected \(batch, 6\)"),
    (np.zeros(6), r"x has shape \(6,\); expected \(batch, 6\)"),
    (np.zeros((0, 6)), "x is an empty batch"),
    (np.full((2, 6), 255, dtype=np.uint8), r"for 8-bit pixels \(0-255\), divide by 255$"),
    (np.full((2, 6), 16, dtype=np.int64), r"up to 16; .*pixels in 0-16 .*, divide by 16$"),
    (np.full((2, 6), 4095, dtype=np.uint16), r"the largest value .* \(at least 4095\)$"),
    (np.full((2, 6), np.nan), "x contains NaN or infinite values"),
    (np.full((2, 6), 1.5), r"Bernoulli likelihood needs values in \[0, 1\]"),
])
def test_bad_batches(x, message):
    with pytest.raises(ValueError, match=message):
        small_model().loss_and_grad(x)


def test_bad_dtypes_and_eps():
    model = small_model()
    with pytest.raises(TypeError, match="x must be a numeric array; got dtype <U1"):
        model.loss_and_grad(np.array([["a"] * 6]))
    with pytest.raises(TypeError, match="x must be a numeric array; got dtype object"):
        model.loss_and_grad(np.array([[None] * 6], dtype=object))
    with pytest.raises(ValueError, match=r"eps has shape \(3, 2\); expected \(2, 2\)"):
        model.loss_and_grad(np.zeros((2, 6)), eps=np.zeros((3, 2)))
    # 0/1 integers are fine
    assert np.isfinite(model.loss_and_grad(np.array([[0, 1, 1, 0, 1, 0]] * 2)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(latent_dim=0), "latent_dim must be a positive integer; got 0"),
    (dict(shared_dim=-3), "shared_dim must be a positive integer; got -3"),
    (dict(encoder_hidden=(0,)), r"encoder_hidden must be a tuple of positive integers; got \(0,\)"),
    (dict(likelihood={"name": "gaussian", "sigma": 0.0}),
     "sigma must be a positive finite number; got 0.0"),
    (dict(likelihood="poisson"), "likelihood must be one of 'bernoulli', 'gaussian'; got 'poisson'"),
    (dict(objective={"name": "elbo", "kl_weight": -1}), "kl_weight must be a finite number >= 0; got -1"),
    (dict(objective={"name": "elbo", "n_samples": 1.5}), "n_samples must be a positive integer; got 1.5"),
])
def test_bad_model_arguments(kwargs, message):
    arguments = dict(input_dim=6, shared_dim=4, latent_dim=2)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        numvae.VAE(**arguments)


def test_bad_dtype_argument():
    with pytest.raises(TypeError, match="dtype must be float32 or float64; got int64"):
        numvae.VAE(6, 4, 2, dtype=np.int64)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_,
                                         np.complex64, np.str_]),
                  shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7)))
def test_fuzz_forward_accepts_or_refuses_clearly(x):
    model = small_model()
    try:
        loss = model.loss_and_grad(x)
    except (ValueError, TypeError) as err:
        assert "x " in str(err) or str(err).startswith("x")  # the message names the argument
    else:
        assert np.isfinite(loss)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=4, max_side=4),
                  elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_fuzz_eps(eps):
    model = small_model()
    try:
        model.loss_and_grad(np.full((2, 6), 0.5), eps=eps)
    except ValueError as err:
        assert str(err).startswith("eps")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_checkpoint_reader_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "c.npz"
    path.write_bytes(data)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    model = small_model()
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "c.npz", model,
                           numvae.Adam(model.params))
    return path.read_bytes()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_checkpoint_reader_truncations_and_flips(tmp_path_factory, checkpoint_bytes, data):
    cut = data.draw(st.integers(0, len(checkpoint_bytes) - 1))
    broken = bytearray(checkpoint_bytes[:cut])
    if broken and data.draw(st.booleans()):
        position = data.draw(st.integers(0, len(broken) - 1))
        broken[position] ^= 0xFF
    path = tmp_path_factory.mktemp("fuzz") / "c.npz"
    path.write_bytes(bytes(broken))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_extreme_values_stay_finite_without_warnings():
    a = np.array([[-1000.0, 1000.0]], dtype=np.float32)
    assert np.isfinite(sigmoid(a)).all()
    assert np.isfinite(bernoulli_nll(a, np.array([[1.0, 0.0]], np.float32))).all()
    assert np.isfinite(bernoulli_nll_backward(a, np.array([[1.0, 0.0]], np.float32))).all()
    mean = np.zeros((1, 2))
    kl = kl_divergence(mean, np.array([[-100.0, 100.0]]))  # float64: exp(100) is finite
    assert np.isfinite(kl).all()
    model = small_model()
    model.params["encoder.log_var.b"][:] = -100.0   # q collapses: exp(-100) underflows to 0
    assert np.isfinite(model.loss_and_grad(np.full((2, 6), 0.5)))
    assert np.isfinite(evaluate.iwae_log_likelihood(model, np.full((2, 6), 0.5), k=20)["log_px"])


def test_float32_overflow_names_the_quantity():
    model = small_model()
    model.params["encoder.log_var.b"][:] = 100.0  # exp(100) does not fit in float32
    with pytest.raises(NumericalError, match=r"exp\(log_var\) is not finite: log_var reached"):
        model.loss_and_grad(np.full((2, 6), 0.5))


SAVER = """
import sys, numpy as np, numvae
from numvae.training.checkpoint import save_checkpoint
model = numvae.VAE(784, 400, 20, encoder_hidden=(), decoder_hidden=(400,), seed=0)
optimizer = numvae.Adam(model.params)
print("ready", flush=True)
while True:  # save over and over until killed
    model.params["encoder.mean.b"][:] += 1
    save_checkpoint(sys.argv[1], model, optimizer)
"""


def test_kill_during_save_leaves_a_valid_checkpoint(tmp_path):
    path = tmp_path / "c.npz"
    model = numvae.VAE(784, 400, 20, encoder_hidden=(), decoder_hidden=(400,), seed=0)
    save_checkpoint(path, model)
    process = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # several saves of about 10 MB each are under way
        process.kill()   # SIGKILL: no clean-up code runs
    finally:
        process.wait(timeout=30)
        process.stdout.close()
    loaded = load_checkpoint(path)  # the last complete save, never a half-written one
    assert loaded.model.params["encoder.mean.W"].shape == (400, 20)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "c.npz"]
    assert all(name.startswith(".c.npz.") and name.endswith(".tmp") for name in leftovers)


def test_ctrl_c_during_numvae_train_saves_and_resumes_exactly(tmp_path):
    common = ["--dataset", "toy", "--shared-dim", "16", "--batch-size", "32", "--epochs", "40",
              "--no-plots", "--seed", "1"]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "numvae", "train", *common, "--out",
                                str(tmp_path / "split")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment)
    try:
        for line in process.stdout:
            if line.startswith("epoch   2/40"):
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "checkpoint saved" in err and "Traceback" not in err
    checkpoint = tmp_path / "split" / "checkpoint.npz"
    assert load_checkpoint(checkpoint).train_state["epoch"] < 40
    from numvae.commands.cli import main
    assert main(["train", "--resume", str(checkpoint), "--no-plots"]) == 0
    assert main(["train", *common, "--out", str(tmp_path / "straight")]) == 0
    a = load_checkpoint(checkpoint).model.params
    b = load_checkpoint(tmp_path / "straight" / "checkpoint.npz").model.params
    for name in a:
        assert np.array_equal(a[name], b[name]), name


anything = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True),
                     st.text(max_size=3), st.tuples(st.integers(-2, 5)), st.lists(st.floats(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "input_dim": anything, "shared_dim": anything, "latent_dim": anything,
    "encoder_hidden": anything, "decoder_hidden": anything, "likelihood": anything,
    "sigma": anything, "kl_weight": anything, "n_samples": anything}))
def test_fuzz_model_arguments(overrides):
    arguments = dict(input_dim=4, shared_dim=3, latent_dim=2, encoder_hidden=(3,),
                     decoder_hidden=(3,))
    arguments.update(overrides)
    try:
        model = vae(**arguments)  # sigma, kl_weight, n_samples: the command line's spelling
    except (ValueError, TypeError) as err:
        assert any(name in str(err) for name in arguments), err
    else:
        try:
            loss = model.loss(np.full((2, model.input_dim), 0.5))
        except NumericalError as err:  # e.g. kl_weight 3e38: the loss overflows float32
            assert "not finite" in str(err)
        else:
            assert np.isfinite(loss)


@settings(max_examples=200, deadline=None)
@given(anything, anything)
def test_fuzz_optimizer_arguments(lr, momentum):
    params = {"w": np.zeros(3)}
    for make in (lambda: numvae.Adam(params, lr=lr),
                 lambda: numvae.SGD(params, lr=lr, momentum=momentum)):
        try:
            optimizer = make()
        except (ValueError, TypeError) as err:
            assert "lr" in str(err) or "momentum" in str(err), err
        else:
            if lr < 1e6:  # an absurd but finite lr may legitimately overflow when stepping
                optimizer.step({"w": np.ones(3)})  # warnings would fail the test
                assert np.isfinite(params["w"]).all()


def test_a_long_list_of_widths_is_cut_in_the_message():
    from numvae.validation import check_widths
    with pytest.raises(ValueError) as caught:
        check_widths([3] * 200_000 + [0], "decoder_hidden")
    assert str(caught.value) == ("decoder_hidden must be a tuple of positive integers; got "
                                 "(3, 3, 3 and 199,998 more)")
    with pytest.raises(TypeError, match=r"got 'xxxx.*\.\.\. \(1,000,002 characters\)$"):
        check_widths("x" * 1_000_000, "encoder_hidden")
