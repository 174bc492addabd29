"""Test helpers: tiny float64 models and data, and the kink guard for ReLU."""
import threading
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import numvae
from numvae.model import parts
from numvae.nn.layers import Dense, ReLU

# CI clones the repository next to a copy of shared/ (which holds ../shared/mnist).
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "mnist"


def relu_margin(model, cache):
    """Smallest |pre-activation| feeding a ReLU in the forward pass whose cache is ``cache``.

    Central differences with step h are only valid when no ReLU input lies within h of
    its kink at 0; tests skip draws that come closer than a safe margin.
    """
    margins = [np.inf]
    pairs = [(model.encoder.compressor, cache["caches"]["encoder"]["compressor"]),
             (model.decoder.to_logits, cache["caches"]["decoder"])]
    for sequence, sequence_cache in pairs:
        for index, (layer, following) in enumerate(zip(sequence.layers[:-1], sequence.layers[1:])):
            if isinstance(layer, Dense) and isinstance(following, ReLU):
                margins.append(np.min(np.abs(sequence_cache["outputs"][index])))
    return min(margins)


def tiny_model(input_dim=10, seed=0, **kwargs):
    """A small float64 VAE with every layer kind: 10 -> 7 -> 6 -> (3, 3); 3 -> 5 -> 6 -> 10.

    Part settings may be given in the command line's flat spelling (``kl_weight=0.5``):
    they become part objects as the command line's do (``numvae.model.parts.build_parts``)."""
    options = dict(encoder_hidden=(7,), decoder_hidden=(5, 6), dtype=np.float64, seed=seed)
    return vae(input_dim, 6, 3, **{**options, **kwargs})


def vae(*args, **kwargs):
    """``numvae.VAE`` with part settings in the command line's flat spelling too
    (``sigma=0.5``), made part objects as the command line makes them (``build_parts``)."""
    flat = {key: kwargs.pop(key) for key in list(kwargs) if key in parts.FLAT_SETTINGS}
    specs = {kind: kwargs.pop(kind) for kind in parts.PART_KINDS if kind in kwargs}
    return numvae.VAE(*args, **kwargs, **parts.build_parts(specs, flat))


def run_cli(argv, capsys):
    """``numvae`` in-process: (exit code, stdout, stderr)."""
    from numvae.commands.cli import main
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def call_on_a_named_pipe(function, pipe, what):
    """``function()`` in a thread, for a reader handed the named pipe ``pipe``: its result,
    or a test failure naming ``what`` if it is still waiting for a writer after 10 s (the
    pipe is then opened for writing, so that the thread, and the test run, can end)."""
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(function()), daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():
        with open(pipe, "wb"):
            pass
        pytest.fail(f"{what} waited on a named pipe")
    return outcome[0]


def param_vector(model):
    """Every parameter of ``model`` in one new vector, in the order of ``model.params``."""
    return np.concatenate([value.ravel() for value in model.params.values()])


def set_grads(model, vector):
    """Write ``vector`` (n_params,) into ``model.grads``, array by array in their order."""
    offset = 0
    for grad in model.grads.values():
        grad[...] = vector[offset: offset + grad.size].reshape(grad.shape)
        offset += grad.size


# --- figures (test_latent.py, test_history.py) -------------------------------------------

def fake_history(epochs=3, validation=True, params=("encoder.mean.W", "encoder.mean.b")):
    values = np.linspace(100, 80, epochs)
    val = (lambda xs: [float(x) + 1 for x in xs]) if validation else (lambda xs: [None] * len(xs))
    steps = list(range(0, 10 * epochs, 10))
    return dict(epoch=list(range(1, epochs + 1)), train_loss=list(values + 5),
                train_reconstruction=list(values), train_kl=[5.0] * epochs,
                val_loss=val(values + 5), val_reconstruction=val(values),
                val_kl=val([5.0] * epochs),
                seconds=[1.0] * epochs, kl_weight=[1.0] * epochs, grad_norm_step=steps,
                grad_norm={name: list(np.geomspace(1, 0.1 * (k + 1), len(steps)))
                           for k, name in enumerate(params)})


def assert_png(path):
    """The file exists, is a PNG, and is not one flat colour."""
    assert path.exists()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.std() > 0


def tick_texts(ticks):
    return [tick.get_text() for tick in ticks]
