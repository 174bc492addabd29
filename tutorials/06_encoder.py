# %% [markdown]
# # 6. Coding time: the encoder q_phi(z | x)
#
# The encoder gives, for each image x, the two parameters of the Gaussian
# q_phi(z | x) = N(mu_phi(x), diag(sigma_phi^2(x))). As on the slides, mean and variance
# share most of their network, a *compressor*:
#
#     compressor:  nn_linear(input_dim, 256) - relu - nn_linear(256, shared_dim) - relu
#     mean head:    nn_linear(shared_dim, latent_dim)
#     log_var head: nn_linear(shared_dim, latent_dim)
#
# The second head outputs log_var = log sigma^2, not sigma: any real number is a valid
# log-variance, so no constraint is needed, and sigma = exp(0.5 log_var) is always > 0.
#
# Backward, the two heads read the same shared layer u, so u receives gradient from
# both; the multivariable chain rule *adds* them (docs/derivations.md, (V6)):
#
#     du = dmean W_mean^T + dlog_var W_log_var^T.
#
# Forgetting one of the two terms (writing `=` where `+` is needed, the first bug of
# micrograd) leaves the loss unchanged and every gradient in the compressor wrong. We make
# that mistake on purpose and let the gradient check catch it.
#
# Run: `python tutorials/06_encoder.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import numvae
from numvae import plots
from numvae.diagnostics.gradcheck import check_arrays
from numvae.io.datasets import load_mnist_mini
from numvae.model.kl import kl_divergence, kl_divergence_backward
from numvae.nn.layers import Dense, ReLU, Sequential
from numvae.plots.tutorial import banner, figure_path, parse_args, show

# %% [markdown]
# ## The three modules, and forward and backward through them

# %%
def build_encoder(input_dim, shared_dim, latent_dim, rng, dtype=np.float32):
    """The slides' encoder_gen: a dict of its three modules."""
    return dict(
        compressor=Sequential(Dense(input_dim, 256, rng=rng, dtype=dtype), ReLU(),
                              Dense(256, shared_dim, rng=rng, dtype=dtype), ReLU()),
        mean=Dense(shared_dim, latent_dim, rng=rng, dtype=dtype),
        log_var=Dense(shared_dim, latent_dim, rng=rng, dtype=dtype))


def encoder_forward(encoder, x):
    """x (batch, input_dim) -> mean, log_var, each (batch, latent_dim), and the cache
    that the backward pass is handed: what each module's forward returned for it."""
    shared, compressor_cache = encoder["compressor"].forward(x)   # (batch, shared_dim)
    mean, _ = encoder["mean"].forward(shared)
    log_var, _ = encoder["log_var"].forward(shared)
    return mean, log_var, dict(compressor=compressor_cache, shared=shared)


def encoder_backward(encoder, dmean, dlog_var, cache, add_both_heads=True):
    """Fill every parameter gradient from dL/dmean and dL/dlog_var (batch, latent_dim)."""
    dshared_from_mean = encoder["mean"].backward(dmean, cache["shared"])
    dshared_from_log_var = encoder["log_var"].backward(dlog_var, cache["shared"])
    if add_both_heads:
        dshared = dshared_from_mean + dshared_from_log_var   # V6: the fork adds
    else:
        dshared = dshared_from_mean                          # the bug: one path dropped
    encoder["compressor"].backward(dshared, cache["compressor"], need_input_grad=False)


def parameters(encoder, kind="params"):
    """All parameters (or gradients) in one dict, named like numvae.VAE's."""
    return {f"encoder.{module}.{name}": array
            for module, layer in encoder.items()
            for name, array in getattr(layer, kind).items()}

# %% [markdown]
# ## A loss that needs both heads: the KL term
#
# The regularisation term of the ELBO, KL(q_phi(z | x) || N(0, I)) (K1), depends on the
# encoder only, on both its outputs: dKL/dmean = mean and dKL/dlog_var =
# (exp(log_var) - 1) / 2 (K2). We use its mean over the batch as the loss to check.

# %%
def kl_loss(encoder, x):
    mean, log_var, _ = encoder_forward(encoder, x)
    return float(np.mean(kl_divergence(mean, log_var)))


def kl_loss_and_grad(encoder, x, add_both_heads=True):
    mean, log_var, cache = encoder_forward(encoder, x)
    loss = float(np.mean(kl_divergence(mean, log_var)))
    dmean, dlog_var = kl_divergence_backward(mean, log_var)    # K2
    encoder_backward(encoder, dmean / len(x), dlog_var / len(x), cache, add_both_heads)
    return loss

# %% [markdown]
# ## The story

# %%
args = parse_args("06_encoder", "The slides' encoder, built and gradient-checked.")
input_dim, shared_dim, latent_dim = 784, 128, 2
_, test = load_mnist_mini()
n_plot = 500 if args.quick else 2000

# %%
banner("Build the encoder")
encoder = build_encoder(input_dim, shared_dim, latent_dim, np.random.default_rng(0))
for module, layer in encoder.items():
    print(f"  {module:<10} {layer}")
library = numvae.VAE(input_dim, shared_dim=shared_dim, latent_dim=latent_dim, seed=0)
for name, value in parameters(encoder).items():   # same names as numvae.VAE.params
    library.params[name][...] = value
x = test.images[:n_plot]
mean, log_var, _ = encoder_forward(encoder, x)
library_mean, library_log_var = library.encode(x)
assert np.allclose(mean, library_mean, atol=1e-6)
assert np.allclose(log_var, library_log_var, atol=1e-6)
print(f"with the same weights, numvae.VAE.encode gives the same mean and log_var "
      f"(largest difference {np.abs(mean - library_mean).max():.1e})")

# %%
banner("What the untrained encoder says")
std = np.exp(0.5 * log_var)
kl = kl_divergence(mean, log_var)
print(f"mean    {mean.shape}: entries between {mean.min():.3f} and {mean.max():.3f}")
print(f"log_var {log_var.shape}: entries between {log_var.min():.3f} and {log_var.max():.3f}"
      f"  -> std between {std.min():.3f} and {std.max():.3f}")
print(f"KL(q(z|x) || p(z)): {kl.mean():.4f} nats per image on average")
print("You should see: means and log-variances within about 0.1 of 0 (std between 0.98")
print("and 1.06): at initialisation q(z | x) is close to the prior N(0, I) for every")
print("image, the KL is tiny (about 0.003 nats) and z says little about x.")

# %%
banner("Gradient check of the encoder through the KL (float64)")
# The slide's layers with 20 input pixels instead of 784: the same code, cheaper checks.
check_dim = 20
encoder64 = build_encoder(check_dim, shared_dim, latent_dim, np.random.default_rng(0),
                          np.float64)
x64 = np.random.default_rng(1).uniform(size=(4, check_dim))
n_entries = 10 if args.quick else 30
results = {}
for add_both_heads in (True, False):
    kl_loss_and_grad(encoder64, x64, add_both_heads)
    analytic = {name: grad.copy() for name, grad in parameters(encoder64, "grads").items()}
    results[add_both_heads] = check_arrays(lambda: kl_loss(encoder64, x64),
                                           parameters(encoder64), analytic,
                                           n_entries=n_entries)
print(f"{'parameter':<30} {'du = both heads':>16} {'du = mean head only':>20}")
for name in results[True]:
    print(f"{name:<30} {results[True][name]:>16.1e} {results[False][name]:>20.1e}")
assert max(results[True].values()) < 1e-6
dropped = [results[False][name] for name in results[False] if "compressor" in name]
assert 0.1 < min(dropped) and max(dropped) < 0.5, dropped
print("You should see: every relative error below 1e-6 when the heads' gradients are")
print("added; with the log_var head's path dropped, the two heads are still right (they")
print("do not depend on du) but every compressor gradient is off, relative errors between")
print(f"0.1 and 0.5 (here {min(dropped):.2f} to {max(dropped):.2f}).")

# %%
banner("Figure")
show(plots.latent_space(library, x, test.labels[:n_plot],
                        path=figure_path(args.out, "untrained_latent_space.png")))
print("You should see: the encoder means of the test images in a cloud 0.1 to 0.2 across")
print("near 0, the digits mixed; only the 1s (few lit pixels) drift a little to one side.")
print("A random network sorts images a little by brightness; nothing is learnt yet")
print("(compare with tutorial 9).")
