# %% [markdown]
# # 21. Graduating to PyTorch: the same model, trained on two processes, and back
#
# **This tutorial needs PyTorch and safetensors**: `pip install torch` and
# `pip install -e ".[interop]"`. Without them it says so and stops. Everything else in
# numvae works without them.
#
# You have built the slides' VAE by hand. Real projects live in PyTorch, and when one
# machine is not enough, in PyTorch's distributed training. This tutorial takes a model
# trained by numvae there and back:
#
# 1. train the slides' VAE in numvae for a moment, and export it with
#    `numvae.interop.save_safetensors` (the command `numvae export` does the same): a
#    safetensors file with PyTorch's names and layouts, `encoder.compressor.0.weight` of
#    shape (out, in) = numvae's `encoder.compressor.0.W` (in, out) transposed;
# 2. build the slides' modules in PyTorch (`numvae.interop.to_torch`, the model's PyTorch
#    mirror) and load the file with `load_state_dict(..., strict=True)`: on the same x and
#    eps, the same loss;
# 3. continue training with `torch.nn.parallel.DistributedDataParallel` on two CPU processes
#    (the gloo backend, on the loopback address 127.0.0.1 only; the processes meet through a
#    file, so nothing listens on the network): each process draws batches
#    from its own half of the images, and DDP averages the gradients, so both processes
#    hold the same parameters after every step;
# 4. bring the result back with `numvae.interop.load_safetensors` (the command
#    `numvae import`): the parameters PyTorch holds, bit for bit; evaluate it, and trace one
#    training step of it with `numvae inspect`.
#
# Run: `python tutorials/21_graduating_to_pytorch.py [--quick] [--out DIR]`.

# %%
import os

# One BLAS thread, set before NumPy starts (unless you set the variable yourself): the
# times this tutorial states hold on a machine shared with other jobs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json

import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae.commands.cli import main as numvae_command
from numvae.diagnostics.evaluate import evaluate_elbo
from numvae.io.datasets import load_mnist_mini
from numvae.plots.tutorial import banner, figure_path, parse_args
from numvae.training.checkpoint import save_checkpoint
from numvae.training.loop import fit

try:  # the optional part: this tutorial stops with a message where it is missing
    import torch
    import torch.multiprocessing
    from safetensors.torch import load_file

    from _ddp_worker import ddp_worker
    from numvae.interop import load_safetensors, save_safetensors, to_torch
except ImportError as err:
    MISSING = err.name
else:
    MISSING = None

# %% [markdown]
# ## 1. A model trained by numvae, exported

# %%
def train_in_numvae(train, test, quick):
    """The slides' VAE after a short numvae training; its test negative ELBO."""
    model = numvae.VAE(784, shared_dim=128, latent_dim=2, seed=0)
    optimizer = numvae.Adam(model.params, lr=1e-3)
    fit(model, optimizer, train, epochs=1 if quick else 5, batch_size=128, seed=0,
        progress=False, log=lambda line: None)
    return model, evaluate_elbo(model, test.images)["loss"]


# %% [markdown]
# ## 2. The same model in PyTorch

# %%
def same_loss(model, path):
    """numvae's and PyTorch's loss on the same x and eps (float32)."""
    module = to_torch(model)                                       # the slides' modules
    module.load_state_dict(load_file(str(path)), strict=True)     # every name and shape fits
    rng = np.random.default_rng(1)
    x = load_mnist_mini()[1].images[:64]
    eps = rng.standard_normal((64, model.latent_dim)).astype(np.float32)
    with torch.no_grad():
        theirs = module(torch.from_numpy(x), torch.from_numpy(eps)).item()
    return model.loss(x, eps), theirs, module


# %% [markdown]
# ## 3. DistributedDataParallel on two processes

# %%
def train_with_ddp(model, source, out, quick):
    """Two processes train the exported model; returns their loss curves (steps,) each."""
    rendezvous = out / "ddp_rendezvous"           # where the processes meet (a FileStore)
    # a file left by an earlier run would mislead them
    rendezvous.unlink(missing_ok=True)
    job = dict(config=model.config, source=str(source), out=str(out), seed=0, lr=1e-3,
               rendezvous=str(rendezvous), n_images=2000 if quick else 10000,
               steps=30 if quick else 400, batch_size=64)
    torch.multiprocessing.spawn(ddp_worker, args=(2, job), nprocs=2, join=True)
    rendezvous.unlink(missing_ok=True)
    return [json.loads((out / f"losses_rank{rank}.json").read_text()) for rank in (0, 1)]


def plot_losses(losses, before, after, path):
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    for rank, curve in enumerate(losses):
        ax.plot(np.arange(1, len(curve) + 1), curve, lw=1, label=f"process {rank}'s batches")
    ax.axhline(before, color="grey", ls="--", label=f"test, from numvae: {before:.1f}")
    ax.axhline(after, color="black", ls=":", label=f"test, back in numvae: {after:.1f}")
    ax.set_xlabel("DDP step")
    ax.set_ylabel("negative ELBO (nats per image)")
    ax.set_title("The numvae model, trained on by PyTorch DDP (2 processes, gloo)")
    ax.legend()
    fig.savefig(path, dpi=110)
    return fig


# %% [markdown]
# ## 4. Back in numvae

# %%
def bring_back(model, out):
    """The two processes' results as numvae models: identical, and equal to PyTorch's."""
    back = [load_safetensors(out / f"rank{rank}.safetensors", config=model.config)
            for rank in (0, 1)]
    torch_state = load_file(str(out / "rank0.safetensors"))
    worst = 0
    for name, tensor in torch_state.items():
        prefix, last = name.rsplit(".", 1)
        held = back[0].params[prefix + (".W" if last == "weight" else ".b")]
        held = held.T if last == "weight" else held
        worst = max(worst, np.max(np.abs(held - tensor.numpy())))
    same = all(np.array_equal(back[0].params[k], back[1].params[k]) for k in model.params)
    return back[0], worst, same


# %%
def main(argv=None):
    args = parse_args("21_graduating_to_pytorch", "numvae to PyTorch DDP and back.", argv)
    if MISSING:
        print(f"This tutorial needs {MISSING}: pip install torch; pip install -e \".[interop]\"")
        return None
    torch.set_num_threads(1)
    train, test = load_mnist_mini()
    if args.quick:
        train = train._replace(images=train.images[:1000], labels=train.labels[:1000])
        test = test._replace(images=test.images[:500], labels=test.labels[:500])

    banner("1. Train in numvae, export to safetensors")
    model, before = train_in_numvae(train, test, args.quick)
    source = save_safetensors(model, args.out / "from_numvae.safetensors")
    print(f"test negative ELBO after numvae's training: {before:.1f} nats; wrote {source}")

    banner("2. The same model in PyTorch")
    ours, theirs, module = same_loss(model, source)
    print(module)
    print(f"loss on 64 test images, same eps: numvae {ours:.6f}, PyTorch {theirs:.6f}")
    assert abs(ours - theirs) < 1e-5 * abs(theirs)
    print("You should see: the module's names are numvae's (compressor, mean, log_var,")
    print("decompressor), and the two losses agree to 6 or 7 digits (float32 rounding).")

    banner("3. Continue training with DistributedDataParallel, 2 processes, gloo, 127.0.0.1")
    losses = train_with_ddp(model, source, args.out, args.quick)
    print(f"{len(losses[0])} steps; process 0's batch loss {losses[0][0]:.1f} -> "
          f"{losses[0][-1]:.1f}, process 1's {losses[1][0]:.1f} -> {losses[1][-1]:.1f}")

    banner("4. Back in numvae: bit for bit, evaluated, inspected")
    back, worst, same = bring_back(model, args.out)
    after = evaluate_elbo(back, test.images)["loss"]
    print(f"largest difference to PyTorch's tensors: {worst}; the two processes' models are "
          f"{'identical' if same else 'DIFFERENT'}")
    print(f"test negative ELBO: {before:.1f} nats from numvae, {after:.1f} after PyTorch DDP")
    assert worst == 0 and same and after < before
    print("You should see: a difference of exactly 0 (the same float32 numbers), identical")
    print("processes (DDP averages their gradients, so their Adam steps are the same), and a")
    print("lower test negative ELBO: from about 174 to about 168 nats in the full run (5")
    print("numvae epochs, then 400 DDP steps of 2 x 64 images); from about 450 to about 220 in")
    print("--quick mode, where numvae had trained for one epoch on 1,000 images only.")
    plot_losses(losses, before, after, figure_path(args.out, "ddp_losses.png"))
    print("You should see in it: the two processes' batch losses, noisy (each draws its own")
    print("batches) but falling together, from the dashed line (the test loss of numvae's model)")
    print("towards the dotted one (the test loss of the model back from PyTorch).")
    checkpoint = save_checkpoint(args.out / "from_pytorch.npz", back)
    print(f"\n$ numvae inspect {checkpoint} --batch-size 4")
    numvae_command(["inspect", str(checkpoint), "--batch-size", "4"])
    return dict(before=before, after=after, worst=worst, same=same, losses=losses)


if __name__ == "__main__":
    main()
