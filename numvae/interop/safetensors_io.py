"""The bridge to PyTorch: a numvae model as a safetensors file, with PyTorch's names and layouts.

numvae names its parameters after the slides' modules, and PyTorch does too; only the last
part of a name and the layout of a weight differ:

    numvae                                   PyTorch (nn.Linear)
    encoder.compressor.0.W   (in, out)       encoder.compressor.0.weight   (out, in)
    encoder.compressor.0.b   (out,)          encoder.compressor.0.bias     (out,)

because numvae's Dense computes y = x W + b and nn.Linear computes y = x W^T + b. So a
``.W`` is written transposed as ``.weight`` and a ``.b`` as ``.bias``; everything else is
the same array. A module built as the slides build it (``encoder`` with ``compressor``, an
nn.Sequential of Linear and ReLU, and the heads ``mean`` and ``log_var``; ``decoder`` with
``decompressor``, an nn.Sequential ending in nn.Sigmoid) loads the file with
``load_state_dict(safetensors.torch.load_file(path), strict=True)``.

safetensors (https://huggingface.co/docs/safetensors) is a JSON header followed by raw
little-endian arrays: reading it runs no code, unlike a pickled ``torch.save`` file. numvae
uses the package's NumPy API only; it never imports torch. The model's configuration goes
into the header's metadata (``numvae.config``), so a file written by numvae needs nothing
else; for a file written by PyTorch it is given or inferred from the shapes.
"""
import inspect
import json
import re
import sys

import numpy as np

from numvae import __version__
from numvae.io.files import NotRegularFileError, as_path, atomic_write_bytes, open_regular
from numvae.model.parts import FLAT_SETTINGS, REGISTRIES, config_from_flat, flat_config
from numvae.model.two_layer import TwoLayerVAE
from numvae.model.vae import VAE
from numvae.validation import few, parse_json

__all__ = ["save_safetensors", "load_safetensors", "to_state_dict", "infer_config",
           "torch_name", "InteropError"]

# numvae's last name part -> (PyTorch's, whether the array is transposed on the way). A new
# kind of parameter (a flow's, a mixture prior's, a convolution's) gets its rule here, with
# the name and layout of the PyTorch module that holds it (numvae.interop.torch_modules).
# A Dense ``W`` (in, out) is transposed; a convolution's ``W`` is already in PyTorch's layout
# (out, in, k, k) for Conv2d, (in, out, k, k) for ConvTranspose2d): only 2-D ``W`` turn over.
# The mixture prior's arrays keep their names and layouts (numvae.interop.torch_modules'
# GaussianMixturePrior holds them as nn.Parameters of those names).
RULES = {"W": ("weight", True), "b": ("bias", False), "logits": ("logits", False),
         "means": ("means", False), "log_var": ("log_var", False)}
CONFIG_KEY = "numvae.config"
DTYPES = {"F32": np.float32, "F64": np.float64}


class InteropError(ValueError):
    """A safetensors file that does not hold a numvae model: the message names the tensor."""


def _safetensors():
    """The safetensors package, or an ImportError that says how to get it."""
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ImportError('numvae.interop needs the safetensors package: '
                          'pip install "numvae[interop]"') from None
    return safetensors


def torch_name(name):
    """numvae's parameter name -> PyTorch's: ``encoder.mean.W`` -> ``encoder.mean.weight``."""
    prefix, _, last = name.rpartition(".")
    if last not in RULES:
        raise InteropError(f"parameter {name}: no PyTorch name is known for '.{last}' "
                           f"(known: {', '.join('.' + key for key in RULES)})")
    return f"{prefix}.{RULES[last][0]}"


def to_state_dict(model):
    """The model's parameters as PyTorch would hold them: {torch name: array}.

    A Dense weight W of shape (in, out) becomes ``weight`` of shape (out, in), a C-ordered
    copy; a bias b (out,) becomes ``bias`` (out,), a copy. The arrays keep ``model.dtype``.
    """
    return {torch_name(name): np.ascontiguousarray(_to_torch_layout(name, value))
            for name, value in model.params.items()}


def _to_torch_layout(name, value):
    """numvae's array ``value`` of parameter ``name`` in PyTorch's layout (a view)."""
    transpose = RULES[name.rpartition(".")[2]][1] and value.ndim == 2   # Dense, not conv
    return value.T if transpose else value


def save_safetensors(model, path):
    """Write ``model`` to ``path`` (a .safetensors file), atomically.

    Tensors: ``to_state_dict(model)``. Metadata: ``numvae.config`` (JSON of ``model.config``
    in 0.2's flat shape, ``numvae.model.parts.flat_config``, and ``dtype``), ``numvae.version``, and ``format: pt`` (the tag PyTorch tools expect).
    Returns the path.
    """
    path = as_path(path, "path")
    safetensors = _safetensors()
    # 0.2's flat shape (a two-layer model's config is flat already)
    flat = model.config if isinstance(model, TwoLayerVAE) else flat_config(model.config)
    config = {**flat, "dtype": model.dtype.name}
    metadata = {"format": "pt", CONFIG_KEY: json.dumps(config), "numvae.version": __version__}
    atomic_write_bytes(path, safetensors.numpy.save(to_state_dict(model), metadata=metadata))
    return path


def _read(path):
    """(metadata dict, {name: (dtype code, shape)}, the open file) of a safetensors file."""
    safetensors = _safetensors()
    try:
        open_regular(path).close()  # a named pipe would make safe_open wait for a writer
        handle = safetensors.safe_open(str(path), framework="np")
    except FileNotFoundError:
        raise InteropError(f"{path} does not exist") from None
    except NotRegularFileError as err:
        raise InteropError(str(err)) from None
    except (safetensors.SafetensorError, OSError) as err:
        raise InteropError(f"{path} is not a readable safetensors file ({err})") from None
    specs = {}
    for name in handle.keys():
        tensor = handle.get_slice(name)
        specs[name] = (tensor.get_dtype(), tuple(tensor.get_shape()))
    return handle.metadata() or {}, specs, handle


def _linear_widths(specs, prefix, path):
    """The (out, in) shapes of the Linear layers ``prefix.0``, ``prefix.2``, ... in order.

    nn.Sequential numbers its modules and the ReLUs between the Linear layers take the odd
    indices, so the weights must sit at 0, 2, 4, ...
    """
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.weight$")
    found = sorted((int(m.group(1)), name) for name in specs for m in [pattern.match(name)] if m)
    indices = [index for index, _ in found]
    if not found or indices != list(range(0, 2 * len(found), 2)):
        raise InteropError(f"{path}: cannot infer the architecture: expected Linear weights "
                           f"{prefix}.0.weight, {prefix}.2.weight, ... (Linear and ReLU "
                           f"alternating); found indices {f'[{few(indices)}]' if indices else 'none'}")
    shapes = [specs[name][1] for _, name in found]
    for (_, name), shape in zip(found, shapes):
        if len(shape) != 2:
            raise InteropError(f"{path}: tensor {name} has shape {shape}; expected (out, in)")
    for (_, name), before, shape in zip(found[1:], shapes, shapes[1:]):
        if shape[1] != before[0]:
            raise InteropError(f"{path}: tensor {name} has shape {shape}; its input width "
                               f"should be {before[0]}, the output of the layer before")
    return shapes


def infer_config(specs, path="the file"):
    """The architecture (``SHAPE_KEYS``) that the tensor shapes determine.

    specs: {torch name: (dtype code, shape)}. Encoder: compressor widths input_dim ->
    *encoder_hidden -> shared_dim, heads (latent_dim, shared_dim). Decoder: latent_dim ->
    *decoder_hidden -> input_dim. Raises InteropError naming the tensor that does not fit.
    """
    compressor = _linear_widths(specs, "encoder.compressor", path)
    decompressor = _linear_widths(specs, "decoder.decompressor", path)
    if "encoder.mean.weight" not in specs:
        raise InteropError(f"{path}: cannot infer the architecture: no tensor encoder.mean.weight")
    mean_shape = specs["encoder.mean.weight"][1]
    if len(mean_shape) != 2 or mean_shape[1] != compressor[-1][0]:
        raise InteropError(f"{path}: tensor encoder.mean.weight has shape {mean_shape}; "
                           f"expected (latent_dim, {compressor[-1][0]}) (shared_dim from "
                           f"the compressor)")
    if decompressor[0][1] != mean_shape[0]:
        raise InteropError(f"{path}: tensor decoder.decompressor.0.weight has shape "
                           f"{decompressor[0]}; expected input width {mean_shape[0]} "
                           f"(latent_dim, from encoder.mean.weight)")
    inferred = dict(input_dim=compressor[0][1], shared_dim=compressor[-1][0],
                    latent_dim=mean_shape[0],
                    encoder_hidden=tuple(shape[0] for shape in compressor[:-1]),
                    decoder_hidden=tuple(shape[0] for shape in decompressor[:-1]))
    if "prior.logits" in specs:  # a mixture prior: K from its logits (K,)
        inferred.update(prior="mixture", prior_components=specs["prior.logits"][1][0])
    return {**inferred, **_infer_flow(specs, path)}


def _infer_flow(specs, path):
    """posterior="iaf" with its flow_steps and flow_hidden, read off the tensors
    ``posterior.steps.<t>.made.<2k>.weight`` (the MADE's widths, the last giving [m, s]),
    or {} for a model without a flow."""
    pattern = re.compile(r"posterior\.steps\.(\d+)\.")
    steps = sorted({int(m.group(1)) for name in specs for m in [pattern.match(name)] if m})
    if not steps:
        return {}
    if steps != list(range(len(steps))):
        raise InteropError(f"{path}: cannot infer the flow: expected steps posterior.steps.0, "
                           f"posterior.steps.1, ...; found [{few(steps)}]")
    widths = [_linear_widths(specs, f"posterior.steps.{t}.made", path) for t in steps]
    if any(shapes != widths[0] for shapes in widths):
        raise InteropError(f"{path}: cannot infer the flow: its steps' MADE shapes differ "
                           f"({[[w[0] for w in shapes] for shapes in widths]})")
    return dict(posterior="iaf", flow_steps=len(steps),
                flow_hidden=tuple(shape[0] for shape in widths[0][:-1]))


# 0.2's VAE keywords, in 0.2's order: what the metadata's flat configuration may hold
FLAT_KEYWORDS = ("encoder_hidden", "decoder_hidden", "likelihood", "sigma", "kl_weight",
                 "n_samples", "activation", "posterior", "prior", "objective",
                 "prior_components", "flow_steps", "flow_hidden", "architecture", "n_classes")


def _default(keyword):
    """The default of one of 0.2's keywords: VAE's own, or that of the part setting it names."""
    if keyword in FLAT_SETTINGS:
        kind = FLAT_SETTINGS[keyword][0]
        cls = next(cls for cls in REGISTRIES[kind].values() if keyword in cls.flat_names)
        return inspect.signature(cls).parameters[cls.flat_names[keyword]].default
    return inspect.signature(VAE).parameters[keyword].default


def _assumed_defaults(config):
    """{name: default} of 0.2's VAE keywords that ``config`` leaves unset (not the dtype and
    seed): what the shapes cannot tell, such as the likelihood or sigma."""
    return {name: _default(name) for name in FLAT_KEYWORDS if name not in config}


def _file_config(metadata, path):
    """The configuration stored by ``save_safetensors``, or None for a file without one."""
    if CONFIG_KEY not in metadata:
        return None
    try:
        config = parse_json(metadata[CONFIG_KEY])
    except ValueError as err:
        raise InteropError(f"{path}: metadata {CONFIG_KEY} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise InteropError(f"{path}: metadata {CONFIG_KEY} is not a JSON object")
    return config


def _resolve_config(file_config, config, specs, path, announce):
    """The VAE keyword arguments to build: the file's configuration (numvae files), else
    the shapes' (``infer_config``); ``config`` overrides either, key by key."""
    config = dict(config or {})
    if isinstance(config.get("architecture"), dict):  # a model.config: 0.2's flat shape here
        config = {**flat_config(config), "dtype": config["dtype"]}
    if file_config is not None:
        merged = {**file_config, **config}
    else:
        try:
            inferred = infer_config(specs, path)
        except InteropError:
            if not all(key in config for key in ("input_dim", "shared_dim", "latent_dim")):
                raise
            inferred = {}  # the given configuration decides; the tensors are checked against it
        merged = {**inferred, **config}
        assumed = _assumed_defaults(merged)
        if assumed:
            settings = ", ".join(f"{key}={value!r}" for key, value in assumed.items())
            announce(f"{path} holds no numvae configuration; the shapes cannot tell, so "
                     f"assumed {settings}")
    for key in ("encoder_hidden", "decoder_hidden", "flow_hidden"):
        if isinstance(merged.get(key), list):
            merged[key] = tuple(merged[key])  # JSON has no tuples
    return merged


def _file_dtype(specs, path):
    """The one float dtype (float32 or float64) of all tensors in the file."""
    codes = {code for code, _ in specs.values()}
    for name, (code, _) in sorted(specs.items()):
        if code not in DTYPES:
            raise InteropError(f"{path}: tensor {name} has dtype {code}; expected F32 "
                               f"(float32) or F64 (float64)")
    if len(codes) > 1:
        first = sorted(specs)[0]
        other = next(name for name in sorted(specs) if specs[name][0] != specs[first][0])
        raise InteropError(f"{path}: tensor {other} has dtype {specs[other][0]} but "
                           f"{first} has {specs[first][0]}; expected one dtype for all")
    return np.dtype(DTYPES[codes.pop()]) if codes else np.dtype(np.float32)


def _build(config, dtype, path, max_memory):
    try:
        if config.get("model") == "two_layer":  # its own class (numvae.model.two_layer)
            return TwoLayerVAE.from_config({**config, "dtype": dtype}, max_memory)
        return VAE.from_config(config_from_flat({**config, "dtype": np.dtype(dtype).name}),
                               max_memory=max_memory)
    except (TypeError, ValueError) as err:
        shown = repr(config) if len(repr(config)) <= 400 else repr(config)[:400] + " ..."
        raise InteropError(f"{path}: cannot build numvae.VAE from the configuration "
                           f"{shown}: {err}") from None


def _check_tensors(model, specs, path):
    """Every tensor the model needs is there, with PyTorch's shape and the model's dtype,
    and no other: else an InteropError naming the tensor and what was expected."""
    expected = {torch_name(name): (_to_torch_layout(name, value).shape, name)
                for name, value in model.params.items()}
    for name, (shape, _) in expected.items():
        if name not in specs:
            raise InteropError(f"{path}: tensor {name} is missing; expected shape {shape} "
                               f"for {model!r}")
        if specs[name][1] != shape:
            raise InteropError(f"{path}: tensor {name} has shape {specs[name][1]}; expected "
                               f"{shape} for {model!r}")
        code = specs[name][0]
        if code not in DTYPES or DTYPES[code] != model.dtype:
            wanted = next(key for key, value in DTYPES.items() if value == model.dtype)
            raise InteropError(f"{path}: tensor {name} has dtype {code}; expected {wanted} "
                               f"({model.dtype}, the configuration's dtype)")
    extra = sorted(set(specs) - set(expected))
    if extra:
        raise InteropError(f"{path}: unexpected tensor{'s' * (len(extra) > 1)} "
                           f"{few(extra)}; the model has exactly the {len(expected)} tensors "
                           f"{few(expected)}")


def load_safetensors(path, config=None, announce=None, max_memory=None):
    """Read a safetensors file (written by ``save_safetensors`` or by PyTorch) as a VAE.

    path: a .safetensors file; nothing in it is executed.
    config: optional dict of 0.2's ``numvae.VAE`` keyword arguments (``dtype`` included),
        e.g. ``dict(input_dim=784, shared_dim=128, latent_dim=2)``, or a ``model.config``
        (``numvae.model.parts.flat_config`` flattens it); it overrides, key by key,
        the configuration stored by numvae or inferred from the shapes.
    announce: called with one line (default: printed to stderr) naming what was assumed,
        for a file without a numvae configuration.
    max_memory: the model's memory limit (``numvae.VAE``'s argument): a configuration above
        it is refused before any array is allocated.
    Returns a VAE whose ``params[name]`` equal the file's tensors (weights transposed back
    to (in, out)), bit for bit. Raises InteropError naming the tensor for missing, extra or
    misshapen tensors, a wrong dtype, non-finite values or a configuration that does not
    fit.
    """
    path = as_path(path, "path")
    announce = announce or (lambda line: print(line, file=sys.stderr))
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict of numvae.VAE keyword arguments; got "
                        f"{type(config).__name__}")
    metadata, specs, handle = _read(path)
    with handle:
        merged = _resolve_config(_file_config(metadata, path), config, specs, path, announce)
        dtype = merged.pop("dtype", None) or _file_dtype(specs, path)
        model = _build(merged, dtype, path, max_memory)
        _check_tensors(model, specs, path)
        for name, param in model.params.items():
            tensor = handle.get_tensor(torch_name(name))
            if not np.isfinite(tensor).all():
                raise InteropError(f"{path}: tensor {torch_name(name)} holds NaN or infinite "
                                   f"values (a diverged or damaged model)")
            _to_torch_layout(name, param)[...] = tensor
    return model
