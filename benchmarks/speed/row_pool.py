"""The elementwise pool (numvae.nn.threads) alone: when a split pays, and what it gives a step.

    OPENBLAS_NUM_THREADS=2 python -m benchmarks.speed.row_pool [--rounds 15] [--json FILE]

Both parts run in this one process and alternate the pool off (``numvae.set_threads(1)``,
the textbook passes) and on (``set_threads(n)``, n = the environment's count, at least 2),
so that both see the same load:

threshold  the sigmoid's four passes (``numvae.nn.layers.sigmoid``) on (rows, 784) float32
           arrays, each call timed alone: whole against split over the threads (forced
           with ``min_entries=1``), minimum and quartiles; and how long after it is handed
           a range a worker starts, idle and while the caller computes.
steps      blocks of training steps (``numvae.training.loop.train_step`` with FastAdam, on
           random binary images) of the slides' and the examples' models, pool off and on,
           alternated ``--rounds`` times: median and range of the ratio off / on, and the
           ratio of the fastest blocks (robust to load).
"""
import argparse
import json
import statistics
import threading
import time

import numpy as np

import numvae
from numvae.nn import threads
from numvae.nn.layers import sigmoid
from numvae.training.loop import train_step
from numvae.training.optim_fast import FastAdam

ARCHITECTURES = {"slides": dict(shared_dim=128, latent_dim=2),
                 "examples": dict(shared_dim=400, latent_dim=20, encoder_hidden=(),
                                  decoder_hidden=(400,))}


def per_call_us(fn, calls):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def quartiles(times):
    q = np.percentile(np.array(times) * 1e6, [0, 25, 50, 75])
    return dict(min=q[0], q1=q[1], median=q[2], q3=q[3])


def threshold(n_threads, rows_list, rounds, calls):
    out = []
    for rows in rows_list:
        a = np.random.default_rng(0).standard_normal((rows, 784)).astype(np.float32)
        whole, split = [], []
        for _ in range(rounds):
            threads.set_threads(1)
            whole += per_call_us(lambda: sigmoid(a), calls)  # noqa: B023 (called now)
            threads.set_threads(n_threads, min_entries=1)
            split += per_call_us(lambda: sigmoid(a), calls)  # noqa: B023
        out.append(dict(entries=a.size, whole=quartiles(whole), split=quartiles(split)))
    return out


def wake_latency(n_threads, calls):
    """Microseconds from handing out a job to a worker starting a range, while the caller
    computes a (256, 784) exp meanwhile (an idle caller would take every range itself)."""
    threads.set_threads(n_threads, min_entries=1)
    a = np.random.default_rng(0).standard_normal((256, 784)).astype(np.float32)
    out = np.empty_like(a)
    started, caller, t0 = [], threading.get_ident(), [0.0]

    def task(start, stop):
        if threading.get_ident() != caller:
            started.append(time.perf_counter() - t0[0])
        np.exp(a[start:stop], out=out[start:stop])
    for _ in range(calls):
        t0[0] = time.perf_counter()
        threads.split_rows(task, len(a), a.size)
    return dict(quartiles(started), ranges_on_workers=len(started), calls=calls)


def steps(n_threads, batches, rounds, seed=0):
    rng = np.random.default_rng(seed)
    images = (rng.random((4096, 784)) < 0.13).astype(np.float32)
    out = []
    for arch, layout in ARCHITECTURES.items():
        for batch in batches:
            model = numvae.VAE(784, **layout, seed=seed)
            optimizer = FastAdam(model.params)
            position = [0]

            def step(model=model, optimizer=optimizer, batch=batch, position=position):
                p = position[0] % (len(images) - batch)
                position[0] += batch
                train_step(model, optimizer, images[p:p + batch], 1.0, (0, 0))
            for _ in range(5):
                step()
            n = max(10, 2000 // batch)
            times = {"off": [], "on": []}
            for _ in range(rounds):
                for name, count in (("off", 1), ("on", n_threads)):
                    threads.set_threads(count)
                    t0 = time.perf_counter()
                    for _ in range(n):
                        step()
                    times[name].append(1e3 * (time.perf_counter() - t0) / n)
            ratios = [a / b for a, b in zip(times["off"], times["on"])]
            out.append(dict(arch=arch, batch=batch, steps_per_block=n,
                            off_ms=statistics.median(times["off"]),
                            on_ms=statistics.median(times["on"]),
                            ratio=statistics.median(ratios), ratio_range=(min(ratios), max(ratios)),
                            best_ratio=min(times["off"]) / min(times["on"])))
            print(f"{arch:>8} batch {batch:>3}: pool off {out[-1]['off_ms']:.2f} ms, on "
                  f"{out[-1]['on_ms']:.2f} ms a step; off / on {out[-1]['ratio']:.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f}), fastest blocks "
                  f"{out[-1]['best_ratio']:.2f}", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=100, help="threshold: calls per round")
    parser.add_argument("--rows", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--batch", type=int, nargs="+", default=[128, 32])
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    n_threads = max(2, threads.default_threads())
    result = dict(threads=n_threads, threshold=threshold(n_threads, args.rows, args.rounds // 3 or 1,
                                                         args.calls),
                  wake_us=wake_latency(n_threads, 10 * args.calls))
    for row in result["threshold"]:
        w, s = row["whole"], row["split"]
        print(f"sigmoid of {row['entries']:>7} entries: whole {w['min']:.0f} / {w['median']:.0f} us, "
              f"split over {n_threads} threads {s['min']:.0f} / {s['median']:.0f} us (min / median)")
    q = result["wake_us"]
    print(f"a worker starts a range {q['median']:.0f} us after the hand-out (median; quartiles "
          f"{q['q1']:.0f}-{q['q3']:.0f}) while the caller computes; workers took "
          f"{q['ranges_on_workers']} of {threads.RANGES_PER_THREAD * n_threads * q['calls']} ranges")
    result["steps"] = steps(n_threads, args.batch, args.rounds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
