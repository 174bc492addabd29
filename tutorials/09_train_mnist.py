# %% [markdown]
# # 9. Training the slides' VAE on MNIST
#
# The slides' model: encoder 784 -> 256 -> 128 (shared) -> two heads of size 2, decoder
# 2 -> 32 -> 256 -> 784 with a sigmoid, trained with Adam (learning rate 1e-3, batches of
# 128) on the 10,000 training images embedded in numvae, and evaluated on the 2,000 test
# images. A two-dimensional latent space can be drawn as it is: the slides' two figures,
# "Representation of the latent space for MNIST" (`numvae.plots.latent_space`) and
# "Sampling the latent space for MNIST" (`numvae.plots.latent_grid`).
#
# One change from the slides: the decoder is Bernoulli (numvae's default), p(x | z) =
# prod_i output_i^x_i (1 - output_i)^(1 - x_i), with the grey levels x_i in [0, 1] as
# targets (B3). On grey levels this "likelihood" is a cross-entropy, not the probability
# of anything: its value in nats compares with published MNIST results only on binarised
# data (`numvae train --binarize`, Burda et al. 2016), not as it is here. The slides'
# Gaussian decoder has a knob, sigma, that the Bernoulli one does not: tutorial 13 trains
# it for several sigma beside this Bernoulli model, and shows what a large sigma does.
#
# The training loop, `numvae.training.loop.fit`, knows nothing of the VAE's insides: it calls
# `model.loss_and_grad(batch)` and `optimizer.step(model.grads)`. A similar run from the
# command line, which also holds out 1,000 training images for validation and saves a
# checkpoint: `numvae train --dataset mnist-mini --epochs 15`.
#
# Run: `python tutorials/09_train_mnist.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time

import numpy as np

import numvae
from numvae import plots
from numvae.diagnostics.evaluate import evaluate_elbo
from numvae.io.datasets import load_mnist_mini
from numvae.plots.tutorial import banner, figure_path, parse_args, show
from numvae.training.loop import fit

# %% [markdown]
# ## The story

# %%
args = parse_args("09_train_mnist", "Train the slides' VAE on the MNIST subset.")
train, test = load_mnist_mini()
if args.quick:
    train = train._replace(images=train.images[:1000], labels=train.labels[:1000])
    test = test._replace(images=test.images[:500], labels=test.labels[:500])
epochs = 1 if args.quick else 15

# %%
banner(f"Training: {len(train.images):,} images, {epochs} epoch(s)")
model = numvae.VAE(784, shared_dim=128, latent_dim=2, seed=0)
optimizer = numvae.Adam(model.params, lr=1e-3)
before = evaluate_elbo(model, test.images)
print(f"before training: test negative ELBO {before['loss']:.1f} nats")
start = time.perf_counter()
history = fit(model, optimizer, train, epochs=epochs, batch_size=128, val_data=test,
              seed=0, progress=False)
print(f"{time.perf_counter() - start:.1f} s of training")

# %%
banner("Evaluation on the test images")
result = evaluate_elbo(model, test.images)
print(f"test negative ELBO: {result['loss']:.2f} +- {result['loss_se']:.2f} nats per image")
print(f"  reconstruction E_q[-log p(x|z)]: {result['reconstruction']:.2f}")
print(f"  KL(q(z|x) || p(z)):              {result['kl']:.2f}  (per latent dimension: "
      + ", ".join(f"{v:.2f}" for v in result["kl_per_dim"]) + ")")
assert 540 < before["loss"] < 550
if args.quick:
    assert 400 < result["loss"] < 500 and result["kl"] < 0.5
    print("You should see: about 545 nats before training (a decoder that outputs 0.5 for")
    print("every pixel pays log 2 = 0.69 nats per pixel); after one epoch on 1,000 images the")
    print("model has barely started: about 450 nats, a KL near 0.1.")
else:
    assert 160 < result["loss"] < 170 and 4 < result["kl"] < 6
    assert max(result["kl_per_dim"]) < 1.5 * min(result["kl_per_dim"])   # shared evenly
    print("You should see: about 545 nats before training (a decoder that outputs 0.5 for")
    print("every pixel pays log 2 = 0.69 nats per pixel); after 15 epochs about 165 (SE about")
    print("1.1), of which about 5 nats of KL, shared evenly by the two latent dimensions. The")
    print("first epochs bring most of the gain, and the validation curve of training_curves.png")
    print("(here the test images, passed as val_data) follows the training curve: no")
    print("overfitting yet.")

# %%
banner("Figures")
show(plots.latent_space(model, test.images, test.labels,
                        path=figure_path(args.out, "latent_space.png")))
show(plots.latent_grid(model, n=15, path=figure_path(args.out, "latent_grid.png")))
show(plots.training_curves(history, path=figure_path(args.out, "training_curves.png")))
show(plots.reconstructions(model, test.images, n=10,
                           path=figure_path(args.out, "reconstructions.png")))
codes = model.encode(test.images)[0]                   # the encoder means the scatter draws
spread = float(np.median(np.abs(codes)))
inside = float(np.mean(np.all(np.abs(codes) < 4, axis=1)))
print(f"encoder means of the test images: median |coordinate| {spread:.2f}, "
      f"{inside:.0%} within [-4, 4]^2")
if args.quick:
    assert spread < 0.3
    print("You should see (one epoch on 1,000 images): the codes bunched near the origin (a")
    print("median |coordinate| well below 0.3), a grid of nearly identical grey speckled")
    print("tiles, reconstructions all alike.")
else:
    assert 0.3 < spread and inside > 0.9
    print("You should see: in latent_space.png, the test digits in overlapping clusters, most")
    print("within [-4, 4]^2 around the prior's mass (the share is printed above), with the 0s")
    print("and the 1s in regions of their own and the 4s, 7s and 9s (and 3s, 5s, 8s) mixed;")
    print("in latent_grid.png, the decoder's map of the central square (Gaussian quantiles")
    print("1/30 to 29/30, about +-1.8): digits that morph smoothly into one another (0 to 8")
    print("to 1, 9 to 7); in reconstructions.png, blurred digits, several of them the wrong")
    print("one (a 4 comes back as a 9, a 3 as a 5): two numbers per image are not much. With")
    print("20 latent dimensions the test negative ELBO on full MNIST drops from about 148 to")
    print("about 105 nats (experiments/quality).")
