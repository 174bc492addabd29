# %% [markdown]
# # 23. A gallery of bugs that real VAE code shipped, and the checks that catch them
#
# The questions users of VAE tutorials ask in their issues, over and over, are not how to
# write a VAE but why theirs misbehaves. Each bug below shipped in public code or was
# reported against it (the sources are in `numvae.diagnostics.gallery.BUGS`). None of them
# is caught by a gradient check: the gradient of a wrong loss is right. Each *is* caught
# by a property check (`numvae.diagnostics.properties.check_properties`), which recomputes
# what a VAE must satisfy from its own formulas.
#
# For each bug: the bug as a small part (`with_bug(model, name)` puts it in a numvae VAE)
# or function, what it does to training and to the figures, measured beside the correct
# model trained on the same data with the same seeds, and the check's one line.
#
# Run: `python tutorials/23_bug_gallery.py [--quick] [--out DIR]`. Full mode: mnist-mini
# (binarised), latent 2, 5 epochs per model; --quick: the 8 x 8 toy blobs, a few seconds.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself), as in
# the other tutorials.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure

from numvae.diagnostics.evaluate import iwae_log_likelihood
from numvae.diagnostics.gallery import (
    BUGS,
    reconstruction_as_log_px,
    unspanning_grid,
    with_bug,
)
from numvae.diagnostics.latent_info import latent_information
from numvae.diagnostics.properties import check_properties, format_findings
from numvae.io import datasets
from numvae.model.kl import kl_divergence
from numvae.model.objectives import ELBO
from numvae.model.vae import VAE
from numvae.plots.latent import gaussian_grid
from numvae.plots.tutorial import banner, figure_path, parse_args, show
from numvae.training.loop import TrainingDivergedError, fit
from numvae.training.optim import Adam

args = parse_args("23_bug_gallery", "Bugs that real VAE code shipped, and their checks")

# %% [markdown]
# ## The data and the correct model
#
# Binary images (a Bernoulli likelihood models 0s and 1s), a latent of 2, Adam. Every
# model below starts from the same weights (seed 0) and sees the batches in the same
# order (seed 0): only the bug differs.

# %%
if args.quick:
    toy = datasets.make_toy(800, seed=0)
    grey_train, grey_test = toy.images[:600], toy.images[600:]
    binary_train, binary_test = ((images > 0.3).astype(np.float32) for images in (grey_train,
                                                                                  grey_test))
    width, epochs, lr = dict(input_dim=64, shared_dim=16, encoder_hidden=(32,),
                             decoder_hidden=(32,)), 40, 1e-2
else:
    train, test = datasets.load_mnist_mini()
    grey_train, grey_test = train.images, test.images[:1000]
    binary_train = datasets.binarize(grey_train, np.random.default_rng(1))
    binary_test = datasets.binarize(grey_test, np.random.default_rng(2))
    width, epochs, lr = dict(input_dim=784, shared_dim=128), 5, 1e-3


def new_model(kl_weight=1.0, bug=None):
    model = VAE(width["input_dim"], width["shared_dim"], 2, objective=ELBO(kl_weight=kl_weight),
                seed=0,
                **{k: v for k, v in width.items() if k not in ("input_dim", "shared_dim")})
    return model if bug is None else with_bug(model, bug)


def trained(model, images=None):
    images = binary_train if images is None else images
    fit(model, Adam(model.params, lr=lr), images, epochs=epochs, batch_size=50, seed=0,
        progress=False, log=None)
    return model


def true_rate(model, images):
    """The rate by K1 itself on the encoder's heads: what the model's own KL term claims
    does not enter."""
    mean, log_var = model.encode(images)
    return float(np.mean(kl_divergence(mean.astype(np.float64), log_var.astype(np.float64))))


def finding(model, images, name, **options):
    return {f.name: f for f in check_properties(model, images, **options)}[name]


correct = trained(new_model())
info = latent_information(correct, binary_test)
iwae = iwae_log_likelihood(correct, binary_test[:200], k=100, seed=0)["log_px"]
banner("The correct model")
print(f"rate {info['rate']:.2f}, distortion {info['distortion']:.2f}, I_q "
      f"{info['mutual_info']:.2f}, {info['active_units']} active units; IWAE_100 log p(x) "
      f"{iwae:.2f} on the first 200 test images")
correct_findings = check_properties(correct, binary_test, grid=gaussian_grid(15),
                                    reported_log_px=iwae)
print(format_findings(correct_findings))
assert all(f.passed for f in correct_findings) and info["active_units"] == 2
print("You should see: PASS on every line, and both latent units active.")

# %% [markdown]
# ## 1. The variance used as the standard deviation
#
# `z = mean + exp(log_var) * eps` where the standard deviation is exp(0.5 log_var) (R1),
# while the KL reads exp(log_var) as the variance: the sampler and the KL describe two
# different posteriors. numpy-ml's VAE samples this way today. The rate the model reports
# (K1 at the heads) is not the rate of the posterior it samples from, N(mean, exp(2 log_var)).

# %%
banner("1. std_is_variance")
buggy = trained(new_model(bug="std_is_variance"))
mean, log_var = (h.astype(np.float64) for h in buggy.encode(binary_test))
reported = float(np.mean(kl_divergence(mean, log_var)))
sampled = float(np.mean(kl_divergence(mean, 2 * log_var)))   # the posterior it samples
print(f"encoder log_var: median {np.median(log_var):.2f}; claimed std exp(0.5 log_var) "
      f"median {np.median(np.exp(0.5 * log_var)):.3f}, used std exp(log_var) "
      f"{np.median(np.exp(log_var)):.3f}")
print(f"reported rate {reported:.2f} nats; rate of the posterior it samples {sampled:.2f}")
found = finding(buggy, binary_test, BUGS["std_is_variance"]["check"])
print(format_findings([found]))
assert sampled > reported and not found.passed
print("You should see: a used std smaller than the claimed one (log_var < 0), a sampled")
print("posterior whose KL exceeds the reported one, and FAIL: the sample variance is")
print("exp(2 log_var), not exp(log_var).")

# %% [markdown]
# ## 2. A mean over pixels where the likelihood sums them
#
# `reduction="mean"` in a framework's binary cross-entropy divides the reconstruction by
# the number of pixels N while the KL stays a sum: the KL weighs N times more (N = 784 on
# MNIST, 64 on the toy), a beta-VAE with beta = N nobody asked for. The code collapses.

# %%
banner("2. mean_over_pixels")
buggy = trained(new_model(bug="mean_over_pixels"))
bug_info = latent_information(buggy, binary_test)
print(f"correct: I_q {info['mutual_info']:.2f}, {info['active_units']} active units; "
      f"mean over pixels: I_q {bug_info['mutual_info']:.2f}, {bug_info['active_units']} active")
found = finding(buggy, binary_test, BUGS["mean_over_pixels"]["check"])
print(format_findings([found]))
assert bug_info["mutual_info"] < 0.25 * info["mutual_info"] and not found.passed
assert bug_info["active_units"] < info["active_units"]
print("You should see: the information in the code all but gone (a quarter of the correct")
print("model's or less) and fewer active units; FAIL: the loss is the sum over pixels / N.")

# %% [markdown]
# ## 3. The KL's sign
#
# `0.5 * sum(1 + log_var - mean^2 - exp(log_var))` is minus the KL; added to the loss where
# the KL belongs, it rewards posteriors far from the prior. FluxML's model zoo shipped it.
# Nothing bounds that reward: the variances grow until exp(log_var) overflows. We train
# 500 images at a time and keep the last finite weights.

# %%
def trained_until_divergence(model, chunk=500):
    """Train on chunks of ``chunk`` images, keeping the weights before each: (the model at
    its last finite chunk, the training step it diverged at, or None)."""
    optimizer = Adam(model.params, lr=lr)
    steps_per_chunk = -(-chunk // 50)
    for round_ in range(epochs * (len(binary_train) // chunk)):
        start = round_ * chunk % len(binary_train)
        saved = {name: value.copy() for name, value in model.params.items()}
        try:
            fit(model, optimizer, binary_train[start:start + chunk], epochs=1, batch_size=50,
                seed=round_, progress=False, log=None)
        except TrainingDivergedError:
            for name, value in model.params.items():
                value[...] = saved[name]
            return model, round_ * steps_per_chunk
    return model, None


banner("3. negated_kl")
buggy, diverged = trained_until_divergence(new_model(bug="negated_kl"))
negated_rate = true_rate(buggy, binary_test)
print(f"training diverged after about {diverged} steps; we keep the weights before that"
      if diverged else f"training ran its {epochs} epochs")
print(f"rate (K1 on the heads): correct {true_rate(correct, binary_test):.2f}, negated KL "
      f"{negated_rate:.3g} nats")
found = finding(buggy, binary_test, BUGS["negated_kl"]["check"])
print(format_findings([found]))
assert negated_rate > 3 * true_rate(correct, binary_test) and not found.passed
print("You should see: a rate several times the correct one (the posteriors run away from")
print("the prior), training that may not even finish, and FAIL: the KL term is negative.")

# %% [markdown]
# ## 4. Beta written but never applied
#
# A `beta` argument stored and printed, and a loss that adds the KL with weight 1. With
# the same seeds, the "beta = 4" model is the beta = 1 model, weight for weight.

# %%
banner("4. beta_ignored")
buggy = trained(new_model(kl_weight=4.0, bug="beta_ignored"))
beta_4 = trained(new_model(kl_weight=4.0))
same = all(np.array_equal(buggy.params[k], correct.params[k]) for k in correct.params)
print(f"the 'beta = 4' model equals the beta = 1 model weight for weight: {same}")
print(f"rate: beta = 1 {true_rate(correct, binary_test):.2f}, 'beta = 4' "
      f"{true_rate(buggy, binary_test):.2f}, beta = 4 {true_rate(beta_4, binary_test):.2f}")
found = finding(buggy, binary_test, BUGS["beta_ignored"]["check"])
print(format_findings([found]))
assert same and true_rate(beta_4, binary_test) < true_rate(correct, binary_test)
assert not found.passed
print("You should see: True, the real beta = 4 at a lower rate, and FAIL: raising beta by 1")
print("does not move the loss by the KL.")

# %% [markdown]
# ## 5. A Bernoulli likelihood on grey levels, its value read as a log-likelihood
#
# The binary cross-entropy accepts grey levels, and its value on them is not a
# log-likelihood of anything: per pixel it is the entropy of the grey level plus a KL, so
# it cannot go below sum_i H(x_i), however good the model.

# %%
banner("5. grey_bernoulli")
grey_model = trained(new_model(), grey_train)
grey_info = latent_information(grey_model, grey_test)
p = np.clip(grey_test.astype(np.float64), 1e-12, 1 - 1e-12)
floor = float(np.mean(np.sum(-(p * np.log(p) + (1 - p) * np.log(1 - p)), axis=1)))
print(f"cross-entropy -ELBO on grey images {grey_info['negative_elbo']:.2f} nats; its floor, "
      f"the entropy of the grey levels, {floor:.2f}; binary model -ELBO {info['negative_elbo']:.2f}")
found = finding(grey_model, grey_test, BUGS["grey_bernoulli"]["check"])
print(format_findings([found]))
assert grey_info["negative_elbo"] > floor and not found.passed
print("You should see: a cross-entropy above its floor (no model can go below it), a number")
print("not comparable with the binary model's, and FAIL until it is called a cross-entropy.")

# %% [markdown]
# ## 6. A latent grid that does not span the prior
#
# The figure that decodes a grid of z values shows the latent space only if the grid
# covers where p(z) puts its mass; linspace(-1, 1) covers the middle 68% of each axis.

# %%
banner("6. unspanning_grid")
means = correct.encode(binary_test)[0]
inside = {name: float(np.mean(np.all(np.abs(means) <= np.abs(grid).max(), axis=1)))
          for name, grid in [("linspace(-1, 1)", unspanning_grid(15)),
                             ("Gaussian quantiles", gaussian_grid(15))]}
print("test images whose code lies inside the grid's square: " +
      ", ".join(f"{name} {share:.0%}" for name, share in inside.items()))
found = finding(correct, binary_test, "grid_spans_prior", grid=unspanning_grid(15))
print(format_findings([found]))
assert inside["linspace(-1, 1)"] < inside["Gaussian quantiles"] and not found.passed
print("You should see: fewer images inside the narrow grid than inside the quantile grid,")
print("and FAIL: the grid stops at the prior's 16% and 84% quantiles.")

# %% [markdown]
# ## 7. The reconstruction term reported as log p(x)
#
# -E_q[log p(x|z)] is the distortion, not the likelihood: it exceeds the ELBO by the whole
# KL, and log p(x) by the KL minus the gap. A table of "log-likelihoods" made of it looks
# better than every honest one.

# %%
banner("7. reconstruction_as_log_px")
claimed = reconstruction_as_log_px(correct, binary_test[:200])
print(f"'log p(x)' = -reconstruction {claimed:.2f}; IWAE_100 {iwae:.2f}; ELBO "
      f"{-info['negative_elbo']:.2f} (1,000 images)")
found = finding(correct, binary_test, "reported_log_px", reported_log_px=claimed)
print(format_findings([found]))
assert claimed > iwae + 0.5 * info["rate"] and not found.passed
print("You should see: the claimed figure above the importance-weighted estimate by more")
print("than half the rate, and FAIL.")

# %% [markdown]
# ## The table: each bug and the check that catches it

# %%
banner("Bug -> check")
for name, entry in BUGS.items():
    print(f"{name:<26} {entry['check']:<18} {entry['what']}")
    print(f"{'':<26} source: {entry['source']}")
print("You should see: seven bugs, each paired with the check that failed on it above.")

# %% [markdown]
# ## Figure

# %%
def plot_gallery(means, path):
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax_bar, ax_grid = fig.subplots(1, 2)
    names = ["correct", "std_is_variance (sampled)", "negated_kl", "beta = 4"]
    values = [true_rate(correct, binary_test), sampled, negated_rate,
              true_rate(beta_4, binary_test)]
    ax_bar.barh(names, values, color=["C2", "C3", "C3", "C0"])
    ax_bar.set_xscale("log")  # the negated KL's rate runs away by many orders of magnitude
    ax_bar.set_xlabel("rate R, nats per image (K1 on the heads; log scale)")
    ax_bar.set_title("What three bugs do to the rate")
    ax_grid.scatter(means[:, 0], means[:, 1], s=3, alpha=0.5, color="grey")
    for grid, colour, label in [(unspanning_grid(15), "C3", "linspace(-1, 1)"),
                                (gaussian_grid(15), "C2", "Gaussian quantiles")]:
        edge = np.abs(grid).max()
        ax_grid.plot([-edge, edge, edge, -edge, -edge], [-edge, -edge, edge, edge, -edge],
                     color=colour, label=label)
    ax_grid.set_title("Encoder means and two latent grids")
    ax_grid.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    return fig


show(plot_gallery(means, figure_path(args.out, "bug_gallery.png")))
print("You should see (bug_gallery.png): the rates side by side (log scale), and many more")
print("test codes outside the linspace(-1, 1) square than outside the quantile grid's.")
