"""Issue 26: the IWAE's training step with the Bernoulli loss by blocks of rows, against
the same step with the whole (K batch, 784) arrays at once, alternated in one process.

    OPENBLAS_NUM_THREADS=1 python -m benchmarks.speed.bernoulli_blocks [--rounds 9]
        [--steps 50] [--k 50] [--batch 20] [--json FILE]

"off" sets ``numvae.model.likelihoods.BLOCK_ENTRIES`` and ``BLOCKED_MIN_ENTRIES`` beyond
any array (one block: the arrays whole, as before the blocks), "on" leaves them as they
are; the two take turns round by round, in alternating order, on the same model and
images, and the figure is the median of each round's ratio off / on (above 1: the blocks
are faster). The numbers trained are the same either way (bit for bit).
"""
import argparse
import json
import statistics
import time

import numpy as np

from benchmarks.speed.conv_layers import cpu_name
from benchmarks.speed.iwae_training import numvae_runner
from numvae.model import likelihoods


def timed_round(run, images, blocks_on, settings):
    """Milliseconds per step over ``images``, the blocks on or off."""
    likelihoods.BLOCK_ENTRIES, likelihoods.BLOCKED_MIN_ENTRIES = (
        settings if blocks_on else (2 ** 62, 2 ** 62))
    start = time.perf_counter()
    for x in images:
        run(x)
    return (time.perf_counter() - start) / len(images) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    settings = (likelihoods.BLOCK_ENTRIES, likelihoods.BLOCKED_MIN_ENTRIES)
    run = numvae_runner(args.k, args.batch)
    rng = np.random.default_rng(0)
    images = [(rng.random((args.batch, 784)) < 0.3).astype(np.float32)
              for _ in range(args.steps)]
    for x in images[: max(1, args.steps // 2)]:  # warm-up: the moments, the allocator
        run(x)
    rounds = {"on": [], "off": []}
    try:
        for index in range(args.rounds):
            for mode in ("on", "off") if index % 2 == 0 else ("off", "on"):
                rounds[mode].append(timed_round(run, images, mode == "on", settings))
    finally:
        likelihoods.BLOCK_ENTRIES, likelihoods.BLOCKED_MIN_ENTRIES = settings
    ratios = [off / on for on, off in zip(rounds["on"], rounds["off"])]
    result = dict(cpu=cpu_name(), k=args.k, batch=args.batch, steps=args.steps,
                  ms_per_step=rounds, off_over_on=ratios,
                  median_off_over_on=statistics.median(ratios))
    print(f"CPU: {result['cpu']}; K = {args.k}, batch {args.batch}: ms per step, blocks on "
          f"{statistics.median(rounds['on']):.2f}, off {statistics.median(rounds['off']):.2f}; "
          f"off / on {result['median_off_over_on']:.3f} (median of {args.rounds} rounds, "
          f"range {min(ratios):.3f}-{max(ratios):.3f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
