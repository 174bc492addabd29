"""The convolutional VAE's training step (``architecture="conv"``) against PyTorch's.

    python -m benchmarks.speed.conv_vae [--rounds 3] [--steps 20] [--threads 1 2] [--json F]
    python -m benchmarks.speed.conv_vae --phases-off      # also numvae without eq. CV8's path
    python -m benchmarks.speed.conv_vae --baseline DIR    # also numvae imported from DIR
    python -m benchmarks.speed.conv_vae --layers          # and the step layer by layer

Training throughput (forward, backward and Adam; batch 128, float32) of numvae's conv VAE
and of the same architecture in PyTorch (Conv2d/ConvTranspose2d, BCE with logits,
closed-form KL, torch.optim.Adam), each in its own process with ``--threads`` BLAS and
torch threads, alternated ``--rounds`` times; ``--phases-off`` adds numvae with the
transposed convolution's phase path turned off (``numvae.nn.conv_phases.set_phases``), the
"before" of that path, in the same alternation; ``--baseline DIR`` adds numvae imported
from DIR (a folder holding an older checkout's ``numvae/`` package, e.g. from ``git archive
REV numvae | tar -x -C DIR``). ``--layers``: where numvae's step spends
its time, layer by layer, at one thread; ``python -m benchmarks.speed.conv_profile`` splits
it by pass instead. Figures: benchmarks/speed/results/conv_vae*.json. The quality half (the
conv VAE against the dense model after the same epochs) is an experiment:
``python -m experiments.conv_vae``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.speed.common import THREAD_VARIABLES
from benchmarks.speed.conv_layers import cpu_name

ROOT = Path(__file__).resolve().parents[2]


def batches(steps, batch, seed=0):
    """Binary 784-pixel batches and eps, the same for both implementations."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = (rng.random((steps, batch, 784)) < 0.13).astype(np.float32)
    eps = rng.standard_normal((steps, batch, 2)).astype(np.float32)
    return x, eps


def time_steps(step, steps, block=5):
    """Run step(i) for i = 3 .. steps + 2 (0-2 warmed up already): (mean seconds per step,
    seconds per step of the fastest block of ``block`` steps, robust to bursts of load, and
    CPU seconds per step of this process, which excludes the time other processes took the
    core: with one thread, the measure least disturbed by a busy machine)."""
    blocks, start, cpu = [], time.perf_counter(), time.process_time()
    for first in range(3, steps + 3, block):
        begin = time.perf_counter()
        for i in range(first, min(first + block, steps + 3)):
            step(i)
        blocks.append((time.perf_counter() - begin) / (min(first + block, steps + 3) - first))
    return ((time.perf_counter() - start) / steps, min(blocks),
            (time.process_time() - cpu) / steps)


def use_phases(phases):
    """Turn the transposed convolution's phase path on or off in this process; checkouts
    from before the phase path (``--baseline``) have no switch and always scatter."""
    try:
        from numvae.nn.conv_phases import set_phases
    except ImportError:
        return
    set_phases(phases)


def worker_numvae(steps, batch, phases=True, best=False):
    """Seconds per training step (and, with ``best``, that of the fastest block)."""
    import numvae
    use_phases(phases)
    model = numvae.VAE(784, 128, 2, architecture="conv", seed=0)
    optimizer = numvae.FastAdam(model.params, lr=1e-3)
    x, eps = batches(steps + 3, batch)

    def step(i):
        model.loss_and_grad(x[i], eps[i][None])
        optimizer.step(model.grads)

    for i in range(3):  # warm-up
        step(i)
    timings = time_steps(step, steps)
    return timings if best else timings[0]


def worker_torch(steps, batch, threads=1, best=False):
    """The same conv VAE in PyTorch (``numvae.interop.to_torch``: nn.Conv2d and
    nn.ConvTranspose2d, BCE with logits, the closed-form KL), torch.optim.Adam."""
    import torch

    import numvae
    from numvae.interop import to_torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    module = to_torch(numvae.VAE(784, 128, 2, architecture="conv", seed=0))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    x_all, eps_all = (torch.from_numpy(a) for a in batches(steps + 3, batch))

    def step(i):
        optimizer.zero_grad()
        module(x_all[i], eps_all[i]).backward()
        optimizer.step()

    for i in range(3):
        step(i)
    timings = time_steps(step, steps)
    return timings if best else timings[0]


def layer_profile(batch, repeats=5):
    """Median seconds of each layer's forward and backward in numvae's conv VAE step, and of
    the whole step (loss_and_grad plus Adam): {name: seconds}."""
    import numpy as np

    import numvae
    model = numvae.VAE(784, 128, 2, architecture="conv", seed=0)
    optimizer = numvae.FastAdam(model.params, lr=1e-3)
    x, eps = batches(1, batch)
    times = {}

    def timed(name, function):
        start = time.perf_counter()
        result = function()
        times.setdefault(name, []).append(time.perf_counter() - start)
        return result

    for _ in range(repeats):
        for prefix, sequence, inp in (("encoder.compressor", model.encoder.compressor, x[0]),
                                      ("decoder.decompressor", model.decoder.to_logits,
                                       np.zeros((batch, 2), np.float32) + eps[0])):
            outputs, caches = [inp], []
            for index, layer in enumerate(sequence.layers):
                y, cache = timed(f"{prefix}.{index} {type(layer).__name__} forward",
                                 lambda: layer.forward(outputs[-1]))  # noqa: B023 (called now)
                outputs.append(y)
                caches.append(cache)
            dy = np.ones_like(outputs[-1])
            for index in range(len(sequence.layers) - 1, -1, -1):
                layer = sequence.layers[index]
                dy = timed(f"{prefix}.{index} {type(layer).__name__} backward",
                           lambda: layer.backward(dy, caches[index]))  # noqa: B023 (called now)
        timed("whole step (loss_and_grad)", lambda: model.loss_and_grad(x[0], eps[0][None]))
        timed("Adam update", lambda: optimizer.step(model.grads))
    return {name: float(np.median(values)) for name, values in times.items()}


KINDS = {"numvae": "numvae", "numvae-phases-off": "numvae, phases off",
         "baseline": "numvae, baseline", "torch": "PyTorch"}


def run_worker(kind, steps, batch, threads=1, baseline=None):
    """(mean, fastest block's, CPU) seconds per step of one worker process with ``threads``
    BLAS (and torch) threads."""
    # python -m puts the working folder first on sys.path: the baseline's runs start in it
    env = dict(os.environ, PYTHONPATH=str(ROOT) if kind != "baseline"
               else os.pathsep.join([str(baseline), str(ROOT)]))
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    out = subprocess.run([sys.executable, "-m", "benchmarks.speed.conv_vae", "worker", kind,
                          str(steps), str(batch), str(threads)],
                         cwd=ROOT if kind != "baseline" else baseline, capture_output=True,
                         text=True, env=env, check=True).stdout
    return tuple(float(value) for value in out.strip().splitlines()[-1].split())


def speed(args):
    """Alternated rounds at each thread count: {threads: {name: {"mean": [examples/s, ...],
    "best": [... of the fastest block], "cpu": [examples per CPU second]}}}."""
    kinds = ["numvae", *(["numvae-phases-off"] if args.phases_off else []),
             *(["baseline"] if args.baseline else []), "torch"]
    results = {}
    for threads in args.threads:
        rates = results[threads] = {KINDS[kind]: {"mean": [], "best": [], "cpu": []}
                                    for kind in kinds}
        for round_ in range(args.rounds):
            for kind in kinds:
                timings = run_worker(kind, args.steps, args.batch, threads, args.baseline)
                for key, seconds in zip(("mean", "best", "cpu"), timings):
                    rates[KINDS[kind]][key].append(args.batch / seconds)
                print(f"{threads} thread(s), round {round_ + 1}: {KINDS[kind]:18s} "
                      f"{1e3 * timings[0]:7.1f} ms/step (fastest block {1e3 * timings[1]:6.1f}, "
                      f"CPU {1e3 * timings[2]:6.1f})", flush=True)
    return results


def ratios(results, key="mean"):
    """{threads: {name: (median, low, high) of name / PyTorch over the rounds}}: each round's
    ratio pairs runs that were close in time."""
    table = {}
    for threads, rates in results.items():
        torch_rates = rates["PyTorch"][key]
        table[threads] = {}
        for name, values in rates.items():
            if name != "PyTorch":
                pairs = [a / b for a, b in zip(values[key], torch_rates)]
                table[threads][name] = (statistics.median(pairs), min(pairs), max(pairs))
    return table


def report(results, args):
    load = os.getloadavg()[0]
    print(f"\nCPU: {cpu_name()} ({os.cpu_count()} cores, load {load:.1f}), batch {args.batch}, "
          f"float32; numvae / PyTorch throughput, median of {args.rounds} alternated rounds "
          "(range): of the whole runs, of their fastest blocks of 5 steps, of CPU time")
    tables = {key: ratios(results, key) for key in ("mean", "best", "cpu")}
    for threads, row in tables["mean"].items():
        for name in row:
            cells = ("{:.2f} ({:.2f}-{:.2f})".format(*tables[key][threads][name])
                     for key in tables)
            print(f"  {threads} thread(s)  {name:18s} " + "   ".join(cells))
    summary = dict(cpu=cpu_name(), load=load, batch=args.batch, rounds=args.rounds,
                   steps=args.steps, throughput=results, ratio=tables["mean"],
                   ratio_fastest=tables["best"], ratio_cpu_time=tables["cpu"])
    if args.layers:
        os.environ.update({name: "1" for name in THREAD_VARIABLES})  # before numpy's import
        profile = layer_profile(args.batch)
        total = profile["whole step (loss_and_grad)"] + profile["Adam update"]
        print(f"\nwhere numvae's step goes ({1e3 * total:.1f} ms with Adam; layers timed alone):")
        for name, seconds in sorted(profile.items(), key=lambda item: -item[1]):
            print(f"  {1e3 * seconds:7.2f} ms  {100 * seconds / total:5.1f} %  {name}")
        summary["profile_ms"] = {k: 1e3 * v for k, v in profile.items()}
    return summary


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        kind, steps, batch, threads = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
        if kind == "torch":
            print(*worker_torch(steps, batch, threads, best=True))
        else:
            print(*worker_numvae(steps, batch, phases=kind == "numvae", best=True))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--phases-off", action="store_true",
                        help="also time numvae with the phase path off (the before)")
    parser.add_argument("--baseline", type=Path,
                        help="also time numvae imported from this folder (an older numvae/)")
    parser.add_argument("--layers", action="store_true",
                        help="then time numvae's step layer by layer (1 thread)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    result = report(speed(args), args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
