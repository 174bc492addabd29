# %% [markdown]
# # 4. The reparameterisation trick, and why its gradients are less noisy
#
# The encoder's parameters phi sit in the *distribution* of z, so the gradient of
# E_{q_phi}[f(z)] is not the expectation of a gradient of f (slides: "Stochastic
# gradient-based optimisation of the ELBO"). The trick writes z as a deterministic,
# differentiable function of phi and of a noise whose law does not depend on phi
# (docs/derivations.md, section 3, (R1)):
#
# * Gaussian: z = mu + sigma * eps, eps ~ N(0, 1);
# * any one-dimensional q with an invertible CDF F: z = F^{-1}(u), u ~ U(0, 1)
#   ("inverse transform sampling", the slides' first example).
#
# Then d/dphi E_q[f(z)] = E_eps[f'(z) dz/dphi]: average the gradient of f along the
# sampled path. The older alternative is the *score-function* (REINFORCE, likelihood-ratio)
# estimator, which needs f's values only:
#
#     d/dmu E_q[f(z)] = E_q[f(z) d/dmu log q(z)] = E_q[f(z) (z - mu) / sigma^2].
#
# Both are unbiased. We compare their variances for d/dmu E_{N(mu, sigma^2)}[f(z)].
#
# Run: `python tutorials/04_reparameterisation.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from statistics import NormalDist

import numpy as np
from matplotlib.figure import Figure

from numvae.nn.layers import sigmoid
from numvae.plots.tutorial import banner, figure_path, parse_args, show

MU, SIGMA = 1.5, 0.5          # q = N(MU, SIGMA^2)
RATE = 2.0                    # an exponential distribution for the inverse-CDF example

# %% [markdown]
# ## Sampling by inverse CDF
#
# If u ~ U(0, 1) then P(F^{-1}(u) <= z) = P(u <= F(z)) = F(z): z has CDF F. For the
# exponential with rate lambda, F(z) = 1 - exp(-lambda z), so z = -log(1 - u) / lambda,
# and dz/dlambda = log(1 - u) / lambda^2 = -z / lambda: a reparameterised gradient for a
# distribution that is not Gaussian. For the Gaussian, F^{-1} has no closed form; Python's
# `statistics.NormalDist(mu, sigma).inv_cdf` computes it (Wichura's algorithm AS241), and
# inv_cdf(u) = mu + sigma * Phi^{-1}(u): the same map as mu + sigma * eps.

# %%
def exponential_inverse_cdf(u, rate):
    return -np.log1p(-u) / rate                      # log1p: accurate for small u


def gaussian_inverse_cdf(u, mu, sigma):
    """NormalDist(mu, sigma).inv_cdf applied to each entry of u (a scalar function)."""
    inverse = NormalDist(mu, sigma).inv_cdf
    return np.array([inverse(value) for value in u])


def kolmogorov_distance(samples, cdf):
    """max over z of |empirical CDF - F(z)|: about 1/sqrt(n) for a correct sampler."""
    z = np.sort(samples)
    n = len(z)
    f = cdf(z)
    return float(max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n)))

# %% [markdown]
# ## Two estimators of d/dmu E[f(z)], one sample each
#
# With z = mu + sigma * eps:
#
# * score function: g_SF = f(z) * (z - mu) / sigma^2 = f(z) * eps / sigma;
# * reparameterised: g_RP = f'(z) * dz/dmu = f'(z).
#
# g_SF multiplies the *value* f(z), which may be large and of either sign, by a zero-mean
# noise eps / sigma; g_RP uses the local slope of f. A baseline (subtract E[f] from f(z),
# which leaves the mean unchanged since E[eps] = 0) reduces the score function's variance,
# but does not close the gap.

# %%
def f_square(z):
    return z * z


def df_square(z):
    return 2 * z


def df_sigmoid(z):
    s = sigmoid(z)
    return s * (1 - s)


FUNCTIONS = {"f(z) = z^2": (f_square, df_square), "f(z) = sigmoid(z)": (sigmoid, df_sigmoid)}


def gaussian_expectation(g, mu=MU, sigma=SIGMA, order=80):
    """E[g(z)] for z ~ N(mu, sigma^2), by Gauss-Hermite quadrature (exact for polynomials
    of degree < 2 * order)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)   # weight exp(-x^2 / 2)
    return float(np.sum(weights * g(mu + sigma * nodes)) / np.sqrt(2 * np.pi))


def gradient_samples(f, df, eps, baseline=0.0):
    """Per-draw estimates of d/dmu E[f(z)]: score function, score function with a
    baseline, reparameterised. eps: any shape; returns three arrays of that shape."""
    z = MU + SIGMA * eps
    score = f(z) * eps / SIGMA                       # f(z) d/dmu log q(z)
    score_baseline = (f(z) - baseline) * eps / SIGMA
    reparam = df(z)                                  # f'(z) dz/dmu, dz/dmu = 1
    return score, score_baseline, reparam

# %% [markdown]
# ## Figures

# %%
def plot_inverse_cdf(u, z_exp, z_gauss, path):
    fig = Figure(figsize=(13, 4), layout="constrained")
    ax_map, ax_exp, ax_gauss = fig.subplots(1, 3)
    grid_u = np.linspace(0.001, 0.999, 300)
    ax_map.plot(grid_u, exponential_inverse_cdf(grid_u, RATE), label=f"Exponential(rate {RATE})")
    ax_map.plot(grid_u, gaussian_inverse_cdf(grid_u, MU, SIGMA), label=f"N({MU}, {SIGMA}^2)")
    ax_map.set_xlabel("u")
    ax_map.set_ylabel("z = F^{-1}(u)")
    ax_map.set_title("The maps u -> z")
    ax_map.legend(fontsize="small")
    grid = np.linspace(0, z_exp.max(), 300)
    ax_exp.hist(z_exp, bins=80, density=True, color="0.75", label="F^{-1}(u), u ~ U(0, 1)")
    ax_exp.plot(grid, RATE * np.exp(-RATE * grid), "C0", label="density")
    ax_exp.set_title("Exponential by inverse CDF")
    grid = np.linspace(z_gauss.min(), z_gauss.max(), 300)
    ax_gauss.hist(z_gauss, bins=80, density=True, color="0.75", label="inv_cdf(u)")
    ax_gauss.plot(grid, [NormalDist(MU, SIGMA).pdf(g) for g in grid], "C1", label="density")
    ax_gauss.set_title("Gaussian by NormalDist.inv_cdf")
    for ax in (ax_exp, ax_gauss):
        ax.set_xlabel("z")
        ax.set_ylabel("density")
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    return fig


def plot_variance(sizes, variances, per_sample, path):
    """variances[name][estimator]: empirical variance of the n-sample average, per n."""
    fig = Figure(figsize=(12, 4.3), layout="constrained")
    for ax, (name, by_estimator) in zip(fig.subplots(1, 2), variances.items()):
        for k, (estimator, values) in enumerate(by_estimator.items()):
            ax.plot(sizes, values, "o", color=f"C{k}", label=estimator)
            ax.plot(sizes, per_sample[name][estimator] / np.asarray(sizes), "-", color=f"C{k}",
                    linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("number of samples n in the Monte Carlo average")
        ax.set_ylabel("variance of the gradient estimate")
        ax.set_title(f"d/dmu E[{name.split(' = ')[1]}], q = N({MU}, {SIGMA}^2)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle("Points: measured over repeated estimates; lines: per-sample variance / n")
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## The story

# %%
args = parse_args("04_reparameterisation",
                  "Reparameterisation, inverse-CDF sampling, gradient variances.")
rng = np.random.default_rng(0)
n_draws, n_icdf, n_repeats = (20_000, 2_000, 200) if args.quick else (1_000_000, 20_000, 2000)

# %%
banner("Sampling: z = mu + sigma * eps")
eps = rng.standard_normal(n_draws)
z = MU + SIGMA * eps
print(f"{n_draws:,} draws: mean {z.mean():.4f} (mu = {MU}), "
      f"std {z.std():.4f} (sigma = {SIGMA})")

# %%
banner("Sampling by inverse CDF: z = F^{-1}(u), u ~ U(0, 1)")
u = rng.uniform(size=n_icdf)
z_exp = exponential_inverse_cdf(u, RATE)
z_gauss = gaussian_inverse_cdf(u, MU, SIGMA)
ks_exp = kolmogorov_distance(z_exp, lambda t: 1 - np.exp(-RATE * t))
ks_gauss = kolmogorov_distance(z_gauss, np.vectorize(NormalDist(MU, SIGMA).cdf))
print(f"exponential: mean {z_exp.mean():.4f} (1/rate = {1 / RATE}), "
      f"max |empirical CDF - F| = {ks_exp:.4f} (1/sqrt(n) = {1 / np.sqrt(n_icdf):.4f})")
print(f"Gaussian:    mean {z_gauss.mean():.4f}, std {z_gauss.std():.4f}, "
      f"max |empirical CDF - F| = {ks_gauss:.4f}")
same_map = np.max(np.abs(z_gauss - (MU + SIGMA * gaussian_inverse_cdf(u, 0.0, 1.0))))
print(f"inv_cdf(u) against mu + sigma * Phi^{{-1}}(u): largest difference {same_map:.1e}")
# d/drate E[z] = d/drate (1 / rate) = -1 / rate^2, through the path z = F^{-1}(u)
path_gradient = np.mean(-z_exp / RATE)
print(f"d/drate E[z] through the path, mean of dz/drate = -z / rate: {path_gradient:.4f} "
      f"(exact: -1/rate^2 = {-1 / RATE**2})")
# sampling errors of the order of 1/sqrt(n): here within 4 standard errors
tolerance = 4 / np.sqrt(n_icdf)
assert abs(z_exp.mean() - 1 / RATE) < tolerance / RATE
assert abs(z_gauss.mean() - MU) < tolerance * SIGMA
assert abs(z.mean() - MU) < 4 * SIGMA / np.sqrt(n_draws) and max(ks_exp, ks_gauss) < 2 * tolerance
assert same_map < 1e-12 and abs(path_gradient + 1 / RATE**2) < tolerance / RATE**2
print("You should see: sample means and stds within a few 1/sqrt(n) of the targets (about")
print("0.01 with --quick's 2,000 inverse-CDF draws, 0.002 with the full 20,000), CDF")
print("distances of the order of 1/sqrt(n), no difference between the two Gaussian maps")
print("(0 or about 1e-16), and a path gradient within a few 1/sqrt(n) of -0.25.")
show(plot_inverse_cdf(u, z_exp, z_gauss, figure_path(args.out, "inverse_cdf.png")))

# %%
banner("Gradient estimators of d/dmu E[f(z)]: one draw each")
print(f"{'':<19} {'exact':>8} | {'mean of the one-draw estimates':^32} | "
      f"{'variance of one draw':^32}")
print(f"{'':<19} {'':>8} | {'score':>10} {'+baseline':>10} {'reparam':>10} | "
      f"{'score':>10} {'+baseline':>10} {'reparam':>10}")
per_sample = {}
for name, (f, df) in FUNCTIONS.items():
    exact = gaussian_expectation(df)                 # d/dmu E[f] = E[f'(z)]
    baseline = gaussian_expectation(f)               # E[f(z)]
    estimates = gradient_samples(f, df, eps, baseline)
    means = [e.mean() for e in estimates]
    variances = [e.var(ddof=1) for e in estimates]
    per_sample[name] = dict(zip(["score function", "score function + baseline",
                                 "reparameterised"], variances))
    print(f"{name:<19} {exact:>8.4f} | " + " ".join(f"{m:>10.4f}" for m in means) + " | "
          + " ".join(f"{v:>10.4f}" for v in variances))
    assert variances[2] < variances[1] < variances[0]
    # unbiased: every mean within 5 standard errors of the exact gradient
    assert all(abs(m - exact) < 5 * np.sqrt(v / len(eps)) for m, v in zip(means, variances))
exact_score = (MU**4 + 18 * MU**2 * SIGMA**2 + 15 * SIGMA**4) / SIGMA**2 - 4 * MU**2
square, soft = (list(per_sample[name].values()) for name in FUNCTIONS)
assert abs(square[0] / exact_score - 1) < 0.1 and 18 < square[1] < 23
assert abs(square[2] / (4 * SIGMA**2) - 1) < 0.05
assert 2.2 < soft[0] < 2.8 and 0.045 < soft[1] < 0.055 and 0.0016 < soft[2] < 0.0020
assert 1_100 < soft[0] / soft[2] < 1_700 and 20 < soft[1] / soft[2] < 35
print(f"closed form for z^2: score {exact_score:.4f}, reparameterised 4 sigma^2 = "
      f"{4 * SIGMA**2:.4f}")
print("You should see: every estimator's mean close to the exact gradient, 3.0 and 0.150")
print("(all three are unbiased), and for z^2 one-draw variances of about 55 (the closed")
print("form says 55.5), 18 to 23 with the baseline and 1.0 reparameterised: 55 times less")
print("noise. For the sigmoid: about 2.5, 0.05 and 0.0018, a ratio near 1,400 (28 against")
print("the baseline).")

# %%
banner("Variance of the n-sample average against n")
sizes = [1, 3, 10, 30, 100, 300, 1000] if not args.quick else [1, 10, 100]
variances = {}
for name, (f, df) in FUNCTIONS.items():
    baseline = gaussian_expectation(f)
    variances[name] = {key: [] for key in per_sample[name]}
    for n in sizes:
        draws = rng.standard_normal((n_repeats, n))
        averages = [e.mean(axis=1) for e in gradient_samples(f, df, draws, baseline)]
        for key, values in zip(variances[name], averages):
            variances[name][key].append(values.var(ddof=1))
    line = ", ".join(f"{key} {values[-1]:.2e}" for key, values in variances[name].items())
    print(f"{name}, n = {sizes[-1]}: {line}")
for name in FUNCTIONS:  # 1/n: n times the variance of the average is one draw's variance
    for key, values in variances[name].items():
        assert abs(sizes[-1] * values[-1] / per_sample[name][key] - 1) < 0.3, (name, key)
ratios = [variances[name]["score function"][-1] / variances[name]["reparameterised"][-1]
          for name in FUNCTIONS]
assert 35 < ratios[0] < 70 and 900 < ratios[1] < 2_000, ratios
print("You should see: every variance falling like 1/n (parallel lines on the log-log")
print("plot), the reparameterised one one to three orders of magnitude lower at every n:")
print("to match its precision the score function needs 50 (z^2) to 1,400 (sigmoid) times")
print("as many samples.")
show(plot_variance(sizes, variances, per_sample, figure_path(args.out, "gradient_variance.png")))
