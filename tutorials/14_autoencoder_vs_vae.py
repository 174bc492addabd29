# %% [markdown]
# # 14. An autoencoder beside the VAE: the same network, without sampling and without KL
#
# The slides start from the autoencoder, (e*, d*) = argmin L(x, d(e(x))), and say what it
# lacks: "a lack of interpretable and exploitable structure in the latent space, without
# generative purpose". Here we train one and look. In numvae the autoencoder is the VAE
# with two parts swapped:
#
# * the posterior "point": q(z|x) is a point mass at the encoder's `mean` head, z = mean
#   (no `log_var` head, no eps: `numvae.model.posteriors.PointMass`);
# * the objective "reconstruction": the loss is the reconstruction term alone, no KL
#   (`numvae.model.objectives.Reconstruction`).
#
# `VAE(784, 128, 2, posterior="point", objective="reconstruction")` has the slides'
# architecture (the same compressor, one head instead of two, the same decoder) and
# trains with the same `numvae.training.loop.fit`. Both models use the Bernoulli decoder on the
# same images, for the same number of epochs. Then we compare:
#
# 1. the codes: where the encoder puts the test images in the 2-D latent space. The VAE's
#    KL pulls q(z|x) towards N(0, I), so its codes stay where the prior has its mass, and
#    once trained (the full run) fill it at a scale of about 1; the autoencoder's codes go
#    wherever the decoder likes them, at any scale, with gaps between the digits;
# 2. what comes out of the decoder for z ~ N(0, I), the VAE's way of generating images.
#    For the VAE those z are where it was trained to decode; for the autoencoder they are
#    one corner of its code space, or a gap in it.
#
# (With `--quick` the two models train for 3 epochs only; the full run, 15 epochs on
# 10,000 images, takes about 30 s.)
#
# Run: `python tutorials/14_autoencoder_vs_vae.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae.io.datasets import load_mnist_mini
from numvae.plots.tutorial import banner, figure_path, parse_args, show
from numvae.training.loop import fit

RADIUS = 2.0      # the disc |z| < 2 holds 1 - exp(-2) = 86% of N(0, I) in two dimensions

# %% [markdown]
# ## Helpers

# %%
def nearest(images, references):
    """For each row of ``images``, the Euclidean distance to its nearest row of
    ``references`` (both (n, 784), float64), how much it looks like some real digit, and
    the index of that row."""
    squared = ((images ** 2).sum(axis=1)[:, None] - 2 * images @ references.T
               + (references ** 2).sum(axis=1)[None, :])
    index = squared.argmin(axis=1)
    return np.sqrt(np.maximum(squared[np.arange(len(images)), index], 0.0)), index


def describe_codes(codes):
    """Mean and std of each latent coordinate, and the share of codes inside |z| < 2."""
    inside = float(np.mean(np.linalg.norm(codes, axis=1) < RADIUS))
    return dict(mean=codes.mean(axis=0), std=codes.std(axis=0), inside=inside)


def tile(images, n_cols):
    """(k, 784) images as one (rows * 28, n_cols * 28) canvas."""
    n_rows = len(images) // n_cols
    grid = images[:n_rows * n_cols].reshape(n_rows, n_cols, 28, 28)
    return grid.transpose(0, 2, 1, 3).reshape(n_rows * 28, n_cols * 28)

# %% [markdown]
# ## Figures

# %%
def plot_codes(codes, labels, prior_draws, path):
    """Each model's test codes coloured by digit, with N(0, I) draws and the disc |z| < 2."""
    fig = Figure(figsize=(12, 5.4), layout="constrained")
    axes = fig.subplots(1, len(codes))
    angle = np.linspace(0, 2 * np.pi, 200)
    for ax, (name, z) in zip(axes, codes.items()):
        points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=4, vmin=-0.5, vmax=9.5)
        ax.plot(prior_draws[:, 0], prior_draws[:, 1], "k.", markersize=2,
                label="z ~ N(0, I)")
        ax.plot(RADIUS * np.cos(angle), RADIUS * np.sin(angle), "k--", linewidth=1,
                label="|z| = 2 (86% of N(0, I))")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("z_1")
        ax.set_ylabel("z_2")
        ax.set_title(f"{name}: test codes, coloured by digit")
        ax.legend(loc="upper right", fontsize="small", markerscale=3)
    fig.colorbar(points, ax=axes, ticks=range(10), label="digit")
    fig.savefig(path, dpi=110)
    return fig


def plot_prior_decodes(decoded, path):
    """What each decoder makes of the same draws z ~ N(0, I)."""
    fig = Figure(figsize=(11, 5.8), layout="constrained")
    axes = fig.subplots(1, len(decoded))
    for ax, (name, images) in zip(axes, decoded.items()):
        ax.imshow(tile(images, 8), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{name}: decode(z), the same 64 z ~ N(0, I)")
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## Two models, one architecture
#
# The autoencoder has one head fewer (`encoder.mean` only) and nothing else that differs.

# %%
args = parse_args("14_autoencoder_vs_vae", "An autoencoder beside the VAE.")
train, test = load_mnist_mini()
n_train, epochs = (3000, 3) if args.quick else (10_000, 15)
x_train = train.images[:n_train]
x_test, labels = test.images.astype(np.float64), test.labels

banner(f"Training both on {n_train:,} images, {epochs} epochs each")
models = {"VAE": numvae.VAE(784, 128, 2, seed=0),
          "autoencoder": numvae.VAE(784, 128, 2, posterior="point",
                                    objective="reconstruction", seed=0)}
last_reconstruction = {}
for name, model in models.items():
    history = fit(model, numvae.Adam(model.params, lr=1e-3), x_train, epochs=epochs,
                  seed=0, progress=False, log=None)
    print(f"{name:<12} {model.n_params():,} parameters ({', '.join(model.encoder.heads)} "
          f"head{'s' if len(model.encoder.heads) > 1 else ''}); last epoch: reconstruction "
          f"{history['train_reconstruction'][-1]:.1f} nats, KL {history['train_kl'][-1]:.2f}")
    last_reconstruction[name] = history["train_reconstruction"][-1]
    assert name == "VAE" or set(history["train_kl"]) == {0.0}
assert models["VAE"].n_params() - models["autoencoder"].n_params() == 128 * 2 + 2
assert last_reconstruction["autoencoder"] < last_reconstruction["VAE"]
print("You should see: the autoencoder 258 parameters fewer (the log_var head: 128 x 2 + 2),")
print("a KL of exactly 0 (its objective has none), and a lower reconstruction than the VAE:")
print("it pays nothing for using its code space as it likes, and its z is not noisy.")

# %%
banner("1. The codes: scale and place")
codes = {name: model.encode(x_test)[0].astype(np.float64) for name, model in models.items()}
described = {name: describe_codes(z) for name, z in codes.items()}
for name, d in described.items():
    print(f"{name:<12} mean ({d['mean'][0]:6.2f}, {d['mean'][1]:6.2f})  std ({d['std'][0]:5.2f}, "
          f"{d['std'][1]:5.2f})  codes inside |z| < 2: {d['inside']:.0%}")
vae, ae = described["VAE"], described["autoencoder"]
assert vae["inside"] > ae["inside"]
assert np.linalg.norm(ae["mean"]) > 2 or ae["std"].max() > 2        # off-centre or spread
print("You should see: the VAE's codes nearer the origin, more of them inside the disc")
print("where N(0, I) puts 86% of its mass; the autoencoder's codes off-centre or spread far")
print("beyond it: nothing in its loss says where codes should go, so their place and scale")
print("are whatever training happened to produce (the latent figure shows the gaps too).")

# %%
banner("2. Decoding z ~ N(0, I)")
prior_draws = np.random.default_rng(1).standard_normal((500, 2))
decoded = {name: model.decode(prior_draws).astype(np.float64) for name, model in models.items()}
distance, variety = {}, {}
for name, images in decoded.items():
    gaps, index = nearest(images, x_test)
    distance[name] = float(gaps.mean())
    shares = np.bincount(labels[index], minlength=10) / len(index)    # digit of the nearest
    variety[name] = int(np.sum(shares >= 0.05))
    print(f"{name:<12} decode(z) for 500 z ~ N(0, I): mean distance to the nearest test image "
          f"{distance[name]:.2f}; digits (of the nearest test image) with a share of 5% or "
          f"more: {variety[name]}")
assert distance["VAE"] < distance["autoencoder"]
print("You should see: the VAE's decodings closer to real digits than the autoencoder's. The")
print("VAE was trained to decode z drawn around N(0, I) (its codes plus noise, held there by")
print("the KL); the autoencoder never saw most of these z, and decodes them into whatever")
print("its decoder does there: the few digits whose codes happen to lie near the origin.")
if args.quick:
    print("(--quick: neither model has learnt much in 3 epochs, and neither makes many")
    print("different digits yet; the full run shows the difference in variety.)")
else:
    assert variety["VAE"] > variety["autoencoder"]
    print(f"In variety too: {variety['VAE']} digits for the VAE, {variety['autoencoder']} for the "
          "autoencoder.")

# %%
banner("Figures")
show(plot_codes(codes, labels, prior_draws[:300], figure_path(args.out, "latent_codes.png")))
show(plot_prior_decodes({name: images[:64] for name, images in decoded.items()},
                        figure_path(args.out, "prior_decodes.png")))
if args.quick:
    print("You should see (--quick): in latent_codes.png, the VAE's codes on a line through")
    print("the disc (one of its two dimensions is not used yet), the autoencoder's codes")
    print("outside the disc, away from every N(0, I) draw (look at the axes); in")
    print("prior_decodes.png, blurred digits of few kinds from either model after 3 epochs.")
else:
    print("You should see: in latent_codes.png, the black N(0, I) draws among the VAE's codes,")
    print("which fill the disc and a little beyond; the autoencoder's codes spread over")
    print("-10..25 (look at the axes), with empty space between the digits' arms, so that")
    print("the draws cover only its central part. In prior_decodes.png, a mixture of digits")
    print("from the VAE, fewer kinds from the autoencoder (in our run mostly 3s, 5s and 6s,")
    print("the digits it codes near the origin).")
