"""Checkpoints: one ``.npz`` file holding everything needed to resume training exactly.

Layout (all plain arrays; text is stored as a NumPy unicode string, never pickled):

    format_version        int, ``FORMAT_VERSION`` (2; version 1 files are read too)
    config                JSON: the model, part by part (``config_schema``): the
                          architecture, likelihood, posterior, prior and objective, each
                          {"name": ..., its settings}, and the dtype
    param/<name>          each parameter array (``model.params``)
    optimizer             JSON: the optimiser's class ("Adam" is the textbook
                          ``numvae.optim.Adam``, "FastAdam" the fast path that ``numvae
                          train`` uses, "SGD") and its settings
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
from .architectures import ARCHITECTURES as _ARCHITECTURES
from .optim import SGD, Adam
from .optim_fast import FastAdam
from .vae import VAE

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
PART_KINDS = ("likelihood", "posterior", "prior", "objective")
# the architecture entry: these keys of model.config, where the model has them (a conv
# model has no hidden widths, an unconditional one no n_classes)
ARCHITECTURE_KEYS = ("input_dim", "shared_dim", "latent_dim", "encoder_hidden",
                     "decoder_hidden", "activation", "n_classes")
ARCHITECTURES = tuple(_ARCHITECTURES)  # "mlp", "conv": numvae.architectures
OPTIMIZERS = {cls.__name__: cls for cls in (Adam, FastAdam, SGD)}


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
        "config": _text(config_schema(model)),
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


def config_schema(model):
    """The model's configuration, version 2: one entry per part, {"name": ..., settings}.

        {"architecture": {"name": "mlp", "input_dim": 784, ..., "activation": "relu"},
         "likelihood": {"name": "gaussian", "sigma": 0.5},
         "posterior": {"name": "diagonal_gaussian"}, "prior": {"name": "standard_normal"},
         "objective": {"name": "elbo", "kl_weight": 1.0, "n_samples": 1}, "dtype": "float32"}
    """
    schema = {"architecture": {"name": model.config["architecture"],
                               **{k: model.config[k] for k in ARCHITECTURE_KEYS
                                  if k in model.config}}}
    for kind in PART_KINDS:
        part = getattr(model, kind)
        schema[kind] = {"name": part.name, **part.settings()}
    schema["dtype"] = model.dtype.name
    return schema


def vae_arguments(config, version):
    """``numvae.VAE`` keyword arguments (dtype included) from a file's configuration.

    Version 1 stored the constructor's arguments themselves; version 2 the parts
    (``config_schema``), whose settings are constructor arguments too. Raises
    ValueError/TypeError/KeyError for a configuration of the wrong shape.
    """
    if not isinstance(config, dict):
        raise TypeError(f"the configuration is a {type(config).__name__}, expected a JSON object")
    if version == 1:
        return dict(config)
    arguments = dict(config["architecture"])
    arguments["architecture"] = arguments.pop("name")
    if arguments["architecture"] not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}")
    for kind in PART_KINDS:
        entry = dict(config[kind])
        arguments[kind] = entry.pop("name")
        arguments.update(entry)
    arguments["dtype"] = config["dtype"]
    return arguments


def _optimizer_config(optimizer):
    kind = type(optimizer).__name__
    if OPTIMIZERS.get(kind) is not type(optimizer):
        raise TypeError(f"optimizer must be one of numvae.{', numvae.'.join(OPTIMIZERS)}; "
                        f"got {kind}")
    return dict(type=kind, **optimizer.settings())


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
    version = _version(arrays["format_version"], path)
    try:
        arguments = vae_arguments(_json(arrays, "config", path), version)
        if expect_config is not None:
            _compare_configs(arguments, expect_config, path)
        model = VAE(**arguments)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {path} has an invalid model configuration "
                              f"({type(err).__name__}: {err})") from None
    for name, param in model.params.items():
        stored = arrays.get(f"param/{name}")
        if stored is None or stored.shape != param.shape:
            got = "missing" if stored is None else f"shape {stored.shape}"
            raise CheckpointError(f"checkpoint {path}: parameter {name} is {got}; the "
                                  f"configuration needs shape {param.shape}")
        if stored.dtype.kind != "f":
            raise CheckpointError(f"checkpoint {path}: parameter {name} has dtype {stored.dtype}; "
                                  f"expected a real float array")
        with np.errstate(over="ignore", invalid="ignore"):
            param[...] = stored  # cast to the model's dtype first: 1e300 is finite in float64 only
        if not np.isfinite(param).all():
            raise CheckpointError(f"checkpoint {path}: parameter {name} is not finite in "
                                  f"{model.dtype.name} (a diverged or damaged model)")
    model.rng.bit_generator.state = _json(arrays, "model_rng", path)
    optimizer = None
    if "optimizer" in arrays:
        optimizer = _load_optimizer(arrays, model, path, version)
    return Checkpoint(model, optimizer, _json(arrays, "history", path),
                      _json(arrays, "train_state", path), arrays.get("train_permutation"))


def _version(stored, path):
    """The file's format version, a readable one, or a CheckpointError."""
    if stored.shape != () or stored.dtype.kind not in "iu" or int(stored) not in READABLE_VERSIONS:
        raise CheckpointError(f"checkpoint {path} has format version {stored.tolist()!r}; this numvae "
                              f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    return int(stored)


def _compare_configs(stored, expected, path):
    differ = [f"{key}: file has {stored.get(key)!r}, expected {value!r}"
              for key, value in expected.items()
              if key in (*ARCHITECTURE_KEYS, *PART_KINDS)
              and _normalise(stored.get(key)) != _normalise(value)]
    if differ:
        raise CheckpointError(f"checkpoint {path} is for another architecture: " + "; ".join(differ))


def _normalise(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def _load_optimizer(arrays, model, path, version):
    settings = _json(arrays, "optimizer", path)
    if not isinstance(settings, dict):
        raise CheckpointError(f"checkpoint {path}: entry 'optimizer' is not a JSON object")
    kind = settings.pop("type", None)
    if version == 1 and kind == "Adam":
        kind = "FastAdam"  # version 1's Adam was the one-sweep path with the denormal flush
    if kind not in OPTIMIZERS:
        raise CheckpointError(f"checkpoint {path} has an unknown optimizer {kind!r}; "
                              f"expected one of {', '.join(OPTIMIZERS)}")
    state = {key[len("optimizer/"):]: value for key, value in arrays.items()
             if key.startswith("optimizer/")}
    try:
        optimizer = OPTIMIZERS[kind](model.params, **settings)
        optimizer.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {path} has an incomplete optimizer state ({err})") from None
    return optimizer
