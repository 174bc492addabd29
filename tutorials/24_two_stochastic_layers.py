# %% [markdown]
# # 24. Two stochastic layers
#
# One latent layer z with a standard normal prior is the slides' VAE. Burda, Grosse &
# Salakhutdinov (2016) also train a deeper one, where the prior of the lower layer is
# itself a model:
#
#     p(xi) p(zeta|xi) p(x|zeta)      (generation, top-down)
#     q(zeta|x) q(xi|zeta)            (inference, bottom-up)
#
# zeta (z1, 100 units in the paper) sits under xi (z2, 50 units); every conditional is a
# diagonal Gaussian from its own small network (`numvae.model.two_layer.TwoLayerVAE`,
# docs/derivations.md section 18, eqs. H1-H8). zeta has two roles: it is decoded into x,
# and it is the condition of q(xi|zeta). Its prior p(zeta|xi) is the only term that gives
# the upper encoder a reason to carry information about x: the KL of xi alone would push
# q(xi|zeta) to N(0, I) (H6).
#
# The model and its start are those of Burda et al.'s published code: the class's defaults
# (two layers of 200 tanh units between x and zeta, two of 100 between zeta and xi,
# Glorot's uniform weights with zero biases), then `model.set_output_bias(...)` at the
# training images' mean, so that every zeta decodes to the mean image at the start
# (docs/burda.md, "Why the two-layer rows started behind").
#
# Three questions:
# 1. Are the gradients right? (central differences, float64)
# 2. What does the second layer learn? Its active units, beside the first layer's, after
#    training with the ELBO and with the IWAE bound (K = 5).
# 3. What do its units do? Samples drawn top-down, and a fixed xi with zeta drawn again
#    and again from p(zeta|xi): how much of the samples' variety does xi decide?
#
# Run: `python tutorials/24_two_stochastic_layers.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): small
# products gain nothing from more, and the machine may be shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure

from numvae.diagnostics.evaluate import (
    active_units_per_layer,
    evaluate_elbo,
    iwae_log_likelihood,
)
from numvae.diagnostics.gradcheck import check_model
from numvae.diagnostics.inspect import trace_step
from numvae.io import datasets
from numvae.model.two_layer import TwoLayerVAE
from numvae.plots.tutorial import banner, figure_path, parse_args, show
from numvae.training.loop import fit
from numvae.training.optim_fast import FastAdam

# %% [markdown]
# ## 1. The gradients
#
# A tiny copy of the model in float64 (10 pixels, zeta of 4 units, xi of 3), one fixed
# draw of the noise eps (M1 + M2 = 7 numbers per draw), and every parameter's gradient
# against central differences (eq. C1), for both objectives.

# %%
def gradient_errors(rng):
    x = (rng.uniform(size=(5, 10)) < 0.4).astype(np.float64)
    errors = {}
    for objective, k in (("elbo", 2), ("iwae", 4)):
        # PyTorch's start here: no bias is zero, so none can hide a wrong gradient
        model = TwoLayerVAE(10, (4, 3), ((6, 5), (5, 4)), objective=objective, n_samples=k,
                            init="pytorch", dtype=np.float64, seed=1)
        errors[objective] = max(check_model(model, x, rng.standard_normal((k, 5, 7))).values())
    return errors

# %% [markdown]
# ## 2. Train, then look at each layer
#
# Active units (Burda et al.): unit u of a layer is active if the variance over the test
# images of E_q[u|x] exceeds 0.01; for xi, E_q[xi|x] averages q(xi|zeta)'s mean over draws
# of zeta (H8). A unit that is not active carries nothing about x: the encoder sends it to
# the same place for every image, and the prior takes over.
#
# "log p(x)" below is the importance-weighted bound L_K with K = 500 draws (50 with
# `--quick`; I2). It sits above the ELBO for any K >= 1 and approaches log p(x) as K grows.
# A model trained on the bound with K = 5 is fitted to a tighter bound than the ELBO, so its
# L_K comes out higher (docs/burda.md: the IWAE's larger gap between the two, and its
# higher log p(x)).

# %%
def train(objective, k, images, epochs, sizes):
    model = TwoLayerVAE(784, sizes["latent_dims"], sizes["hidden"], objective=objective,
                        n_samples=k, init="glorot", seed=0)
    model.set_output_bias(images.mean(axis=0))  # the start: every zeta decodes to the mean image
    fit(model, FastAdam(model.params, lr=1e-3, betas=(0.9, 0.999), eps=1e-4), images,
        epochs=epochs, batch_size=20, seed=0, binarize=True, progress=False, log=None)
    return model


def describe(model, test_images, eval_k):
    layers = active_units_per_layer(model, test_images)
    return dict(elbo=-evaluate_elbo(model, test_images)["loss"],
                log_px=iwae_log_likelihood(model, test_images, k=eval_k)["log_px"],
                active=(layers["z1"][0], layers["z2"][0]), variance_z2=layers["z2"][1])

# %% [markdown]
# ## 3. What xi decides
#
# Draw G values of xi from the prior; for each, draw R values of zeta from p(zeta|xi) and
# decode each (the Bernoulli probabilities). The variance of the G * R images (summed over
# pixels) splits into the part between the groups (what xi decides) and the part within
# them (what zeta adds on its own): the share between is the fraction xi explains.
#
# Active units and this share measure two different sides. Active units measure the
# encoder: how much E_q[xi|x] moves from one image to another. The share measures the
# decoder: how much the mean of p(zeta|xi) moves with xi. Early in training p_z1 has not
# yet learnt to use xi, so every unit of xi can be active while xi decides little; later
# the KL switches most of xi's units off, and the few that stay decide much more.

# %%
def share_decided_by_xi(model, n_groups, n_repeats, rng):
    xi = model.prior.sample(n_groups, rng)                             # (G, M2)
    images = np.stack([model.decode_z1(model.sample_z1(xi, rng)) for _ in range(n_repeats)],
                      axis=1).astype(np.float64)                         # (G, R, N)
    total = images.reshape(-1, images.shape[-1]).var(axis=0).sum()
    between = images.mean(axis=1).var(axis=0).sum()
    return between / total, images

# %% [markdown]
# ## Figure

# %%
def plot(images, variance, path):
    n_groups, n_repeats = images.shape[:2]
    fig = Figure(figsize=(12, 5.2), layout="constrained")
    grid, bars = fig.subfigures(1, 2, width_ratios=[1.5, 1])
    axes = grid.subplots(n_groups, n_repeats)
    for g in range(n_groups):
        for r in range(n_repeats):
            axes[g, r].imshow(images[g, r].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            axes[g, r].set_axis_off()
    grid.suptitle("Each row: one xi ~ p(xi); each column: a new zeta ~ p(zeta|xi)")
    ax = bars.subplots()
    order = np.sort(variance)[::-1]
    ax.bar(np.arange(len(order)), order, color="C0")
    ax.axhline(0.01, color="C3", linestyle=":", label="0.01: active above")
    ax.set_yscale("log")
    ax.set_xlabel("units of xi, sorted")
    ax.set_ylabel("Var_x E_q[xi_u | x]")
    ax.set_title("The top layer's active units (IWAE, K = 5)")
    ax.legend()
    fig.savefig(path, dpi=100)
    return fig

# %% [markdown]
# ## The story
#
# With `--quick`: a smaller model (zeta 20 units, xi 10, hidden layers of 50 and 20), 1,000
# training images, 2 epochs, 100 test images, K = 50. The full run: the sizes of Burda et
# al.'s code (zeta 100, xi 50; hidden 200-200 and 100-100, `TwoLayerVAE`'s defaults), the
# 10,000 images of mnist-mini, 10 epochs, 1,000 test images, K = 500.

# %%
args = parse_args("24_two_stochastic_layers", "Two stochastic layers.")
train_set, test_set = datasets.load_mnist_mini()
rng = np.random.default_rng(0)
test_images = datasets.binarize(test_set.images, np.random.default_rng(1))
if args.quick:
    sizes = dict(latent_dims=(20, 10), hidden=((50,), (20,)))
    n_train, epochs, n_test, eval_k = 1000, 2, 100, 50
else:
    sizes = dict(latent_dims=(100, 50), hidden=((200, 200), (100, 100)))
    n_train, epochs, n_test, eval_k = 10000, 10, 1000, 500

# %%
banner("1. The gradients against central differences")
errors = gradient_errors(rng)
for objective, error in errors.items():
    print(f"{objective}: largest relative error over the 30 parameter arrays {error:.1e}")
assert max(errors.values()) < 1e-6
print("You should see: both below 1e-6 (float64): every path of H4-H7 is counted once,")
print("including zeta's second role (conditioning q(xi|zeta)) and the prior p(zeta|xi).")

# %% [markdown]
# What flows back into zeta, one step of the same tiny model traced by the inspector
# (`numvae inspect` on a checkpoint of this model prints the same rows): zeta receives
# gradient along four paths (H5), decoded into x, under its prior p(zeta|xi), as the
# condition of q(xi|zeta), and from log q(zeta|x) itself (the bound's term; in the ELBO
# too, through K3). Their sum is what goes back through zeta = mu_1 + sigma_1 * eps (H7).

# %%
tiny = TwoLayerVAE(10, (4, 3), ((6, 5), (5, 4)), objective="iwae", n_samples=4,
                   init="pytorch", dtype=np.float64, seed=1)
draws = np.random.default_rng(2)  # a generator of its own: the sections below draw as before
x_tiny = (draws.uniform(size=(5, 10)) < 0.4).astype(np.float64)
trace = trace_step(tiny, x_tiny, draws.standard_normal((4, 5, 7)))
paths = {path: trace[f"d z1 (from {path})"].value
         for path in ("x", "p(zeta|xi)", "q(xi|zeta)", "log q(zeta|x)")}
for path, value in paths.items():
    print(f"d z1 from {path:<14} root mean square {np.sqrt(np.mean(value ** 2)):.4f}")
print(f"d z1, their sum          root mean square {np.sqrt(np.mean(trace['d z1'].value ** 2)):.4f}")
assert np.allclose(trace["d z1"].value, sum(paths.values()), rtol=1e-12, atol=1e-15)
assert all(np.abs(value).max() > 0 for value in paths.values())
print("You should see: four paths, none zero, that add up to d z1: leave one out and the")
print("central differences above would disagree.")

# %%
banner(f"2. Training with the ELBO and with the bound (K = 5), {epochs} epochs")
models = {name: train(objective, k, train_set.images[:n_train], epochs, sizes)
          for name, objective, k in (("elbo", "elbo", 1), ("iwae K=5", "iwae", 5))}
rows = {name: describe(model, test_images[:n_test], eval_k) for name, model in models.items()}
m1, m2 = sizes["latent_dims"]
for name, row in rows.items():
    print(f"{name:>9}: ELBO {row['elbo']:8.2f}, log p(x) (K={eval_k}) {row['log_px']:8.2f}, "
          f"active units {row['active'][0]} of {m1} in zeta, {row['active'][1]} of {m2} in xi")
elbo_row, iwae_row = rows["elbo"], rows["iwae K=5"]
for row in rows.values():
    assert row["log_px"] > row["elbo"]                     # the bound with K > 1 is tighter
assert iwae_row["log_px"] > elbo_row["log_px"]
print("You should see: log p(x) above the ELBO in both models (K draws bound it more")
print("tightly), and the higher log p(x) for the model trained with the bound (K = 5).")
if args.quick:
    assert all(row["active"] == (m1, m2) for row in rows.values())
    print("In this short run every unit of both layers is active: the KL has not yet had the")
    print("time to switch units off (started at the mean image, the model keeps them longer:")
    print("docs/burda.md). The full run shows the top layer losing most of its units.")
else:
    for row in rows.values():
        assert row["active"][0] >= 0.9 * m1 and 5 <= row["active"][1] < m2 / 2
    print("In this full run: zeta keeps (nearly) all of its units in both models, xi fewer")
    print("than half of its 50, but at least 5: the top layer is used, and the KL has switched")
    print("the rest of it off (the top layer is the first to lose units; Sonderby et al. 2016")
    print("warm the KL up for it). Burda et al. count active units after 3,280 epochs.")

# %%
banner("3. Samples drawn top-down; a fixed xi with zeta drawn again")
share, images = share_decided_by_xi(models["iwae K=5"], 6, 8, rng)
print(f"share of the samples' variance between the groups of one xi: {share:.2f}")
assert 0 < share < 0.7
print("You should see: a share between 0 and 0.7. Each row of the figure is one xi: what a")
print("row shares is what xi decides; what changes along a row is zeta's own noise, drawn")
print("from p(zeta|xi).")
if args.quick:
    assert share < 0.3
    print("In this short run: below 0.3; xi decides little yet, most of the variety is zeta's.")
else:
    assert share > 0.3
    print("In this full run: above 0.3, about half: xi decides as much of the samples as")
    print("zeta's own noise (in the figure, compare the rows with the columns).")

# %%
show(plot(images, iwae_row["variance_z2"], figure_path(args.out, "two_stochastic_layers.png")))
