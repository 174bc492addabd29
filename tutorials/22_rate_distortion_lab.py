# %% [markdown]
# # 22. The lab: beta, the rate-distortion plane, posterior collapse and its cures
#
# The negative ELBO is two numbers added up (docs/derivations.md, section 18):
#
#     rate        R = E_x KL(q(z|x) || p(z))        what the code costs, in nats     (LI1)
#     distortion  D = E_x E_q[-log p(x|z)]           how badly it explains x          (LI1)
#
# and a beta-VAE minimises D + beta R. Two more numbers say what the code holds: the
# mutual information I_q(x; z) between an image and its code under the aggregate posterior
# q(z) = E_x q(z|x) (LI2), and the marginal KL(q(z) || p(z)) = R - I_q (LI3, "ELBO
# surgery"): the part of the rate that buys no information, paid because the codes, taken
# together, do not fill the prior. `numvae.diagnostics.latent_info.latent_information`
# computes them on a fixed subset of F images; its I_q cannot exceed log F (LI4).
#
# This lab trains small models and measures: the numbers of one model; how beta moves a
# model in the (R, D) plane (Alemi et al. 2018); a code that collapses; and two cures,
# free bits (Kingma et al. 2016) and cyclical annealing of beta (Fu et al. 2019).
# experiments/rate_distortion/ runs the same at full size (README, "What the latent code
# holds").
#
# Run: `python tutorials/22_rate_distortion_lab.py [--quick] [--out DIR]`. Full mode:
# mnist-mini (binarised); --quick: the 8 x 8 toy blobs, a few seconds.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself), as in
# the other tutorials.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import math

import numpy as np
from matplotlib.figure import Figure

from numvae.diagnostics.latent_info import (
    format_latent_information,
    latent_information,
    latent_information_callback,
)
from numvae.io import datasets
from numvae.model.free_bits import FreeBitsELBO
from numvae.model.objectives import ELBO
from numvae.model.vae import VAE
from numvae.plots.tutorial import banner, figure_path, parse_args, show
from numvae.training.kl_schedules import Cyclical
from numvae.training.loop import fit
from numvae.training.optim import Adam

args = parse_args("22_rate_distortion_lab", "Beta, the rate-distortion plane, collapse")

# %% [markdown]
# ## Data and models
#
# Binary images and the slides' architecture (smaller on the toy). Every model starts
# from seed 0 and sees the batches in the same order.

# %%
if args.quick:
    toy = datasets.make_toy(800, seed=0)
    train_images = (toy.images[:600] > 0.3).astype(np.float32)
    test_images = (toy.images[600:] > 0.3).astype(np.float32)
    sizes = dict(input_dim=64, shared_dim=16, encoder_hidden=(32,), decoder_hidden=(32,))
    epochs, collapse_epochs, lr, wide = 40, 40, 1e-2, 8
else:
    train, test = datasets.load_mnist_mini()
    train_images = datasets.binarize(train.images, np.random.default_rng(1))
    test_images = datasets.binarize(test.images[:1000], np.random.default_rng(2))
    sizes = dict(input_dim=784, shared_dim=128)
    epochs, collapse_epochs, lr, wide = 8, 12, 1e-3, 16


def new_model(latent_dim, kl_weight, free_bits=0.0):
    other = {k: v for k, v in sizes.items() if k not in ("input_dim", "shared_dim")}
    objective = (FreeBitsELBO(kl_weight=kl_weight, free_bits=free_bits) if free_bits
                 else ELBO(kl_weight=kl_weight))
    return VAE(sizes["input_dim"], sizes["shared_dim"], latent_dim, objective=objective,
               seed=0, **other)


def train_and_measure(model, n_epochs, **fit_options):
    """Train; the latent numbers on the test images after every epoch, in the history."""
    measure = latent_information_callback(test_images, n_images=len(test_images))
    history = fit(model, Adam(model.params, lr=lr), train_images, epochs=n_epochs,
                  batch_size=50, seed=0, progress=False, log=None, callbacks=[measure],
                  **fit_options)
    return model, history

# %% [markdown]
# ## 1. The numbers of one model

# %%
banner("The numbers of one model (latent 2, beta 1)")
model, _ = train_and_measure(new_model(2, 1.0), epochs)
info = latent_information(model, test_images, n_images=len(test_images))
print(format_latent_information(info))
assert info["mutual_info"] <= info["mutual_info_cap"] + 1e-12
assert abs(info["marginal_kl"] - (info["rate"] - info["mutual_info"])) < 1e-9
assert info["mutual_info"] > 0.5 * info["rate"] and info["marginal_kl"] > -3 * info["mutual_info_se"]
print("You should see: R + D, the -ELBO; an I_q below log F; most of the rate is")
print("information (I_q above half of R), and the rest, the marginal KL, is small and")
print("non-negative within noise: the codes taken together nearly fill the prior.")

# %% [markdown]
# ## 2. Beta moves the model along the rate-distortion curve
#
# Minimising D + beta R finds the point where the curve of reachable (R, D) has slope
# -beta: a small beta buys information (low D, high R), a large one saves nats of rate at
# the cost of distortion. The -ELBO, R + D, is minimal at beta = 1 only among these
# points' tangents of slope -1.

# %%
banner("Beta sweep (latent 2)")
betas = (0.3, 1.0, 3.0)
points = {}
for beta in betas:
    trained, _ = train_and_measure(new_model(2, beta), epochs)
    points[beta] = latent_information(trained, test_images, n_images=len(test_images))
    p = points[beta]
    print(f"beta {beta:>4}: R {p['rate']:6.2f}  D {p['distortion']:7.2f}  R + D "
          f"{p['negative_elbo']:7.2f}  I_q {p['mutual_info']:5.2f}  active {p['active_units']}")
rates = [points[b]["rate"] for b in betas]
dists = [points[b]["distortion"] for b in betas]
assert rates[0] > rates[1] > rates[2] and dists[0] < dists[1] < dists[2]
print("You should see: as beta grows, the rate falls and the distortion rises.")

# %% [markdown]
# ## 3. A code that collapses, and two cures
#
# A wider latent with a large beta: most dimensions cost more than they explain, and the
# encoder sends them to the prior for every image (KL 0, no information). Free bits
# (`VAE(objective=FreeBitsELBO(free_bits=tau))`, FB1) make the first tau nats of each
# dimension's batch-averaged KL free; cyclical annealing (`fit(kl_schedule=Cyclical(...))`,
# KA1) restarts beta from 0 a few times, letting the encoder put information in while it
# is cheap. We follow the active units and I_q per epoch.

# %%
banner(f"Collapse (latent {wide}, beta 4) and two cures")
settings = {"plain": (dict(), dict()),
            "free bits 0.5": (dict(free_bits=0.5), dict()),
            "cyclical": (dict(), dict(kl_schedule=Cyclical(collapse_epochs // 4, ramp=0.5)))}
runs = {}
for name, (model_settings, fit_options) in settings.items():
    _, history = train_and_measure(new_model(wide, 4.0, **model_settings), collapse_epochs,
                                   **fit_options)
    runs[name] = history
    print(f"{name:<14} final: active units {history['active_units'][-1]:>2} of {wide}, I_q "
          f"{history['mutual_info'][-1]:.2f}, rate {history['rate'][-1]:.2f}, -ELBO "
          f"{history['rate'][-1] + history['distortion'][-1]:.2f}")
plain, free = runs["plain"], runs["free bits 0.5"]
assert plain["active_units"][-1] < wide and free["active_units"][-1] == wide
print(f"You should see: the plain model using only part of its {wide} dimensions, and free")
print(f"bits keeping all {wide} active: no dimension gains anything by going below the floor.")
print("Whether cyclical annealing ends with more information than the plain run depends on")
print("the length of the run (compare the two lines above; experiments/rate_distortion shows")
print("both cures at 32 epochs on latent 32, in the README).")

# %% [markdown]
# ## Figure

# %%
def plot_lab(points, runs, path):
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    ax_plane, ax_units, ax_info = fig.subplots(1, 3)
    for beta, p in points.items():
        ax_plane.scatter(p["rate"], p["distortion"], label=f"beta {beta:g}")
        span = 0.15 * max(q["rate"] for q in points.values())
        ax_plane.plot([p["rate"] - span, p["rate"] + span],
                      [p["distortion"] + beta * span, p["distortion"] - beta * span], lw=0.8)
    total = points[1.0]["negative_elbo"]
    grid = np.linspace(0, max(q["rate"] for q in points.values()) * 1.1, 20)
    ax_plane.plot(grid, total - grid, "k--", lw=0.8, label="R + D = -ELBO at beta 1")
    ax_plane.set_xlabel("rate R (nats)")
    ax_plane.set_ylabel("distortion D (nats)")
    ax_plane.set_title("The (R, D) plane; short lines: slope -beta")
    ax_plane.legend(fontsize="small")
    for name, history in runs.items():
        ax_units.plot(history["epoch"], history["active_units"], label=name)
        ax_info.plot(history["epoch"], history["mutual_info"], label=name)
    ax_info.axhline(math.log(len(test_images)), color="grey", lw=0.5, label="log F")
    ax_units.set_title("Active units per epoch")
    ax_info.set_title("I_q per epoch (nats)")
    for ax in (ax_units, ax_info):
        ax.set_xlabel("epoch")
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    return fig


show(plot_lab(points, runs, figure_path(args.out, "rate_distortion_lab.png")))
print("You should see (rate_distortion_lab.png): the three points moving up and to the left")
print("as beta grows, each with its tangent, the point of beta = 1 on the dashed line; and")
print("the free-bits run's active units at the top of the middle panel.")
