import io
import json
import zipfile

import numpy as np
import pytest

import numvae
from helpers import vae
from numvae.model.likelihoods import Gaussian
from numvae.model.objectives import ELBO
from numvae.training import checkpoint as ckpt
from numvae.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def trained_pair(seed=0):
    model = vae(12, 6, 2, encoder_hidden=(8,), decoder_hidden=(8,), seed=seed)
    optimizer = numvae.Adam(model.params, lr=2e-3)
    x = np.random.default_rng(0).uniform(size=(5, 12))
    for _ in range(3):
        model.loss_and_grad(x)
        optimizer.step(model.grads)
    return model, optimizer


def test_round_trip(tmp_path):
    model, optimizer = trained_pair()
    history = {"epoch": [1], "train_loss": [3.5], "val_loss": [None]}
    path = save_checkpoint(tmp_path / "c.npz", model, optimizer, history, {"epoch": 1})
    loaded = load_checkpoint(path)
    assert loaded.model.config == model.config and loaded.model.dtype == model.dtype
    for name in model.params:
        assert np.array_equal(loaded.model.params[name], model.params[name])
        assert np.array_equal(loaded.optimizer.m[name], optimizer.m[name])
        assert np.array_equal(loaded.optimizer.v[name], optimizer.v[name])
    assert loaded.optimizer.t == 3 and loaded.optimizer.lr == 2e-3
    assert loaded.history == history and loaded.train_state == {"epoch": 1}
    # the RNG that draws eps continues where it was
    assert loaded.model.rng.standard_normal() == model.rng.standard_normal()


def test_a_long_runs_history_of_millions_of_characters_loads(tmp_path):
    """A run of 121 epochs of 3,000 steps keeps 363,000 per-step gradient norms: its history
    is a string of about 7 million characters (dtype '<U7...', seven digits), which the
    bounded reader once refused as not a plain dtype."""
    model, optimizer = trained_pair()
    norms = np.random.default_rng(1).uniform(size=100_000).tolist()
    history = {"epoch": [1], "train_loss": [3.5], "grad_norm_step": list(range(100_000)),
               "grad_norm": {"encoder.mean.W": norms}}
    path = save_checkpoint(tmp_path / "c.npz", model, optimizer, history, {"epoch": 1})
    assert len(json.dumps(history)) > 1_000_000     # a seven-digit string dtype
    assert load_checkpoint(path).history == history


def test_truncated_file_is_a_clear_error(tmp_path):
    model, optimizer = trained_pair()
    path = save_checkpoint(tmp_path / "c.npz", model, optimizer)
    data = path.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 5):
        broken = tmp_path / f"broken{size}.npz"
        broken.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match="broken"):
            load_checkpoint(broken)


def test_wrong_version(tmp_path, monkeypatch):
    model, _ = trained_pair()
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", 99)
    path = save_checkpoint(tmp_path / "c.npz", model)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)


def test_other_architecture(tmp_path):
    model, _ = trained_pair()
    path = save_checkpoint(tmp_path / "c.npz", model)
    other = vae(12, 6, 3, encoder_hidden=(8,), decoder_hidden=(8,))
    with pytest.raises(CheckpointError, match="latent_dim: file has 2, expected 3"):
        load_checkpoint(path, expect_config=other.config)


class _WritesAFileWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_object_is_refused_and_never_run(tmp_path):
    model, _ = trained_pair()
    path = save_checkpoint(tmp_path / "c.npz", model)
    marker = tmp_path / "was-unpickled"
    evil = np.empty(1, dtype=object)
    evil[0] = _WritesAFileWhenUnpickled(str(marker))
    buffer = io.BytesIO()
    np.save(buffer, evil, allow_pickle=True)
    with zipfile.ZipFile(path) as archive:  # the same file, with history.npy replaced
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries["history.npy"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(CheckpointError,
                       match="holds pickled Python objects; numvae never unpickles"):
        load_checkpoint(path)
    assert not marker.exists()


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer = trained_pair()
    path = save_checkpoint(tmp_path / "c.npz", model, optimizer)
    before = path.read_bytes()

    def interrupted(fd):
        raise KeyboardInterrupt  # Ctrl-C after the bytes were written, before the rename

    monkeypatch.setattr("numvae.io.files.os.fsync", interrupted)
    model.params["encoder.mean.b"][:] = 42.0
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, optimizer)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).model.params["encoder.mean.b"][0] != 42.0
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.zeros(2))
    with pytest.raises(CheckpointError, match="not a numvae checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")


def test_non_finite_parameters_are_refused(tmp_path):
    model, optimizer = trained_pair()
    model.params["decoder.decompressor.2.b"][3] = np.inf
    path = save_checkpoint(tmp_path / "c.npz", model, optimizer)
    with pytest.raises(CheckpointError, match="decoder.decompressor.2.b is not finite"):
        load_checkpoint(path)


def test_adam_settings_round_trip(tmp_path):
    model = vae(12, 6, 2, encoder_hidden=(8,), decoder_hidden=(8,), seed=0)
    optimizer = numvae.FastAdam(model.params, lr=3e-4, betas=(0.8, 0.99), eps=1e-7,
                                flush_every=7, tiny=1e-20)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.npz", model, optimizer)).optimizer
    assert (loaded.lr, loaded.beta1, loaded.beta2, loaded.eps, loaded.flush_every, loaded.tiny) == (
        3e-4, 0.8, 0.99, 1e-7, 7, 1e-20)


def test_version_3_names_each_part_and_the_optimizer_kind(tmp_path):
    model = numvae.VAE(12, 6, 2, encoder_hidden=(8,), decoder_hidden=(8,),
                       likelihood=Gaussian(sigma=0.5), objective=ELBO(kl_weight=0.7, n_samples=2),
                       activation="tanh", seed=0)
    for optimizer in (numvae.Adam(model.params, lr=2e-3), numvae.FastAdam(model.params),
                      numvae.SGD(model.params, lr=0.1, momentum=0.5)):
        path = save_checkpoint(tmp_path / "c.npz", model, optimizer)
        with np.load(path) as npz:
            config = json.loads(str(npz["config"]))
            assert int(npz["format_version"]) == 3
            assert json.loads(str(npz["optimizer"]))["type"] == type(optimizer).__name__
        assert config == {
            "architecture": {"name": "mlp", "input_dim": 12, "shared_dim": 6, "latent_dim": 2,
                             "encoder_hidden": [8], "decoder_hidden": [8], "activation": "tanh"},
            "likelihood": {"name": "gaussian", "sigma": 0.5},
            "posterior": {"name": "diagonal_gaussian"}, "prior": {"name": "standard_normal"},
            "objective": {"name": "elbo", "kl_weight": 0.7, "n_samples": 2}, "dtype": "float32"}
        loaded = load_checkpoint(path)
        assert loaded.model.config == model.config and type(loaded.optimizer) is type(optimizer)


def test_version_1_adam_was_the_fast_path():
    from pinned_run import DATA
    loaded = load_checkpoint(DATA / "checkpoint_v1.npz")
    assert type(loaded.optimizer) is numvae.FastAdam and loaded.optimizer.flush_every == 50


def test_float64_parameters_beyond_float32_are_refused(tmp_path):
    model64 = vae(12, 6, 2, encoder_hidden=(8,), decoder_hidden=(8,), dtype=np.float64,
                         seed=0)
    model64.params["encoder.mean.b"][0] = 1e300  # finite in float64, inf in float32
    path = save_checkpoint(tmp_path / "c.npz", model64)
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    config = json.loads(str(arrays["config"]))
    config["dtype"] = "float32"
    arrays["config"] = np.array(json.dumps(config))
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="encoder.mean.b is not finite in float32"):
        load_checkpoint(path)


@pytest.mark.parametrize("key, value, message", [
    ("optimizer/m.encoder.mean.b", np.float32(0.0), r"'optimizer/m.encoder.mean.b' has shape \(\)"),
    ("optimizer/v.encoder.mean.b", np.full(2, np.nan, np.float32),
     "v.encoder.mean.b is not finite"),
    ("optimizer/t", np.array(-3), "t must be an integer >= 0"),
    ("optimizer/t", np.array(2.5), "t must be an integer >= 0"),
])
def test_damaged_optimizer_state_is_refused(tmp_path, key, value, message):
    model, optimizer = trained_pair()
    path = save_checkpoint(tmp_path / "c.npz", model, optimizer)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays[key] = value
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
