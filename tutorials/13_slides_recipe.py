# %% [markdown]
# # 13. The slides' recipe, trained: squared error plus KL, and what sigma does
#
# The slides train their VAE with `loss_fn`: the squared error `nn_mse_loss(reduction =
# "sum")` plus `kl_weight` times sum(mean^2 + exp(log_var) - log_var). In numvae that is
# the Gaussian decoder with a fixed sigma, `VAE(..., likelihood=Gaussian(sigma=s))`:
#
#     -log p(x | z) = ||x - x_hat||^2 / (2 sigma^2) + N/2 log(2 pi sigma^2)      (G1)
#
# and, per example, the slides' loss with `kl_weight` = w is
#
#     loss_fn = 2 w [negative ELBO with sigma^2 = w] - w N log(2 pi w) + w M,
#
# twice the negative ELBO at sigma^2 = w, scaled by w, plus constants (the (S1) of
# docs/derivations.md is the case w = 1). So the slides' `kl_weight` *is* sigma^2: the
# loss is the squared error plus beta KL with beta = 2 sigma^2, and sweeping sigma is
# sweeping the KL weight. We check the identity on one batch, then train:
#
# * the Bernoulli model (numvae's default, tutorial 9) and four Gaussian ones, sigma =
#   0.1, 0.3, 1 and 3 (slides' kl_weight 0.01, 0.09, 1 and 9), on the same images, with a
#   latent space of 10 dimensions, so that some dimensions can fall silent;
# * and we measure for each: the squared error of the reconstructions (decoding the mean
#   of q(z|x)), the KL per latent dimension (`numvae.diagnostics.evaluate.kl_per_dimension`) and the
#   active units (`numvae.diagnostics.evaluate.active_units`, Burda et al. 2016: the dimensions
# whose
#   posterior mean varies with x, variance above 0.01).
#
# A large sigma makes the reconstruction cheap to get wrong: the reconstructions blur, and
# at sigma = 3 every dimension's posterior equals the prior, whatever x (**posterior
# collapse**): the decoder then outputs one image, a blurred average digit, for every
# input.
#
# Run: `python tutorials/13_slides_recipe.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time

import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae.diagnostics.evaluate import active_units, kl_per_dimension
from numvae.io.datasets import load_mnist_mini
from numvae.model.likelihoods import Gaussian
from numvae.model.objectives import seed_loss
from numvae.plots.tutorial import banner, figure_path, parse_args, show
from numvae.training.loop import fit

LATENT_DIM = 10
SIGMAS = (0.1, 0.3, 1.0, 3.0)

# %% [markdown]
# ## Helpers: one model trained, one model measured

# %%
def train_model(images, epochs, **options):
    """The slides' architecture with a 10-dimensional latent space, trained with Adam."""
    model = numvae.VAE(784, shared_dim=128, latent_dim=LATENT_DIM, seed=0, **options)
    fit(model, numvae.Adam(model.params, lr=1e-3), images, epochs=epochs, batch_size=128,
        seed=0, progress=False, log=None)
    return model


def measure(model, images):
    """Squared error of the reconstructions decode(mean), KL per dimension, active units."""
    mean = model.encode(images)[0]
    reconstruction = model.decode(mean).astype(np.float64)
    squared_error = float(np.mean(np.sum((reconstruction - images) ** 2, axis=1)))
    kl = kl_per_dimension(model, images)                        # (latent_dim,)
    n_active, _ = active_units(model, images)
    # how much the reconstructions differ from image to image (0 for a collapsed model)
    spread = float(np.mean(np.sum((reconstruction - reconstruction.mean(axis=0)) ** 2, axis=1)))
    return dict(squared_error=squared_error, kl=kl, active=n_active, spread=spread,
                reconstructions=reconstruction)

# %% [markdown]
# ## Figures

# %%
def plot_reconstructions(originals, rows, path):
    """The test images, then each model's reconstructions, one row per model."""
    names = ["test images", *rows]
    images = [originals, *(rows[name]["reconstructions"] for name in rows)]
    n_cols = len(originals)
    fig = Figure(figsize=(1.0 * n_cols + 2.0, 1.05 * len(names) + 0.7), layout="constrained")
    axes = fig.subplots(len(names), n_cols, squeeze=False)
    for r, (name, block) in enumerate(zip(names, images)):
        for c in range(n_cols):
            axes[r, c].imshow(block[c].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize="small")
    # only what the run asserts, in --quick as in full mode: the squared error grows with
    # sigma, and at sigma = 3 the decoder returns one image for every input
    fig.suptitle("Reconstructions decode(mean of q(z|x)): further from the images as sigma "
                 "grows, one image for all at sigma = 3")
    fig.savefig(path, dpi=110)
    return fig


def plot_kl_per_dimension(rows, path):
    """Bars of each model's KL per latent dimension, largest first."""
    fig = Figure(figsize=(3.0 * len(rows), 3.4), layout="constrained")
    axes = fig.subplots(1, len(rows), sharey=True)
    for ax, (name, row) in zip(axes, rows.items()):
        kl = np.sort(row["kl"])[::-1]
        ax.bar(np.arange(1, len(kl) + 1), kl, color="C0")
        ax.set_xlabel("latent dimension (sorted by KL)")
        ax.set_title(f"{name}\nKL {row['kl'].sum():.2f} nats, {row['active']} active",
                     fontsize="small")
    axes[0].set_ylabel("mean KL(q(z_j|x) || N(0, 1)) (nats)")
    axes[0].set_yscale("symlog", linthresh=0.01)
    fig.suptitle("KL per latent dimension: the larger sigma, the more dimensions fall silent")
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## The slides' loss is the Gaussian negative ELBO with sigma^2 = kl_weight
#
# On one batch and one eps, with the same network: `seed_loss` (the slides'
# `loss_fn`) against 2 w B times the model's mean negative ELBO at sigma^2 = w, minus the
# constants. Both sides in float64, so they agree to rounding.

# %%
args = parse_args("13_slides_recipe", "The slides' Gaussian VAE trained, sigma swept.")
train, test = load_mnist_mini()
n_train, epochs, n_test = (3000, 3, 500) if args.quick else (10_000, 5, 1000)
x_train, x_test = train.images[:n_train], test.images[:n_test]

banner("The slides' loss_fn = 2 w x negative ELBO(sigma^2 = w) + constants")
rng = np.random.default_rng(0)
x, eps = x_train[:16].astype(np.float64), rng.standard_normal((16, LATENT_DIM))
for w in (0.09, 1.0):
    model = numvae.VAE(784, 128, LATENT_DIM, likelihood=Gaussian(sigma=np.sqrt(w)),
                       dtype=np.float64, seed=0)
    cache = model.forward(x, eps)
    slides = seed_loss(cache["output"], x, cache["mean"], cache["log_var"], kl_weight=w)
    n, m, b = 784, LATENT_DIM, len(x)
    ours = 2 * w * b * cache["loss"] - b * w * n * np.log(2 * np.pi * w) + b * w * m
    print(f"kl_weight w = {w}: loss_fn {slides:.6f}, 2 w B (negative ELBO) + constants "
          f"{ours:.6f}")
    assert abs(slides - ours) < 1e-9 * abs(slides)
print("You should see: the two columns equal to every printed digit: training with the")
print("slides' loss_fn and kl_weight = w is training the Gaussian VAE with sigma = sqrt(w).")

# %%
banner(f"Training the Bernoulli model and sigma = {', '.join(map(str, SIGMAS))}: "
       f"{n_train:,} images, {epochs} epochs each")
models, start = {}, time.perf_counter()
models["Bernoulli"] = train_model(x_train, epochs)
for sigma in SIGMAS:
    models[f"Gaussian, sigma = {sigma}"] = train_model(x_train, epochs,
                                                       likelihood=Gaussian(sigma=sigma))
print(f"{len(models)} models in {time.perf_counter() - start:.1f} s")

# %%
banner(f"Measured on {n_test:,} test images")
rows = {name: measure(model, x_test) for name, model in models.items()}
print(f"{'model':<24} {'squared error':>13} {'KL (nats)':>10} {'active units':>13} "
      f"{'spread':>8}   KL per dimension, largest first")
for name, row in rows.items():
    per_dim = " ".join(f"{v:.2f}" for v in np.sort(row["kl"])[::-1])
    print(f"{name:<24} {row['squared_error']:>13.1f} {row['kl'].sum():>10.2f} "
          f"{row['active']:>10d}/{LATENT_DIM} {row['spread']:>8.2f}   {per_dim}")
gaussian = [rows[f"Gaussian, sigma = {sigma}"] for sigma in SIGMAS]
kl_total = [row["kl"].sum() for row in gaussian]
errors = [row["squared_error"] for row in gaussian]
assert all(a > b for a, b in zip(kl_total, kl_total[1:])), kl_total         # KL falls
assert kl_total[0] > 10                                                       # tens of nats
assert all(a < b for a, b in zip(errors, errors[1:])), errors                 # error rises
assert gaussian[0]["active"] == LATENT_DIM                                    # sigma = 0.1
assert gaussian[-1]["active"] == 0 and gaussian[-1]["kl"].max() < 0.01 and kl_total[-1] < 0.01
assert gaussian[-1]["spread"] < 0.01 * gaussian[0]["spread"]
assert kl_total[2] < rows["Bernoulli"]["kl"].sum() < kl_total[0]
middle = gaussian[2]                                    # sigma = 1, the slides' kl_weight = 1
top3 = np.sort(middle["kl"])[::-1][:3].sum() / max(middle["kl"].sum(), 1e-30)
print("You should see: as sigma grows, the KL falls (from tens of nats at sigma = 0.1 to")
print("nothing at sigma = 3) and the squared error rises: the reconstruction term,")
print("||x - x_hat||^2 / (2 sigma^2), weighs less against the KL. At sigma = 0.1 all 10")
print("dimensions are active; at sigma = 3 none is and the KL is below 0.01 nats: posterior")
print("collapse. q(z|x) = p(z) for every x, so z carries nothing about x, and the decoder")
print("returns the same image for every input (a spread below 1% of sigma = 0.1's). The")
print("Bernoulli model, with no sigma to choose, lands between sigma = 0.1 and sigma = 1 in KL.")
print(f"Here sigma = 1 (the slides' kl_weight = 1) keeps {middle['kl'].sum():.2f} nats of KL, "
      f"{top3:.0%} of it in its 3 largest")
print(f"dimensions, yet counts {middle['active']} active units: a dimension whose mean varies "
      "a little (variance")
print("above 0.01) counts as active even when it carries almost no information; read the KL")
print("per dimension beside it.")

# %%
banner("Figures")
show(plot_reconstructions(x_test[:10], rows, figure_path(args.out, "reconstructions.png")))
show(plot_kl_per_dimension(rows, figure_path(args.out, "kl_per_dimension.png")))
if args.quick:
    print("You should see (--quick: 3 epochs on 3,000 images, too short to learn much): in")
    print("reconstructions.png, blurred average digits in every row, a little closer to the")
    print("originals for the Bernoulli model and sigma = 0.1 and 0.3 (a 1 or a 9 shows through),")
    print("the same blob in every column at sigma = 3; in kl_per_dimension.png, ten bars for")
    print("sigma = 0.1 and, at sigma = 3, bars all below 0.01 nats.")
else:
    print("You should see: in reconstructions.png, recognisable digits for the Bernoulli model")
    print("and sigma = 0.1 and 0.3 (smooth, with a few wrong ones such as the 4 drawn like a")
    print("0), blurred ones at sigma = 1 where several digits turn into 9s and 8s, and one")
    print("grey blob, the same in every column, at sigma = 3; in kl_per_dimension.png, ten")
    print("bars for sigma = 0.1 and, at sigma = 3, bars all below 0.01 nats.")
