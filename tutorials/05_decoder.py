# %% [markdown]
# # 5. Coding time: the decoder p_theta(x | z)
#
# The slides' decoder maps a latent z (latent_dim numbers) to the mean mu_theta(z) of the
# image distribution, p_theta(x | z) = N(mu_theta(z), sigma^2 I), with the network
#
#     nn_linear(latent_dim, 32) - relu - nn_linear(32, 256) - relu
#     - nn_linear(256, input_dim) - sigmoid
#
# The sigmoid keeps each output pixel in (0, 1), like the data. In numvae the same network
# is a `numvae.nn.layers.Sequential` of `Dense`, `ReLU` and `Sigmoid`; each layer's `forward`
# returns its output and a cache, what its `backward` needs, and the backward pass is
# handed that cache (docs/derivations.md, section 8, (D1)-(D4)).
#
# We build it, run it on draws from the prior, put a Gaussian likelihood (G1) on top,
# send the gradient back (G2, then D4, D2, D3), and check every gradient against central
# finite differences (C1) on the spot.
#
# Run: `python tutorials/05_decoder.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import numvae
from numvae import plots
from numvae.diagnostics.gradcheck import check_arrays, check_layer
from numvae.io.datasets import load_mnist_mini
from numvae.model.likelihoods import gaussian_nll, gaussian_nll_backward
from numvae.nn.layers import Dense, ReLU, Sequential, Sigmoid
from numvae.plots.tutorial import banner, figure_path, parse_args, show

# %% [markdown]
# ## The decompressor, as on the slide
#
# `rng` is a `numpy.random.Generator` owned by the caller: the same seed gives the same
# initial weights, and no global random state is touched.

# %%
def decompressor(latent_dim, input_dim, rng, dtype=np.float32):
    """The slides' decompressor_gen(latent_dim, input_dim)."""
    return Sequential(
        Dense(latent_dim, 32, rng=rng, dtype=dtype), ReLU(),
        Dense(32, 256, rng=rng, dtype=dtype), ReLU(),
        Dense(256, input_dim, rng=rng, dtype=dtype), Sigmoid())

# %% [markdown]
# ## The reconstruction term and its gradient
#
# For a batch of B images, the loss is the mean over the batch of -log p(x | z) (G1).
# Its gradient with respect to the decoder output is (output - x) / (sigma^2 B) (G2 with
# the 1/B of the mean); `Sequential.backward` carries it through the Sigmoid (D4), the
# Dense layers (D2) and the ReLUs (D3) down to z, filling `decoder.grads` on the way.

# %%
def reconstruction_loss(decoder, z, x, sigma):
    """Mean over the batch of -log N(x; decoder(z), sigma^2 I): a float."""
    output, _ = decoder.forward(z)
    return float(np.mean(gaussian_nll(output, x, sigma)))


def reconstruction_loss_and_grad(decoder, z, x, sigma):
    """The loss above, and dloss/dz (batch, latent_dim); fills ``decoder.grads``."""
    output, cache = decoder.forward(z)                                   # (batch, input_dim)
    loss = float(np.mean(gaussian_nll(output, x, sigma)))
    doutput = gaussian_nll_backward(output, x, sigma) / len(x)   # G2, and the 1/B
    dz = decoder.backward(doutput, cache)                                # D4, D2, D3
    return loss, dz

# %% [markdown]
# ## The story

# %%
args = parse_args("05_decoder", "The slides' decoder, built and gradient-checked.")
rng = np.random.default_rng(0)
latent_dim, input_dim, sigma = 2, 784, 1.0
batch = 8 if args.quick else 32

# %%
banner("Build the decoder")
decoder = decompressor(latent_dim, input_dim, rng)
print(decoder)
for name, value in decoder.params.items():
    print(f"  {name:<5} {str(value.shape):<11} {value.dtype}")
n_params = sum(p.size for p in decoder.params.values())
library = numvae.VAE(input_dim, shared_dim=128, latent_dim=latent_dim, seed=0)
print(f"{n_params:,} parameters; numvae.VAE builds the same network as "
      f"model.decoder.decompressor:\n  {library.decoder.decompressor}")
assert repr(library.decoder.decompressor) == repr(decoder)

# %%
banner("Decode draws from the prior p(z) = N(0, I)")
z = rng.standard_normal((batch, latent_dim)).astype(np.float32)
output, _ = decoder.forward(z)
print(f"z {z.shape} -> output {output.shape}: values in [{output.min():.3f}, "
      f"{output.max():.3f}], mean {output.mean():.3f}, std over the batch of one "
      f"pixel {output.std(axis=0).mean():.4f}")
assert 0.25 < output.min() and output.max() < 0.75 and abs(output.mean() - 0.5) < 0.02
assert output.std(axis=0).mean() < 0.03
print("You should see: outputs around 0.5 (between about 0.3 and 0.7), and nearly the same")
print("image for every z (a pixel varies by about 0.02 over the batch): the untrained")
print("decoder all but ignores z. Training will make z matter.")

# %%
banner("The Gaussian reconstruction term on real images")
x = load_mnist_mini()[1].images[:batch]
loss, dz = reconstruction_loss_and_grad(decoder, z, x, sigma)
squared = float(np.mean(np.sum((x - output) ** 2, axis=1)))
constant = 0.5 * input_dim * np.log(2 * np.pi * sigma**2)
print(f"-log p(x|z) = {loss:.2f} nats per image = ||x - output||^2 / (2 sigma^2) "
      f"{squared / (2 * sigma**2):.2f} + (N/2) log(2 pi sigma^2) {constant:.2f}")
print(f"dz: shape {dz.shape}, largest entry {np.abs(dz).max():.2e}")
assert 790 < loss < 830 and abs(constant - 720.4) < 0.1
print("You should see: about 800 nats, of which 720 are the constant: with sigma = 1 a")
print("pixel error of at most 1 hardly matters (tutorial 13 trains this decoder for several")
print("sigma and shows what a large one does).")

# %%
banner("Gradient checks (float64, central differences, h = 1e-5)")
# Central differences need float64: in float32 the rounding of f(x + h) - f(x - h)
# alone would give relative errors near 1e-3. The decoder is checked with the slide's
# layers but 20 output pixels instead of 784: the same code, 40 times fewer products.
small = np.random.default_rng(1)
errors = {}
for layer, width in [(Dense(3, 4, rng=small, dtype=np.float64), 3), (ReLU(), 5),
                     (Sigmoid(), 5)]:
    u = small.standard_normal((4, width))
    for name, error in check_layer(layer, u).items():
        errors[f"{type(layer).__name__}: d{name}"] = error
check_dim = 20
decoder64 = decompressor(latent_dim, check_dim, np.random.default_rng(0), np.float64)
z64 = small.standard_normal((4, latent_dim))
x64 = small.uniform(size=(4, check_dim))
_, dz64 = reconstruction_loss_and_grad(decoder64, z64, x64, sigma)
analytic = {"z": dz64, **{name: grad.copy() for name, grad in decoder64.grads.items()}}
n_entries = 10 if args.quick else 40          # random entries of each parameter
checked = check_arrays(lambda: reconstruction_loss(decoder64, z64, x64, sigma),
                       {"z": z64, **decoder64.params}, analytic, n_entries=n_entries)
errors.update({f"decoder + Gaussian loss: d{name}": e for name, e in checked.items()})
for name, error in errors.items():
    print(f"  {name:<34} relative error {error:.1e}")
worst = max(errors.values())
assert worst < 1e-6, worst
print(f"You should see: every relative error below 1e-6 (here the largest is {worst:.0e});")
print("a wrong gradient gives 1e-2 or more (one off by a factor 2 gives exactly 0.5). The")
print("single layers agree to about 1e-11, the decoder with its loss to about 1e-8 (more")
print("operations, more rounding in f(x + h) - f(x - h)).")

# %%
banner("Figures")
# numvae.VAE's decoder has the same parameter names behind "decoder.decompressor.", so
# we copy our weights in and let numvae.plots draw the decoder's manifold.
for name, value in decoder.params.items():
    library.params[f"decoder.decompressor.{name}"][...] = value
show(plots.latent_grid(library, n=8 if args.quick else 12,
                       path=figure_path(args.out, "untrained_latent_grid.png")))
print("You should see: one grey speckled field, because the tiles are identical and sit")
print("edge to edge: before training, every z decodes to the same noise (compare with the")
print("digits of tutorial 9 after training).")
