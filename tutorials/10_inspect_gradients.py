# %% [markdown]
# # 10. One training step, one named quantity at a time
#
# `numvae.diagnostics.inspect.trace_step(model, x)` runs `model.loss_and_grad(x)` once and returns
# every quantity it computed, in order: the forward pass layer by layer (x, the
# compressor's layers, mean, log_var, std, eps, z, the decompressor's layers, the loss
# terms), then the backward pass in the order the code runs it (d logits, each layer's
# incoming gradient and parameter gradients, d z, the two contributions to d mean and
# d log_var and their sum, the encoder). Each row has its formula with its equation label
# from docs/derivations.md, and summary statistics. The same table is printed by the
# command `numvae inspect [CHECKPOINT] [--check]`.
#
# A table is only convincing if you can recompute its rows. Below we redo a few of them
# by hand from the rows above them, with asserts:
#
# * (B4, V2)  d logits = (sigmoid(logits) - x) / (S B);
# * (D2)      the last decoder layer's dW = (its input)^T d logits;
# * (K2, V4)  d mean (from KL) = kl_weight / B * mean, d log_var (from KL) =
#             kl_weight / B * (exp(log_var) - 1) / 2;
# * (V3)      d mean (from z) = sum_s d z, d log_var (from z) = sum_s d z * 0.5 std eps;
# * (V5)      the fork: d mean = d mean (from z) + d mean (from KL), the same for log_var;
# * (V6)      the heads' fork: d shared = d mean W_mean^T + d log_var W_log_var^T;
# * (D3)      a ReLU passes the gradient where its input was positive.
#
# The model draws S = 2 samples of z per image so that the sums over s are visible.
# Finally `check=True` adds a column of finite-difference relative errors (float64), for
# the parameter gradients and for every intermediate one.
#
# Run: `python tutorials/10_inspect_gradients.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae.diagnostics.inspect import trace_step
from numvae.io.datasets import load_mnist_mini
from numvae.model.objectives import ELBO
from numvae.nn.layers import sigmoid
from numvae.plots.tutorial import banner, figure_path, parse_args, show
from numvae.training.loop import fit

# %% [markdown]
# ## Recomputing rows by hand

# %%
def walk_through(trace, model):
    """Recompute some backward rows from the rows before them; returns {check: max error}."""
    v = {row.name: row.value.astype(np.float64) for row in trace}   # name -> array
    n_samples, batch = v["eps"].shape[:2]
    x_rows = np.tile(v["x"], (n_samples, 1))                         # (S * B, input_dim)
    logits = v["decoder.decompressor.4"]
    beta = model.objective.kl_weight
    W_mean = model.params["encoder.mean.W"].astype(np.float64)
    W_log_var = model.params["encoder.log_var.W"].astype(np.float64)
    dz = v["d z"].reshape(n_samples, batch, -1)                      # (S * B, M) -> (S, B, M)
    recomputed = {
        "d logits = (sigmoid(a) - x) / (S B)":
            ("d logits", (sigmoid(logits) - x_rows) / (n_samples * batch)),
        "dW of the last decoder layer = input^T d logits":
            ("decoder.decompressor.4.W (grad)", v["decoder.decompressor.3"].T @ v["d logits"]),
        "d mean (from KL) = kl_weight / B * mean":
            ("d mean (from KL)", beta / batch * v["mean"]),
        "d log_var (from KL) = kl_weight / B * (exp(log_var) - 1) / 2":
            ("d log_var (from KL)", beta / batch * 0.5 * (np.exp(v["log_var"]) - 1)),
        "d mean (from z) = sum_s d z":
            ("d mean (from z)", dz.sum(axis=0)),
        "d log_var (from z) = sum_s d z * 0.5 std eps":
            ("d log_var (from z)", (dz * 0.5 * v["std"] * v["eps"]).sum(axis=0)),
        "V5: d mean = (from z) + (from KL)":
            ("d mean", v["d mean (from z)"] + v["d mean (from KL)"]),
        "V5: d log_var = (from z) + (from KL)":
            ("d log_var", v["d log_var (from z)"] + v["d log_var (from KL)"]),
        "V6: d shared = d mean W_mean^T + d log_var W_log_var^T":
            ("d encoder.compressor.3", v["d mean"] @ W_mean.T + v["d log_var"] @ W_log_var.T),
        "D3: d (ReLU input) = d (ReLU output) * 1[input > 0]":
            ("d encoder.compressor.2",
             v["d encoder.compressor.3"] * (v["encoder.compressor.2"] > 0)),
    }
    errors = {}
    for check, (name, mine) in recomputed.items():
        row = v[name]
        scale = max(np.abs(row).max(), 1e-30)
        errors[check] = float(np.abs(mine - row).max() / scale)
        print(f"  {check:<58} row '{name}': max |difference| / max |row| = {errors[check]:.1e}")
    return errors

# %% [markdown]
# ## Figure: where the gradient goes

# %%
def plot_gradients(trace, path):
    fig = Figure(figsize=(13, 5), layout="constrained")
    ax_norms, ax_fork = fig.subplots(1, 2, width_ratios=[1.4, 1])
    rows = [row for row in trace if row.name.endswith("(grad)")]
    rms = [float(np.sqrt(np.mean(row.value.astype(np.float64) ** 2))) for row in rows]
    names = [row.name.replace(" (grad)", "") for row in rows]
    ax_norms.barh(range(len(rows)), rms, color=["C0" if n.startswith("decoder") else "C1"
                                                for n in names])
    ax_norms.set_yticks(range(len(rows)), names, fontsize="small")
    ax_norms.invert_yaxis()                         # the order of the backward pass
    ax_norms.set_xscale("log")
    ax_norms.set_xlabel("root mean square of the gradient entries")
    ax_norms.set_ylabel("parameter")
    ax_norms.set_title("Parameter gradients, in backward order (decoder blue, encoder orange)")

    for name, colour in [("mean", "C0"), ("log_var", "C1")]:
        from_z = np.abs(trace[f"d {name} (from z)"].value).ravel()
        from_kl = np.abs(trace[f"d {name} (from KL)"].value).ravel()
        ax_fork.loglog(from_z, from_kl, "o", color=colour, label=f"d {name}")
    limits = np.array(ax_fork.get_xlim())
    ax_fork.plot(limits, limits, "k:", linewidth=1, label="equal")
    ax_fork.set_xlabel("|contribution through z| (reconstruction, V3)")
    ax_fork.set_ylabel("|contribution of the KL| (V4)")
    ax_fork.set_title("The fork V5: the two paths into mean and log_var")
    ax_fork.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## The story

# %%
args = parse_args("10_inspect_gradients",
                  "One training step traced with numvae.diagnostics.inspect.")
train, test = load_mnist_mini()
model = numvae.VAE(784, shared_dim=128, latent_dim=2, objective=ELBO(n_samples=2), seed=0)
n_train = 500 if args.quick else 10_000
# One epoch of training first, so that the KL path is no longer negligible.
fit(model, numvae.Adam(model.params), train.images[:n_train], epochs=1, seed=0,
    progress=False, log=None)
x = test.images[:4 if args.quick else 8]
model.rng = np.random.default_rng(1)            # the eps of the traced step

# %%
banner(f"The trace of one step on {len(x)} test images (S = 2 samples of z each)")
trace = trace_step(model, x)
print(trace.table())
B, S = len(x), 2
assert len(trace) == 49 and trace["d z"].shape == (S * B, 2)
loss, kl, std = trace["loss"].value, trace["kl"].value.mean(), trace["std"].value
print(f"You should see: 49 rows; shapes ({B}, ...) in the encoder and ({S * B}, ...) = (S B, ...)")
print(f"in the decoder (d z has the shape of z, (S B, latent_dim) = ({S * B}, 2)).")
if args.quick:
    assert loss > 450 and kl < 0.5
    print("After one epoch on 500 images the model is barely trained: a loss above 450 and a")
    print("KL below 0.5.")
else:
    assert 170 < loss < 210 and 3 < kl < 7 and std.min() < 0.5 and std.max() > 1.2
    print("After one epoch on the 10,000 images: a loss near 190 nats with a KL near 5, std")
    print("from below 0.5 to above 1.2: the encoder already pins some images down and leaves")
    print("others near the prior.")
print(f"Here: loss {loss:.0f}, KL {kl:.2f}, std {std.min():.2f} to {std.max():.2f}.")

# %%
banner("Recomputing rows by hand")
errors = walk_through(trace, model)
assert max(errors.values()) < 1e-5, errors           # float32 rounding, nothing more
print("You should see: differences of a few 1e-7 or less: float32 rounding of the same")
print("products in a different order, nothing more (0 where the operations are the same).")
ratio = (np.abs(trace["d mean (from KL)"].value).mean()
         / np.abs(trace["d mean (from z)"].value).mean())
print(f"\nmean |d mean (from KL)| / mean |d mean (from z)| = {ratio:.2f}")
if args.quick:
    assert ratio < 0.1
    print("You should see (--quick): a ratio of a few hundredths: the KL is still near 0 (q is")
    print("close to the prior), so nearly all of d mean comes through z. Train longer (the")
    print("full run) and the KL path's share grows.")
else:
    assert ratio > 0.1
    print("You should see: a ratio of a few tenths: after one epoch on 10,000 images both")
    print("paths count.")

# %%
banner("The same step in float64, every gradient checked by finite differences")
n_entries = 3 if args.quick else 6
checked = trace_step(model, x, check=True, n_entries=n_entries)
fd_rows = [row for row in checked if row.fd_error is not None]
for row in fd_rows:
    print(f"  {row.name:<34} {str(row.shape):<12} fd error {row.fd_error:.1e}")
worst = max(row.fd_error for row in fd_rows)
assert worst < 1e-6, worst
n_parameters = sum(row.name.endswith("(grad)") for row in fd_rows)
assert n_parameters == 14 and len(fd_rows) - n_parameters == 16
print(f"You should see: every error below 1e-6 ({n_entries} random entries of each of the "
      f"{n_parameters} parameter gradients,\nand of the {len(fd_rows) - n_parameters} "
      "intermediate ones: for those the quantity itself (z, mean, a layer's output, ...) is")
print("perturbed and the rest of the step re-run from there; 'd mean (from z)' perturbs mean")
print("where the sampler reads it only, 'd mean (from KL)' where the KL reads it only). The")
print("full table with its 'fd error' column is `checked.table()`, or `numvae inspect --check`.")
show(plot_gradients(trace, figure_path(args.out, "gradients.png")))
rms = {row.name.replace(" (grad)", ""): float(np.sqrt(np.mean(row.value.astype(np.float64) ** 2)))
       for row in trace if row.name.endswith("(grad)")}
largest = sorted(rms, key=rms.get, reverse=True)[:3]
kl_larger = sum(int(np.sum(np.abs(trace[f"d {head} (from KL)"].value)
                           > np.abs(trace[f"d {head} (from z)"].value)))
                for head in ("mean", "log_var"))
n_fork = 2 * trace["mean"].value.size
assert all(name.startswith(("encoder.mean.b", "encoder.log_var.b", "decoder.decompressor.0"))
           for name in largest), largest
assert kl_larger <= 2 if args.quick else kl_larger >= 2
print(f"largest root mean square gradients: {', '.join(f'{n} {rms[n]:.2g}' for n in largest)}")
print(f"entries of d mean and d log_var where the KL's contribution is the larger: "
      f"{kl_larger} of {n_fork}")
print("You should see in it: the left panel's bars in the order of the printed values (the")
print("heads' biases and the decoder's first layer, fed by few inputs, the largest); in the")
print("right panel, the fork's points above the diagonal where the KL's contribution is")
print("the larger, as many as printed" + (": none or few after this short run."
                                         if args.quick else ": several after a full epoch."))
