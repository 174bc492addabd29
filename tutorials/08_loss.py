# %% [markdown]
# # 8. Coding time: the loss function
#
# The slides' `loss_fn` (numvae.model.objectives.seed_loss, eq. S1) is
#
#     sum (prediction - target)^2 + kl_weight * sum(mean^2 + exp(log_var) - log_var),
#
# summed over the batch. The negative ELBO (in nats) of a Gaussian decoder with variance
# sigma^2 = 1 and KL weight beta is, per example, (G1) + beta (K1):
#
#     ||x - prediction||^2 / 2 + (N/2) log(2 pi)
#         + (beta/2) sum_j (mean^2 + exp(log_var) - 1 - log_var).
#
# Double it and compare term by term (docs/derivations.md, section 7): per example, with N
# pixels and M latent dimensions,
#
#     seed_loss = 2 * negative ELBO(sigma^2 = 1) - N log(2 pi) + beta M.
#
# So the slides' loss is the ELBO doubled, minus constants: the same minimiser (at
# beta = 1), twice the gradient of the batch *sum*, but a value that is not in nats.
# We check the relation numerically, then every gradient involved, then what the factor
# 2B (doubling, and a sum instead of a mean over B examples) does to an optimiser step.
#
# Run: `python tutorials/08_loss.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae.diagnostics.gradcheck import check_arrays
from numvae.io.datasets import load_mnist_mini
from numvae.model.kl import kl_divergence, kl_divergence_backward
from numvae.model.likelihoods import Gaussian, gaussian_nll, gaussian_nll_backward
from numvae.model.objectives import seed_loss, seed_loss_backward
from numvae.plots.tutorial import banner, figure_path, parse_args, show

LOG_2PI = np.log(2 * np.pi)

# %% [markdown]
# ## The two losses from one forward pass

# %%
def both_losses(model, x, eps, kl_weight):
    """The slides' loss (a float, summed over the batch) and the negative ELBO with
    KL weight ``kl_weight`` per example (batch,), from one forward pass of a Gaussian VAE."""
    c = model.forward(x, eps)
    seed = seed_loss(c["output"], x, c["mean"], c["log_var"], kl_weight)
    negative_elbo = (gaussian_nll(c["output"], x, model.likelihood.sigma)   # G1
                     + kl_weight * kl_divergence(c["mean"], c["log_var"]))  # K1
    return seed, negative_elbo


def plot_relation(points, n_pixels, latent_dim, path):
    """points: {kl_weight: (2 x negative ELBO per example, seed_loss per example)}."""
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.add_subplot()
    for k, (kl_weight, (doubled, seed)) in enumerate(points.items()):
        ax.plot(doubled, seed, "o", color=f"C{k}", markersize=4,
                label=f"examples, beta = {kl_weight}")
        line = np.linspace(doubled.min(), doubled.max(), 2)
        ax.plot(line, line - n_pixels * LOG_2PI + kl_weight * latent_dim, color=f"C{k}",
                linewidth=1, label=f"y = x - N log(2 pi) + {kl_weight:g} M")
    ax.set_xlabel("2 x negative ELBO (sigma^2 = 1, KL weight beta), nats")
    ax.set_ylabel("the slides' loss_fn (seed_loss) of the same example")
    ax.set_title(f"Slope 1, offset -N log(2 pi) + beta M = -{n_pixels * LOG_2PI:.1f} + beta M")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    return fig


# %% [markdown]
# ## The story

# %%
args = parse_args("08_loss", "The slides' loss_fn against the negative ELBO.")
rng = np.random.default_rng(0)
batch = 8 if args.quick else 64
x = load_mnist_mini()[1].images[:batch].astype(np.float64)

# %%
banner("seed_loss against the negative ELBO in nats (float64)")
model = numvae.VAE(784, shared_dim=128, latent_dim=2, likelihood=Gaussian(sigma=1.0),
                   dtype=np.float64, seed=0)
n_pixels, latent_dim = model.input_dim, model.latent_dim
eps = rng.standard_normal((batch, latent_dim))
print(f"{'kl_weight':>9} {'seed_loss':>12} {'2 sum(-ELBO) - B N log 2pi + kl_weight B M':>44}"
      f" {'difference':>11}")
for kl_weight in (1.0, 0.5, 4.0):
    seed, negative_elbo = both_losses(model, x, eps, kl_weight)
    relation = (2 * negative_elbo.sum() - batch * n_pixels * LOG_2PI
                + kl_weight * batch * latent_dim)
    print(f"{kl_weight:>9} {seed:>12.4f} {relation:>44.4f} {seed - relation:>11.1e}")
    assert abs(seed - relation) < 1e-9 * abs(seed)
terms = model.forward(x, eps)                   # the library's own negative ELBO
seed, negative_elbo = both_losses(model, x, eps, 1.0)
assert np.allclose(terms["reconstruction"] + terms["kl"], negative_elbo)
print(f"\nper image at kl_weight = 1: seed_loss {seed / batch:.2f}; negative ELBO "
      f"{negative_elbo.mean():.2f} nats (reconstruction {terms['reconstruction'].mean():.2f},"
      f" KL {terms['kl'].mean():.4f})")
print("You should see: differences of about 1e-10 or less (rounding) for every kl_weight;")
print("per image, a seed loss near 185 against a negative ELBO near 812 nats, of which")
print("720 are the constant (N/2) log(2 pi): the two numbers look nothing alike, yet they")
print("have the same minimiser.")

points = {}
for kl_weight in (1.0, 4.0):                        # seed_loss of each example on its own
    c = model.forward(x, eps)
    seed_each = np.array([seed_loss(c["output"][i:i + 1], x[i:i + 1],
                                           c["mean"][i:i + 1], c["log_var"][i:i + 1],
                                           kl_weight) for i in range(batch)])
    points[kl_weight] = (2 * both_losses(model, x, eps, kl_weight)[1], seed_each)
show(plot_relation(points, n_pixels, latent_dim, figure_path(args.out, "loss_relation.png")))
print("You should see in it: every example on the line of slope 1 for its beta.")

# %%
banner("Gradients of the loss terms, by central differences")
small_rng = np.random.default_rng(1)
prediction = small_rng.uniform(0.1, 0.9, size=(4, 6))
target = small_rng.uniform(size=(4, 6))
mean = small_rng.standard_normal((4, 2))
log_var = small_rng.standard_normal((4, 2))
kl_weight = 0.7
arrays = dict(prediction=prediction, mean=mean, log_var=log_var)
dprediction, dmean, dlog_var = seed_loss_backward(prediction, target, mean, log_var,
                                                          kl_weight)
errors = check_arrays(lambda: seed_loss(prediction, target, mean, log_var, kl_weight),
                      arrays, dict(prediction=dprediction, mean=dmean, log_var=dlog_var))
report = {f"seed_loss_backward: d{name}": e for name, e in errors.items()}
dmean, dlog_var = kl_divergence_backward(mean, log_var)
errors = check_arrays(lambda: kl_divergence(mean, log_var).sum(),
                      dict(mean=mean, log_var=log_var), dict(mean=dmean, log_var=dlog_var))
report.update({f"kl_divergence_backward: d{name}": e for name, e in errors.items()})
sigma = 0.3
errors = check_arrays(lambda: gaussian_nll(prediction, target, sigma).sum(),
                      dict(prediction=prediction),
                      dict(prediction=gaussian_nll_backward(prediction, target, sigma)))
report["gaussian_nll_backward: dprediction"] = errors["prediction"]
for name, error in report.items():
    print(f"  {name:<38} relative error {error:.1e}")
assert max(report.values()) < 1e-6

# %%
banner("Through the whole model: grad seed_loss = 2 B x grad (mean negative ELBO)")
# The same architecture with 20 "pixels" (float64): the check costs little.
small = numvae.VAE(20, shared_dim=128, latent_dim=2, likelihood=Gaussian(sigma=1.0),
                   dtype=np.float64, seed=2)
xs = small_rng.uniform(size=(4, 20))
eps_small = small_rng.standard_normal((4, 2))
small.loss_and_grad(xs, eps_small)           # gradient of the mean negative ELBO (V1)
scaled = {name: 2 * len(xs) * grad for name, grad in small.grads.items()}

def seed_of_model():
    c = small.forward(xs, eps_small)
    return seed_loss(c["output"], xs, c["mean"], c["log_var"], 1.0)

errors = check_arrays(seed_of_model, small.params, scaled,
                      n_entries=8 if args.quick else 30)
print(f"largest relative error over the {len(errors)} parameters: "
      f"{max(errors.values()):.1e}")
assert max(errors.values()) < 1e-6
print("You should see: below 1e-6: the constants drop out of every gradient, and what")
print("is left is exactly 2 B times the gradient of the mean negative ELBO in nats.")

# %%
banner("What the factor 2B does to one optimiser step")
for name, make in [("Adam(lr=1e-3)", lambda p: numvae.Adam(p, lr=1e-3)),
                   ("SGD(lr=1e-3)", lambda p: numvae.SGD(p, lr=1e-3))]:
    steps = []
    for factor in (1.0, 2.0 * len(xs)):
        copy = small.copy()
        start = {k: v.copy() for k, v in copy.params.items()}
        make(copy.params).step({k: factor * g for k, g in small.grads.items()})
        steps.append(np.concatenate([(copy.params[k] - start[k]).ravel() for k in start]))
    ratio = np.linalg.norm(steps[1]) / np.linalg.norm(steps[0])
    print(f"  {name:<14} step with the seed loss / step with the mean ELBO: {ratio:.6f}")
print("You should see: about 1.0004 for Adam (m / sqrt(v) does not change when every")
print("gradient is scaled; only Adam's eps = 1e-8 notices, on the tiniest gradients), and")
print("8.000000 (2B with B = 4) for plain SGD: with SGD the slides' loss is the ELBO with a")
print("learning rate 2B times larger, and B is the batch size.")
