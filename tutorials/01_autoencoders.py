# %% [markdown]
# # 1. Autoencoders: PCA, and why an unconstrained one overfits
#
# An autoencoder is a pair (e, d), an encoder and a decoder, chosen to make the
# reconstruction d(e(x)) close to x (slides: "Dimensionality reduction via autoencoders").
# The code z = e(x) is the *latent variable*.
#
# Two examples from the slides, on the embedded MNIST subset (10,000 training and 2,000
# test images of 784 grey levels in [0, 1]):
#
# 1. **PCA is the best linear autoencoder.** With P an n x m matrix of orthonormal
#    columns (n = 784 pixels, m components), e(x) = P'(x - xbar) and d(z) = P z + xbar.
#    Among all such P, the first m principal directions minimise the squared
#    reconstruction error, and the minimum equals the sum of the discarded eigenvalues
#    of the data covariance (Eckart-Young).
# 2. **Without constraints, an autoencoder can memorise.** Map the training images
#    x_1, ..., x_n to the integers 1, ..., n and back: a one-number code, zero training
#    error, and nothing learnt that carries over to a new image.
#
# Run: `python tutorials/01_autoencoders.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure

from numvae.io.datasets import load_mnist_mini
from numvae.plots.tutorial import banner, figure_path, parse_args, show

# %% [markdown]
# ## PCA as a linear autoencoder
#
# The principal directions are the right singular vectors of the centred data matrix.
# numpy's SVD of the 784 x 784 covariance matrix C = Xc'Xc / n gives them in a fraction
# of a second (the same V as the SVD of the 10,000 x 784 matrix Xc, whose singular
# values are the square roots of n times C's eigenvalues).

# %%
def fit_pca(images):
    """Mean image (n_pixels,), principal directions as columns (n_pixels, n_pixels),
    eigenvalues of the covariance (n_pixels,), largest first."""
    mean = images.mean(axis=0)
    centred = images - mean
    covariance = centred.T @ centred / len(images)       # (784, 784)
    directions, eigenvalues, _ = np.linalg.svd(covariance)  # symmetric PSD: SVD = eigen
    return mean, directions, eigenvalues


def pca_encode(x, mean, directions, m):
    """e(x) = P'(x - mean): (batch, n_pixels) -> (batch, m)."""
    return (x - mean) @ directions[:, :m]


def pca_decode(z, mean, directions):
    """d(z) = P z + mean, P the first m = z.shape[1] directions: (batch, m) -> (batch, n_pixels)."""
    return z @ directions[:, :z.shape[1]].T + mean


def squared_error(x, reconstruction):
    """Mean over images of ||x - d(e(x))||^2, summed over the pixels."""
    return float(np.mean(np.sum((x - reconstruction) ** 2, axis=1)))

# %% [markdown]
# ## The memorising autoencoder
#
# The encoder is a table from a training image to its index; the decoder the table back.
# We key the table on the image's bytes. A test image is not in the table (MNIST has no
# exact duplicates across its training and test sets), so the encoder has nothing to say
# about it: we let it fall back to code 0, which is what a lookup with a default does.
#
# A more generous memoriser sends a new image to the index of its *nearest* training
# image. It reconstructs test images well, but only because its "decoder" stores all
# 10,000 training images (7.8 million numbers), and its code is still an arbitrary integer:
# codes i and i + 1 decode to unrelated images. There is no structure in the latent space
# to interpolate in or to sample from, which is what the slides mean by "no generative
# purpose".

# %%
class LookupAutoencoder:
    """e(x_i) = i and d(i) = x_i for the training images x_i (n, n_pixels)."""

    def __init__(self, images):
        self.images = images
        self.table = {image.tobytes(): i for i, image in enumerate(images)}

    def encode(self, x, fallback=0):
        """Index of each row of x in the table, ``fallback`` if absent: (batch,) ints, and
        a boolean mask (batch,) of the rows found."""
        codes = np.array([self.table.get(row.tobytes(), -1) for row in x])
        found = codes >= 0
        return np.where(found, codes, fallback), found

    def encode_nearest(self, x):
        """Index of the nearest training image (Euclidean): (batch,) ints."""
        # ||x - y||^2 = ||x||^2 - 2 x.y + ||y||^2; the ||x||^2 term does not change the argmin
        squared_norms = np.sum(self.images**2, axis=1)                # (n,)
        codes = [np.argmin(squared_norms - 2.0 * x[start:start + 500] @ self.images.T, axis=1)
                 for start in range(0, len(x), 500)]                 # 500 rows at a time
        return np.concatenate(codes)

    def decode(self, codes):
        return self.images[codes]

# %% [markdown]
# ## Figures

# %%
def plot_pca_errors(ms, train_errors, test_errors, eigen_tail, mean_image_error,
                    lookup_errors, path):
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([1], [lookup_errors[0]], "^", color="C2", markersize=9,
            label="lookup (code: one integer), training images")
    ax.plot([1], [lookup_errors[1]], "v", color="C2", markersize=9, fillstyle="none",
            label="lookup, test images (no entry: code 0)")
    ax.plot(ms, train_errors, "o-", label="PCA, training images")
    ax.plot(ms, test_errors, "s--", label="PCA, test images")
    ax.plot(ms, eigen_tail, "k:", label="sum of the discarded eigenvalues")
    ax.axhline(mean_image_error, color="C3", linewidth=1, label="the mean image (m = 0), test")
    ax.set_xscale("log")
    ax.set_xlabel("number of components m (code size)")
    ax.set_ylabel("squared error per image (summed over 784 pixels)")
    ax.set_title("Autoencoders on MNIST-mini: PCA and a lookup table")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.savefig(path, dpi=110)
    return fig


def plot_image_rows(rows, row_titles, path, title):
    """One row of 28 x 28 images per entry of ``rows`` (each (k, 784))."""
    n_rows, n_cols = len(rows), len(rows[0])
    fig = Figure(figsize=(1.0 * n_cols + 1.6, 1.05 * n_rows + 0.6), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, (images, label) in enumerate(zip(rows, row_titles)):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.imshow(images[c].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize="small")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## The story

# %%
args = parse_args("01_autoencoders", "PCA as a linear autoencoder; a memorising one.")
train, test = load_mnist_mini()
n_train, n_test = (2000, 500) if args.quick else (len(train.images), len(test.images))
x_train = train.images[:n_train].astype(np.float64)
x_test = test.images[:n_test].astype(np.float64)

# %%
banner("PCA: reconstruction error against the number of components")
mean, directions, eigenvalues = fit_pca(x_train)
ms = [1, 2, 5, 10, 20, 50, 100, 200, 784]
train_errors, test_errors, eigen_tail = [], [], []
print(f"{'m':>4} {'train error':>12} {'test error':>11} {'sum of discarded eigenvalues':>29}")
for m in ms:
    rec_train = pca_decode(pca_encode(x_train, mean, directions, m), mean, directions)
    rec_test = pca_decode(pca_encode(x_test, mean, directions, m), mean, directions)
    train_errors.append(squared_error(x_train, rec_train))
    test_errors.append(squared_error(x_test, rec_test))
    eigen_tail.append(float(eigenvalues[m:].sum()))
    print(f"{m:>4} {train_errors[-1]:>12.2f} {test_errors[-1]:>11.2f} {eigen_tail[-1]:>29.2f}")
# Eckart-Young: on the data PCA was fitted to, the error is exactly the eigenvalue tail
assert np.allclose(train_errors, eigen_tail, rtol=1e-6, atol=1e-6)
mean_image_error = squared_error(x_test, np.broadcast_to(mean, x_test.shape))
error_at = dict(zip(ms, train_errors))
assert all(abs(error_at[m] / expected - 1) < 0.05 for m, expected in [(1, 48), (10, 27), (50, 9)])
assert error_at[784] < 1e-6
assert all(abs(test - train) < 0.2 * train + 1 for train, test in zip(train_errors, test_errors))
print("You should see: the training error equal to the sum of the discarded eigenvalues")
print("(Eckart-Young), about 48 at m = 1, 27 at m = 10, 9 at m = 50 and 0 at m = 784 (every")
print("direction kept: d(e(x)) = x). The test error follows the training error closely: a")
print("linear code of m numbers cannot memorise. Predicting the mean image costs "
      f"{mean_image_error:.1f}.")

# Is PCA really the best P? A random orthonormal P of the same size does much worse.
m = 10
random_p, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((784, m)))
rec_random = (x_test - mean) @ random_p @ random_p.T + mean
print(f"A random orthonormal P with m = {m}: test error "
      f"{squared_error(x_test, rec_random):.1f} (PCA: {test_errors[ms.index(m)]:.1f}).")

# %%
banner("A memorising autoencoder: x_i -> i -> x_i")
lookup = LookupAutoencoder(x_train)
codes, found = lookup.encode(x_train)
train_error = squared_error(x_train, lookup.decode(codes))
print(f"training images found in the table: {found.sum()} of {n_train}; "
      f"training error: {train_error:.1f}")
codes_test, found_test = lookup.encode(x_test)
lookup_test_error = squared_error(x_test, lookup.decode(codes_test))
print(f"test images found in the table: {found_test.sum()} of {n_test}; test error with "
      f"the fallback code 0: {lookup_test_error:.1f}")
assert train_error == 0 and 100 < lookup_test_error < 120 and train.labels[0] == 3
assert 1.8 < lookup_test_error / mean_image_error < 2.3
print("You should see: a training error of exactly 0 with a one-number code, and a test")
print(f"error near 109, twice that of the mean image ({mean_image_error:.1f}): every test")
print("image decodes to the same training image (a 3).")

nearest = lookup.encode_nearest(x_test)
nn_error = squared_error(x_test, lookup.decode(nearest))
wrong_digit = float(np.mean(train.labels[:n_train][nearest] != test.labels[:n_test]))
print(f"\nThe generous version, code = index of the nearest training image: test error "
      f"{nn_error:.1f};\n{wrong_digit:.1%} of the test images decode to another digit.")
neighbours = squared_error(x_train[1:], x_train[:-1])
shuffled = x_train[np.random.default_rng(1).permutation(n_train)]
print(f"Squared distance between the decodings of codes i and i + 1: {neighbours:.1f}; "
      f"between\nrandom pairs of training images: {squared_error(x_train, shuffled):.1f}.")
if args.quick:
    assert 28 < nn_error < 35 and 0.10 < wrong_digit < 0.16
    print("You should see: a test error of about 32 and 13% wrong digits (--quick stores only")
    print("2,000 images): not bad, because the decoder stores every training image.")
else:
    assert 22 < nn_error < 26 and 0.02 < wrong_digit < 0.06
    print("You should see: a test error of about 24 and 4% wrong digits: good, because the")
    print("decoder stores every training image.")
random_pairs = squared_error(x_train, shuffled)
assert abs(neighbours / random_pairs - 1) < 0.03
assert 103 < neighbours < 107 and 103 < random_pairs < 107
print("But neighbouring codes are as far apart as random pairs (about 104 to 106, within 3% of")
print("each other): the integer code has no structure. PCA's 2-D code has: walk along a")
print("line in it and the image changes smoothly (figure code_space_walk.png).")

show(plot_pca_errors(ms, train_errors, test_errors, eigen_tail, mean_image_error,
                     (train_error, lookup_test_error),
                     figure_path(args.out, "pca_error_curve.png")))

# Figures: reconstructions of test images, then a walk through each code space.
first_ten = slice(0, 10)
reconstructions = [x_test[first_ten], lookup.decode(codes_test[first_ten]),
                   lookup.decode(nearest[first_ten])]
titles = ["test image", "lookup\n(no entry: code 0)", "lookup\n(nearest image)"]
for m in (2, 10, 50):
    reconstructions.append(pca_decode(pca_encode(x_test[first_ten], mean, directions, m),
                                      mean, directions))
    titles.append(f"PCA, m = {m}")
show(plot_image_rows(reconstructions, titles, figure_path(args.out, "reconstructions.png"),
                     "Test images and their reconstructions"))

start, end = pca_encode(x_test[:2], mean, directions, 2)      # codes of two test images
line = start + np.linspace(0, 1, 10)[:, None] * (end - start)  # (10, 2)
walk = [pca_decode(line, mean, directions), lookup.decode(np.arange(100, 110))]
show(plot_image_rows(walk, ["PCA, m = 2:\nz on a line", "lookup:\ncodes 100..109"],
                     figure_path(args.out, "code_space_walk.png"),
                     "Walking through the code space"))
