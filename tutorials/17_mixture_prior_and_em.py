# %% [markdown]
# # 17. A Gaussian-mixture prior, and its link with EM
#
# Tutorial 2 fitted a Gaussian mixture by EM. The slides' third "possible extension" puts
# that mixture in the latent space, as the prior:
#
#     p(z) = sum_k pi_k N(z; m_k, diag(s_k^2)),   pi = softmax(logits)              (GM1)
#
# with the weights, means and log-variances learnt with the encoder and decoder
# (`numvae.VAE(..., prior=GaussianMixture(components=K))`). There is no closed-form KL
# between the Gaussian q(z|x) and a mixture, so the KL is the Monte Carlo estimate (K3),
# whose gradient needs d log p(z)/dz and the gradient for the prior's own parameters.
# Both are written with the responsibilities
#
#     r_k(z) = p(k | z) = pi_k N(z; m_k, s_k^2) / p(z)                             (GM2)
#
# the very quantity of tutorial 2's E-step (docs/derivations.md, section 13):
#
#     d log p / dz = -sum_k r_k (z - m_k) / s_k^2,   d log p / dm_k = r_k (z - m_k) / s_k^2,
#     d log p / dlogits_k = r_k - pi_k, ...                                          (GM3)
#
# Setting the gradient over a set of points to zero gives exactly EM's M-step updates, so
# gradient descent and EM share their fixed points. We check that on fixed 2-D points, then
# train a VAE with a 10-component prior on MNIST and ask how well its components find the
# digits without the labels (best one-to-one matching by the Hungarian algorithm,
# `numvae.diagnostics.matching`), against EM run afterwards on the latent means of an ordinary VAE.
#
# Run: `python tutorials/17_mixture_prior_and_em.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae import plots
from numvae.diagnostics.evaluate import evaluate_elbo
from numvae.diagnostics.matching import clustering_accuracy
from numvae.io.datasets import Dataset, load_mnist_mini
from numvae.model.priors import GaussianMixture
from numvae.plots.tutorial import banner, figure_path, parse_args, show
from numvae.training.loop import fit

# %% [markdown]
# ## EM with numvae's responsibilities
#
# The E-step is `prior.responsibilities(z)` (GM2). The M-step is tutorial 2's, in 2-D with
# a diagonal variance: weighted counts, weighted means, weighted variances.

# %%
def m_step(prior, z, r):
    """EM's M-step for the mixture ``prior`` on points z (n, 2) with responsibilities r (n, K)."""
    counts = r.sum(axis=0)                                   # N_k = sum_n r_nk
    means = r.T @ z / counts[:, None]
    variances = r.T @ (z * z) / counts[:, None] - means ** 2
    prior.params["logits"][...] = np.log(counts / len(z))    # softmax(log pi) = pi
    prior.params["means"][...] = means
    prior.params["log_var"][...] = np.log(variances)


def em(prior, z, iterations):
    """Run EM; return the mean log-likelihood after each iteration (it never decreases)."""
    history = []
    for _ in range(iterations):
        m_step(prior, z, prior.responsibilities(z))          # E-step, then M-step
        history.append(float(prior.log_prob(z).mean()))
    return history


def gradient_ascent(prior, z, steps, lr=0.05):
    """Maximise the mean log p(z) with Adam on the prior's parameters, using GM3."""
    optimizer = numvae.Adam(prior.params, lr=lr)
    history = []
    for _ in range(steps):
        prior.log_prob_backward(-np.ones(len(z)) / len(z), z)   # the gradient of -mean log p
        optimizer.step(prior.grads)
        history.append(float(prior.log_prob(z).mean()))
    return history


def neighbour_accuracy_by_digit(z, labels, k=10):
    """For each digit, how often a vote of the 10 nearest other codes names it right."""
    distances = ((z[:, None, :] - z[None, :, :]) ** 2).sum(axis=-1)
    np.fill_diagonal(distances, np.inf)                      # a code is not its own neighbour
    votes = np.stack([np.bincount(row, minlength=10)
                      for row in labels[np.argsort(distances, axis=1)[:, :k]]])
    right = votes.argmax(axis=1) == labels
    return np.array([right[labels == digit].mean() for digit in range(10)])

# %% [markdown]
# ## Figures

# %%
def plot_em_against_gradient(z, priors, histories, path):
    fig = Figure(figsize=(13, 4.4), layout="constrained")
    ax_curve, *ax_fits = fig.subplots(1, 3)
    for name, history in histories.items():
        ax_curve.plot(np.arange(1, len(history) + 1), history, label=name)
    ax_curve.set_xscale("log")
    ax_curve.set_xlabel("iteration")
    ax_curve.set_ylabel("mean log p(z)")
    ax_curve.set_title("EM and gradient ascent on the same points")
    ax_curve.legend(fontsize="small")
    for ax, (name, prior) in zip(ax_fits, priors.items()):
        ax.scatter(z[:, 0], z[:, 1], s=3, c=prior.responsibilities(z).argmax(1), cmap="tab10",
                   vmin=0, vmax=9)
        plots.draw_components(ax, prior)
        ax.set_title(name)
        ax.set_aspect("equal", adjustable="datalim")
    fig.savefig(path, dpi=110)
    return fig


def plot_clusterings(models, test, path):
    fig = Figure(figsize=(13, 6), layout="constrained")
    for ax, (title, model) in zip(fig.subplots(1, 2), models.items()):
        plots.latent_space_with_components(model, test.images, test.labels, ax=ax)
        ax.set_title(title, fontsize="small")
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## Fixed points in 2-D
#
# 900 points from three Gaussian blobs (300 each), a 3-component mixture fitted twice from
# the same start: by EM, and by Adam on the mean log-likelihood with the gradients GM3.

# %%
args = parse_args("17_mixture_prior_and_em", "A Gaussian-mixture prior and EM.")
rng = np.random.default_rng(0)

# %%
banner("Fixed points in 2-D: EM and gradient ascent share their fixed points")
centres = np.array([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]])
z = np.concatenate([c + s * rng.standard_normal((300, 2))
                    for c, s in zip(centres, (0.5, 0.8, 0.4))])
start = GaussianMixture(components=3).build(2, np.random.default_rng(1), np.float64)
by_em, by_gradient = (GaussianMixture(components=3).build(2, np.random.default_rng(1), np.float64)
                      for _ in range(2))
histories = {"EM": em(by_em, z, 30 if args.quick else 100),
             "gradient ascent (Adam)": gradient_ascent(by_gradient, z,
                                                       300 if args.quick else 2000)}
start_value = float(start.log_prob(z).mean())
print(f"start: mean log p(z) = {start_value:.3f}")
for name, history in histories.items():
    print(f"{name:24s} -> mean log p(z) = {history[-1]:.4f}")
never_decreases = bool(np.all(np.diff(histories["EM"]) > -1e-12))
print(f"EM's log-likelihood never decreases: {never_decreases}")
by_em.log_prob_backward(np.ones(len(z)) / len(z), z)
print("gradient of mean log p at EM's fixed point: " + ", ".join(
    f"{name} {np.abs(grad).max():.1e}" for name, grad in by_em.grads.items()))
r = by_em.responsibilities(z)
pi = np.exp(by_em.params["logits"]) / np.exp(by_em.params["logits"]).sum()
print(f"pi = {np.round(pi, 3)}; the mean responsibility {np.round(r.mean(axis=0), 3)}")
em_value, gradient_value = (history[-1] for history in histories.values())
assert abs(start_value + 4.40) < 0.005 and abs(em_value + 2.70) < 0.005 and never_decreases
assert abs(em_value - gradient_value) < 1e-4
assert max(np.abs(grad).max() for grad in by_em.grads.values()) < 1e-13
assert np.abs(pi - r.mean(axis=0)).max() < 1e-12
print("You should see: EM at -2.70 from -4.40, never decreasing, and the gradient ascent")
print("at the same value to 1e-4; a gradient of 1e-13 or less at EM's fixed point (the")
print("stationary conditions of GM3 *are* the M-step), and pi equal to the mean")
print("responsibility: sum_n (r_k(z_n) - pi_k) = 0 is the gradient for the logits.")
show(plot_em_against_gradient(z, {"EM": by_em, "gradient ascent": by_gradient}, histories,
                              figure_path(args.out, "em_and_gradient.png")))

# %% [markdown]
# ## A VAE with a 10-component prior on MNIST
#
# The same model twice, latent size 2, with the standard normal prior and with the mixture
# prior; with `--quick`, 1,000 training images and 2 epochs.

# %%
train, test = load_mnist_mini()
n_train, epochs = (1000, 2) if args.quick else (len(train.images), 30)
train = Dataset(train.images[:n_train], train.labels[:n_train])
banner(f"A VAE with a 10-component prior, latent size 2 ({epochs} epochs, "
       f"{n_train:,} images)")
models, results = {}, {}
for prior in ("standard_normal", "mixture"):
    model = numvae.VAE(784, 128, 2, prior=GaussianMixture(components=10) if prior == "mixture"
                       else prior, seed=0)
    fit(model, numvae.FastAdam(model.params, lr=1e-3), train, epochs=epochs, seed=0,
        progress=False, log=None)
    results[prior] = evaluate_elbo(model, test.images)
    print(f"{prior:16s}: test -ELBO {results[prior]['loss']:.1f} +- "
          f"{results[prior]['loss_se']:.1f}")
    models[prior] = model
difference = results["standard_normal"]["loss"] - results["mixture"]["loss"]
standard_error = max(results[prior]["loss_se"] for prior in results)
if args.quick:
    assert difference > 2 * standard_error
    assert 280 < results["mixture"]["loss"] < 310 and 325 < results["standard_normal"]["loss"] < 355
    print("You should see: after two epochs on 1,000 images the mixture model ahead by more")
    print("than two standard errors (about 295 nats against 340); the full run, 30 epochs,")
    print("is where to see whether the lead lasts.")
else:
    assert abs(difference) < standard_error
    assert all(155 < result["loss"] < 161 for result in results.values())
    print("You should see: both near 158 nats (within their standard errors): the mixture")
    print("does not make a better density model of MNIST at latent size 2; what it changes")
    print("is the shape of the latent space. (After two epochs the mixture model was ahead:")
    print("the lead does not last.)")

# %%
banner("Clustering without the labels")
mixture = models["mixture"]
components, accuracy, mapping = plots.mixture_clusters(mixture, test.images,
                                                             test.labels)
print(f"most responsible component of the mixture prior: accuracy {accuracy:.1%}; "
      f"component -> digit {mapping}")
# the ordinary VAE: EM afterwards on its latent means, the E-step of the same class
means = models["standard_normal"].encode(test.images)[0].astype(np.float64)
post_hoc = GaussianMixture(components=10).build(2, np.random.default_rng(2), np.float64)
em(post_hoc, means, 200)
post_hoc_accuracy, _ = clustering_accuracy(post_hoc.responsibilities(means).argmax(1),
                                           test.labels)
print(f"EM with 10 components on the standard-normal VAE's latent means: accuracy "
      f"{post_hoc_accuracy:.1%}")
chance = np.bincount(test.labels).max() / len(test.labels)
print(f"(chance: about {chance:.0%}, the largest class)")
assert post_hoc_accuracy > accuracy
if args.quick:
    assert accuracy < 0.15 and post_hoc_accuracy < 0.25
else:
    assert 0.31 < accuracy < 0.41 and 0.37 < post_hoc_accuracy < 0.47
if args.quick:
    print("You should see: below 15 % for the mixture prior and below 25 % for EM afterwards,")
    print("EM ahead: nothing learnt yet.")
else:
    print("You should see: about 36 % for the mixture prior and about 42 % for EM afterwards:")
    print("learning the prior with the VAE does not cluster the digits better here.")
print("The Hungarian algorithm matches each component to at most one digit, so two")
print("components on one digit cannot both count.")

# %% [markdown]
# ## Why: which digits a 2-D latent space separates
#
# For each digit, how often the 10 nearest codes of the standard-normal VAE vote for it;
# and for each component of the mixture prior, the digits of the test images it is most
# responsible for.

# %%
banner("Which digits a 2-D latent space separates")
by_digit = neighbour_accuracy_by_digit(means, test.labels)
print("the digit of each test image guessed by a vote of its 10 nearest codes (standard")
print("normal prior), right for: " + ", ".join(f"{d}: {a:.0%}" for d, a in enumerate(by_digit)))
print("\nthe test images each component of the mixture prior is most responsible for:")
weights = np.exp(mixture.prior.params["logits"].astype(np.float64))
weights /= weights.sum()
for k in range(mixture.prior.components):
    members = test.labels[components == k]
    counts = np.bincount(members, minlength=10)
    top = np.argsort(counts)[::-1][:3]
    print(f"  k={k} (pi_k {weights[k]:.0%}): {len(members):4d} images; " + ", ".join(
        f"{d}s {counts[d] / max(len(members), 1):.0%}" for d in top if counts[d]))
separated, mixed = by_digit[[0, 1, 6]], by_digit[[3, 4, 5, 7, 8, 9]]
populated = [k for k in range(mixture.prior.components) if np.sum(components == k) >= 50]
top_share = {k: np.bincount(test.labels[components == k]).max() / np.sum(components == k)
             for k in populated}
empty = [k for k in range(mixture.prior.components) if not np.any(components == k)]
assert max(top_share.values()) < 0.5 and empty
if args.quick:
    assert by_digit[1] > 0.6 and np.delete(by_digit, 1).max() < 0.5
    assert np.abs(weights - 0.1).max() < 0.01
else:
    assert separated.min() > 0.8 and mixed.max() < 0.65
if args.quick:
    print("You should see: after this short run only the 1s stand apart (their codes'")
    print("neighbours name them right over 60% of the time, every other digit under 50%).")
else:
    print("You should see: a 2-D latent space of a VAE trained without labels separates some")
    print("digits (0, 1, 6: their codes' neighbours name them right over 80% of the time) and")
    print("mixes others (4, 7, 9; 3, 5, 8: under 65%).")
print("In either mode, every component most responsible for 50 test images or")
print("more mixes digits, none of them more than half of its images, and some components")
print("are most responsible for no test image at all: the mixture's components do not find")
print("the digits.")

# %%
banner("Figures")
show(plot_clusterings({f"standard normal prior (EM afterwards: {post_hoc_accuracy:.0%})":
                       models["standard_normal"],
                       f"mixture prior, K = 10 (accuracy {accuracy:.0%})": mixture},
                      test, figure_path(args.out, "mixture_latent_space.png")))
show(plots.component_samples(mixture,
                                   path=figure_path(args.out, "component_samples.png")))
if args.quick:
    print("You should see (--quick, two epochs on 1,000 images): in mixture_latent_space.png,")
    print("both models' codes along a line, the 1s at one end and the other digits mixed,")
    print("and the mixture's ten ellipses off the line, so that one component takes every")
    print("code; in component_samples.png, every weight still 10% and the same faint blurred")
    print("shape on grey in every tile.")
else:
    print("You should see in mixture_latent_space.png: on the left the 0s, 1s and 6s in")
    print("regions of their own and the 4s, 7s, 9s and the 3s, 5s, 8s overlapping; on the")
    print("right the ten ellipses, most of them over the crowded middle where the digits mix.")
    print("In component_samples.png, one row per component with its weight pi_k: rows mixing")
    print("several digits, as the table above says (0s with 6s, 4s with 9s and 7s).")
