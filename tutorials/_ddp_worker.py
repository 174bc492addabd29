"""The worker of tutorial 21's distributed training.

It lives in a module of its own, not in the tutorial, because
``torch.multiprocessing.spawn`` starts fresh Python processes that must import the worker
function by name. Each process reads the exported file into numvae and makes it the
PyTorch module with ``numvae.interop.to_torch`` (the slides' modules, numvae's names).
Needs torch and safetensors.
"""
import json
import math
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

from numvae.interop import load_safetensors, to_torch
from numvae.io.datasets import load_mnist_mini


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
        module = to_torch(load_safetensors(job["source"]))   # the exported model, in PyTorch
        model = DistributedDataParallel(module)    # averages the gradients over the processes
        images = torch.from_numpy(load_mnist_mini()[0].images[: job["n_images"]])
        shard = images[rank::world_size]           # each process its own images
        generator = torch.Generator().manual_seed(job["seed"] + rank)
        optimizer = torch.optim.Adam(model.parameters(), lr=job["lr"])
        losses = []
        for _ in range(job["steps"]):
            x = shard[torch.randint(len(shard), (job["batch_size"],), generator=generator)]
            eps = torch.randn(len(x), job["config"]["architecture"]["latent_dim"],
                              generator=generator)
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
