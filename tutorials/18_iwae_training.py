# %% [markdown]
# # 18. Training with the importance-weighted bound
#
# Tutorial 12 *evaluated* the bounds L_K of Burda, Grosse & Salakhutdinov (2016) on a model
# trained with the ELBO. Here the bound is the training loss:
#
#     J = -(1/B) sum_b log (1/K) sum_k w_bk,   w = p(x, z_k) / q(z_k|x)             (IW1)
#
# `numvae.VAE(..., objective=IWAE(k=K))`. Its gradient (docs/derivations.md,
# section 16) is the ELBO's with one change: each of the K draws is weighted by its
# normalised weight w~_k = w_k / sum_k' w_k' (IW2) instead of 1/K. Draws that explain x
# well dominate; draws that miss are forgiven. So the encoder is no longer punished for
# spreading q(z|x) wider than the true posterior, and the decoder can become a better
# model of the data (a higher log p(x)) while the ELBO, the bound at K = 1, may even fall.
#
# Three questions, three sections:
# 1. K = 1 is the ELBO: the same gradient, number for number.
# 2. Train the same model with the ELBO and with the bound at K = 5 and K = 20: which has
#    the higher log-likelihood, which the higher ELBO, and what happened to the encoder?
# 3. Why not K = 1000? The encoder's gradient signal (Rainforth et al. 2018).
#
# Run: `python tutorials/18_iwae_training.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae.diagnostics.evaluate import active_units, evaluate_elbo, iwae_log_likelihood
from numvae.io import datasets
from numvae.model import priors
from numvae.model.objectives import ELBO, IWAE
from numvae.plots.tutorial import banner, figure_path, parse_args, show
from numvae.training.loop import fit

# %% [markdown]
# ## 1. K = 1 is the ELBO with a Monte Carlo KL
#
# With one draw, w~ = 1 and J = (1/B) sum_b [-log p(x|z) - log p(z) + log q(z|x)]: the
# negative ELBO whose KL is estimated at that draw (K3) instead of computed in closed form
# (K1). numvae computes the closed form whenever a formula is registered for the pair of
# posterior and prior (`ANALYTIC_KL`); a prior class under another name has none, so the
# ELBO falls back on the Monte Carlo KL and the two gradients can be compared.

# %%
class PlainNormal(priors.StandardNormal):
    """N(0, I) without a registered closed-form KL."""
    name = "plain_normal"


def k_equals_one(x, rng):
    priors.PRIORS.setdefault(PlainNormal.name, PlainNormal)
    options = dict(encoder_hidden=(50,), decoder_hidden=(50,), activation="tanh",
                   dtype=np.float64, seed=0)
    iwae = numvae.VAE(784, 50, 5, objective=IWAE(k=1), **options)
    elbo = numvae.VAE(784, 50, 5, prior="plain_normal", **options)
    eps = rng.standard_normal((1, len(x), 5))
    losses = iwae.loss_and_grad(x, eps), elbo.loss_and_grad(x, eps)
    worst = max(np.max(np.abs(iwae.grads[n] - elbo.grads[n])) for n in iwae.grads)
    del priors.PRIORS[PlainNormal.name]
    return losses, worst

# %% [markdown]
# ## 2. The same model, two or three objectives (the ELBO, IWAE with K = 5, and K = 20
# in full mode)
#
# Burda et al.'s architecture, smaller: tanh layers 784-100-100-20 and back, dynamically
# binarised images, Adam. `n_samples` is K; the ELBO model draws one z per image. The
# IWAE models see K decoder passes per image, so each step costs about K times more: the
# comparison per epoch flatters them (Burda et al. also compare an ELBO model with K
# draws, whose gradient averages the K draws: their Table 1 gives it 86.47 against the
# IWAE's 85.54 at K = 5).

# %%
def train_models(train_images, ks, epochs, seed=0):
    models = {}
    for k in ks:
        objective = ELBO(n_samples=k) if k == 1 else IWAE(k=k)
        model = numvae.VAE(784, 100, 20, encoder_hidden=(100,), decoder_hidden=(100, 100),
                           activation="tanh", objective=objective, seed=seed)
        fit(model, numvae.Adam(model.params, lr=1e-3), train_images, epochs=epochs,
            batch_size=20, seed=seed, binarize=True, progress=False, log=None)
        models[f"{objective.name} K={k}"] = model
    return models


def describe(models, test_images, eval_k):
    """Test ELBO, the bound L_eval_k (our log p(x) estimate), KL, active units, and the
    encoder's mean standard deviation, per model."""
    rows = {}
    for name, model in models.items():
        elbo = evaluate_elbo(model, test_images)
        bound = iwae_log_likelihood(model, test_images, k=eval_k)
        _, log_var = model.encode(test_images)
        rows[name] = dict(elbo=-elbo["loss"], log_px=bound["log_px"], kl=elbo["kl"],
                          per_example=bound["per_example"],
                          active=active_units(model, test_images)[0],
                          std=float(np.exp(0.5 * log_var).mean()))
    return rows

# %% [markdown]
# ## 3. The encoder's gradient signal as K grows
#
# Rainforth et al. (2018): for the IWAE, the expected gradient of the encoder's
# parameters shrinks like 1/K while its noise shrinks only like 1/sqrt(K), so the
# signal-to-noise ratio |E[g]| / sd(g) of the encoder falls like 1/sqrt(K); the decoder's
# rises like sqrt(K). We measure it on one model and one batch: many draws of eps, one
# gradient each, then the ratio per parameter entry, averaged over the entries.

# %%
def gradient_snr(model, x, ks, n_draws, rng):
    results = {}
    for k in ks:
        probe = numvae.VAE.from_config({**model.config, "objective": {"name": "iwae", "k": k},
                                        "dtype": "float64"})
        for name in probe.params:
            probe.params[name][...] = model.params[name]
        draws = {"encoder": [], "decoder": []}
        for _ in range(n_draws):
            probe.loss_and_grad(x, rng.standard_normal((k, len(x), probe.latent_dim)))
            for part in draws:
                draws[part].append(np.concatenate([g.ravel() for n, g in probe.grads.items()
                                                   if n.startswith(part)]))
        results[k] = {part: float(np.mean(np.abs(np.mean(g, 0)) / (np.std(g, 0) + 1e-12)))
                      for part, g in ((p, np.array(d)) for p, d in draws.items())}
    return results

# %% [markdown]
# ## Figure

# %%
def plot(rows, snr, path):
    fig = Figure(figsize=(13, 4), layout="constrained")
    ax_bounds, ax_std, ax_snr = fig.subplots(1, 3)
    names = list(rows)
    positions = np.arange(len(names))
    ax_bounds.plot(positions, [rows[n]["elbo"] for n in names], "o", markersize=9,
                   label="ELBO")
    ax_bounds.plot(positions, [rows[n]["log_px"] for n in names], "s", markersize=9,
                   label="log p(x) estimate (L_K, large K)")
    ax_bounds.set_xlim(-0.5, len(names) - 0.5)
    ax_bounds.set_xticks(positions, names)
    ax_bounds.set_ylabel("nats per test image")
    ax_bounds.set_title("The IWAE's bound tightens: higher log p(x)")
    ax_bounds.legend(fontsize="small")
    ax_std.bar(positions, [rows[n]["std"] for n in names], color="C2")
    ax_std.set_xticks(positions, names)
    ax_std.set_title("Encoder: mean posterior std")
    ks = sorted(snr)
    for part, marker in (("encoder", "o-"), ("decoder", "s-")):
        ax_snr.plot(ks, [snr[k][part] for k in ks], marker, label=part)
    ax_snr.set_xscale("log")
    ax_snr.set_yscale("log")
    ax_snr.set_xlabel("K")
    ax_snr.set_ylabel("mean |E g| / sd(g) over entries")
    ax_snr.set_title("Gradient signal-to-noise ratio")
    ax_snr.legend()
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## The story
#
# With `--quick`: 400 training images, one epoch, K = 1 and 5, 50 test images, L_50, and
# the gradient signal at K = 1 and 10 from 20 draws. The full run: 10,000 images, 10
# epochs, K = 1, 5 and 20, 1,000 test images, L_1000, and K up to 100 from 200 draws.

# %%
args = parse_args("18_iwae_training", "Training with the importance-weighted bound.")
train, test = datasets.load_mnist_mini()
rng = np.random.default_rng(0)
test_images = datasets.binarize(test.images, np.random.default_rng(1))
if args.quick:
    n_train, epochs, n_test, ks, eval_k, snr_ks, n_draws = 400, 1, 50, [1, 5], 50, [1, 10], 20
else:
    n_train, epochs, n_test, ks, eval_k, snr_ks, n_draws = 10000, 10, 1000, [1, 5, 20], 1000, \
        [1, 5, 20, 100], 200

# %%
banner("1. K = 1 is the ELBO with a Monte Carlo KL")
(loss_iwae, loss_elbo), worst = k_equals_one(test_images[:8].astype(np.float64), rng)
print(f"loss: IWAE K=1 {loss_iwae:.10f}, ELBO with Monte Carlo KL {loss_elbo:.10f}")
print(f"largest difference between their gradients: {worst:.1e}")
assert abs(loss_iwae - loss_elbo) < 1e-9 and worst < 1e-10
print("You should see: the same loss to all printed digits and the gradients equal up to")
print("rounding (here exactly): the two objectives are the same computation at K = 1 (IW3).")

# %%
banner(f"2. {len(ks)} objectives (K = {', '.join(map(str, ks))}), {epochs} epoch(s) on "
       f"{n_train:,} images")
models = train_models(train.images[:n_train], ks, epochs)
assert len(models) == len(ks) == (2 if args.quick else 3)
rows = describe(models, test_images[:n_test], eval_k)
print(f"{'model':>10} {'ELBO':>8} {'L_' + str(eval_k):>8} {'gap':>6} {'KL':>6} "
      f"{'active':>6} {'std':>6}")
for name, row in rows.items():
    print(f"{name:>10} {row['elbo']:8.2f} {row['log_px']:8.2f} "
          f"{row['log_px'] - row['elbo']:6.2f} {row['kl']:6.2f} {row['active']:6d} "
          f"{row['std']:6.3f}")
names = list(rows)                                   # in the order of K
base = rows[names[0]]["per_example"]
for name in names[1:]:
    difference = rows[name]["per_example"] - base
    se = difference.std(ddof=1) / np.sqrt(len(difference))
    print(f"{name} - elbo K=1, paired over the test images: {difference.mean():+.2f} "
          f"+- {se:.2f} nats")
    assert difference.mean() > 2 * se                 # a better model of the data
log_px = [rows[name]["log_px"] for name in names]
gaps = [rows[name]["log_px"] - rows[name]["elbo"] for name in names]
assert all(a < b for a, b in zip(log_px, log_px[1:]))
assert all(a < b for a, b in zip(gaps, gaps[1:]))
assert all(rows[name]["active"] > rows[names[0]]["active"] for name in names[1:])
print("You should see: the log p(x) estimate rising with K, each IWAE model above the ELBO")
print("model by more than two standard errors (paired over the test images; per epoch, so")
print("the IWAE models also had K times the decoder passes), and the gap log p(x) - ELBO")
print(f"growing with K ({', '.join(f'{gap:.1f}' for gap in gaps)} nats): the ELBO rises")
print("less than log p(x). The bound no longer asks q(z|x) to match the posterior, only to")
print("propose draws that the weights can use; the IWAE models use more latent units")
print(f"(active: {', '.join(str(rows[name]['active']) for name in names)}).")
if not args.quick:
    gains = [np.mean(rows[name]["per_example"] - base) for name in names[1:]]
    assert 9.5 < gains[0] < 11 and 11 < gains[1] < 13
    assert 3 < gaps[0] < 4.5 and 8.5 < gaps[1] < 10 and 12.5 < gaps[2] < 14.5
    assert [rows[name]["active"] for name in names] == [10, 20, 20]
    print("In this full run: log p(x) up by about 10 nats at K = 5 and 12 at K = 20, the gap")
    print("from about 4 to 9 and 13 nats, 10 active units for the ELBO model and all 20 for")
    print("the IWAE models.")

# %%
banner("3. The gradient signal as K grows")
model = models[f"elbo K={ks[0]}"]
snr = gradient_snr(model, test_images[:20].astype(np.float64), snr_ks, n_draws, rng)
for k, values in snr.items():
    print(f"K = {k:>4}: encoder {values['encoder']:.3f}, decoder {values['decoder']:.3f}")
ratios = {part: [snr[k][part] for k in snr_ks] for part in ("encoder", "decoder")}
assert all(a < b for a, b in zip(ratios["decoder"], ratios["decoder"][1:]))
assert all(a > b for a, b in zip(ratios["encoder"], ratios["encoder"][1:]))
encoder_fall = ratios["encoder"][0] / ratios["encoder"][-1]
rainforth = np.sqrt(snr_ks[-1] / snr_ks[0])          # the fall 1/sqrt(K) predicts
assert encoder_fall < rainforth
print("You should see: the decoder's ratio rising with K and the encoder's falling, by a")
print(f"factor {encoder_fall:.1f} from K = {snr_ks[0]} to {snr_ks[-1]}: slower than the factor "
      f"{rainforth:.1f} of")
print("Rainforth et al.'s 1/sqrt(K), which holds only in the limit, but falling.")
print("More samples help the generative model and starve the inference network.")
if not args.quick:
    assert 0.2 < ratios["encoder"][-1] < ratios["encoder"][0] < 0.45 and encoder_fall < 2
    assert 4 < ratios["decoder"][0] < 5.5 and 12 < ratios["decoder"][-1] < 14
    print("In this full run: the decoder's ratio from about 4.7 to 13, the encoder's from")
    print("about 0.37 to 0.25 between K = 1 and K = 100.")

# %%
show(plot(rows, snr, figure_path(args.out, "iwae_training.png")))
