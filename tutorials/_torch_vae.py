"""The slides' VAE in PyTorch, and the worker of tutorial 21's distributed training.

They live in a module of their own, not in the tutorial, because
``torch.multiprocessing.spawn`` starts fresh Python processes that must import the worker
function by name. Needs torch and safetensors.
"""
import json
import math
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from numvae.io.datasets import load_mnist_mini


def linear_relu(widths):
    """nn.Linear and nn.ReLU alternating through ``widths``: indices 0, 2, 4... are Linear."""
    layers = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return layers


class SlidesVAE(nn.Module):
    """The slides' modules: ``encoder.compressor``, ``encoder.mean``, ``encoder.log_var``,
    ``decoder.decompressor`` (ending in Sigmoid). ``forward(x, eps)`` returns the training
    loss, the mean over the batch of -log p(x|z) + kl_weight * KL (Bernoulli likelihood)."""

    def __init__(self, input_dim, shared_dim, latent_dim, encoder_hidden=(256,),
                 decoder_hidden=(32, 256), kl_weight=1.0, **ignored):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.compressor = nn.Sequential(*linear_relu([input_dim, *encoder_hidden,
                                                              shared_dim]))
        self.encoder.mean = nn.Linear(shared_dim, latent_dim)
        self.encoder.log_var = nn.Linear(shared_dim, latent_dim)
        self.decoder = nn.Module()
        widths = [latent_dim, *decoder_hidden]
        self.decoder.decompressor = nn.Sequential(*linear_relu(widths),
                                                  nn.Linear(widths[-1], input_dim), nn.Sigmoid())
        self.kl_weight = kl_weight

    def forward(self, x, eps):
        """x (batch, input_dim) in [0, 1], eps (batch, latent_dim) -> the loss, a scalar."""
        shared = self.encoder.compressor(x)
        mean, log_var = self.encoder.mean(shared), self.encoder.log_var(shared)
        z = mean + torch.exp(0.5 * log_var) * eps
        logits = self.decoder.decompressor[:-1](z)                 # before the Sigmoid
        reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        kl = 0.5 * (mean ** 2 + torch.exp(log_var) - 1 - log_var).sum(1)
        return (reconstruction + self.kl_weight * kl).mean()


def loopback_interface():
    """The name of the loopback network interface, where gloo must listen."""
    return "lo0" if sys.platform == "darwin" else "lo"


def ddp_worker(rank, world_size, job):
    """One of ``world_size`` processes: load ``job["source"]``, train with DDP on its shard
    of the images, write ``rank<r>.safetensors`` and ``losses_rank<r>.json`` to ``job["out"]``.

    job: dict with config (numvae's), source, out, rendezvous (a file path that does not
    exist yet), n_images, steps, batch_size, lr, seed.
    """
    torch.set_num_threads(1)                       # one core per process
    # gloo connects the processes over the loopback interface, 127.0.0.1 only; they meet
    # through a file, so nothing listens on the network (across machines you would give
    # init_method="tcp://HOST:PORT" and the interface of the cluster's network)
    os.environ["GLOO_SOCKET_IFNAME"] = loopback_interface()
    dist.init_process_group("gloo", init_method=Path(job["rendezvous"]).resolve().as_uri(),
                            rank=rank, world_size=world_size)
    try:
        module = SlidesVAE(**job["config"])
        module.load_state_dict(load_file(job["source"]), strict=True)
        model = DistributedDataParallel(module)    # averages the gradients over the processes
        images = torch.from_numpy(load_mnist_mini()[0].images[: job["n_images"]])
        shard = images[rank::world_size]           # each process its own images
        generator = torch.Generator().manual_seed(job["seed"] + rank)
        optimizer = torch.optim.Adam(model.parameters(), lr=job["lr"])
        losses = []
        for _ in range(job["steps"]):
            x = shard[torch.randint(len(shard), (job["batch_size"],), generator=generator)]
            eps = torch.randn(len(x), job["config"]["latent_dim"], generator=generator)
            optimizer.zero_grad()
            loss = model(x, eps)
            loss.backward()                        # DDP all-reduces the gradients here
            optimizer.step()
            losses.append(loss.item() if math.isfinite(loss.item()) else None)
        out = Path(job["out"])
        save_file(module.state_dict(), str(out / f"rank{rank}.safetensors"))
        (out / f"losses_rank{rank}.json").write_text(json.dumps(losses))
    finally:
        dist.destroy_process_group()
