"""What the explorer page embeds: the model's weights, test images, their encoder means,
one training batch with its eps, and the rows of ``numvae inspect``'s trace of that step.

Arrays travel as ``{"shape": [...], "dtype": "float32" | "float64" | "uint8", "data":
base64}``, little-endian, row-major (``pack``; ``unpack`` is its inverse, used by the tests
to show that the page's weights are the checkpoint's, bit for bit). The float32 weights
are stored as they are; the page computes in float64 (JavaScript's numbers), which is what
the float64 copy of the model (``model.copy(np.float64)``) computes too, so the page's step
can be compared with ``trace_step`` on that copy.
"""
import base64

import numpy as np

from numvae.diagnostics.inspect import trace_step
from numvae.model.kl import GaussianKL, MonteCarloKL, kl_part_of
from numvae.model.parts import flat_config
from numvae.model.vae import VAE
from numvae.nn.layers import Dense, ReLU, Tanh

PANELS = ("plane", "encode", "step")
PANEL_TITLES = {"plane": "the latent plane's live decoding", "encode": "Encode",
                "step": "One training step"}
_KINDS = {Dense: "dense", ReLU: "relu", Tanh: "tanh"}
STEP_BATCH = 8      # the step panel's batch (the speed target is a step of 8)
N_PICK = 100        # test images the Encode panel can pick


def pack(array, dtype):
    """An array as ``{"shape", "dtype", "data"}``, its bytes base64 little-endian."""
    array = np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("<"))
    return {"shape": list(array.shape), "dtype": np.dtype(dtype).name,
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def unpack(packed):
    """The array ``pack`` stored: the inverse of ``pack``."""
    dtype = np.dtype(packed["dtype"]).newbyteorder("<")
    flat = np.frombuffer(base64.b64decode(packed["data"]), dtype=dtype)
    return flat.reshape(packed["shape"]).astype(dtype.newbyteorder("="))


def layer_list(sequence):
    """The layers of a Sequential as [{"kind": "dense", "W": packed, "b": packed} or
    {"kind": "relu" | "tanh"}]; a layer of another class raises TypeError."""
    layers = []
    for layer in sequence.layers:
        kind = next((name for cls, name in _KINDS.items() if type(layer) is cls), None)
        if kind is None:
            raise TypeError(f"a {type(layer).__name__} layer has no JavaScript version")
        entry = {"kind": kind}
        if kind == "dense":
            entry.update(W=pack(layer.params["W"], np.float32),
                         b=pack(layer.params["b"], np.float32))
        layers.append(entry)
    return layers


def missing_panels(model):
    """{panel: reason} for each panel the page cannot draw for this model (empty for the
    Dense architecture with a diagonal Gaussian posterior and the ELBO)."""
    missing = {}
    if not isinstance(model, VAE):  # the two-stochastic-layer model, say: the scatter only
        reason = f"the {model.config.get('model', type(model).__name__)} model has no JavaScript version"
        return {panel: reason for panel in PANELS}
    networks_ok = all(type(layer) in _KINDS for layer in
                      [*model.encoder.compressor.layers, *model.decoder.to_logits.layers])
    if not networks_ok:
        reason = f"the {model.network.name} architecture has no JavaScript version"
        missing = {panel: reason for panel in PANELS}
        return missing
    if model.posterior.name != "diagonal_gaussian":
        reason = f"the {model.posterior.name!r} posterior has no JavaScript version"
        missing.update(encode=reason, step=reason)
    elif model.objective.name != "elbo":
        missing["step"] = f"the {model.objective.name!r} objective has no JavaScript version"
    elif type(kl_part_of(model)) not in (GaussianKL, MonteCarloKL):
        missing["step"] = "this KL term has no JavaScript version"
    return missing


def _prior(model):
    """The prior's name and parameters; a model without a prior part has N(0, I) on top."""
    part = getattr(model, "prior", None)
    prior = {"name": part.name if part is not None else "standard_normal"}
    for key, value in getattr(part, "params", {}).items():
        prior[key] = pack(value, np.float32)
    return prior


def _network(model, missing):
    if "plane" in missing and "encode" in missing:
        return {}
    return {"compressor": layer_list(model.encoder.compressor),
            "heads": {name: {"W": pack(head.params["W"], np.float32),
                             "b": pack(head.params["b"], np.float32)}
                      for name, head in model.encoder.heads.items()},
            "decoder": layer_list(model.decoder.to_logits)}


def test_means(model, images, labels):
    """E_q[z|x] of each test image, float32 (n, latent_dim), in batches of 500."""
    means = []
    for start in range(0, len(images), 500):
        heads = model.encode(images[start:start + 500],
                             labels[start:start + 500] if _classes(model) else None)
        means.append(heads[0])
    return np.concatenate(means).astype(np.float32)


def _classes(model):
    return getattr(model, "n_classes", 0) or 0


def step_batch(model, images, labels, seed=0):
    """The step panel's batch: the first ``STEP_BATCH`` test images, their labels and eps
    (1, batch, latent_dim) drawn from ``numpy.random.default_rng(seed)`` in float64."""
    x = np.asarray(images[:STEP_BATCH], np.float32)
    eps = np.random.default_rng(seed).standard_normal((1, len(x), model.latent_dim))
    return x, np.asarray(labels[:len(x)]), eps


def reference_trace(model, x, y, eps):
    """``trace_step`` on the float64 copy of the model for this batch and eps: the numbers
    the page's step must reproduce. Returns the Trace (its model holds the prior's
    gradients too)."""
    model64 = model.copy(np.float64)
    return trace_step(model64, np.asarray(x, np.float64), np.asarray(eps, np.float64),
                      y=y if model.n_classes else None)


def make_bundle(model, images, labels, *, title="", seed=0):
    """Everything the page embeds, as a JSON-ready dict. images (n, input_dim) in [0, 1],
    labels (n,): the test set (its encoder means are the plane's scatter)."""
    missing = missing_panels(model)
    # the page reads 0.2's flat settings (sigma, kl_weight, ...); a two-layer model's are flat
    config = flat_config(model.config) if isinstance(model, VAE) else dict(model.config)
    bundle = {"title": title, "config": config, "input_dim": model.input_dim,
              "latent_dim": model.latent_dim, "n_classes": _classes(model), "missing": missing,
              "network": _network(model, missing), "prior": _prior(model),
              "test": {"labels": pack(labels, np.uint8),
                       "pick": pack(np.rint(np.asarray(images[:N_PICK]) * 255), np.uint8),
                       # computed here for every model: a conv model's scatter is drawn too
                       "means": pack(test_means(model, images, labels), np.float32)}}
    if "step" not in missing:
        x, y, eps = step_batch(model, images, labels, seed)
        trace = reference_trace(model, x, y, eps)
        bundle["step"] = {"x": pack(x, np.float32), "y": pack(y, np.uint8),
                          "eps": pack(eps, np.float64), "kl": type(kl_part_of(model)).__name__,
                          "rows": [{"phase": row.phase, "name": row.name, "formula": row.formula,
                                    "shape": list(row.shape), "stats": row.stats}
                                   for row in trace]}
    return bundle
