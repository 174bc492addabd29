# %% [markdown]
# # 7. Coding time: the complete VAE
#
# The slides' `vae_gen` puts the encoder (tutorial 6) and the decoder (tutorial 5)
# together with the reparameterisation (tutorial 4) in between:
#
#     mean, log_var = encoder(x)
#     z = mean + exp(0.5 * log_var) * eps,    eps ~ N(0, I)        (R1)
#     output = decoder(z)
#
# `numvae.VAE` is exactly this; its `forward(x, eps)` returns the named quantities
# `mean, log_var, std, eps, z, logits, output`, and `loss_and_grad(x, eps)` runs the
# backward pass of docs/derivations.md, section 4 ((V2)-(V6)). Here we write the forward
# pass by hand from the model's two halves, check it against `model.forward`, check that
# the sampler draws from the distribution the KL term assumes, and gradient-check the
# whole model: entry by entry (C1) on a small copy, and every entry of the full-size model at
# once along random directions (C2).
#
# Note `exp(0.5 * log_var)`: the *standard deviation*. A sampler that used exp(log_var),
# the variance, would draw from another distribution than the one the KL (K1) measures;
# at initialisation, where log_var is near 0, the two agree and the bug hides.
#
# Run: `python tutorials/07_vae.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time

import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae.diagnostics.gradcheck import check_model, check_model_directions
from numvae.io.datasets import load_mnist_mini
from numvae.model.kl import kl_divergence
from numvae.model.objectives import ELBO
from numvae.plots.tutorial import banner, figure_path, parse_args, show

# %% [markdown]
# ## The slide's forward pass, by hand

# %%
def forward_by_hand(model, x, eps):
    """The slides' vae_gen forward: x (batch, input_dim), eps (batch, latent_dim)."""
    mean, log_var = model.encode(x)                  # compressing data
    z = mean + np.exp(0.5 * log_var) * eps           # sampling in latent space (R1)
    output = model.decode(z)                         # decompressing: sigmoid(logits)
    return dict(output=output, z=z, mean=mean, log_var=log_var)

# %% [markdown]
# ## Does the sampler draw from q?
#
# The KL term (K1) is the KL of N(mean, exp(log_var)) from N(0, 1). Its Monte Carlo
# estimate E_z[log q(z) - log p(z)], with z from the sampler, must agree with (K1). With
# the right sampler it does; with the wrong one (std = exp(log_var)) it does not. We use a
# confident encoder output, log_var = -3, where the two differ by a factor of 4.5.

# %%
def monte_carlo_kl(z, mean, log_var):
    """mean over draws of log N(z; mean, exp(log_var)) - log N(z; 0, 1), in 1-D, and its
    standard error."""
    log_q = -0.5 * (np.log(2 * np.pi) + log_var + (z - mean) ** 2 / np.exp(log_var))
    log_p = -0.5 * (np.log(2 * np.pi) + z**2)
    terms = log_q - log_p
    return float(np.mean(terms)), float(terms.std(ddof=1) / np.sqrt(len(terms)))


def plot_sampler(z_right, z_wrong, mean, log_var, path):
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    grid = np.linspace(mean - 1.0, mean + 1.0, 400)
    var = np.exp(log_var)
    ax.hist(z_right, bins=120, range=(grid[0], grid[-1]), density=True, alpha=0.6,
            label="z = mean + exp(0.5 log_var) eps")
    ax.hist(z_wrong, bins=120, range=(grid[0], grid[-1]), density=True, alpha=0.6,
            label="z = mean + exp(log_var) eps  (wrong)")
    ax.plot(grid, np.exp(-0.5 * (grid - mean) ** 2 / var) / np.sqrt(2 * np.pi * var), "k",
            label="N(mean, exp(log_var)), the q of the KL term")
    ax.set_xlabel("z")
    ax.set_ylabel("density")
    ax.set_title(f"Sampling q(z|x) with mean = {mean}, log_var = {log_var}")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## The story

# %%
args = parse_args("07_vae", "The complete VAE: forward by hand, sampler, gradient check.")
rng = np.random.default_rng(0)
_, test = load_mnist_mini()
batch = 8 if args.quick else 64

# %%
banner("The slides' VAE")
model = numvae.VAE(784, shared_dim=128, latent_dim=2, seed=0)
print(model)
print(f"{model.n_params():,} parameters:")
for name, value in model.params.items():
    print(f"  {name:<30} {str(value.shape):<11}")

# %%
banner("The forward pass by hand, against model.forward")
x = test.images[:batch]
eps = rng.standard_normal((batch, model.latent_dim)).astype(np.float32)
mine = forward_by_hand(model, x, eps)
cache = model.forward(x, eps)           # eps (batch, M) is read as one sample, S = 1
for name in ("mean", "log_var", "z", "output"):
    print(f"  {name:<8} {str(mine[name].shape):<11} largest difference "
          f"{np.abs(mine[name] - cache[name]).max():.1e}")
    assert np.allclose(mine[name], cache[name], atol=1e-6)
many = rng.standard_normal((3, batch, model.latent_dim)).astype(np.float32)
cache = model.forward(x, many)          # S = 3 samples of z per image
print(f"with eps of shape {many.shape} (S, batch, latent_dim): z {cache['z'].shape}, "
      f"output {cache['output'].shape}; the S draws are stacked so that the decoder "
      f"runs once")
print("You should see: differences of 0 (the same float32 operations in the same order).")

# %%
banner("The sampler and the KL term agree (and a wrong sampler does not)")
mean, log_var = 0.5, -3.0
n = 20_000 if args.quick else 1_000_000
noise = rng.standard_normal(n)
z_right = mean + np.exp(0.5 * log_var) * noise
z_wrong = mean + np.exp(log_var) * noise
analytic = float(kl_divergence(np.array([[mean]]), np.array([[log_var]]))[0])
print(f"KL by (K1):                        {analytic:.4f}")
right, right_se = monte_carlo_kl(z_right, mean, log_var)
wrong, wrong_se = monte_carlo_kl(z_wrong, mean, log_var)
print(f"Monte Carlo, std = exp(0.5 log_var): {right:.4f} +- {right_se:.4f}"
      f"   (sample std {z_right.std():.4f}, exp(0.5 log_var) = {np.exp(0.5 * log_var):.4f})")
print(f"Monte Carlo, std = exp(log_var):     {wrong:.4f} +- {wrong_se:.4f}"
      f"   (sample std {z_wrong.std():.4f})")
assert abs(right - analytic) < 4 * right_se and abs(wrong - 1.60) < 0.01
print("You should see: 1.150 from (K1) and from the right sampler, within a few standard")
print("errors (0.0007 with 10^6 draws, 0.005 with --quick's 20,000),")
print("but about 1.60 from the wrong one, whose draws are 4.5 times too concentrated: the")
print("model would be trained on one distribution and regularised as if it were another.")
show(plot_sampler(z_right, z_wrong, mean, log_var, figure_path(args.out, "sampler_check.png")))

# %%
banner("The loss and its gradient, checked by central differences (float64)")
print(f"mean negative ELBO of the untrained model on {batch} test images: "
      f"{model.loss_and_grad(x):.1f} nats (Bernoulli decoder, eq. V1)")
# The same architecture on 20 "pixels", in float64: the same code, cheap checks.
small = numvae.VAE(20, shared_dim=128, latent_dim=2, objective=ELBO(n_samples=2),
                   dtype=np.float64, seed=1)
x_small = np.random.default_rng(2).uniform(size=(4, 20))
errors = check_model(small, x_small, n_entries=8 if args.quick else 30)
for name, error in errors.items():
    print(f"  {name:<32} relative error {error:.1e}")
assert max(errors.values()) < 1e-6
print("You should see: 543-546 nats for the untrained model (784 pixels at about 0.69")
print("nats each: it predicts 0.5 everywhere), and every relative error below 1e-6.")

# Entry by entry, the full-size model's 444,404 parameters would need 888,808 loss
# evaluations. Along a random unit direction u, one central difference checks the
# projection g . u of a whole array's gradient at once (eq. C2).
n_directions = 4 if args.quick else 8
start = time.perf_counter()
directions = check_model_directions(model, x[:8], n_directions=n_directions)
seconds = time.perf_counter() - start
n_evaluations = 2 * n_directions * len(directions)  # two per direction and array
print(f"\nevery one of the {model.n_params():,} entries of the full-size model, along random")
print(f"directions: largest relative error {max(directions.values()):.1e}, "
      f"{n_evaluations} loss evaluations ({seconds:.2f} s on this machine)")
assert max(directions.values()) < 1e-4 and n_evaluations < 1000
print("You should see: an error of about 1e-6 (the loss is near 545 nats, so roundoff is")
print("larger than on the small model), from a few hundred loss evaluations instead of")
print("888,808.")

# Why eps must be held fixed: with a fresh eps on each call the loss is a random
# function, and a finite difference of it measures the noise, not the slope.
h, name = 1e-5, "decoder.decompressor.0.W"
eps_fixed = np.random.default_rng(3).standard_normal((2, 4, 2))
small.loss_and_grad(x_small, eps_fixed)
exact = small.grads[name][0, 0]
weight = small.params[name]
weight[0, 0] += h
up = small.loss(x_small)                  # eps drawn afresh from small.rng
weight[0, 0] -= 2 * h
down = small.loss(x_small)
weight[0, 0] += h
print(f"\n{name}[0, 0]: exact gradient {exact:.3e}; a central difference with a new eps")
print(f"on each side: {(up - down) / (2 * h):.3e}")
print("You should see: a 'gradient' many orders of magnitude off: randomness must be an")
print("input (eps passed in) for the loss to be a function of the parameters alone.")
