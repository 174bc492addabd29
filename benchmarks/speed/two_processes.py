"""One step on one process and on two (``numvae.training.two_processes``), taken apart.

    OPENBLAS_NUM_THREADS=1 python -m benchmarks.speed.two_processes [--arch slides examples]
    [--batch 128 32] [--steps 60] [--rounds 5] [--data-dir DIR] [--json FILE]

For each model and batch, blocks of ``--steps`` training steps (``train_step`` with
FastAdam, on MNIST's first training images, or random binary images without
``--data-dir``), one process and two alternated ``--rounds`` times. Each step is timed in
its parts, with the package's own calls:

one process    forward + backward (``model.forward``, ``model.backward``), then Adam
               (``optimizer.step``; ``train_step``'s finite check is left out);
two processes  the gradient (``TwoProcesses.loss_and_gradient``: this half's forward and
               backward while the second process does its half, each checking that its
               gradient is finite, then waiting for the other),
               then the update (``TwoProcesses.update``: each process adds the halves and
               applies Adam to half of the entries, then waiting for the other).

The figures are milliseconds per step, medians over the rounds, and the ratio of the two
steps. The BLAS must run on one thread (OPENBLAS_NUM_THREADS=1): two processes ask for it.
"""
import argparse
import statistics
import time

import numpy as np

import numvae
from benchmarks.speed.common import ARCHITECTURES, write_json
from numvae.training.loop import train_step
from numvae.training.optim_fast import FastAdam
from numvae.training.two_processes import TwoProcesses


def images(data_dir, n):
    """The first ``n`` MNIST training images in [0, 1], or random binary ones."""
    if data_dir is None:
        return (np.random.default_rng(0).random((n, 784)) < 0.3).astype(np.float32)
    from numvae.io.datasets import load_mnist
    return load_mnist(data_dir, download=False)[0].images[:n]


def diverged():
    """``TwoProcesses.update``'s check, called where a half's gradient is not finite."""
    raise FloatingPointError("the gradient is not finite: training diverged")


def blocks(arch, batch, data, steps, rounds):
    """{part: [ms per step in each round]} of both ways, alternated."""
    def build():
        model = numvae.VAE(784, **ARCHITECTURES[arch], dtype=np.float32, seed=0)
        return model, FastAdam(model.params)
    one, two = build(), build()
    for model, optimizer in (one, two):  # FastAdam's tuning and the first allocations
        for step in range(40):
            train_step(model, optimizer, data[step * batch: (step + 1) * batch], None, (1, 1))
    split = TwoProcesses(*two, batch)
    parts = {name: [] for name in ("one: forward + backward", "one: Adam", "one: step",
                                   "two: gradient", "two: update", "two: step")}
    try:
        for _ in range(rounds):
            sums = dict.fromkeys(parts, 0.0)
            for step in range(steps):
                x = data[step * batch: (step + 1) * batch]
                start = time.perf_counter()
                cache = one[0].forward(x)
                one[0].backward(cache)
                middle = time.perf_counter()
                one[1].step(one[0].grads)
                sums["one: forward + backward"] += middle - start
                sums["one: Adam"] += time.perf_counter() - middle
            for step in range(steps):
                x = data[step * batch: (step + 1) * batch]
                start = time.perf_counter()
                _, finite = split.loss_and_gradient(x, None, None)
                middle = time.perf_counter()
                split.update(finite, diverged)
                sums["two: gradient"] += middle - start
                sums["two: update"] += time.perf_counter() - middle
            sums["one: step"] = sums["one: forward + backward"] + sums["one: Adam"]
            sums["two: step"] = sums["two: gradient"] + sums["two: update"]
            for name, seconds in sums.items():
                parts[name].append(1e3 * seconds / steps)
    finally:
        split.close()
    return parts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", choices=list(ARCHITECTURES),
                        default=["slides", "examples"])
    parser.add_argument("--batch", nargs="+", type=int, default=[128, 32])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data-dir", help="the MNIST files (default: random binary images)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    from benchmarks.speed.conv_layers import cpu_name
    result = dict(cpu=cpu_name(), steps=args.steps, rounds=args.rounds, rows=[])
    for arch in args.arch:
        for batch in args.batch:
            data = images(args.data_dir, max(40, args.steps) * batch)
            parts = blocks(arch, batch, data, args.steps, args.rounds)
            medians = {name: statistics.median(ms) for name, ms in parts.items()}
            ratio = statistics.median(a / b for a, b in zip(parts["one: step"], parts["two: step"]))
            result["rows"].append(dict(arch=arch, batch=batch, ms=medians, rounds=parts,
                                       one_over_two=ratio))
            print(f"{arch} batch {batch} on {result['cpu']}, ms per step (median of "
                  f"{args.rounds} rounds): " + ", ".join(f"{name} {ms:.2f}"
                                                         for name, ms in medians.items())
                  + f"; one / two {ratio:.2f}", flush=True)
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
