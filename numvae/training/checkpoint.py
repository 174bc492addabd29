"""Checkpoints: one ``.npz`` file holding everything needed to resume training exactly.

Layout (all plain arrays; text is stored as a NumPy unicode string, never pickled):

    format_version        int, ``FORMAT_VERSION`` (3; versions 1 and 2 are read too)
    config                JSON: ``model.config``, the model part by part: the
                          architecture, likelihood, posterior, prior and objective, each
                          {"name": ..., its settings}, and the dtype (version 2 named the
                          settings as 0.2's keywords, version 1 stored 0.2's flat keywords)
    param/<name>          each parameter array (``model.params``)
    optimizer             JSON: the optimiser's class ("Adam" is the textbook
                          ``numvae.training.optim.Adam``, "FastAdam" the fast path that ``numvae
                          train`` uses, "SGD") and its settings
    optimizer/<key>       its state arrays (Adam's m and v, SGD's velocity) and step count
    history               JSON: the per-epoch history of ``numvae.training.loop.fit``
    model_rng             JSON: the state of ``model.rng`` (which draws eps)
    train_state           JSON: where training stands (epoch, step, the training RNG state)
    train_permutation     the current epoch's example order, for a resume mid-epoch

Files are written atomically (``numvae.io.files.atomic_write``) and read with
``allow_pickle=False``, so a checkpoint can never run code when it is opened.
"""
import io
import json

import numpy as np

from numvae.io.files import as_path, atomic_write_bytes
from numvae.io.npz import Member, NpzReader
from numvae.model.parts import PART_KINDS, config_from_flat
from numvae.model.two_layer import TwoLayerVAE
from numvae.model.vae import VAE
from numvae.training.checkpoint_fields import (
    check_generator_state,
    check_history,
    check_train_state,
)
from numvae.training.optim import SGD, Adam
from numvae.training.optim_fast import FastAdam
from numvae.validation import parse_json

FORMAT_VERSION = 3
MAX_CHECKPOINT_BYTES = 2**30  # 1 GiB: a hundred times the largest model here, with Adam's moments
READABLE_VERSIONS = (1, 2, 3)
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
        "config": _text(stored_config(model)),
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


def stored_config(model):
    """What the file's "config" holds: ``model.config``. A two-layer model
    (``numvae.model.two_layer``) has its own ``config`` (with ``"model": "two_layer"``), to
    which the dtype is added."""
    if isinstance(model, TwoLayerVAE):
        return {**model.config, "dtype": model.dtype.name}
    return model.config


def model_config(config, version):
    """``VAE.config`` from a file's configuration: version 1 stored 0.2's flat keywords
    (``numvae.model.parts.config_from_flat``); versions 2 and 3 the model part by part
    (version 2's settings under their 0.2 names, which the parts read too). Raises
    ValueError/TypeError/KeyError for a configuration of the wrong shape."""
    if not isinstance(config, dict):
        raise TypeError(f"the configuration is a {type(config).__name__}, expected a JSON object")
    return config_from_flat(config) if version == 1 else config


def _optimizer_config(optimizer):
    kind = type(optimizer).__name__
    if OPTIMIZERS.get(kind) is not type(optimizer):
        raise TypeError(f"optimizer must be one of numvae.{', numvae.'.join(OPTIMIZERS)}; "
                        f"got {kind}")
    return dict(type=kind, **optimizer.settings())


def _json(npz, key, check=None):
    """The JSON text stored in ``key``, parsed (and checked by ``check``, which raises a
    ValueError naming the field)."""
    text = str(npz.read(key, Member("U", ())))
    try:
        value = parse_json(text)
    except ValueError as err:
        raise npz.error(f"{npz.path}: entry '{key}' is not valid JSON ({err})") from None
    if check is not None:
        try:
            check(value)
        except ValueError as err:
            raise npz.error(f"{npz.path}: {err}") from None
    return value


class Checkpoint:
    """What ``load_checkpoint`` returns: ``model``, ``optimizer`` (or None), ``history``
    (dict), ``train_state`` (dict) and ``train_permutation`` (array or None)."""

    def __init__(self, model, optimizer, history, train_state, train_permutation):
        self.model, self.optimizer = model, optimizer
        self.history, self.train_state = history, train_state
        self.train_permutation = train_permutation


def load_checkpoint(path, *, expect_config=None, max_memory=None):
    """Read a checkpoint and rebuild the model and optimiser it holds.

    The file is read with ``numvae.io.npz.NpzReader``: only the arrays the configuration
    implies, each checked (dtype, shape, size) before its data is read, the whole within
    ``MAX_CHECKPOINT_BYTES``; every field is validated. Any fault is a CheckpointError
    naming the file and the field. ``expect_config`` (the shape of ``model.config``): when
    given, the network's settings and the parts' names must match the file's.
    ``max_memory``: the model's memory limit (``numvae.VAE``'s argument): a configuration
    above it is refused before any array is allocated.
    """
    path = as_path(path, "path")
    with NpzReader(path, max_total_bytes=MAX_CHECKPOINT_BYTES,
                   error=lambda message: CheckpointError(f"checkpoint {message}")) as npz:
        if "format_version" not in npz.names:
            raise CheckpointError(f"{path} is not a numvae checkpoint (no format_version)")
        version = _version(npz.read("format_version", Member("iu", ())), path)
        model = _build_model(_json(npz, "config"), version, expect_config, path, max_memory)
        settings = _json(npz, "optimizer") if "optimizer" in npz.names else None
        optimizer = None if settings is None else _new_optimizer(settings, model, path, version)
        npz.check_names(_expected_members(model, optimizer))
        _read_parameters(npz, model)
        model.rng.bit_generator.state = _json(
            npz, "model_rng", lambda s: check_generator_state(s, "model_rng"))
        if optimizer is not None:
            _read_optimizer_state(npz, optimizer)
        permutation = (npz.read("train_permutation", Member("iu", None))
                       if "train_permutation" in npz.names else None)
        if permutation is not None and permutation.ndim != 1:
            raise CheckpointError(f"checkpoint {path}: train_permutation has shape "
                                  f"{permutation.shape}; expected one dimension")
        return Checkpoint(model, optimizer, _json(npz, "history", check_history),
                          _json(npz, "train_state", check_train_state), permutation)


def _build_model(config, version, expect_config, path, max_memory):
    try:
        if isinstance(config, dict) and config.get("model") == "two_layer":
            return TwoLayerVAE.from_config(config, max_memory)
        config = model_config(config, version)
        if expect_config is not None:
            _compare_configs(config, expect_config, path)
        return VAE.from_config(config, max_memory=max_memory)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path} has an invalid model configuration "
                              f"({type(err).__name__}: {err})") from None


def _expected_members(model, optimizer):
    """Every array the file must (or may) hold, with its dtype kinds and exact shape."""
    expected = {"format_version": Member("iu", ()), "config": Member("U", ()),
                "model_rng": Member("U", ()), "history": Member("U", ()),
                "train_state": Member("U", ()),
                "train_permutation": Member("iu", None, required=False)}
    expected.update({f"param/{name}": Member("f", p.shape) for name, p in model.params.items()})
    if optimizer is not None:
        expected["optimizer"] = Member("U", ())
        expected.update({f"optimizer/{key}": Member("fiu", np.shape(value))
                         for key, value in optimizer.state_dict().items()})
    return expected


def _read_parameters(npz, model):
    for name, param in model.params.items():
        stored = npz.read(f"param/{name}", Member("f", param.shape))
        with np.errstate(over="ignore", invalid="ignore"):
            param[...] = stored  # cast to the model's dtype first: 1e300 is finite in float64 only
        if not np.isfinite(param).all():
            raise CheckpointError(f"checkpoint {npz.path}: parameter {name} is not finite in "
                                  f"{model.dtype.name} (a diverged or damaged model)")


def _version(stored, path):
    """The file's format version, a readable one, or a CheckpointError."""
    if stored.shape != () or stored.dtype.kind not in "iu" or int(stored) not in READABLE_VERSIONS:
        raise CheckpointError(f"checkpoint {path} has format version {stored.tolist()!r}; this numvae "
                              f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    return int(stored)


def _compare_configs(stored, expected, path):
    """The file's network settings and part names against ``expected`` (a ``VAE.config``)."""
    pairs = [(key, stored["architecture"].get(key), value)
             for key, value in expected["architecture"].items()]
    pairs += [(kind, stored[kind]["name"], expected[kind]["name"]) for kind in PART_KINDS]
    differ = [f"{key}: file has {found!r}, expected {value!r}"
              for key, found, value in pairs if _normalise(found) != _normalise(value)]
    if differ:
        raise CheckpointError(f"checkpoint {path} is for another architecture: " + "; ".join(differ))


def _normalise(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def _new_optimizer(settings, model, path, version):
    """The optimiser the settings describe, on the model's parameters (its state comes next)."""
    if not isinstance(settings, dict):
        raise CheckpointError(f"checkpoint {path}: entry 'optimizer' is not a JSON object")
    settings = dict(settings)
    kind = settings.pop("type", None)
    if version == 1 and kind == "Adam":
        kind = "FastAdam"  # version 1's Adam was the one-sweep path with the denormal flush
    if not isinstance(kind, str) or kind not in OPTIMIZERS:
        raise CheckpointError(f"checkpoint {path} has an unknown optimizer {kind!r}; "
                              f"expected one of {', '.join(OPTIMIZERS)}")
    try:
        return OPTIMIZERS[kind](model.params, **settings)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: invalid optimizer settings ({err})") from None


def _read_optimizer_state(npz, optimizer):
    state = {key: npz.read(f"optimizer/{key}", Member("fiu", np.shape(value)))
             for key, value in optimizer.state_dict().items()}
    try:
        optimizer.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint {npz.path}: invalid optimizer state ({err})") from None
