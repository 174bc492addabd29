# %% [markdown]
# # 2. A latent variable model fitted by EM: the 1-D Gaussian mixture
#
# The slides' example of a latent variable model (section "Context: latent variable model"):
#
#     p(z) = Categorical(pi_1, ..., pi_K),      p(x | z = k) = N(mu_k, sigma_k^2).
#
# z, the component an observation came from, is never seen. The likelihood of one x sums
# over it, p(x) = sum_k pi_k N(x; mu_k, sigma_k^2), and EM (Expectation-Maximisation)
# maximises it by alternating two steps, from the current parameters theta_n:
#
# * **E-step**: the posterior of the latent variable, the *responsibilities*
#   r_ik = p(z_i = k | x_i) = pi_k N(x_i; mu_k, sigma_k^2) / p(x_i). Here it is a ratio of
#   K numbers: the posterior is tractable, which is what the VAE will lose.
# * **M-step**: maximise Q(theta | theta_n) = sum_i E_{p_theta_n(z|x_i)}[log p_theta(x_i, z)]
#   over theta. For a Gaussian mixture this is closed form: weighted counts, weighted
#   means, weighted variances.
#
# Each iteration can only increase the log-likelihood (Dempster, Laird & Rubin 1977);
# we check it. One correction to the slide: its line log p(x) = E_{p(z|x)}[log p(x, z)]
# misses a term. The exact identity is
#
#     log p(x) = E_{p(z|x)}[log p(x, z)] + H(p(z|x)),   H(p) = -E_p[log p] >= 0,
#
# (take expectations of log p(x) = log p(x, z) - log p(z|x) under p(z|x)). The M-step
# may ignore H because it does not depend on the new theta. We check this identity too:
# it is the ELBO of tutorial 3 with q equal to the exact posterior.
#
# Run: `python tutorials/02_latent_variable_models.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure

from numvae.plots.tutorial import banner, figure_path, parse_args, show

LOG_2PI = np.log(2 * np.pi)

# %% [markdown]
# ## Data from a known mixture

# %%
TRUE = dict(pi=np.array([0.3, 0.5, 0.2]), mu=np.array([-3.0, 0.0, 4.0]),
            sigma=np.array([0.6, 1.0, 0.8]))


def sample_mixture(n, pi, mu, sigma, rng):
    """n draws of the mixture: first z ~ Categorical(pi), then x ~ N(mu_z, sigma_z^2)."""
    z = rng.choice(len(pi), size=n, p=pi)          # the latent variable, (n,)
    return mu[z] + sigma[z] * rng.standard_normal(n), z

# %% [markdown]
# ## E-step and M-step
#
# Everything is computed in logs: log N(x; mu, sigma^2) = -(x - mu)^2 / (2 sigma^2)
# - log sigma - log(2 pi) / 2, and log p(x) = log sum_k exp(log pi_k + log N_k) with the
# largest term factored out (log-sum-exp), so that no density underflows to 0.

# %%
def log_joint(x, pi, mu, sigma):
    """log p(x_i, z_i = k) = log pi_k + log N(x_i; mu_k, sigma_k^2): (n,) -> (n, K)."""
    log_normal = (-0.5 * ((x[:, None] - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * LOG_2PI)
    return np.log(pi) + log_normal


def e_step(x, pi, mu, sigma):
    """Responsibilities r (n, K) = p(z = k | x), and log p(x_i) (n,)."""
    joint = log_joint(x, pi, mu, sigma)
    top = joint.max(axis=1, keepdims=True)          # log-sum-exp: subtract the max
    log_px = top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))
    return np.exp(joint - log_px[:, None]), log_px


def m_step(x, r):
    """argmax over (pi, mu, sigma) of Q = sum_i sum_k r_ik log p(x_i, z_i = k)."""
    counts = r.sum(axis=0)                            # (K,) expected members of each component
    pi = counts / len(x)
    mu = (r * x[:, None]).sum(axis=0) / counts
    var = (r * (x[:, None] - mu) ** 2).sum(axis=0) / counts
    return pi, mu, np.sqrt(var)


def em(x, pi, mu, sigma, n_iterations):
    """Run EM; returns the final parameters and the log-likelihood before each M-step."""
    log_likelihoods = []
    for _ in range(n_iterations):
        r, log_px = e_step(x, pi, mu, sigma)
        log_likelihoods.append(float(log_px.sum()))
        pi, mu, sigma = m_step(x, r)
    _, log_px = e_step(x, pi, mu, sigma)
    log_likelihoods.append(float(log_px.sum()))
    return (pi, mu, sigma), np.array(log_likelihoods)

# %% [markdown]
# ## Figure: the fit, the climb, the posterior

# %%
def plot_em(x, fitted, log_likelihoods, path):
    pi, mu, sigma = fitted
    grid = np.linspace(x.min() - 1, x.max() + 1, 400)
    fig = Figure(figsize=(14, 4.2), layout="constrained")
    ax_fit, ax_ll, ax_post = fig.subplots(1, 3)

    ax_fit.hist(x, bins=60, density=True, color="0.8", label="data")
    component = np.exp(log_joint(grid, pi, mu, sigma))            # (400, K): pi_k N_k
    for k in range(len(pi)):
        ax_fit.plot(grid, component[:, k], linewidth=1, label=f"pi_{k} N(mu_{k}, sigma_{k}^2)")
    ax_fit.plot(grid, component.sum(axis=1), "k", linewidth=2, label="fitted p(x)")
    truth = np.exp(log_joint(grid, **TRUE)).sum(axis=1)
    ax_fit.plot(grid, truth, "r--", linewidth=1, label="true p(x)")
    ax_fit.set_xlabel("x")
    ax_fit.set_ylabel("density")
    ax_fit.set_title("The fitted mixture")
    ax_fit.legend(fontsize="small")

    ax_ll.plot(np.arange(len(log_likelihoods)), log_likelihoods / len(x), "o-", markersize=3)
    ax_ll.set_xlabel("EM iteration")
    ax_ll.set_ylabel("log-likelihood per observation (nats)")
    ax_ll.set_title("EM never decreases log p(x)")
    ax_ll.grid(alpha=0.3)

    r, _ = e_step(grid, pi, mu, sigma)
    ax_post.stackplot(grid, r.T, labels=[f"p(z = {k} | x)" for k in range(len(pi))], alpha=0.8)
    ax_post.set_xlabel("x")
    ax_post.set_ylabel("posterior probability")
    ax_post.set_title("Responsibilities: the exact posterior p(z | x)")
    ax_post.legend(fontsize="small", loc="center right")
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## The story

# %%
args = parse_args("02_latent_variable_models", "A 1-D Gaussian mixture fitted by EM.")
rng = np.random.default_rng(0)
n, n_iterations = (500, 40) if args.quick else (3000, 60)
x, z = sample_mixture(n, **TRUE, rng=rng)

# %%
banner("EM from a poor start")
start = (np.full(3, 1 / 3), np.array([-1.0, 0.0, 1.0]), np.ones(3))  # bunched, too narrow
fitted, log_likelihoods = em(x, *start, n_iterations)
for i in [0, 1, 2, 3, 5, 10, 20, 30, n_iterations]:
    print(f"iteration {i:>3}: log p(x) = {log_likelihoods[i]:10.3f}"
          f"   ({log_likelihoods[i] / n:7.4f} per observation)")
steps = np.diff(log_likelihoods)
# monotone up to rounding: a decrease larger than 1e-9 relative would be a bug
assert np.all(steps >= -1e-9 * np.abs(log_likelihoods[1:])), steps.min()
print(f"smallest change over the {n_iterations} iterations: {steps.min():.3g} "
      "(never negative beyond rounding)")
per_point = log_likelihoods / n
assert -3.5 < per_point[0] < -3.2 and -2.4 < per_point[1] < -2.25
assert abs(per_point[30] - per_point[-1]) < 1e-3 and abs(per_point[-1] + 2.15) < 0.02
print("You should see: log p(x) rising fast at first, from -3.3 to -3.4 nats per observation")
print("at the start to about -2.3 after one iteration, then slowly, levelling off at about")
print("-2.15 after some 30 iterations, every change >= 0.")

pi, mu, sigma = fitted
order = np.argsort(mu)                            # components come out in any order
def row(values):
    return " ".join(f"{v:6.2f}" for values_k in values for v in values_k)

print(f"\n{'':>7} {'pi_0..pi_2':^20} {'mu_0..mu_2':^20} {'sigma_0..sigma_2':^20}")
print(f"{'fitted':>7} {row([pi[order], mu[order], sigma[order]])}")
print(f"{'true':>7} {row([TRUE['pi'], TRUE['mu'], TRUE['sigma']])}")
largest_miss = max(np.max(np.abs(fitted_k - TRUE[key])) for fitted_k, key in
                   zip([pi[order], mu[order], sigma[order]], ["pi", "mu", "sigma"]))
assert largest_miss < (0.1 if args.quick else 0.05), largest_miss
print("You should see: the fitted parameters within about 0.05 of the true ones (0.1 with")
print("--quick's 500 points).")

# %%
banner("The posterior the E-step uses, and the identity log p(x) = Q + H")
r, log_px = e_step(x, *fitted)
assignment = np.argmax(r, axis=1)
agree = np.mean(order.argsort()[assignment] == z)  # relabel the fitted components
print(f"the most probable component argmax_k p(z = k | x) is the true z for {agree:.1%} "
      "of the points")
joint = log_joint(x, *fitted)                                    # (n, K)
q_term = float(np.sum(r * joint))                                # E_{p(z|x)}[log p(x, z)]
entropy = float(-np.sum(r * np.log(np.clip(r, 1e-300, None))))   # 0 log 0 = 0
total = float(log_px.sum())
print(f"sum_i log p(x_i)             = {total:12.4f}")
print(f"sum_i E_p(z|x)[log p(x, z)]  = {q_term:12.4f}   (the slide's right-hand side)")
print(f"sum_i H(p(z | x_i))          = {entropy:12.4f}")
print(f"Q + H - log p(x)             = {q_term + entropy - total:12.2e}")
assert abs(q_term + entropy - total) < 1e-8 * abs(total)
print(f"H per point: {entropy / n:.3f} nats")
assert 0.03 < entropy / n < 0.2
print("You should see: Q + H equal to log p(x) up to rounding (about 1e-12), and H between")
print("0.03 and 0.2 nats per point (0.09 with 3,000 points, 0.055 with --quick's 500):")
print("small, because most points belong clearly to one component, but not zero, so the")
print("slide's line is off by exactly H.")

show(plot_em(x, fitted, log_likelihoods, figure_path(args.out, "gmm_em.png")))
