"""Training throughput of the K = 50 IWAE (Burda et al.'s 784-200-200-50 tanh model, batch
20, Adam), numvae against PyTorch on the same architecture, batch and threads.

    OPENBLAS_NUM_THREADS=1 python -m benchmarks.speed.iwae_training [--k 50] [--steps 100]
    [--rounds 5]

Both run in this process, alternately, ``--rounds`` times ``--steps`` steps each (after
warm-up steps), on random binary images; the figure is the median over rounds of
examples per second, of wall-clock time and of the process's CPU time (on a shared
machine the second is the steadier: time slices lost to other processes do not count,
though their traffic in the caches does). Threads: NumPy's BLAS gets OPENBLAS_NUM_THREADS (set it
before
running), torch gets ``--threads``.
"""
import argparse
import json
import statistics
import time

import numpy as np

import numvae
from numvae.model.objectives import IWAE
from numvae.training.loop import train_step
from numvae.training.optim_fast import FastAdam


def numvae_runner(k, batch, seed=0):
    model = numvae.VAE(784, 200, 50, encoder_hidden=(200,), decoder_hidden=(200, 200),
                       activation="tanh", objective=IWAE(k=k), seed=seed)
    optimizer = FastAdam(model.params, lr=1e-3, betas=(0.9, 0.999), eps=1e-4)

    def run(x):
        return train_step(model, optimizer, x, 1.0, (0, 0))["loss"]
    return run


def torch_runner(k, batch, threads, seed=0):
    """The same model in PyTorch (``numvae.interop.to_torch``: the same layers, initial
    weights and bound), torch.optim.Adam with the same settings."""
    import torch

    from numvae.interop import to_torch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    module = to_torch(numvae.VAE(784, 200, 50, encoder_hidden=(200,), decoder_hidden=(200, 200),
                                 activation="tanh", objective=IWAE(k=k), seed=seed))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-4)

    def run(x):
        x = torch.from_numpy(x)
        loss = module(x, torch.randn(k, len(x), 50))    # the negative IWAE bound, eq. IW1
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    batches = (rng.random((args.steps, args.batch, 784)) < 0.3).astype(np.float32)
    runners = {"numvae": numvae_runner(args.k, args.batch),
               "pytorch": torch_runner(args.k, args.batch, args.threads)}
    rates = {name: [] for name in runners}
    cpu_rates = {name: [] for name in runners}
    for run in runners.values():                      # warm-up
        for x in batches[:10]:
            run(x)
    for _ in range(args.rounds):
        for name, run in runners.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for x in batches:
                run(x)
            examples = args.steps * args.batch
            rates[name].append(examples / (time.perf_counter() - start))
            cpu_rates[name].append(examples / (time.process_time() - cpu_start))
    result = {name: statistics.median(values) for name, values in rates.items()}
    result.update({f"{name}_cpu": statistics.median(values) for name, values in cpu_rates.items()})
    result.update(k=args.k, batch=args.batch, threads=args.threads, rounds=rates,
                  cpu_rounds=cpu_rates)
    for suffix, unit in (("", "wall-clock"), ("_cpu", "CPU")):
        ours, theirs = result["numvae" + suffix], result["pytorch" + suffix]
        print(f"K = {args.k}, batch {args.batch}, {args.threads} thread(s), per {unit} second: "
              f"numvae {ours:,.0f} examples/s, PyTorch {theirs:,.0f}, ratio {ours / theirs:.2f} "
              f"(median of {args.rounds} rounds)")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=1)


if __name__ == "__main__":
    main()
