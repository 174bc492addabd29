"""Figures for structure in the latent space: a mixture prior's components over the latent
space, samples from each component, and a conditional model's digits in one style.

Like ``numvae.plots``, each function builds a ``matplotlib.figure.Figure``, returns it and
saves a PNG only when given ``path``.
"""
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse

from numvae.diagnostics.matching import clustering_accuracy
from numvae.plots.latent import default_image_shape, encoder_means, label_colours, tile
from numvae.plots.save import save as _save


def mixture_clusters(model, images, labels):
    """The most responsible component at each encoder mean, argmax_k r_k(E_q[z|x]) (eq. GM2),
    and its clustering accuracy against ``labels`` (best one-to-one matching, by the
    Hungarian algorithm). Returns (components (n,), accuracy, {component: label})."""
    means = encoder_means(model, images, labels).astype(np.float64)
    components = model.prior.responsibilities(means).argmax(axis=1)
    accuracy, mapping = clustering_accuracy(components, np.asarray(labels))
    return components, accuracy, mapping


def draw_components(ax, prior):
    """Each mixture component's mean (its index, in a circle) and 1-sigma ellipse on ``ax``;
    for a prior without components (the standard normal), its 1-sigma circle."""
    params = prior.params
    if "means" not in params:
        ax.add_patch(Ellipse((0, 0), 2, 2, fill=False, color="k", lw=1.2))
        return
    for k, (centre, log_var) in enumerate(zip(params["means"], params["log_var"])):
        std = np.exp(0.5 * np.asarray(log_var, np.float64))
        ax.add_patch(Ellipse(centre, 2 * std[0], 2 * std[1], fill=False, color="k", lw=1.2))
        ax.annotate(f"{k}", centre, ha="center", va="center", fontsize=9, weight="bold",
                    bbox=dict(boxstyle="circle,pad=0.15", fc="white", ec="k", lw=0.6))


def latent_space_with_components(model, images, labels, *, max_points=5000, seed=0, ax=None,
                                 path=None):
    """The encoder means of a 2-D latent space coloured by label, with each mixture
    component's mean (its index) and 1-sigma ellipse; for the standard normal prior, its
    1-sigma circle. Returns the figure (of the given ``ax``, if any)."""
    if model.latent_dim != 2:
        raise ValueError(f"this figure needs latent_dim 2; the model has {model.latent_dim}")
    labels = np.asarray(labels)
    keep = np.random.default_rng(seed).permutation(len(images))[:max_points]
    means = encoder_means(model, images[keep], labels[keep]).astype(np.float64)
    fig = Figure(figsize=(7.5, 6.5), layout="constrained") if ax is None else ax.figure
    ax = fig.add_subplot() if ax is None else ax
    colours = label_colours(max(10, int(labels.max()) + 1))
    ax.scatter(means[:, 0], means[:, 1], c=colours[labels[keep]], s=3, alpha=0.5, linewidths=0)
    draw_components(ax, model.prior)
    ax.legend(handles=[Line2D([], [], linestyle="", marker="o", color=colours[c], label=str(c))
                       for c in np.unique(labels)], title="label", fontsize="x-small",
              loc="upper right", ncol=2)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("z[0] (encoder mean)")
    ax.set_ylabel("z[1] (encoder mean)")
    ax.set_title("mixture prior: components' means and 1-sigma ellipses" if "means" in
                 model.prior.params else "standard normal prior: its 1-sigma circle",
                 fontsize="medium")
    return _save(fig, path)


def component_samples(model, *, n=10, rng=None, image_shape=None, path=None):
    """One row per mixture component k: ``n`` decoder outputs for z ~ N(mu_k, diag(sigma_k^2)).
    The components are listed with their weight pi_k."""
    rng = np.random.default_rng(0) if rng is None else rng
    image_shape = image_shape or default_image_shape(model.input_dim)
    n_components = model.prior.components
    rows = [model.decode(model.prior.sample(n, rng, component=k).astype(model.dtype))
            for k in range(n_components)]
    logits = model.prior.params["logits"].astype(np.float64)
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    fig = Figure(figsize=(n * 0.7 + 1.2, n_components * 0.7 + 0.6), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(tile(np.concatenate(rows), n_components, n, image_shape, pad=1), cmap="gray",
              vmin=0, vmax=1)
    step = image_shape[0] + 1
    ax.set_yticks(np.arange(n_components) * step + image_shape[0] / 2,
                  [f"k={k} ({w:.0%})" for k, w in enumerate(weights)], fontsize="small")
    ax.set_xticks([])
    ax.set_title("samples from each component of the prior", fontsize="medium")
    return _save(fig, path)


def conditional_grid(model, *, n_styles=10, rng=None, image_shape=None, path=None):
    """A conditional model's digits in shared styles: row c is the class c = 0 .. C-1, and
    column s decodes the same draw z_s ~ p(z) for every class, so that what z encodes (the
    "style": slant, thickness) is shared along a column while the label sets the digit."""
    rng = np.random.default_rng(0) if rng is None else rng
    image_shape = image_shape or default_image_shape(model.input_dim)
    if not model.n_classes:
        raise ValueError("conditional_grid needs a conditional model (n_classes)")
    z = model.prior.sample(n_styles, rng).astype(model.dtype)               # (n_styles, M)
    rows = [model.decode(z, np.full(n_styles, c)) for c in range(model.n_classes)]
    fig = Figure(figsize=(n_styles * 0.7 + 1.0, model.n_classes * 0.7 + 0.8),
                 layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(tile(np.concatenate(rows), model.n_classes, n_styles, image_shape, pad=1),
              cmap="gray", vmin=0, vmax=1)
    step = image_shape[0] + 1
    ax.set_yticks(np.arange(model.n_classes) * step + image_shape[0] / 2,
                  [f"y={c}" for c in range(model.n_classes)], fontsize="small")
    ax.set_xticks(np.arange(n_styles) * (image_shape[1] + 1) + image_shape[1] / 2,
                  [f"z{s}" for s in range(n_styles)], fontsize="small")
    ax.set_title("one z per column, one label per row", fontsize="medium")
    return _save(fig, path)
