"""Checkpoints: one ``.npz`` file holding everything needed to resume training exactly.

Layout (all plain arrays; text is stored as a NumPy unicode string, never pickled):

    format_version        int, ``FORMAT_VERSION``
    config                JSON: the VAE's constructor arguments and dtype
    param/<name>          each parameter array (``model.params``)
    optimizer             JSON: the optimiser's class and hyper-parameters
    optimizer/<key>       its state arrays (Adam's m and v, SGD's velocity) and step count
    history               JSON: the per-epoch history of ``numvae.train.fit``
    model_rng             JSON: the state of ``model.rng`` (which draws eps)
    train_state           JSON: where training stands (epoch, step, the training RNG state)
    train_permutation     the current epoch's example order, for a resume mid-epoch

Files are written atomically (``numvae._io.atomic_write``) and read with
``allow_pickle=False``, so a checkpoint can never run code when it is opened.
"""
import io
import json
import zipfile

import numpy as np

from ._io import as_path, atomic_write_bytes
from .optim import SGD, Adam
from .vae import VAE

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """The file is not a readable numvae checkpoint (truncated, wrong version, ...)."""


def _text(value):
    return np.array(json.dumps(value))


def save_checkpoint(path, model, optimizer=None, history=None, train_state=None,
                    train_permutation=None):
    """Write a checkpoint to ``path`` atomically: the previous file survives any failure."""
    path = as_path(path, "path")
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "config": _text({**model.config, "dtype": model.dtype.name}),
        "model_rng": _text(model.rng.bit_generator.state),
        "history": _text(history or {}),
        "train_state": _text(train_state or {}),
    }
    for name, value in model.params.items():
        arrays[f"param/{name}"] = value
    if optimizer is not None:
        arrays["optimizer"] = _text(_optimizer_config(optimizer))
        for key, value in optimizer.state_dict().items():
            arrays[f"optimizer/{key}"] = np.asarray(value)
    if train_permutation is not None:
        arrays["train_permutation"] = np.asarray(train_permutation)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _optimizer_config(optimizer):
    if isinstance(optimizer, Adam):
        return dict(type="Adam", lr=optimizer.lr, betas=[optimizer.beta1, optimizer.beta2],
                    eps=optimizer.eps, flush_every=optimizer.flush_every, tiny=optimizer.tiny)
    if isinstance(optimizer, SGD):
        return dict(type="SGD", lr=optimizer.lr, momentum=optimizer.momentum)
    raise TypeError(f"optimizer must be numvae.Adam or numvae.SGD; got {type(optimizer).__name__}")


def _read_npz(path):
    """All arrays of the file, as a dict; CheckpointError for anything unreadable."""
    try:
        # we open the file ourselves: np.load leaks its handle when the archive is corrupt
        with open(path, "rb") as file:
            if file.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
                raise CheckpointError(f"checkpoint {path} is not a .npz archive "
                                      f"(empty, truncated or another kind of file)")
            file.seek(0)
            with np.load(file, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {path} is a folder, expected a .npz file") from None
    except ValueError as err:
        if "pickle" in str(err):
            raise CheckpointError(f"checkpoint {path} contains a pickled object; numvae "
                                  f"never unpickles (it could run code), so it is refused") from None
        raise CheckpointError(f"checkpoint {path} is not a readable .npz file ({err})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({err})") from None


def _json(arrays, key, path):
    try:
        return json.loads(str(arrays[key]))
    except KeyError:
        raise CheckpointError(f"checkpoint {path} has no '{key}' entry") from None
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path}: entry '{key}' is not valid JSON ({err})") from None


class Checkpoint:
    """What ``load_checkpoint`` returns: ``model``, ``optimizer`` (or None), ``history``
    (dict), ``train_state`` (dict) and ``train_permutation`` (array or None)."""

    def __init__(self, model, optimizer, history, train_state, train_permutation):
        self.model, self.optimizer = model, optimizer
        self.history, self.train_state = history, train_state
        self.train_permutation = train_permutation


def load_checkpoint(path, *, expect_config=None):
    """Read a checkpoint and rebuild the model and optimiser it holds.

    ``expect_config`` (a dict of VAE constructor arguments, e.g. ``model.config``): when
    given, every key must match the file's, otherwise a CheckpointError names the keys
    that differ (loading weights into another architecture).
    """
    path = as_path(path, "path")
    arrays = _read_npz(path)
    if "format_version" not in arrays:
        raise CheckpointError(f"{path} is not a numvae checkpoint (no format_version)")
    version = int(arrays["format_version"])
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version}; this numvae "
                              f"reads version {FORMAT_VERSION}")
    config = _json(arrays, "config", path)
    if expect_config is not None:
        _compare_configs(config, expect_config, path)
    try:
        dtype = config.pop("dtype")
        config["encoder_hidden"] = tuple(config["encoder_hidden"])
        config["decoder_hidden"] = tuple(config["decoder_hidden"])
        model = VAE(**config, dtype=dtype)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} has an invalid model configuration ({err})") from None
    for name, param in model.params.items():
        stored = arrays.get(f"param/{name}")
        if stored is None or stored.shape != param.shape:
            got = "missing" if stored is None else f"shape {stored.shape}"
            raise CheckpointError(f"checkpoint {path}: parameter {name} is {got}; the "
                                  f"configuration needs shape {param.shape}")
        if stored.dtype.kind != "f" or not np.isfinite(stored).all():
            raise CheckpointError(f"checkpoint {path}: parameter {name} is not a finite float "
                                  f"array (a diverged or damaged model)")
        param[...] = stored
    model.rng.bit_generator.state = _json(arrays, "model_rng", path)
    optimizer = None
    if "optimizer" in arrays:
        optimizer = _load_optimizer(arrays, model, path)
    return Checkpoint(model, optimizer, _json(arrays, "history", path),
                      _json(arrays, "train_state", path), arrays.get("train_permutation"))


def _compare_configs(stored, expected, path):
    differ = [f"{key}: file has {stored.get(key)!r}, expected {value!r}"
              for key, value in expected.items()
              if key in ("input_dim", "shared_dim", "latent_dim", "encoder_hidden",
                         "decoder_hidden", "likelihood")
              and _normalise(stored.get(key)) != _normalise(value)]
    if differ:
        raise CheckpointError(f"checkpoint {path} is for another architecture: " + "; ".join(differ))


def _normalise(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def _load_optimizer(arrays, model, path):
    settings = _json(arrays, "optimizer", path)
    kind = settings.pop("type", None)
    state = {key[len("optimizer/"):]: value for key, value in arrays.items()
             if key.startswith("optimizer/")}
    try:
        if kind == "Adam":
            optimizer = Adam(model.params, lr=settings["lr"], betas=tuple(settings["betas"]),
                             eps=settings["eps"], flush_every=settings["flush_every"],
                             tiny=settings["tiny"])
        elif kind == "SGD":
            optimizer = SGD(model.params, lr=settings["lr"], momentum=settings["momentum"])
        else:
            raise CheckpointError(f"checkpoint {path} has an unknown optimizer {kind!r}")
        optimizer.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {path} has an incomplete optimizer state ({err})") from None
    return optimizer
