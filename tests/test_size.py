"""numvae.model.size: parameter counts and a step's memory from the settings alone, and the
refusals, before any array is allocated, of every entry point (VAE(...), a checkpoint, a
safetensors file, the command line). Where memory is the point, the command runs in a child
whose address space is limited (RLIMIT_AS): an allocation of the size refused would fail
there, and the limit follows it (``default_limit`` takes half an address-space limit)."""
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import numvae
from helpers import vae
from numvae.diagnostics.evaluate import iwae_log_likelihood
from numvae.model import size
from numvae.model.parts import flat_config
from numvae.training.checkpoint import save_checkpoint
from numvae.training.loop import fit
from numvae.training.optim_fast import FastAdam

resource = pytest.importorskip("resource")  # RLIMIT_AS: POSIX only
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_MEMORY = 700 * 2**20  # the address space of the children: Python and NumPy fit


def settings(model):
    """The settings ``size`` reads, from a built model's configuration."""
    c = flat_config(model.config)  # size reads 0.2's flat settings
    return size.checked_settings(dict(
        c, encoder_hidden=c.get("encoder_hidden", ()), decoder_hidden=c.get("decoder_hidden", ()),
        flow_steps=c.get("flow_steps", 1), flow_hidden=c.get("flow_hidden", (50,)),
        prior_components=c.get("prior_components", 10), n_classes=c.get("n_classes")))


CASES = [dict(), dict(posterior="iaf", flow_steps=2, flow_hidden=(7, 9)),
         dict(prior="mixture", prior_components=3), dict(n_classes=4),
         dict(architecture="conv"), dict(posterior="point", objective="reconstruction"),
         dict(encoder_hidden=(), decoder_hidden=(5,))]


@pytest.mark.parametrize("options", CASES)
def test_parameter_count_from_the_settings_equals_the_built_models(options):
    model = vae(64, 10, 3, seed=0, **options)
    assert size.parameter_count(settings(model)) == model.n_params()


@pytest.mark.parametrize("options", [dict(), dict(objective="iwae", n_samples=8),
                                     dict(posterior="iaf", flow_hidden=(16, 16)),
                                     dict(prior="mixture", prior_components=20),
                                     dict(architecture="conv")])
def test_step_estimate_is_above_the_memory_a_step_takes_and_not_far_above(options):
    model = vae(256, 32, 4, seed=0, **options)
    optimizer = FastAdam(model.params)
    x = np.random.default_rng(0).random((32, 256)).astype(np.float32)
    tracemalloc.start()  # NumPy reports its allocations to tracemalloc
    try:
        for _ in range(2):  # the second step: Adam's moments exist already
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            cache = model.forward(x)
            model.backward(cache)
            optimizer.step(model.grads)
            del cache
            peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    estimate = model.budget.step_bytes(32, model.n_samples)
    assert peak <= estimate <= 5 * peak


def test_parse_bytes_and_human():
    assert size.parse_bytes("8G") == 8 * 2**30
    assert size.parse_bytes("512MiB") == 512 * 2**20
    assert size.parse_bytes("1000") == 1000
    for bad in ("", "8X", "-1G", "0", "1e3"):
        with pytest.raises(ValueError, match="size"):
            size.parse_bytes(bad)
    assert size.human(3 * 2**30) == "3.0 GiB"


def test_default_limit_is_at_most_4_gib_and_half_the_address_space():
    assert size.default_limit() <= 4 * 2**30
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        assert size.default_limit() <= soft // 2


@pytest.mark.parametrize("options, named", [
    (dict(input_dim=10**6, shared_dim=10**6), "shared_dim=1000000"),
    (dict(latent_dim=10**9), "latent_dim=1000000000"),
    (dict(prior="mixture", prior_components=10**9), "prior_components=1000000000"),
    (dict(posterior="iaf", flow_hidden=(10**9,)), "flow_hidden"),
    (dict(posterior="iaf", flow_steps=10**7), "flow_steps=10000000"),
    (dict(n_samples=10**12), "n_samples 1,000,000,000,000"),
    (dict(decoder_hidden=(20000, 20000)), "decoder_hidden[0]=20000 x decoder_hidden[1]=20000"),
])
def test_vae_refuses_sizes_above_the_limit_naming_the_setting(options, named):
    arguments = dict(input_dim=784, shared_dim=128, latent_dim=2)
    arguments.update(options)
    with pytest.raises(size.SizeError) as caught:
        vae(**arguments)  # the command line's flat spelling, made parts as it makes them
    message = str(caught.value)
    assert named in message and f"limit of {size.human(size.default_limit())}" in message
    assert "\n" not in message


def test_max_memory_raises_the_limit_and_lowers_it():
    with pytest.raises(size.SizeError, match="limit of 32.0 MiB"):
        numvae.VAE(784, 128, 2, decoder_hidden=(2000, 2000), max_memory="32M")
    model = numvae.VAE(784, 128, 2, decoder_hidden=(2000, 2000), max_memory="256M", seed=0)
    assert model.copy(np.float64).budget.limit == 256 * 2**20  # a copy keeps the limit
    with pytest.raises(TypeError, match="max_memory"):
        numvae.VAE(784, 128, 2, max_memory=1.5)


def test_a_step_above_the_limit_is_refused_at_forward_and_by_fit():
    model = numvae.VAE(64, 8, 2, seed=0, max_memory="1M")
    x = np.random.default_rng(0).random((2000, 64))
    with pytest.raises(size.SizeError, match="batch 2,000 x n_samples 1"):
        model.forward(x)
    with pytest.raises(size.SizeError, match="training: a step of batch 2,000"):
        fit(model, FastAdam(model.params), x, epochs=1, batch_size=2000, log=None,
            progress=False)


def test_iwae_log_likelihood_bounds_k_and_the_chunk():
    model = numvae.VAE(64, 8, 2, seed=0, max_memory="1M")
    x = np.random.default_rng(0).random((3, 64))
    with pytest.raises(ValueError, match="k must be at most 1,000,000"):
        iwae_log_likelihood(model, x, k=10**12)
    with pytest.raises(size.SizeError, match="iwae_log_likelihood: a chunk"):
        iwae_log_likelihood(model, x, k=10, max_rows=10**6)


def run_limited(argv, cwd, memory=SMALL_MEMORY):
    """``numvae argv`` in a child whose address space is ``memory`` bytes."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "numvae", *argv], cwd=cwd, env=env,
                          preexec_fn=limit, capture_output=True, text=True, timeout=120)


def one_line(result):
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr.split(
        "(a MemoryError)")[0], result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1, result.stderr  # (besides notes, such as import's assumptions)
    return lines[0]


def test_import_of_metadata_asking_for_terabytes_is_one_line(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    config = dict(flat_config(numvae.VAE(4, 3, 2).config), input_dim=10**6, shared_dim=10**6,
                  dtype="float32")  # the metadata's flat shape
    path = tmp_path / "huge.safetensors"
    path.write_bytes(safetensors_numpy.save({"x": np.zeros(1, np.float32)},
                                            metadata={"numvae.config": json.dumps(config)}))
    line = one_line(run_limited(["import", str(path), "--out", "m.npz"], tmp_path))
    assert str(path) in line and "shared_dim=1000000" in line and "limit of" in line
    assert not (tmp_path / "m.npz").exists()


def test_import_options_asking_for_gigabytes_are_one_line(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from numvae.interop import to_state_dict
    path = tmp_path / "small.safetensors"
    path.write_bytes(safetensors_numpy.save(to_state_dict(numvae.VAE(4, 3, 2, seed=0))))
    line = one_line(run_limited(["import", str(path), "--out", "m.npz", "--decoder-hidden",
                                 "20000,20000"], tmp_path))
    assert "decoder_hidden[0]=20000" in line and "limit of" in line


def test_a_checkpoint_config_asking_for_gigabytes_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "edited.npz"
    save_checkpoint(path, numvae.VAE(4, 3, 2, seed=0))
    with np.load(path) as npz:
        arrays = dict(npz)
    config = json.loads(str(arrays["config"]))
    config["prior"] = {"name": "mixture", "prior_components": 10**9}
    arrays["config"] = np.array(json.dumps(config))
    np.savez(path, **arrays)
    for command in (["evaluate", str(path)], ["inspect", str(path)]):
        line = one_line(run_limited(command, tmp_path))
        assert str(path) in line and "prior_components=1000000000" in line


def test_train_with_a_step_of_gigabytes_is_refused_before_any_folder(tmp_path):
    line = one_line(run_limited(["train", "--dataset", "toy", "--objective", "iwae",
                                 "--n-samples", "100000", "--out", "run"], tmp_path))
    assert "n_samples 100,000" in line and "limit of" in line
    assert not (tmp_path / "run").exists()


def test_a_memory_error_that_still_happens_is_one_line(tmp_path):
    # the limit raised above what the child may take: the allocation itself fails
    result = run_limited(["train", "--dataset", "toy", "--objective", "iwae", "--n-samples",
                          "20000", "--batch-size", "200", "--epochs", "1", "--max-memory",
                          "1T", "--out", "run", "--no-progress"], tmp_path)
    line = one_line(result)
    assert "out of memory" in line
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_the_two_layer_model_is_counted_and_bounded_too():
    from numvae.model.two_layer import TwoLayerVAE
    for sizes in [((100, 50), ((200, 200), (100, 100))), ((100, 50), ((100, 100), (50, 50))),
                  ((3, 2), ((5,), (4, 6)))]:
        model = TwoLayerVAE(20, *sizes, seed=0)
        layers = size.two_layer_layers(20, *sizes)
        assert sum(count for _, count, _ in layers) == model.n_params()
    with pytest.raises(size.SizeError, match=r"q\(zeta\|x\) heads 200 x 1000000"):  # default widths
        TwoLayerVAE(784, (10**6, 50))
    with pytest.raises(size.SizeError, match="n_samples 1,000,000,000"):
        TwoLayerVAE(784, n_samples=10**9, objective="iwae")
