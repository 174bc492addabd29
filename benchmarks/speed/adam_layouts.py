"""Issue 26 on two cores: when a split pays right after a product, FastAdam's layouts, and
whole training steps with the settings of before and after, alternated in one process.

    OPENBLAS_NUM_THREADS=2 python -m benchmarks.speed.adam_layouts [--rounds 9] [--json FILE]

split    the decoder's sigmoid and the Bernoulli loss (``numvae.nn.layers.sigmoid``,
         ``numvae.model.likelihoods.bernoulli_nll``) on (rows, 784) float32 logits, each
         call right after the (rows, 400) x (400, 784) product that makes them, whole
         against split over 2 threads (``min_entries=1``): median of alternated calls.
         With the BLAS on two threads its worker spins, waiting for the next product,
         on the core a split would use.
layouts  FastAdam's step alone on 652,824 float32 entries (the examples' model), right
         after a product, in each of its ``LAYOUTS`` (the tuning off, the layout forced).
steps    blocks of training steps (``numvae.training.loop.train_step``, real MNIST if
         ``--data-dir`` holds it, else random binary images) of the slides' and the
         examples' models: "before" (``min_entries`` 65,536, FastAdam's tuning off) and
         "after" (the package's settings), alternated ``--rounds`` times in this process.
"""
import argparse
import json
import statistics
import time

import numpy as np

import numvae
from benchmarks.speed.row_pool import ARCHITECTURES
from numvae.model.likelihoods import bernoulli_nll
from numvae.nn import threads
from numvae.nn.layers import Owned, sigmoid
from numvae.training.loop import train_step
from numvae.training.optim_fast import FastAdam

BEFORE = dict(min_entries=65536, tune=False)


def split_after_product(rows_list, calls):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((400, 784)).astype(np.float32)
    out = []
    for rows in rows_list:
        hidden = rng.standard_normal((rows, 400)).astype(np.float32)
        x = (rng.random((rows, 784)) < 0.13).astype(np.float32)
        times = {1: [], 2: []}
        for _ in range(calls):
            for n in times:
                threads.set_threads(n, min_entries=1)
                logits = hidden @ weights
                t0 = time.perf_counter()
                sigmoid(logits)
                bernoulli_nll(logits, x)
                times[n].append(time.perf_counter() - t0)
        whole, split = (1e6 * statistics.median(times[n]) for n in (1, 2))
        out.append(dict(entries=rows * 784, whole_us=whole, split_us=split, ratio=whole / split))
        print(f"{rows * 784:>9} entries: whole {whole:7.0f} us, split {split:7.0f} us, "
              f"whole / split {whole / split:.2f}", flush=True)
    return out


def adam_layouts(size, rounds, steps=20):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((128, 784)).astype(np.float32)
    b = rng.standard_normal((784, 400)).astype(np.float32)
    arrays = {"w": rng.standard_normal(size).astype(np.float32)}
    optimizer = FastAdam(Owned({"w": (arrays, "w")}), flush_every=0)
    grads = {"w": rng.standard_normal(size).astype(np.float32)}
    times = {layout: [] for layout in FastAdam.LAYOUTS}
    # the package's pool settings (the split section before forced the pool on)
    threads.set_threads(None, min_entries=threads.MIN_ENTRIES)
    for _ in range(rounds):
        for layout in times:
            optimizer.use_layout(layout)  # forced: no tuning
            total = 0.0
            for _ in range(steps):
                a @ b
                t0 = time.perf_counter()
                optimizer.step(grads)
                total += time.perf_counter() - t0
            times[layout].append(1e3 * total / steps)
    out = {layout: dict(median_ms=statistics.median(t), min_ms=min(t)) for layout, t in times.items()}
    for layout, row in out.items():
        print(f"FastAdam {layout:>17}: {row['median_ms']:.3f} ms (min {row['min_ms']:.3f})")
    return out


def _images(data_dir):
    """8,192 MNIST training images binarised once (threshold 0.5), or random binary images
    of MNIST's density without ``data_dir``."""
    if data_dir is None:
        return (np.random.default_rng(0).random((8192, 784)) < 0.13).astype(np.float32)
    from numvae.io.datasets import load_mnist
    train, _ = load_mnist(data_dir, download=False)
    return (train.images[:8192] > 0.5).astype(np.float32)


def _set(settings, optimizer):
    threads.set_threads(None, min_entries=settings.get("min_entries", threads.MIN_ENTRIES))
    optimizer.tune_slices = settings.get("tune", True)


def steps(images, batches, rounds):
    out = []
    for arch, layout in ARCHITECTURES.items():
        for batch in batches:
            model = numvae.VAE(784, **layout, seed=0)
            optimizer, position = FastAdam(model.params), [0]

            def step(model=model, optimizer=optimizer, batch=batch, position=position):
                p = position[0] % (len(images) - batch)
                position[0] += batch
                train_step(model, optimizer, images[p:p + batch], 1.0, (0, 0))
            for settings in ({}, BEFORE):  # the tuning happens under the package's settings
                _set(settings, optimizer)
                for _ in range(30):
                    step()
            n, times = max(10, 3000 // batch), {"before": [], "after": []}
            for _ in range(rounds):
                for name, settings in (("before", BEFORE), ("after", {})):
                    _set(settings, optimizer)
                    t0 = time.perf_counter()
                    for _ in range(n):
                        step()
                    times[name].append(1e3 * (time.perf_counter() - t0) / n)
            _set({}, optimizer)
            ratios = [b / a for b, a in zip(times["before"], times["after"])]
            out.append(dict(arch=arch, batch=batch, layout=optimizer.layout,
                            before_ms=statistics.median(times["before"]),
                            after_ms=statistics.median(times["after"]),
                            ratio=statistics.median(ratios), range=(min(ratios), max(ratios))))
            r = out[-1]
            print(f"{arch:>8} batch {batch:>3}: before {r['before_ms']:.2f} ms, after "
                  f"{r['after_ms']:.2f} ms a step; before / after {r['ratio']:.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f}); FastAdam chose {r['layout']!r}",
                  flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=40, help="split: calls per size")
    parser.add_argument("--rows", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--batch", type=int, nargs="+", default=[128, 32])
    parser.add_argument("--data-dir", help="folder holding MNIST (else random images)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    previous = threads.set_threads(None)
    try:
        result = dict(blas_threads=threads.default_threads(),
                      split=split_after_product(args.rows, args.calls),
                      layouts=adam_layouts(652824, args.rounds),
                      steps=steps(_images(args.data_dir), args.batch, args.rounds))
    finally:
        threads.restore(previous)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
