"""numvae.interop without torch: the safetensors file's names, layouts and metadata, the
round trip numvae -> file -> numvae, inference of the architecture from the shapes, and
every kind of bad file. (The comparisons with PyTorch are in test_interop_torch.py.)"""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numvae
from helpers import param_vector, vae
from numvae.commands.cli import main
from numvae.model.parts import flat_config
from numvae.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

safetensors_numpy = pytest.importorskip("safetensors.numpy")
from numvae.interop import InteropError, load_safetensors, save_safetensors, to_state_dict  # noqa: E402

# The issue's names, and nn.Linear's (out, in) shapes, for the slides' VAE(784, 128, 2).
SLIDES_SHAPES = {
    "encoder.compressor.0.weight": (256, 784), "encoder.compressor.0.bias": (256,),
    "encoder.compressor.2.weight": (128, 256), "encoder.compressor.2.bias": (128,),
    "encoder.mean.weight": (2, 128), "encoder.mean.bias": (2,),
    "encoder.log_var.weight": (2, 128), "encoder.log_var.bias": (2,),
    "decoder.decompressor.0.weight": (32, 2), "decoder.decompressor.0.bias": (32,),
    "decoder.decompressor.2.weight": (256, 32), "decoder.decompressor.2.bias": (256,),
    "decoder.decompressor.4.weight": (784, 256), "decoder.decompressor.4.bias": (784,),
}
EXAMPLES = dict(input_dim=784, shared_dim=400, latent_dim=20, encoder_hidden=(),
                decoder_hidden=(400,))


def small(**kwargs):
    """A small float64 VAE: 12 -> 7 -> 5 -> (3, 3); 3 -> 4 -> 6 -> 12."""
    options = dict(encoder_hidden=(7,), decoder_hidden=(4, 6), dtype=np.float64, seed=1)
    options.update(kwargs)
    return vae(12, 5, 3, **options)


def torch_style_file(path, model, **changes):
    """Write ``model``'s parameters as PyTorch would, by hand (no numvae.interop, no
    metadata): ``.W`` transposed as ``.weight``, ``.b`` as ``.bias``; ``changes`` then
    replaces (array) or deletes (None) tensors by name."""
    tensors = {}
    for name, value in model.params.items():
        prefix, last = name.rsplit(".", 1)
        if last == "W":
            tensors[prefix + ".weight"] = np.ascontiguousarray(value.T)
        else:
            tensors[prefix + ".bias"] = value.copy()
    for name, value in changes.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    path.write_bytes(safetensors_numpy.save(tensors))
    return path


def test_slides_model_has_pytorch_names_and_layouts(tmp_path):
    model = numvae.VAE(784, 128, 2, seed=0)
    path = save_safetensors(model, tmp_path / "slides.safetensors")
    tensors = safetensors_numpy.load_file(path)
    assert {name: value.shape for name, value in tensors.items()} == SLIDES_SHAPES
    assert all(value.dtype == np.float32 for value in tensors.values())
    # y = x W + b in numvae, y = x weight^T + bias in PyTorch: weight is W transposed
    x = np.random.default_rng(0).uniform(size=(3, 784)).astype(np.float32)
    ours = x @ model.params["encoder.compressor.0.W"] + model.params["encoder.compressor.0.b"]
    theirs = x @ tensors["encoder.compressor.0.weight"].T + tensors["encoder.compressor.0.bias"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)   # float32 sums, any order
    for name, value in model.params.items():
        prefix, last = name.rsplit(".", 1)
        stored = tensors[prefix + (".weight" if last == "W" else ".bias")]
        assert np.array_equal(stored, value.T if last == "W" else value), name


def test_metadata_holds_the_configuration(tmp_path):
    from safetensors import safe_open
    model = small(likelihood="gaussian", sigma=0.3, kl_weight=0.5, n_samples=2)
    path = save_safetensors(model, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="np") as file:
        metadata = file.metadata()
    assert metadata["format"] == "pt"
    stored = json.loads(metadata["numvae.config"])
    expected = dict(input_dim=12, shared_dim=5, latent_dim=3, encoder_hidden=[7],
                    decoder_hidden=[4, 6], likelihood="gaussian", sigma=0.3, kl_weight=0.5,
                    n_samples=2, dtype="float64")
    assert {key: stored.get(key) for key in expected} == expected
    # and every other key of model.config (names of parts, ...), as JSON, in 0.2's flat shape
    assert stored == json.loads(json.dumps({**flat_config(model.config), "dtype": "float64"}))


@pytest.mark.parametrize("kwargs", [dict(), dict(dtype=np.float32), dict(encoder_hidden=()),
                                    dict(likelihood="gaussian", sigma=0.25, n_samples=3)],
                         ids=["float64", "float32", "no-encoder-hidden", "gaussian"])
def test_round_trip_is_bit_for_bit(tmp_path, kwargs):
    model = small(**kwargs)
    lines = []
    loaded = load_safetensors(save_safetensors(model, tmp_path / "m.safetensors"),
                              announce=lines.append)
    assert lines == []                                   # nothing assumed: the file says it all
    assert loaded.config == model.config and loaded.dtype == model.dtype
    for name, value in model.params.items():
        assert loaded.params[name].tobytes() == value.tobytes(), name
    for name, owner, key in loaded.parameter_owners():   # written in place: still the layers'
        assert owner.params[key] is loaded.params[name], name


def test_pytorch_file_infers_the_architecture_and_names_what_it_assumed(tmp_path):
    model = numvae.VAE(**EXAMPLES, seed=0)
    lines = []
    loaded = load_safetensors(torch_style_file(tmp_path / "t.safetensors", model),
                              announce=lines.append)
    assert loaded.config == model.config and loaded.dtype == np.float32
    assert np.array_equal(param_vector(loaded), param_vector(model))
    assert len(lines) == 1
    assert "assumed likelihood='bernoulli', sigma=1.0, kl_weight=1.0, n_samples=1" in lines[0]


def test_pytorch_file_of_a_flow_model_infers_the_flow(tmp_path):
    """posterior="iaf", flow_steps and flow_hidden read off posterior.steps.<t>.made.<2k>."""
    model = small(posterior="iaf", flow_steps=3, flow_hidden=(6, 5), activation="tanh")
    lines = []
    loaded = load_safetensors(torch_style_file(tmp_path / "t.safetensors", model),
                              config=dict(activation="tanh"), announce=lines.append)
    assert loaded.config == model.config
    assert loaded.config["posterior"] == {"name": "iaf", "steps": 3, "hidden": (6, 5)}
    assert np.array_equal(param_vector(loaded), param_vector(model))
    rng = np.random.default_rng(0)
    x, eps = rng.uniform(size=(4, 12)), rng.standard_normal((1, 4, 3))
    assert loaded.forward(x, eps)["loss"] == model.forward(x, eps)["loss"]
    assert "objective='elbo'" in lines[0]            # the shapes cannot tell the objective
    # a step missing: refused, naming what was expected
    step1 = {name: None for name in to_state_dict(model) if name.startswith("posterior.steps.1.")}
    broken = torch_style_file(tmp_path / "b.safetensors", model, **step1)
    with pytest.raises(InteropError, match=r"expected steps posterior.steps.0.*found \[0, 2\]"):
        load_safetensors(broken)


def test_given_config_overrides_and_silences_what_it_sets(tmp_path):
    model = small()
    lines = []
    loaded = load_safetensors(torch_style_file(tmp_path / "t.safetensors", model),
                              config=dict(likelihood="gaussian", sigma=0.5, kl_weight=1.0,
                                          n_samples=4), announce=lines.append)
    config = loaded.config
    assert config["likelihood"] == {"name": "gaussian", "sigma": 0.5}
    assert config["objective"]["n_samples"] == 4
    assert config["architecture"]["encoder_hidden"] == (7,)
    assert not [line for line in lines for key in ("likelihood", "sigma", "kl_weight",
                                                   "n_samples") if f" {key}=" in line]
    assert np.array_equal(param_vector(loaded), param_vector(model))


def bad_files():
    """(id, changes to a torch-style file of ``small()``, config, words the error must hold)."""
    weight = np.zeros((3, 5))
    return [
        ("missing", {"encoder.log_var.bias": None}, dict(input_dim=12, shared_dim=5, latent_dim=3,
                                                          encoder_hidden=(7,),
                                                          decoder_hidden=(4, 6)),
         ["encoder.log_var.bias is missing", "expected shape (3,)"]),
        ("extra", {"encoder.extra.weight": weight}, None,
         ["unexpected tensor encoder.extra.weight"]),
        ("misshapen", {"encoder.log_var.weight": np.zeros((3, 4))}, None,
         ["encoder.log_var.weight has shape (3, 4); expected (3, 5)"]),
        ("transposed", {"encoder.log_var.weight": np.zeros((5, 3))}, None,
         ["encoder.log_var.weight has shape (5, 3); expected (3, 5)"]),
        ("float16", {"encoder.mean.weight": weight.astype(np.float16)}, None,
         ["encoder.mean.weight has dtype F16", "expected F32 (float32) or F64 (float64)"]),
        ("integer", {"encoder.mean.bias": np.zeros(3, np.int64)}, dict(dtype="float64"),
         ["encoder.mean.bias has dtype I64", "expected F64 (float64"]),
        ("mixed", {"encoder.mean.weight": weight.astype(np.float32)}, None,
         ["encoder.mean.weight has dtype F32", "expected one dtype for all"]),
        ("wrong-latent", {}, dict(latent_dim=2),
         ["encoder.mean.weight has shape (3, 5); expected (2, 5)"]),
        ("wrong-hidden", {}, dict(decoder_hidden=(4, 8)),
         ["decoder.decompressor.2.weight has shape (6, 4); expected (8, 4)"]),
        ("not-finite", {"decoder.decompressor.0.bias": np.array([0, np.nan, 0, 0])}, None,
         ["decoder.decompressor.0.bias holds NaN"]),
        ("sequential-gap", {"decoder.decompressor.2.weight": None,
                            "decoder.decompressor.3.weight": np.zeros((6, 4))}, None,
         ["decoder.decompressor.0.weight, decoder.decompressor.2.weight", "indices [0, 3, 4]"]),
        ("bad-config-key", {}, dict(activation_fn="relu"),
         ["cannot build numvae.VAE", "activation_fn"]),
    ]


@pytest.mark.parametrize("changes, config, words", [case[1:] for case in bad_files()],
                         ids=[case[0] for case in bad_files()])
def test_bad_file_gets_an_error_naming_the_tensor(tmp_path, changes, config, words):
    path = torch_style_file(tmp_path / "bad.safetensors", small(), **changes)
    with pytest.raises(InteropError) as info:
        load_safetensors(path, config=config, announce=lambda line: None)
    for word in words:
        assert word in str(info.value)
    assert str(path) in str(info.value)


def test_numvae_file_with_another_config_names_the_tensor(tmp_path):
    path = save_safetensors(small(), tmp_path / "m.safetensors")
    with pytest.raises(InteropError, match=r"encoder.compressor.0.weight has shape \(7, 12\); "
                                           r"expected \(9, 12\)"):
        load_safetensors(path, config=dict(encoder_hidden=(9,)))
    with pytest.raises(InteropError, match=r"has dtype F64; expected F32 \(float32"):
        load_safetensors(path, config=dict(dtype="float32"))


@pytest.mark.parametrize("content, words", [
    (b"", "not a readable safetensors file"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ", "not a readable safetensors file"),
])
def test_not_a_safetensors_file(tmp_path, content, words):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(InteropError, match=words):
        load_safetensors(path)
    with pytest.raises(InteropError, match="does not exist"):
        load_safetensors(tmp_path / "nope.safetensors")


class Trap:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"encoder.mean.weight": Trap(marker)}))
    with pytest.raises(InteropError, match="not a readable safetensors file"):
        load_safetensors(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())   # the trap works: loading the pickle does run code
    assert marker.exists()


def test_names_without_a_rule_are_refused_by_name():
    from numvae.interop import torch_name
    assert torch_name("decoder.decompressor.4.b") == "decoder.decompressor.4.bias"
    with pytest.raises(InteropError, match=r"parameter encoder.flow.0.u: no PyTorch name is "
                                           r"known for '.u' \(known: .W, .b, "):
        torch_name("encoder.flow.0.u")


def test_bad_metadata_and_config_type(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_numpy.save({"a": np.zeros(1)}, metadata={"numvae.config": "{"}))
    with pytest.raises(InteropError, match="metadata numvae.config is not valid JSON"):
        load_safetensors(path)
    with pytest.raises(TypeError, match="config must be a dict"):
        load_safetensors(path, config=[784, 128, 2])


def test_without_safetensors_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match=r'pip install "numvae\[interop\]"'):
        save_safetensors(small(), tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


# --- the command line: numvae export / numvae import ------------------------------------

def run(argv, capsys):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def narrow_784(**kwargs):
    """A small float32 model of MNIST's width, so that inspect and evaluate have data."""
    return vae(784, 16, 2, encoder_hidden=(8,), decoder_hidden=(8,), seed=3, **kwargs)


def test_export_writes_what_load_safetensors_reads(tmp_path, capsys):
    model = narrow_784(likelihood="gaussian", sigma=0.4)
    checkpoint = save_checkpoint(tmp_path / "c.npz", model)
    out = tmp_path / "m.safetensors"
    code, stdout, _ = run(["export", checkpoint, out], capsys)
    assert code == 0 and "wrote 12 tensors" in stdout and "strict=True" in stdout
    loaded = load_safetensors(out, announce=pytest.fail)
    assert loaded.config == model.config
    assert np.array_equal(param_vector(loaded), param_vector(model))

    code, _, err = run(["export", checkpoint, out], capsys)              # never overwrites silently
    assert code == 1 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert run(["export", checkpoint, out, "--overwrite"], capsys)[0] == 0
    code, _, err = run(["export", checkpoint, tmp_path / "m.pt"], capsys)
    assert code == 2 and "must end in .safetensors" in err


def test_import_then_inspect_and_evaluate(tmp_path, capsys):
    model = narrow_784()
    source = torch_style_file(tmp_path / "t.safetensors", model)      # as PyTorch writes it
    checkpoint = tmp_path / "c.npz"
    code, stdout, err = run(["import", source, "--out", checkpoint], capsys)
    assert code == 0, err
    assert "assumed likelihood='bernoulli'" in err and "--likelihood" in err
    imported = load_checkpoint(checkpoint).model
    assert imported.config == model.config
    assert np.array_equal(param_vector(imported), param_vector(model))

    code, stdout, _ = run(["inspect", checkpoint, "--batch-size", "2", "--check"], capsys)
    assert code == 0 and "decoder.decompressor.2.W (grad)" in stdout and "fd error" in stdout
    code, stdout, _ = run(["evaluate", checkpoint, "--dataset", "mnist-mini", "--n", "20",
                           "--iwae-k", "0"], capsys)
    assert code == 0 and "20 test images: -ELBO" in stdout

    code, _, err = run(["import", source, "--out", checkpoint], capsys)
    assert code == 1 and "--overwrite" in err


def test_import_with_architecture_options(tmp_path, capsys):
    source = torch_style_file(tmp_path / "t.safetensors", narrow_784())
    out = tmp_path / "g.npz"
    code, _, err = run(["import", source, "--out", out, "--likelihood", "gaussian", "--sigma",
                        "0.3", "--kl-weight", "1", "--n-samples", "2", "--decoder-hidden", "8"],
                       capsys)
    assert code == 0                                        # and none of them is "assumed":
    assert not [key for key in ("likelihood", "sigma", "kl_weight", "n_samples")
                if f" {key}=" in err]
    config = load_checkpoint(out).model.config
    assert config["likelihood"] == {"name": "gaussian", "sigma": 0.3}
    assert config["objective"] == {"name": "elbo", "kl_weight": 1.0, "n_samples": 2}

    code, _, err = run(["import", source, "--out", tmp_path / "x.npz", "--latent-dim", "3"], capsys)
    assert code == 1 and "encoder.mean.weight has shape (2, 16); expected (3, 16)" in err
    assert not (tmp_path / "x.npz").exists()
    code, _, err = run(["import", source, "--out", tmp_path / "x.npz", "--decoder-hidden", "8,x"],
                       capsys)
    assert code == 2 and "expected comma-separated positive integers" in err
    code, _, err = run(["import", tmp_path / "nope.safetensors", "--out", tmp_path / "x.npz"],
                       capsys)
    assert code == 1 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_commands_without_safetensors_say_how_to_install(tmp_path, capsys, monkeypatch):
    checkpoint = save_checkpoint(tmp_path / "c.npz", small())
    monkeypatch.setitem(sys.modules, "safetensors", None)
    code, _, err = run(["export", checkpoint, tmp_path / "m.safetensors"], capsys)
    assert code == 1 and 'pip install "numvae[interop]"' in err and len(err.strip().splitlines()) == 1


def test_python_dash_m_numvae_export_and_import(tmp_path):
    """The real commands, in a fresh process that finds this checkout first."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    checkpoint = save_checkpoint(tmp_path / "c.npz", small())
    for argv in (["export", checkpoint, tmp_path / "m.safetensors"],
                 ["import", tmp_path / "m.safetensors", "--out", tmp_path / "back.npz"]):
        done = subprocess.run([sys.executable, "-m", "numvae", *map(str, argv)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert np.array_equal(param_vector(load_checkpoint(tmp_path / "back.npz").model),
                          param_vector(small()))


# --- issue 21: a named pipe, deep JSON, long lists ------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_import_of_a_named_pipe_is_refused_without_waiting(tmp_path, capsys):
    from helpers import call_on_a_named_pipe
    pipe = tmp_path / "fifo.safetensors"
    os.mkfifo(pipe)
    code = call_on_a_named_pipe(lambda: main(["import", str(pipe), "--out",
                                              str(tmp_path / "m.npz")]), pipe, "numvae import")
    err = capsys.readouterr().err
    assert code == 1 and err == f"numvae import: error: {pipe} is a named pipe, expected a file\n"


def test_a_config_of_100000_nested_brackets_is_one_line(tmp_path, capsys):
    path = tmp_path / "deep.safetensors"
    path.write_bytes(safetensors_numpy.save(
        {"x": np.zeros(1, np.float32)}, metadata={"numvae.config": "[" * 100_000}))
    code = main(["import", str(path), "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1
    assert str(path) in err and "numvae.config" in err and "nested too deeply" in err


def test_a_checkpoint_entry_of_100000_nested_brackets_is_one_line(tmp_path):
    path = tmp_path / "m.npz"
    save_checkpoint(path, small())
    with np.load(path) as npz:
        arrays = dict(npz)
    np.savez(path, **{**arrays, "history": np.array("[" * 100_000)})
    with pytest.raises(CheckpointError, match="entry 'history' is not valid JSON.*nested"):
        load_checkpoint(path)


def test_20000_extra_tensors_give_a_short_line(tmp_path):
    tensors = to_state_dict(small())
    tensors.update({f"extra.{index:06d}": np.zeros(1, np.float64) for index in range(20_000)})
    path = tmp_path / "many.safetensors"
    path.write_bytes(safetensors_numpy.save(tensors, metadata={
        "numvae.config": json.dumps({**flat_config(small().config), "dtype": "float64"})}))
    with pytest.raises(InteropError) as caught:
        load_safetensors(path)
    message = str(caught.value)
    assert "extra.000000, extra.000001, extra.000002 and 19,997 more" in message
    assert len(message) < 1000
