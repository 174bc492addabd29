"""The slides' VAE written out in plain NumPy with switches, each of which makes one classic
mistake: the wrong answers the grader compares a student's exercises 02, 06 and 08 with.

Switched off, ``forward`` and ``loss_and_grad`` are exercise 06's and 08's answers (the
tests check them against numvae's VAE); each switch is a mistake named in mistakes.HINTS.
Parameters are named as numvae names them ("encoder.compressor.0.W", ...).
"""
import numpy as np


def _dense(a, params, name):
    """a @ W + b (eq. D1) for the layer ``name``."""
    return a @ params[f"{name}.W"] + params[f"{name}.b"]


def _relu(a, skip=False):
    return a if skip else np.maximum(a, 0.0)


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # 1 / (1 + exp(-a)), without overflow


def forward(x, params, eps, mistake=None):
    """The intermediates of the slides' forward pass, as a dict. ``mistake``: None,
    "compressor_relu:inner", "compressor_relu:outer", "decoder_relu:first",
    "decoder_relu:second" (that ReLU left out) or "heads_swapped"."""
    p = params
    h = _relu(_dense(x, p, "encoder.compressor.0"), mistake == "compressor_relu:inner")
    shared = _relu(_dense(h, p, "encoder.compressor.2"), mistake == "compressor_relu:outer")
    mean, log_var = _dense(shared, p, "encoder.mean"), _dense(shared, p, "encoder.log_var")
    if mistake == "heads_swapped":
        mean, log_var = log_var, mean
    std = np.exp(0.5 * log_var)
    z = mean + std * eps                                                      # (R1)
    h1 = _relu(_dense(z, p, "decoder.decompressor.0"), mistake == "decoder_relu:first")
    h2 = _relu(_dense(h1, p, "decoder.decompressor.2"), mistake == "decoder_relu:second")
    logits = _dense(h2, p, "decoder.decompressor.4")
    return dict(x=x, h=h, shared=shared, mean=mean, log_var=log_var, std=std, z=z, h1=h1,
                h2=h2, logits=logits, output=_sigmoid(logits))


def loss_and_grad(x, params, eps, mistake=None):
    """The mean negative ELBO (eq. V1) and its gradients (V2-V6), with one backward
    ``mistake``: None, "kl_grad_sign", "fork_assign", "head_dropped:mean",
    "head_dropped:log_var", "half" (the reparameterisation's 1/2) or "relu_mask" (every
    ReLU's mask taken from dy). The loss is always right: these are backward mistakes."""
    p, f, g, batch = params, forward(x, params, eps), {}, x.shape[0]
    softplus = np.maximum(f["logits"], 0) + np.log1p(np.exp(-np.abs(f["logits"])))
    kl = 0.5 * np.sum(f["mean"] ** 2 + np.exp(f["log_var"]) - 1 - f["log_var"], axis=1)
    loss = float(np.mean(np.sum(softplus - x * f["logits"], axis=1) + kl))

    def back(dy, a, name):  # (D2): fills the layer's gradients, returns da
        g[f"{name}.W"], g[f"{name}.b"] = a.T @ dy, dy.sum(axis=0)
        return dy @ p[f"{name}.W"].T

    def mask(dy, y):  # (D3), y the ReLU's output (positive exactly where its input is)
        return dy * ((dy > 0) if mistake == "relu_mask" else (y > 0))

    dlogits = (f["output"] - x) / batch                                       # (B4), mean
    dh1 = mask(back(mask(back(dlogits, f["h2"], "decoder.decompressor.4"), f["h2"]),
                    f["h1"], "decoder.decompressor.2"), f["h1"])
    dz = back(dh1, f["z"], "decoder.decompressor.0")
    sign = -1.0 if mistake == "kl_grad_sign" else 1.0
    dmean_kl = sign * f["mean"] / batch                                       # (K2)
    dlog_var_kl = sign * 0.5 * (np.exp(f["log_var"]) - 1) / batch
    half = 1.0 if mistake == "half" else 0.5
    dmean_z, dlog_var_z = dz, dz * half * f["std"] * eps                      # (V3)
    if mistake == "fork_assign":  # the KL's share written over the z path's
        dmean, dlog_var = dmean_kl, dlog_var_kl
    else:
        dmean, dlog_var = dmean_z + dmean_kl, dlog_var_z + dlog_var_kl        # (V5)
    through_mean = back(dmean, f["shared"], "encoder.mean")
    through_log_var = back(dlog_var, f["shared"], "encoder.log_var")
    dshared = {"head_dropped:mean": through_log_var,
               "head_dropped:log_var": through_mean}.get(mistake, through_mean + through_log_var)
    dh = mask(back(mask(dshared, f["shared"]), f["h"], "encoder.compressor.2"), f["h"])  # (V6)
    back(dh, x, "encoder.compressor.0")
    return loss, g
