"""Figures of a training run's history: the loss curves and the gradient norms.

Like ``numvae.plots`` (which re-exports them), each function builds a
``matplotlib.figure.Figure``, returns it, and saves it as a PNG only when given ``path``.
"""
from collections.abc import Mapping

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from numvae.plots.save import save as _save


def check_history(history):
    if not isinstance(history, Mapping):
        raise TypeError(f"history must be a dict of lists; got {type(history).__name__}")


def _series(history, key, length):
    """history[key] as a float array (length,), None entries as NaN; None if absent or all None."""
    values = history.get(key)
    if values is None:
        return None
    if len(values) != length:
        raise ValueError(f"history[{key!r}] has {len(values)} entries; history['epoch'] "
                         f"has {length}")
    values = np.array([np.nan if v is None else float(v) for v in values])
    return None if np.isnan(values).all() else values


def _plot_series(ax, x, y, **style):
    """Plot y against x, skipping NaN entries (epochs without that value)."""
    ok = np.isfinite(y)
    ax.plot(x[ok], y[ok], marker="o", markersize=3, **style)


def training_curves(history, *, path=None):
    """Three panels per epoch: negative ELBO, reconstruction term, KL term; train and validation.

    history: dict of lists as written by the training loop ("epoch", "train_reconstruction",
    "train_kl", "train_loss", "val_*" (entries None without a validation set), "kl_weight").
    The negative ELBO panel plots reconstruction + KL, the negative ELBO (KL weight 1)
    whatever KL weight training used (it falls back to "*_loss" when the two terms are
    missing).
    """
    check_history(history)
    if "epoch" not in history:
        raise ValueError("history has no 'epoch' entry")
    epochs = np.asarray(history["epoch"], dtype=np.float64)
    if epochs.ndim != 1 or len(epochs) == 0:
        raise ValueError("history['epoch'] is empty: there is nothing to plot")
    for key in ("train_reconstruction", "train_kl"):
        if _series(history, key, len(epochs)) is None:
            raise ValueError(f"history has no {key!r} values")
    series = {key: _series(history, key, len(epochs))
              for key in ("train_loss", "train_reconstruction", "train_kl",
                          "val_loss", "val_reconstruction", "val_kl")}

    def negative_elbo(prefix):
        reconstruction, kl = series[f"{prefix}_reconstruction"], series[f"{prefix}_kl"]
        if reconstruction is not None and kl is not None:
            return reconstruction + kl
        return series[f"{prefix}_loss"]

    panels = [("negative ELBO = reconstruction + KL", negative_elbo("train"), negative_elbo("val")),
              ("reconstruction: E_q[-log p(x|z)]", series["train_reconstruction"],
               series["val_reconstruction"]),
              ("KL(q(z|x) || p(z))", series["train_kl"], series["val_kl"])]

    fig = Figure(figsize=(13, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (title, train, val) in zip(axes, panels):
        _plot_series(ax, epochs, train, label="train", color="C0")
        if val is not None:
            _plot_series(ax, epochs, val, label="validation", color="C1")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
        ax.set_ylabel("nats per example")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("Training curves")
    return _save(fig, path)


def gradient_flow(history, *, path=None):
    """L2 norm of each parameter's gradient against the training step, log scale.

    history["grad_norm_step"]: the steps; history["grad_norm"]: dict name -> norms at those
    steps. Weights are solid lines, biases (names ending in ".b") dashed. Norms of exactly 0
    cannot be drawn on a log scale and are left as gaps.
    """
    check_history(history)
    for key in ("grad_norm_step", "grad_norm"):
        if key not in history:
            raise ValueError(f"history has no {key!r} entry: record gradient norms in training")
    steps = np.asarray(history["grad_norm_step"], dtype=np.float64)
    norms = history["grad_norm"]
    if not isinstance(norms, Mapping) or not norms:
        raise ValueError("history['grad_norm'] must be a non-empty dict of parameter name -> "
                         "list of gradient norms")
    if steps.ndim != 1 or len(steps) == 0:
        raise ValueError("history['grad_norm_step'] is empty: there is nothing to plot")
    colours = (matplotlib.colormaps["tab10"] if len(norms) <= 10
               else matplotlib.colormaps["tab20"]).colors

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    for k, (name, values) in enumerate(norms.items()):
        values = np.asarray(values, dtype=np.float64)
        if values.shape != steps.shape:
            raise ValueError(f"history['grad_norm'][{name!r}] has {values.size} entries; "
                             f"history['grad_norm_step'] has {len(steps)}")
        values = np.where(values > 0, values, np.nan)  # log scale: no zeros
        ax.plot(steps, values, color=colours[k % len(colours)], linewidth=1.2,
                linestyle="--" if name.endswith(".b") else "-", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("L2 norm of the gradient")
    ax.set_title("Gradient flow: norm of each parameter's gradient")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return _save(fig, path)
