# %% [markdown]
# # 11. A linear VAE is probabilistic PCA
#
# Probabilistic PCA (Tipping & Bishop 1999) is the latent variable model
#
#     z ~ N(0, I_q),    x | z ~ N(W z + mu, sigma^2 I_d),    so    x ~ N(mu, W W' + sigma^2 I_d).
#
# Its maximum-likelihood solution is known in closed form (P1). With S the sample covariance,
# lambda_1 >= ... >= lambda_d its eigenvalues and U_q the eigenvectors of the q largest:
#
#     sigma^2_ML = (lambda_{q+1} + ... + lambda_d) / (d - q)   (the mean discarded eigenvalue)
#     W_ML       = U_q (L_q - sigma^2_ML I)^{1/2} R             (R any q x q rotation).
#
# The columns of W_ML span the principal subspace: pPCA is PCA (tutorial 1) with a noise
# model. Lucas, Tucker, Grosse & Norouzi (2019) show that a VAE with a *linear* decoder,
# a Gaussian likelihood, a linear encoder mean and a diagonal encoder covariance has the
# same global optimum: at it, the ELBO equals the pPCA log-likelihood, the decoder spans
# the principal subspace and its sigma^2 is sigma^2_ML. We check this numerically. The
# formulas are derived in docs/derivations.md, section 15: the ML solution (P1), the exact
# posterior (P2), the linear VAE's ELBO in closed form (P3) and the gradient of
# log sigma^2 (P4).
#
# numvae.VAE has ReLU layers and a sigmoid output, so we assemble the linear VAE here from
# numvae's pieces: `Dense` layers, `gaussian_nll` (G1), `kl_divergence` (K1)
# and their backward functions, `Adam`, and the reparameterisation (R1).
#
#     encoder:  mean = x A + a      (Dense(d, q));   log_var: a free vector (q,), the same
#               for every x (the exact pPCA posterior covariance does not depend on x);
#     decoder:  output = z W + b    (Dense(q, d), so the pPCA matrix W is this W');
#     p(x | z) = N(output, sigma^2 I_d) with a learnt s = log sigma^2.
#
# **The gradient with respect to s = log sigma^2 (P4).** Per example, (G1) reads
#
#     R = ||x - output||^2 / (2 e^s) + (d/2) (log(2 pi) + s),
#
# so dR/ds = -||x - output||^2 / (2 sigma^2) + d/2. It is zero when sigma^2 equals the
# mean squared residual per coordinate, ||x - output||^2 / d: sigma^2 learns the noise
# level. We learn s rather than sigma^2 so that sigma^2 = e^s stays positive (the same
# reason the encoder outputs log_var). The gradient is checked by central differences
# below, with all the others.
#
# Run: `python tutorials/11_linear_vae_ppca.py [--quick] [--out DIR]`; or, from Python,
# `run(quick=False, seed=0)` returns the comparison as a dict.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae.diagnostics.gradcheck import check_arrays
from numvae.model.kl import kl_divergence, kl_divergence_backward
from numvae.model.likelihoods import gaussian_nll, gaussian_nll_backward
from numvae.nn.layers import Dense
from numvae.plots.tutorial import banner, figure_path, parse_args, show

D, Q = 5, 2                              # data and latent dimensions
LOG_2PI = np.log(2 * np.pi)

# %% [markdown]
# ## Data from a known pPCA model, and the closed-form ML solution

# %%
def make_data(n, rng):
    """n draws of x = W z + mu + sigma e: (n, D) float64, and the true (W, mu, sigma^2)."""
    W = rng.standard_normal((D, Q)) * np.array([2.0, 1.0])   # two directions, unequal scales
    mu = rng.uniform(-1, 1, D)
    sigma2 = 0.3
    z = rng.standard_normal((n, Q))
    x = z @ W.T + mu + np.sqrt(sigma2) * rng.standard_normal((n, D))
    return x, (W, mu, sigma2)


def ppca_ml(x):
    """Closed-form ML pPCA (Tipping & Bishop 1999): W_ML (D, Q), sigma^2_ML, eigenvalues."""
    centred = x - x.mean(axis=0)
    covariance = centred.T @ centred / len(x)                # the ML (1/n) covariance
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)   # ascending order
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    sigma2 = eigenvalues[Q:].mean()
    W = eigenvectors[:, :Q] * np.sqrt(eigenvalues[:Q] - sigma2)
    return W, sigma2, eigenvalues


def ppca_log_likelihood(x, W, sigma2):
    """Mean over rows of log N(x; mean(x), W W' + sigma^2 I)."""
    C = W @ W.T + sigma2 * np.eye(D)
    centred = x - x.mean(axis=0)
    _, logdet = np.linalg.slogdet(C)
    mahalanobis = np.sum(centred @ np.linalg.inv(C) * centred, axis=1)
    return float(np.mean(-0.5 * (D * LOG_2PI + logdet + mahalanobis)))


def largest_principal_angle(A, B):
    """Largest principal angle, in degrees, between the column spaces of A and B (D, Q)."""
    qa, _ = np.linalg.qr(A)
    qb, _ = np.linalg.qr(B)
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)    # cosines of the angles
    return float(np.degrees(np.arccos(np.clip(cosines.min(), -1.0, 1.0))))

# %% [markdown]
# ## The linear VAE: parameters, loss, gradient
#
# The parameters live in one dict, like every numvae model, so that `Adam` can update
# them: the two Dense layers' arrays plus `log_var` (Q,) and `log_sigma2` (1,).

# %%
class LinearVAE:
    def __init__(self, rng):
        self.encoder = Dense(D, Q, rng=rng, dtype=np.float64)
        self.decoder = Dense(Q, D, rng=rng, dtype=np.float64)
        self.params = {"encoder.W": self.encoder.params["W"], "encoder.b": self.encoder.params["b"],
                       "log_var": np.zeros(Q),
                       "decoder.W": self.decoder.params["W"], "decoder.b": self.decoder.params["b"],
                       "log_sigma2": np.zeros(1)}
        self.grads = {"encoder.W": self.encoder.grads["W"], "encoder.b": self.encoder.grads["b"],
                      "log_var": np.zeros(Q),
                      "decoder.W": self.decoder.grads["W"], "decoder.b": self.decoder.grads["b"],
                      "log_sigma2": np.zeros(1)}

    def forward(self, x, eps):
        """Mean over the batch of the one-sample negative ELBO (V1), and the cache for
        ``loss_and_grad``. x (B, D), eps (B, Q)."""
        mean, encoder_cache = self.encoder.forward(x)                   # (B, Q)
        log_var = np.broadcast_to(self.params["log_var"], mean.shape)   # (B, Q)
        z = mean + np.exp(0.5 * log_var) * eps                          # R1
        output, decoder_cache = self.decoder.forward(z)                 # (B, D)
        sigma = np.exp(0.5 * self.params["log_sigma2"][0])
        negative_elbo = (gaussian_nll(output, x, sigma)          # G1
                         + kl_divergence(mean, log_var))         # K1
        cache = dict(x=x, eps=eps, mean=mean, log_var=log_var, z=z, output=output,
                     sigma=sigma, encoder=encoder_cache, decoder=decoder_cache)
        return float(np.mean(negative_elbo)), cache

    def loss(self, x, eps):
        return self.forward(x, eps)[0]

    def loss_and_grad(self, x, eps):
        loss, c = self.forward(x, eps)
        batch = len(x)
        residual2 = np.sum((x - c["output"]) ** 2, axis=1)             # (B,)
        # d/ds of G1, s = log sigma^2: -||x - output||^2 / (2 sigma^2) + D/2, mean over B
        self.grads["log_sigma2"][0] = np.mean(-residual2 / (2 * c["sigma"] ** 2) + D / 2)
        doutput = gaussian_nll_backward(c["output"], x, c["sigma"]) / batch   # G2
        dz = self.decoder.backward(doutput, c["decoder"])               # D2
        dmean_kl, dlog_var_kl = kl_divergence_backward(c["mean"], c["log_var"])  # K2
        std = np.exp(0.5 * c["log_var"])
        dmean = dz + dmean_kl / batch                                   # V5: the paths add
        dlog_var = dz * 0.5 * std * c["eps"] + dlog_var_kl / batch      # V3 + V4
        self.grads["log_var"][...] = dlog_var.sum(axis=0)  # one log_var shared by all rows
        self.encoder.backward(dmean, c["encoder"], need_input_grad=False)  # D2
        return loss

    def exact_negative_elbo(self, x):
        """Mean negative ELBO without Monte Carlo (P3): for a linear decoder,
        E_q ||x - z W - b||^2 = ||x - mean W - b||^2 + sum_j var_j ||W_j||^2."""
        mean, _ = self.encoder.forward(x)
        var = np.exp(self.params["log_var"])
        W, b = self.params["decoder.W"], self.params["decoder.b"]
        sigma2 = np.exp(self.params["log_sigma2"][0])
        squared = np.sum((x - mean @ W - b) ** 2, axis=1) + var @ np.sum(W**2, axis=1)
        reconstruction = squared / (2 * sigma2) + 0.5 * D * np.log(2 * np.pi * sigma2)
        kl = kl_divergence(mean, np.broadcast_to(np.log(var), mean.shape))
        return float(np.mean(reconstruction + kl))

# %% [markdown]
# ## Training, and the comparison
#
# Full-batch Adam on n = 2,000 points with a fresh eps at every step; in the last fifth
# of the steps the learning rate drops tenfold, so that the Monte Carlo noise of the
# gradient no longer shakes the parameters.

# %%
def train(model, x, steps, rng, lr=0.02, record_every=20):
    optimizer = numvae.Adam(model.params, lr=lr)
    W_ml, _, _ = ppca_ml(x)
    history = dict(step=[], negative_elbo=[], sigma2=[], angle=[])
    for step in range(1, steps + 1):
        if step == int(0.8 * steps):
            optimizer.lr = lr / 10
        model.loss_and_grad(x, rng.standard_normal((len(x), Q)))
        optimizer.step(model.grads)
        if step % record_every == 0 or step == steps:
            history["step"].append(step)
            history["negative_elbo"].append(model.exact_negative_elbo(x))
            history["sigma2"].append(float(np.exp(model.params["log_sigma2"][0])))
            history["angle"].append(largest_principal_angle(model.params["decoder.W"].T, W_ml))
    return history


def run(quick=False, seed=0):
    """Fit the linear VAE to pPCA data and compare it with the ML solution.

    Returns a dict: angle_degrees (largest principal angle between the decoder's column
    space and W_ML's), sigma2 (learnt), sigma2_ml, negative_elbo (exact, per point),
    negative_log_likelihood_ml (per point), decoder_singular_values, ml_singular_values,
    encoder_variance and posterior_variance_ml (sorted), history (per recorded step),
    and the data's eigenvalues (largest first).
    """
    rng = np.random.default_rng(seed)
    x, _ = make_data(2000, rng)
    W_ml, sigma2_ml, eigenvalues = ppca_ml(x)
    model = LinearVAE(rng)
    history = train(model, x, steps=2000 if quick else 4000, rng=rng)
    W_vae = model.params["decoder.W"].T                        # (D, Q), like W_ML
    return dict(angle_degrees=largest_principal_angle(W_vae, W_ml),
                sigma2=float(np.exp(model.params["log_sigma2"][0])), sigma2_ml=float(sigma2_ml),
                negative_elbo=model.exact_negative_elbo(x),
                negative_log_likelihood_ml=-ppca_log_likelihood(x, W_ml, sigma2_ml),
                decoder_singular_values=np.linalg.svd(W_vae, compute_uv=False),
                ml_singular_values=np.linalg.svd(W_ml, compute_uv=False),
                encoder_variance=np.sort(np.exp(model.params["log_var"])),
                # exact pPCA posterior at the ML solution: Cov(z|x) = sigma^2 (W'W + sigma^2 I)^-1
                posterior_variance_ml=np.sort(
                    sigma2_ml / (np.linalg.svd(W_ml, compute_uv=False) ** 2 + sigma2_ml)),
                history=history, eigenvalues=eigenvalues)

# %% [markdown]
# ## Figure

# %%
def plot_training(result, path):
    h = result["history"]
    fig = Figure(figsize=(14, 4), layout="constrained")
    ax_elbo, ax_sigma, ax_angle = fig.subplots(1, 3)
    ax_elbo.plot(h["step"], h["negative_elbo"], label="negative ELBO (exact)")
    ax_elbo.axhline(result["negative_log_likelihood_ml"], color="k", linestyle="--",
                    label="-log-likelihood at the pPCA ML solution")
    ax_elbo.set_ylim(result["negative_log_likelihood_ml"] - 0.2,
                     result["negative_log_likelihood_ml"] + 3)
    ax_elbo.set_ylabel("nats per point")
    ax_elbo.set_title("The negative ELBO falls to the ML -log-likelihood")
    ax_sigma.plot(h["step"], h["sigma2"], label="learnt sigma^2")
    ax_sigma.axhline(result["sigma2_ml"], color="k", linestyle="--", label="sigma^2_ML")
    ax_sigma.set_ylabel("sigma^2")
    ax_sigma.set_title("Decoder noise variance sigma^2")
    ax_angle.semilogy(h["step"], h["angle"])
    ax_angle.set_ylabel("degrees")
    ax_angle.set_title("Largest principal angle, decoder vs W_ML")
    for ax in (ax_elbo, ax_sigma, ax_angle):
        ax.set_xlabel("Adam step (full batch)")
        ax.grid(alpha=0.3, which="both")
    ax_elbo.legend(fontsize="small")
    ax_sigma.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## The story

# %%
args = parse_args("11_linear_vae_ppca", "A linear VAE recovers probabilistic PCA.")

# %%
banner("Gradient check of the linear VAE, log sigma^2 included (float64)")
rng = np.random.default_rng(1)
model = LinearVAE(rng)
model.params["log_var"][...] = rng.normal(size=Q)     # non-trivial values everywhere
model.params["log_sigma2"][...] = 0.4
x, eps = rng.standard_normal((6, D)), rng.standard_normal((6, Q))
model.loss_and_grad(x, eps)
analytic = {name: grad.copy() for name, grad in model.grads.items()}
errors = check_arrays(lambda: model.loss(x, eps), model.params, analytic)
for name, error in errors.items():
    print(f"  {name:<11} relative error {error:.1e}")
assert max(errors.values()) < 1e-6
print("You should see: every relative error below 1e-6, log_sigma2 included.")

# %%
banner("Training on 2,000 points of a pPCA model with d = 5, q = 2")
result = run(quick=args.quick, seed=0)
print(f"data eigenvalues: {np.array2string(result['eigenvalues'], precision=3)}")
print(f"largest principal angle between the rows of the decoder's W (q x d) and W_ML's columns: "
      f"{result['angle_degrees']:.3f} degrees")
print(f"sigma^2: learnt {result['sigma2']:.4f}, ML {result['sigma2_ml']:.4f} "
      f"(relative difference {abs(result['sigma2'] / result['sigma2_ml'] - 1):.2%})")
singular = [np.array2string(result[key], precision=3)
            for key in ("decoder_singular_values", "ml_singular_values")]
print(f"singular values of the decoder {singular[0]}, of W_ML {singular[1]}")
print(f"negative ELBO {result['negative_elbo']:.4f} nats per point; -log-likelihood at the "
      f"ML solution {result['negative_log_likelihood_ml']:.4f}")
print(f"encoder variances (shared by all x): "
      f"{np.array2string(result['encoder_variance'], precision=4)}; exact pPCA posterior "
      f"variances sigma^2 / (s_i^2 + sigma^2) (P2): "
      f"{np.array2string(result['posterior_variance_ml'], precision=4)}")
gap = result["negative_elbo"] - result["negative_log_likelihood_ml"]
assert result["angle_degrees"] < 1 and abs(result["sigma2"] / result["sigma2_ml"] - 1) < 0.01
assert np.allclose(result["decoder_singular_values"], result["ml_singular_values"], rtol=0.01)
assert -1e-9 <= gap < 1e-3
assert np.allclose(result["encoder_variance"], result["posterior_variance_ml"], rtol=0.02)
print("You should see: an angle well under a degree, sigma^2 within 1% of sigma^2_ML")
print("(the mean of the three small eigenvalues, near the true 0.3), the decoder's")
print("singular values equal to W_ML's, sqrt(lambda_i - sigma^2), and a negative ELBO")
print("within a thousandth of a nat of the ML value, and the encoder's variances equal to")
print("the exact posterior's (about 0.022 and 0.21). At the optimum the bound is tight:")
print("the exact pPCA posterior is Gaussian, and once the rows of the decoder's W are")
print("orthogonal its covariance is diagonal, which the encoder can represent.")
show(plot_training(result, figure_path(args.out, "linear_vae_vs_ppca.png")))
print("You should see in it: the negative ELBO falling to the ML line and sigma^2 reaching")
print("sigma^2_ML within about 500 steps; the angle falling below a degree, then jittering")
drop_step = int(0.8 * result["history"]["step"][-1])  # train() drops it for the last fifth
assert drop_step == (1_600 if args.quick else 3_200)
print("with the Monte Carlo noise of the gradient (a fresh eps at every step), less so after")
print(f"the learning rate drops at step {drop_step:,}.")
