"""Figures for a trained VAE: the latent space, the decoder's manifold, reconstructions,
prior samples, KL per latent dimension; the training curves and gradient norms, which
read the history only, are in ``numvae.plots.history`` and re-exported here.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot, no global
backend), returns it, and saves it as a PNG only when given ``path``: scripts decide
whether to show or save. Images are flat rows (batch, input_dim), shown with
``image_shape`` (default None: (28, 28) for MNIST's 784 values, else see
``default_image_shape``), on a grey scale from 0 (black) to 1 (white).
"""
import math
import numbers
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from numvae.diagnostics import evaluate
from numvae.plots.history import check_history, gradient_flow, training_curves
from numvae.plots.prior import (
    gaussian_grid,  # noqa: F401  (read here too: numvae.plots.latent.gaussian_grid)
    grid_ticks_note,
    prior_centre,
    prior_grid,
    prior_name,
)
from numvae.plots.save import save as _save
from numvae.validation import check_positive_int

KL_THRESHOLD = 0.01  # nats: a latent dimension whose mean KL is below this carries ~nothing
ENCODE_BATCH = 1000      # rows per call to model.encode, to bound memory
FILE_NAMES = ("latent_space", "latent_grid", "reconstructions", "prior_samples",
              "training_curves", "kl_per_dimension", "gradient_flow")


# --- helpers ------------------------------------------------------------------------------

def _check_image_shape(image_shape, input_dim):
    """image_shape: two positive ints whose product is the model's input_dim, or None for
    ``default_image_shape(input_dim)``."""
    if image_shape is None:
        return default_image_shape(input_dim)
    if (isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__len__")
            or len(image_shape) != 2):
        raise TypeError(f"image_shape must be a pair (height, width); got {image_shape!r}")
    height, width = (check_positive_int(size, "image_shape") for size in image_shape)
    if height * width != input_dim:
        raise ValueError(f"image_shape {(height, width)} has {height * width} pixels; the "
                         f"model's input_dim is {input_dim}")
    return height, width


def default_image_shape(input_dim):
    """(28, 28) for MNIST's 784, a square if input_dim is a perfect square, else (1, input_dim)."""
    input_dim = check_positive_int(input_dim, "input_dim")
    side = math.isqrt(input_dim)
    return (side, side) if side * side == input_dim else (1, input_dim)


def _check_images(model, images):
    """images: (n, input_dim) in the model's dtype, with errors that say ``images``."""
    return model.check_data(images, "images")


def encoder_means(model, images, labels=None):
    """E_q[z|x] for every row (the mean head of a diagonal Gaussian; for a flow, an
    average of draws from a fixed generator; for two stochastic layers, the top layer's
    E_q[z2|x], eq. H8), ENCODE_BATCH rows at a time: (n, latent_dim).
    ``labels`` (n,): a conditional model's (an unconditional one ignores them)."""
    labels = model.check_labels(labels, len(images))
    rng = np.random.default_rng(0)
    if hasattr(model, "expected_latents"):  # two stochastic layers: the top one, E_q[z2|x]
        return np.concatenate([model.expected_latents(images[start:start + ENCODE_BATCH], rng)[1]
                               for start in range(0, len(images), ENCODE_BATCH)])
    return np.concatenate([model.expected_z(images[start:start + ENCODE_BATCH],
                                            None if labels is None
                                            else labels[start:start + ENCODE_BATCH], rng)
                           for start in range(0, len(images), ENCODE_BATCH)])


def tile(images, rows, cols, image_shape, pad=0):
    """Lay flat images (k, height * width) row by row on one canvas, k <= rows * cols.

    Returns a masked array (rows * height + (rows - 1) * pad, cols * width + (cols - 1) * pad):
    gaps and empty cells are masked, so imshow draws them in the colormap's "bad" colour.
    """
    height, width = image_shape
    canvas = np.full((rows * height + (rows - 1) * pad, cols * width + (cols - 1) * pad), np.nan)
    for k, image in enumerate(images):
        row, col = divmod(k, cols)
        top, left = row * (height + pad), col * (width + pad)
        canvas[top:top + height, left:left + width] = image.reshape(height, width)
    return np.ma.masked_invalid(canvas)


def _grey():
    """Grey colormap with white for masked (empty) cells."""
    return matplotlib.colormaps["gray"].with_extremes(bad="white")


def label_colours(n_classes):
    """One colour per class, (n_classes, 4): tab10 up to 10 classes, tab20 up to 20, beyond
    that evenly spaced along "turbo" (neighbouring classes then look alike)."""
    if n_classes <= 10:
        return matplotlib.colormaps["tab10"](np.arange(n_classes))
    if n_classes <= 20:
        return matplotlib.colormaps["tab20"](np.arange(n_classes))
    return matplotlib.colormaps["turbo"](np.linspace(0, 1, n_classes))


# --- the latent space ---------------------------------------------------------------------

def latent_space(model, images, labels, *, max_points=5000, seed=0, path=None):
    """Scatter of the encoder means E[z|x] of ``images``, coloured by label.

    images: (n, input_dim); labels: (n,) or None (one colour, no legend). At most
    ``max_points`` images are encoded, a random subset drawn with ``seed``; they are drawn
    in random order so that no class is always painted on top of the others.

    latent_dim == 2: the means themselves. latent_dim == 1: one strip per label (z[0]
    across, small vertical jitter). latent_dim > 2: the means projected onto their first
    two principal components (SVD of the centred means), with the share of variance each
    component carries.
    """
    images = _check_images(model, images)
    max_points = check_positive_int(max_points, "max_points")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"labels has shape {labels.shape}; expected ({len(images)},), "
                             f"one label per row of images")
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(images))[:max_points]  # random subset, in random drawing order
    means = encoder_means(model, images[keep], None if labels is None else labels[keep])
    means = means.astype(np.float64)                                  # (k, latent_dim)

    if labels is None:
        classes, class_index = np.array(["all"]), np.zeros(len(keep), dtype=int)
    else:
        classes, class_index = np.unique(labels[keep], return_inverse=True)
    colours = label_colours(len(classes))                        # (classes, RGBA)

    fig = Figure(figsize=(7.5, 6), layout="constrained")
    ax = fig.add_subplot()
    x, y, title = _latent_coordinates(ax, means, class_index, classes, rng)
    ax.scatter(x, y, c=colours[class_index], s=4, alpha=0.7, linewidths=0)
    if labels is not None:
        # One scatter keeps the random drawing order; the legend needs one proxy per label.
        handles = [Line2D([], [], linestyle="", marker="o", markersize=6, color=colour,
                          label=str(label)) for label, colour in zip(classes, colours)]
        ax.legend(handles=handles, title="label", loc="center left", bbox_to_anchor=(1.02, 0.5),
                  fontsize="small", frameon=False, ncol=math.ceil(len(classes) / 25))
    ax.set_title(title)
    return _save(fig, path)


def _latent_coordinates(ax, means, class_index, classes, rng):
    """The (x, y) to plot for encoder means (k, latent_dim), with the axes labelled; the title.

    One dimension: a strip per label; two: the means; more: their first two principal
    components (SVD of the centred means), with the share of variance of each.
    """
    latent_dim, title = means.shape[1], "Latent space (encoder means)"
    if latent_dim == 1:
        # A strip per label: position along z[0], jitter only to separate the points.
        ax.set_yticks(range(len(classes)), [str(c) for c in classes])
        ax.set_xlabel("z[0] (mean)")
        ax.set_ylabel("label (with vertical jitter)")
        return means[:, 0], class_index + rng.uniform(-0.3, 0.3, size=len(means)), title
    ax.set_aspect("equal", adjustable="datalim")  # keep distances honest
    if latent_dim == 2:
        ax.set_xlabel("z[0] (mean)")
        ax.set_ylabel("z[1] (mean)")
        return means[:, 0], means[:, 1], title
    if len(means) < 2:
        raise ValueError("images must hold at least 2 rows to find principal components "
                         f"of a {latent_dim}-dimensional latent space")
    centred = means - means.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)  # rows of Vt
    total = np.sum(singular ** 2)
    share = singular[:2] ** 2 / total if total > 0 else np.zeros(2)  # constant means: 0 %
    ax.set_xlabel(f"principal component 1 of the encoder means ({share[0]:.0%} of variance)")
    ax.set_ylabel(f"principal component 2 of the encoder means ({share[1]:.0%} of variance)")
    title += (f"\nprojected onto their first two principal components "
              f"(latent_dim = {latent_dim})")
    return centred @ components[0], centred @ components[1], title


def latent_grid(model, *, n=15, dims=(0, 1), image_shape=None, label=None, path=None):
    """The decoder's manifold (the slides' "Sampling the latent space for MNIST"; Kingma &
    Welling 2014, fig. 4): decoder outputs on an n x n grid of latent values.

    The axes take the prior's quantiles (i + 1/2) / n (``numvae.plots.prior.prior_grid``:
    Gaussian quantiles for N(0, I), the marginal's for a mixture prior), so that the grid
    covers the prior actually used evenly in probability. Columns vary z[dims[0]] (left to
    right, increasing), rows vary z[dims[1]] (bottom to top, increasing, as on a plot);
    every other latent dimension is held at the prior's mean.
    latent_dim == 1: one row of n images along z[0] (``dims`` is not used).
    The images are tiled on one canvas and drawn with a single imshow. ``label``: the
    digit a conditional model decodes (one style per point of the grid).
    """
    n = check_positive_int(n, "n")
    height, width = _check_image_shape(image_shape, model.input_dim)
    latent_dim = model.latent_dim

    if latent_dim == 1:
        rows, dims = 1, (0,)
        values = across = prior_grid(model, n, 0)
        z = values[:, None]                                           # (n, 1)
    else:
        if (isinstance(dims, (str, bytes)) or not hasattr(dims, "__len__") or len(dims) != 2
                or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                           for d in dims)):
            raise TypeError(f"dims must be a pair of latent dimension indices; got {dims!r}")
        dims = tuple(int(d) for d in dims)
        if not all(0 <= d < latent_dim for d in dims):
            raise ValueError(f"dims {dims} out of range: the model has latent dimensions "
                             f"0 .. {latent_dim - 1}")
        if dims[0] == dims[1]:
            raise ValueError(f"dims must name two different latent dimensions; got {dims}")
        rows, values, across = n, prior_grid(model, n, dims[0]), prior_grid(model, n, dims[1])
        z = np.tile(prior_centre(model), (n, n, 1))                   # (row, col, latent_dim)
        z[:, :, dims[0]] = values[None, :]          # columns: increasing to the right
        z[:, :, dims[1]] = across[::-1, None]       # rows: the top row has the largest value
        z = z.reshape(n * n, latent_dim)
    decoded = model.decode(z, None if label is None else np.full(len(z), label))
    canvas = tile(decoded, rows, n, (height, width))

    size = min(9.0, 1.0 + 0.5 * n)
    fig = Figure(figsize=(size, size if rows > 1 else 1.8 + size / n), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(canvas, cmap=_grey(), vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(np.arange(n) * width + (width - 1) / 2, [f"{v:.2f}" for v in values],
                  rotation=90, fontsize="small")
    quantiles = grid_ticks_note(model, n)
    ax.set_xlabel(f"z[{dims[0]}]  ({quantiles})")
    if rows > 1:
        ax.set_yticks(np.arange(n) * height + (height - 1) / 2,
                      [f"{v:.2f}" for v in across[::-1]], fontsize="small")
        ax.set_ylabel(f"z[{dims[1]}]  ({quantiles})")
    else:
        ax.set_yticks([])
    title = f"Sampling the latent space of prior {prior_name(model)}"
    title += "" if label is None else f", label {label}"
    if latent_dim > 2:
        title += "\n(other latent dimensions at the prior's mean)"
    ax.set_title(title)
    return _save(fig, path)


# --- images -------------------------------------------------------------------------------

def _image_axes(ax, image, image_shape):
    ax.imshow(image.reshape(image_shape), cmap="gray", vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def reconstructions(model, images, *, n=10, image_shape=None, labels=None, path=None):
    """The first n images (top row) above their reconstructions (bottom row): 2 * n axes.

    The reconstruction is the decoder output at z = the encoder mean, decode(E[z|x]):
    the deterministic summary of what the model keeps of x (no sampling noise).
    """
    images = _check_images(model, images)
    n = check_positive_int(n, "n")
    if n > len(images):
        raise ValueError(f"n = {n} but images holds only {len(images)} rows")
    image_shape = _check_image_shape(image_shape, model.input_dim)
    originals = images[:n]
    y = None if labels is None else np.asarray(labels)[:n]           # a conditional model's
    mean = encoder_means(model, originals, y)                        # E_q[z|x]
    rebuilt = model.decode(mean, y)                                   # (n, input_dim)

    fig = Figure(figsize=(1.0 + 1.0 * n, 2.6), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    for col in range(n):
        _image_axes(axes[0, col], originals[col], image_shape)
        _image_axes(axes[1, col], rebuilt[col], image_shape)
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    fig.suptitle("Reconstructions: decoder output at z = encoder mean")
    return _save(fig, path)


def prior_samples(model, *, n=64, rng=None, image_shape=None, label=None, path=None):
    """Decoder outputs for n draws z ~ p(z) (the model's prior), on a square-ish grid.

    rng: a numpy Generator, an int seed, or None for a fixed seed 0 (the model's own
    ``model.rng`` is left untouched, so plotting does not change later training).
    label: the digit a conditional model draws (default: every class in turn).
    """
    n = check_positive_int(n, "n")
    image_shape = _check_image_shape(image_shape, model.input_dim)
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        rng = np.random.default_rng(0 if rng is None else rng)
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None; got {rng!r}")
    samples = model.sample(n, rng, y=None if label is None else np.full(n, label))
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = tile(samples, rows, cols, image_shape, pad=1)  # white 1-pixel gaps

    fig = Figure(figsize=(min(8.0, 1.0 + 0.8 * cols), min(8.0, 1.2 + 0.8 * rows)),
                 layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(canvas, cmap=_grey(), vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    which = "" if label is None else f" of label {label}"
    ax.set_title(f"Samples{which}: decoder output for {n} draws\nz ~ {prior_name(model)}")
    return _save(fig, path)


# --- latent usage -------------------------------------------------------------------------

def kl_per_dimension(model, images, *, labels=None, path=None):
    """Bar chart of the mean KL of each latent dimension over ``images`` (nats per example).

    The dashed line marks 0.01 nats: a dimension below it is sent to the prior for
    (almost) every x, so it carries (almost) no information.
    (``numvae.diagnostics.evaluate.active_units``
    counts "active units" by Burda et al.'s other criterion, the variance of the encoder mean.)
    With a Monte Carlo KL (a mixture prior) there is no KL per dimension (NaN): the bars
    are then that variance, Var_x(E_q[z_j]), with Burda et al.'s threshold 0.01.
    """
    images = _check_images(model, images)
    kl = evaluate.kl_per_dimension(model, images, labels=labels)      # (latent_dim,)
    what, title, unit = "KL (nats per example)", "KL", " nats"
    # no split by dimension, or no KL at all (an autoencoder): the active units instead
    if np.isnan(kl).all() or not getattr(model.posterior, "has_density", True):
        kl = evaluate.active_units(model, images, labels=labels)[1]
        what, title, unit = "Var_x(E_q[z_j])", "Variance of E_q[z_j]", ""
    used = kl > KL_THRESHOLD
    positions = np.arange(len(kl))

    fig = Figure(figsize=(min(12.0, max(4.5, 1.5 + 0.45 * len(kl))), 4), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.bar(positions, kl, color=np.where(used, "C0", "0.6"))
    ax.axhline(KL_THRESHOLD, color="C3", linestyle="--", linewidth=1,
               label=f"{KL_THRESHOLD}{unit}")
    if len(kl) <= 20:  # the values, so that near-zero bars can still be read
        ax.bar_label(bars, labels=[f"{v:.2g}" for v in kl], fontsize="x-small")
    step = max(1, len(kl) // 20)  # at most about 20 tick labels
    ax.set_xticks(positions[::step], [f"z[{d}]" for d in positions[::step]])
    ax.set_xlabel("latent dimension")
    ax.set_ylabel(what)
    ax.set_title(f"{title} per latent dimension:\n{int(used.sum())} of {len(kl)} above "
                 f"{KL_THRESHOLD}{unit}")
    ax.legend(fontsize="small")
    return _save(fig, path)


# --- everything at once -------------------------------------------------------------------

def save_all(model, history, images, labels, out_dir, *, image_shape=None):
    """Write every figure as a PNG into ``out_dir`` (created if needed); return {name: Path}.

    The training-history figures are skipped when ``history`` is None or empty, and
    gradient_flow also when the history has no gradient norms. With the default
    image_shape and a model whose input_dim is not 784, the images are shown as squares
    when input_dim is a perfect square, else as (1, input_dim) strips.
    """
    if history is not None:
        check_history(history)
    image_shape = _check_image_shape(image_shape, model.input_dim)
    images = _check_images(model, images)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"{name}.png" for name in FILE_NAMES}
    latent_space(model, images, labels, path=paths["latent_space"])
    # a conditional model: the grid of digit 0 (numvae.plots.structure.conditional_grid: all)
    latent_grid(model, image_shape=image_shape, label=0 if model.n_classes else None,
                path=paths["latent_grid"])
    reconstructions(model, images, n=min(10, len(images)), image_shape=image_shape,
                    labels=labels, path=paths["reconstructions"])
    prior_samples(model, image_shape=image_shape, path=paths["prior_samples"])
    kl_per_dimension(model, images, labels=labels, path=paths["kl_per_dimension"])
    if not history or len(history.get("epoch", ())) == 0:
        del paths["training_curves"], paths["gradient_flow"]
    else:
        training_curves(history, path=paths["training_curves"])
        if history.get("grad_norm") and len(history.get("grad_norm_step", ())) > 0:
            gradient_flow(history, path=paths["gradient_flow"])
        else:
            del paths["gradient_flow"]
    return paths
