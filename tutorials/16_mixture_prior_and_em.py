# %% [markdown]
# # 16. A Gaussian-mixture prior, and its link with EM
#
# Tutorial 2 fitted a Gaussian mixture by EM. The slides' third "possible extension" puts
# that mixture in the latent space, as the prior:
#
#     p(z) = sum_k pi_k N(z; m_k, diag(s_k^2)),   pi = softmax(logits)              (GM1)
#
# with the weights, means and log-variances learnt with the encoder and decoder
# (`numvae.VAE(..., prior="mixture", prior_components=K)`). There is no closed-form KL
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
# `numvae.matching`), against EM run afterwards on the latent means of an ordinary VAE.
#
# Run: `python tutorials/16_mixture_prior_and_em.py [--quick] [--out DIR]`.

# %%
import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae import plot_latent
from numvae.datasets import Dataset, load_mnist_mini
from numvae.evaluate import evaluate_elbo
from numvae.matching import clustering_accuracy
from numvae.priors import GaussianMixture
from numvae.train import fit

from _common import banner, figure_path, parse_args

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
        plot_latent.draw_components(ax, prior)
        ax.set_title(name)
        ax.set_aspect("equal", adjustable="datalim")
    fig.savefig(path, dpi=110)
    return fig


def plot_clusterings(models, test, path):
    fig = Figure(figsize=(13, 6), layout="constrained")
    for ax, (title, model) in zip(fig.subplots(1, 2), models.items()):
        plot_latent.latent_space_with_components(model, test.images, test.labels, ax=ax)
        ax.set_title(title, fontsize="small")
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## The story

# %%
def main(argv=None):
    args = parse_args("16_mixture_prior_and_em", "A Gaussian-mixture prior and EM.", argv)
    rng = np.random.default_rng(0)

    banner("Fixed points in 2-D: EM and gradient ascent share their fixed points")
    centres = np.array([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]])
    z = np.concatenate([c + s * rng.standard_normal((300, 2))
                        for c, s in zip(centres, (0.5, 0.8, 0.4))])
    start = GaussianMixture(2, 3, np.random.default_rng(1), np.float64)
    by_em, by_gradient = (GaussianMixture(2, 3, np.random.default_rng(1), np.float64)
                          for _ in range(2))
    histories = {"EM": em(by_em, z, 30 if args.quick else 100),
                 "gradient ascent (Adam)": gradient_ascent(by_gradient, z,
                                                           300 if args.quick else 2000)}
    print(f"start: mean log p(z) = {start.log_prob(z).mean():.3f}")
    for name, history in histories.items():
        print(f"{name:24s} -> mean log p(z) = {history[-1]:.4f}")
    print(f"EM's log-likelihood never decreases: {bool(np.all(np.diff(histories['EM']) > -1e-12))}")
    by_em.log_prob_backward(np.ones(len(z)) / len(z), z)
    print("gradient of mean log p at EM's fixed point: " + ", ".join(
        f"{name} {np.abs(grad).max():.1e}" for name, grad in by_em.grads.items()))
    r = by_em.responsibilities(z)
    pi = np.exp(by_em.params["logits"]) / np.exp(by_em.params["logits"]).sum()
    print(f"pi = {np.round(pi, 3)}; the mean responsibility {np.round(r.mean(axis=0), 3)}")
    print("You should see: EM at -2.70 from -4.40, never decreasing, and the gradient ascent")
    print("at the same value to 1e-4; a gradient of 1e-13 or less at EM's fixed point (the")
    print("stationary conditions of GM3 *are* the M-step), and pi equal to the mean")
    print("responsibility: sum_n (r_k(z_n) - pi_k) = 0 is the gradient for the logits.")
    plot_em_against_gradient(z, {"EM": by_em, "gradient ascent": by_gradient}, histories,
                             figure_path(args.out, "em_and_gradient.png"))

    train, test = load_mnist_mini()
    n_train, epochs = (1000, 2) if args.quick else (len(train.images), 30)
    train = Dataset(train.images[:n_train], train.labels[:n_train])
    banner(f"A VAE with a 10-component prior, latent size 2 ({epochs} epochs, "
           f"{n_train:,} images)")
    models = {}
    for prior in ("standard_normal", "mixture"):
        model = numvae.VAE(784, 128, 2, prior=prior, prior_components=10, seed=0)
        fit(model, numvae.FastAdam(model.params, lr=1e-3), train, epochs=epochs, seed=0,
            progress=False, log=None)
        result = evaluate_elbo(model, test.images)
        print(f"{prior:16s}: test -ELBO {result['loss']:.1f} +- {result['loss_se']:.1f}")
        models[prior] = model
    print("You should see (full run, 30 epochs): both near 158 nats (158.4 and 157.8, within")
    print("their standard errors): the mixture does not make a better density model of")
    print("MNIST at latent size 2; what it changes is the shape of the latent space.")

    banner("Clustering without the labels")
    mixture = models["mixture"]
    components, accuracy, mapping = plot_latent.mixture_clusters(mixture, test.images,
                                                                 test.labels)
    print(f"most responsible component of the mixture prior: accuracy {accuracy:.1%}; "
          f"component -> digit {mapping}")
    # the ordinary VAE: EM afterwards on its latent means, the E-step of the same class
    means = models["standard_normal"].encode(test.images)[0].astype(np.float64)
    post_hoc = GaussianMixture(2, 10, np.random.default_rng(2), np.float64)
    em(post_hoc, means, 200)
    post_hoc_accuracy, _ = clustering_accuracy(post_hoc.responsibilities(means).argmax(1),
                                               test.labels)
    print(f"EM with 10 components on the standard-normal VAE's latent means: accuracy "
          f"{post_hoc_accuracy:.1%}")
    print(f"(chance: about {np.bincount(test.labels).max() / len(test.labels):.0%}, the "
          "largest class)")
    print("You should see (full run): about 36 % for the mixture prior and about 42 % for EM")
    print("afterwards (--quick: 10 % and 20 %, nothing learnt yet): learning the prior with")
    print("the VAE does not cluster the digits better here. A 2-D latent space of a VAE")
    print("trained without labels separates some digits (0, 1, 6) and mixes others (4, 7, 9;")
    print("3, 5, 8), whichever way the components are fitted; the mixture prior also pulls")
    print("the codes towards its components, several of which share one digit. The")
    print("Hungarian algorithm matches each component to at most one digit, so two")
    print("components on one digit cannot both count.")
    plot_clusterings({f"standard normal prior (EM afterwards: {post_hoc_accuracy:.0%})":
                      models["standard_normal"],
                      f"mixture prior, K = 10 (accuracy {accuracy:.0%})": mixture},
                     test, figure_path(args.out, "mixture_latent_space.png"))
    plot_latent.component_samples(mixture, path=figure_path(args.out, "component_samples.png"))
    print("You should see in component_samples.png one row per component: most rows are")
    print("dominated by one or two digits, and rows with a small weight pi_k look blurred.")


if __name__ == "__main__":
    main()
