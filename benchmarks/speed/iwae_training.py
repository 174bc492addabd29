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
running), torch gets ``--threads``. ``--two-processes``: numvae's step shared by two
processes, as ``fit(..., processes=2)`` shares it (run with OPENBLAS_NUM_THREADS=1 and
``--threads 2``; the CPU figures then count the first process only).
"""
import argparse
import json
import os
import statistics
import time

import numpy as np

import numvae
from numvae.model.objectives import IWAE
from numvae.training.loop import train_step
from numvae.training.optim_fast import FastAdam


def make_numvae(k, seed=0):
    """The model (784-200-200-50, tanh, the K-sample IWAE) and the optimiser (FastAdam with
    Burda et al.'s settings) of the numvae side."""
    model = numvae.VAE(784, 200, 50, encoder_hidden=(200,), decoder_hidden=(200, 200),
                       activation="tanh", objective=IWAE(k=k), seed=seed)
    return model, FastAdam(model.params, lr=1e-3, betas=(0.9, 0.999), eps=1e-4)


def numvae_runner(k, batch, seed=0, textbook=False, split=False):
    """numvae's step; ``textbook=True``: with the fast paths of issue 26 off (the IWAE's
    ``fast_backward`` and the elementwise pool, ``numvae.nn.threads``): numvae as before them.
    ``split=True``: the step shared by two processes (``numvae.training.two_processes``;
    the second ends when this process does, or at ``run.close()``)."""
    from numvae.nn import threads
    from numvae.training.two_processes import TwoProcesses
    model, optimizer = make_numvae(k, seed)
    if textbook:
        model.objective.fast_backward = False
    shared = TwoProcesses(model, optimizer, batch) if split else None

    def run(x):
        previous = threads.set_threads(1) if textbook else None
        try:
            return train_step(model, optimizer, x, 1.0, (0, 0), split=shared)["loss"]
        finally:
            if previous is not None:
                threads.restore(previous)
    run.close = shared.close if shared else lambda: None
    return run


def torch_runner(k, batch, threads, seed=0, flush_denormal=False):
    """The same model in PyTorch (``numvae.interop.to_torch``: the same layers, initial
    weights and bound), torch.optim.Adam with the same settings. ``flush_denormal``:
    ``torch.set_flush_denormal(True)`` (subnormal numbers computed as zeros)."""
    import torch

    from numvae.interop import to_torch
    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush_denormal)
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
    parser.add_argument("--textbook", action="store_true",
                        help="also numvae with the fast paths off, alternated with the others")
    parser.add_argument("--two-processes", action="store_true",
                        help="numvae's step shared by two processes (OPENBLAS_NUM_THREADS=1)")
    parser.add_argument("--torch-flush-denormal", action="store_true",
                        help="PyTorch with torch.set_flush_denormal(True)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    batches = (rng.random((args.steps, args.batch, 784)) < 0.3).astype(np.float32)
    runners = {"numvae": numvae_runner(args.k, args.batch, split=args.two_processes),
               "pytorch": torch_runner(args.k, args.batch, args.threads,
                                       flush_denormal=args.torch_flush_denormal)}
    if args.textbook:
        runners["numvae_textbook"] = numvae_runner(args.k, args.batch, textbook=True)
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
    runners["numvae"].close()
    result = {name: statistics.median(values) for name, values in rates.items()}
    result.update({f"{name}_cpu": statistics.median(values) for name, values in cpu_rates.items()})
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"numvae's BLAS threads (OPENBLAS_NUM_THREADS): {blas}; PyTorch's: {args.threads}"
          + (", flush denormal" if args.torch_flush_denormal else "")
          + ("; numvae on two processes" if args.two_processes else ""))
    result.update(k=args.k, batch=args.batch, threads=args.threads, rounds=rates,
                  cpu_rounds=cpu_rates, openblas_num_threads=blas,
                  torch_flush_denormal=args.torch_flush_denormal,
                  two_processes=args.two_processes)
    for suffix, unit, per_round in (("", "wall-clock", rates), ("_cpu", "CPU", cpu_rates)):
        for name in (n for n in runners if n != "pytorch"):
            ours, theirs = result[name + suffix], result["pytorch" + suffix]
            pairs = [a / b for a, b in zip(per_round[name], per_round["pytorch"])]
            result[f"{name}_over_pytorch{suffix}_rounds"] = pairs
            print(f"K = {args.k}, batch {args.batch}, {args.threads} thread(s), per {unit} second: "
                  f"{name} {ours:,.0f} examples/s, PyTorch {theirs:,.0f}, ratio {ours / theirs:.2f} "
                  f"(medians of {args.rounds} rounds; ratio of each round's pair: median "
                  f"{statistics.median(pairs):.2f}, range {min(pairs):.2f}-{max(pairs):.2f})")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=1)


if __name__ == "__main__":
    main()
