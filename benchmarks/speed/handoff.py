"""What a hand-over between threads costs: why ``fit(..., processes=2)`` uses two processes.

    python -m benchmarks.speed.handoff [--batch 128] [--calls 300] [--rounds 3] [--json FILE]

One matrix product of the slides' decoder, (batch, 256) @ (256, 784) float32, timed per
call four ways, alternated ``--rounds`` times:

whole          on the calling thread, the BLAS on one thread;
pool split     its rows split over numvae's pool of two threads (``numvae.nn.threads``),
               one hand-over to a sleeping worker per product;
free threads   two threads that each run their half ``--calls`` times with no hand-over:
               what a split could reach if handing over cost nothing;
BLAS 2 threads the whole product with the BLAS on two threads (OpenBLAS's workers spin
               between products instead of sleeping), in a second interpreter.

Each way runs in an interpreter of its own with OPENBLAS_NUM_THREADS set for it (the BLAS
reads it once, when NumPy is imported).
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

from benchmarks.speed.common import REPO, write_json

WAYS = ("whole", "pool split", "free threads", "BLAS 2 threads")


def measure(way, batch, calls):
    """Microseconds per product, the ``way`` named, in this interpreter."""
    import numpy as np

    from numvae.nn import threads
    rng = np.random.default_rng(0)
    a = rng.standard_normal((batch, 256), dtype=np.float32)
    b = rng.standard_normal((256, 784), dtype=np.float32)
    out = np.empty((batch, 784), np.float32)
    half = batch // 2
    if way == "pool split":
        threads.set_threads(2, min_entries=1)
        work = lambda: threads.split_rows(  # noqa: E731
            lambda start, stop: np.matmul(a[start:stop], b, out=out[start:stop]), batch, out.size)
    else:
        work = lambda: np.matmul(a, b, out=out)  # noqa: E731
    if way == "free threads":
        def halves(start, stop):
            for _ in range(calls):
                np.matmul(a[start:stop], b, out=out[start:stop])
        pair = [threading.Thread(target=halves, args=span) for span in ((0, half), (half, batch))]
        begin = time.perf_counter()
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join()
        return (time.perf_counter() - begin) / calls * 1e6
    for _ in range(10):
        work()
    begin = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - begin) / calls * 1e6


def in_interpreter(way, batch, calls):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2" if way == "BLAS 2 threads" else "1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "benchmarks.speed.handoff", "--measure", way,
                           "--batch", str(batch), "--calls", str(calls)],
                          env=env, cwd=REPO, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--measure", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(measure(args.measure, args.batch, args.calls))
        return None
    from benchmarks.speed.conv_layers import cpu_name
    times = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            times[way].append(in_interpreter(way, args.batch, args.calls))
    result = dict(cpu=cpu_name(), batch=args.batch, calls=args.calls, rounds=times,
                  median_us={way: statistics.median(t) for way, t in times.items()})
    print(f"({args.batch}, 256) @ (256, 784) float32 on {result['cpu']}, microseconds per "
          f"product, median of {args.rounds} rounds: "
          + ", ".join(f"{way} {us:.0f}" for way, us in result["median_us"].items()))
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
