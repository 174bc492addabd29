# %% [markdown]
# # 16. A conditional VAE: the label says which digit, z says how it is written
#
# A conditional VAE (Sohn, Lee & Yan 2015) models p(x | y) for a label y, here the digit:
# the encoder reads [x, onehot(y)], the decoder [z, onehot(y)] (docs/derivations.md,
# section 14, eq. CD1), and the prior on z is still N(0, I). Since the decoder is told the
# digit, z no longer needs to encode it: z keeps what the label does not say, the *style*
# (slant, thickness, size). Three checks of that, after training (the first two need the
# full run; `--quick` trains too little):
#
# * decode one z with every label: each column of the figure has one z, and the ten digits
#   in it should share a style;
# * the latent space coloured by digit: the classes, in regions of their own (overlapping)
#   for an ordinary VAE (tutorial 9), now mixed: style, with little of the class;
# * the digit guessed from z alone by its nearest neighbours: right much less often for
#   the conditional model.
#
# And one look inside (CD1): the decoder's first weight matrix W = [W_z; W_y] has one row
# per latent coordinate, then one row per class; its gradient's class rows are the sums of
# the incoming gradient over the examples of each class, and no gradient goes to the label.
#
# `numvae.VAE(..., n_classes=10)`; every function that takes a batch takes its labels
# (`loss_and_grad(x, y=...)`, `fit` reads them from the Dataset, `evaluate_elbo(...,
# labels=...)`, `sample(n, y=...)`); on the command line `numvae train --conditional` and
# `numvae sample --label 3`.
#
# Run: `python tutorials/16_conditional_vae.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

import numvae
from numvae import plots
from numvae.diagnostics.evaluate import evaluate_elbo
from numvae.io.datasets import Dataset, load_mnist_mini
from numvae.plots.tutorial import banner, figure_path, parse_args, show
from numvae.training.loop import fit

# %% [markdown]
# ## Figure: the two latent spaces side by side

# %%
def plot_latent_spaces(models, test, path):
    fig = Figure(figsize=(13, 6), layout="constrained")
    for ax, (title, model) in zip(fig.subplots(1, 2), models.items()):
        means = model.encode(test.images, test.labels if model.n_classes else None)[0]
        colours = plots.label_colours(10)[test.labels]
        ax.scatter(means[:, 0], means[:, 1], c=colours, s=3, alpha=0.6, linewidths=0)
        ax.set_title(title)
        if model.n_classes:  # one legend: the colours of the digits
            ax.legend(handles=[Line2D([], [], linestyle="", marker="o", color=colour, label=str(c))
                               for c, colour in enumerate(plots.label_colours(10))],
                      title="digit", fontsize="x-small", ncol=2, loc="upper right")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("z[0] (encoder mean)")
        ax.set_ylabel("z[1] (encoder mean)")
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## How much of the digit z holds
#
# A number for what the figure shows: guess each test image's digit from its code alone, by
# a vote of its 10 nearest neighbours among the other test codes. If z encodes the digit,
# the guess is often right; if it holds nothing of it, it is right about one time in ten.

# %%
def neighbour_accuracy(z, labels, k=10):
    """Leave-one-out k-nearest-neighbour accuracy of predicting ``labels`` from codes z."""
    distances = ((z[:, None, :] - z[None, :, :]) ** 2).sum(axis=-1)
    np.fill_diagonal(distances, np.inf)                      # an image is not its own neighbour
    nearest = np.argsort(distances, axis=1)[:, :k]
    votes = np.stack([np.bincount(row, minlength=10) for row in labels[nearest]])
    return float(np.mean(votes.argmax(axis=1) == labels))

# %% [markdown]
# ## The one-hot inputs (CD1)
#
# 1,000 test images throughout; with `--quick`, 1,000 training images and 2 epochs.

# %%
args = parse_args("16_conditional_vae", "A conditional VAE on MNIST digits.")
train, test = load_mnist_mini()
n_train, epochs = (1000, 2) if args.quick else (len(train.images), 20)
train = Dataset(train.images[:n_train], train.labels[:n_train])
test = Dataset(test.images[:1000], test.labels[:1000])

# %%
banner("The one-hot inputs (CD1)")
model = numvae.VAE(784, 128, 2, n_classes=10, seed=0)
print(f"encoder's first weight: {model.params['encoder.compressor.0.W'].shape} "
      f"(784 pixels + 10 one-hot columns)")
print(f"decoder's first weight: {model.params['decoder.decompressor.0.W'].shape} "
      f"(2 latent + 10 one-hot rows)")
x, y = test.images[:6], test.labels[:6]
cache = model.forward(x, y=y)
steps = model.backward(cache)
dW = model.grads["decoder.decompressor.0.W"]
dh = steps["decoder_steps"][1]                           # dL/d(first layer's output)
by_class = np.stack([dh[y == c].sum(axis=0) for c in range(10)])
absent = sorted(set(range(10)) - set(y.tolist()))
print(f"labels {y.tolist()}; max |dW_y - sum over each class of dh| = "
      f"{np.abs(dW[2:] - by_class).max():.1e}")
print(f"rows of dW_y for classes absent from the batch: {absent}, all zero: "
      f"{bool(np.all(dW[2:][absent] == 0))}")
assert model.params["encoder.compressor.0.W"].shape[0] == 794
assert model.params["decoder.decompressor.0.W"].shape[0] == 12
assert np.abs(dW[2:] - by_class).max() == 0 and np.all(dW[2:][absent] == 0)
print("You should see: a difference of 0 (the same sums) and True: the label adds one")
print("learnt row of W_y per class (a bias by class), and only the batch's classes move.")

# %%
banner(f"Training a conditional and an ordinary VAE ({epochs} epochs, {n_train:,} images)")
models, results = {}, {}
for title, n_classes in (("ordinary VAE: z encodes the digit", None),
                         ("conditional VAE: z encodes the style", 10)):
    model = numvae.VAE(784, 128, 2, n_classes=n_classes, seed=0)
    fit(model, numvae.FastAdam(model.params, lr=1e-3), train, epochs=epochs, seed=0,
        progress=False, log=None)
    result = evaluate_elbo(model, test.images, labels=test.labels)
    print(f"{title}: test -ELBO {result['loss']:.1f} +- {result['loss_se']:.1f} nats")
    models[title], results[title] = model, result
ordinary, conditional = (results[title] for title in models)
gain = ordinary["loss"] - conditional["loss"]
assert gain > 2 * np.hypot(ordinary["loss_se"], conditional["loss_se"])
print("You should see: the conditional model lower by more than two standard errors:")
if args.quick:
    assert 305 < ordinary["loss"] < 335 and 290 < conditional["loss"] < 315
    print("about 20 nats (300 against 320, after two epochs on 1,000 images): knowing the")
    print("digit, it spends its two latent coordinates on style.")
else:
    assert 15 < gain < 21 and 155 < ordinary["loss"] < 163 and 137 < conditional["loss"] < 145
    print("about 18 nats (141 against 159): knowing the digit, it spends its two latent")
    print("coordinates on style.")

# %%
banner("Does z hold the digit? A 10-nearest-neighbour vote on the test codes")
accuracy = {}
for title, model in models.items():
    z = model.encode(test.images, test.labels if model.n_classes else None)[0]
    accuracy[title] = neighbour_accuracy(z.astype(np.float64), test.labels)
    print(f"{title}: the digit guessed right for {accuracy[title]:.0%} of the test images")
ordinary_accuracy, conditional_accuracy = accuracy.values()
if args.quick:
    assert max(ordinary_accuracy, conditional_accuracy) < 0.3
    print("You should see: both below 30%: after two epochs on 1,000 images neither model's")
    print("codes hold much of the digit.")
else:
    assert ordinary_accuracy > 0.45 and 0.15 < conditional_accuracy < 0.3
    assert ordinary_accuracy > conditional_accuracy + 0.15
    print("You should see: the ordinary model's codes name the digit for about half of the")
    print("images, the conditional model's for about a quarter: its z holds much less of the")
    print("digit, though not nothing: style and digit go together (the 1s, narrow, sit a")
    print("little to one side in the figure below).")

# %%
banner("Figures")
show(plots.conditional_grid(models["conditional VAE: z encodes the style"], n_styles=12,
                                  rng=np.random.default_rng(1),
                                  path=figure_path(args.out, "conditional_grid.png")))
show(plot_latent_spaces(models, test, figure_path(args.out, "conditional_latent_space.png")))
if args.quick:
    print("You should see (--quick, two epochs on 1,000 images, too few to learn the digits):")
    print("in conditional_grid.png, the same faint blurred shape on grey in every tile: the")
    print("decoder does not use the label or z yet; in conditional_latent_space.png, both")
    print("models' codes along a line (one latent direction used so far), the 1s gathered at")
    print("one end and the other colours mixed.")
else:
    print("You should see in conditional_grid.png: rows 0 to 9, and along each column one")
    print("style (all digits slanted, or all bold, or all narrow) shared by the ten digits.")
    print("In conditional_latent_space.png: on the left the digits in regions of their own")
    print("(the 1s and the 0s well apart, others overlapping in the middle); on the right the")
    print("colours mixed in one round cloud (the 1s, narrow, a little to one side): the")
    print("conditional encoder keeps little of the class; the label carries it.")
