"""The convolutional VAE's training step (``architecture="conv"``) against PyTorch's.

    python -m benchmarks.speed.conv_vae [--rounds 3] [--steps 20] [--json F]

Training throughput (forward, backward and Adam; batch 128, float32, one BLAS and one
torch thread) of numvae's conv VAE and of the same architecture in PyTorch
(Conv2d/ConvTranspose2d, BCE with logits, closed-form KL, torch.optim.Adam), each in its
own process, the two alternated ``--rounds`` times; then where numvae's step spends its
time, layer by layer (forward and backward of each layer, the rest of the step). Its last
figures: benchmarks/speed/results/conv_vae.json. The quality half (the conv VAE against the
dense model after the same epochs) is an experiment: ``python -m experiments.conv_vae``.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.speed.conv_layers import cpu_name

ROOT = Path(__file__).resolve().parents[2]


def batches(steps, batch, seed=0):
    """Binary 784-pixel batches and eps, the same for both implementations."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = (rng.random((steps, batch, 784)) < 0.13).astype(np.float32)
    eps = rng.standard_normal((steps, batch, 2)).astype(np.float32)
    return x, eps


def worker_numvae(steps, batch):
    import numvae
    model = numvae.VAE(784, 128, 2, architecture="conv", seed=0)
    optimizer = numvae.FastAdam(model.params, lr=1e-3)
    x, eps = batches(steps + 3, batch)
    for i in range(3):  # warm-up
        model.loss_and_grad(x[i], eps[i][None])
        optimizer.step(model.grads)
    start = time.perf_counter()
    for i in range(3, steps + 3):
        model.loss_and_grad(x[i], eps[i][None])
        optimizer.step(model.grads)
    return (time.perf_counter() - start) / steps


def worker_torch(steps, batch):
    """The same conv VAE in PyTorch (``numvae.interop.to_torch``: nn.Conv2d and
    nn.ConvTranspose2d, BCE with logits, the closed-form KL), torch.optim.Adam."""
    import torch

    import numvae
    from numvae.interop import to_torch
    torch.set_num_threads(1)
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
    start = time.perf_counter()
    for i in range(3, steps + 3):
        step(i)
    return (time.perf_counter() - start) / steps


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


def run_worker(kind, steps, batch):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "benchmarks.speed.conv_vae", "worker", kind,
                          str(steps), str(batch)], cwd=ROOT, capture_output=True, text=True,
                         env=env, check=True).stdout
    return float(out.strip().splitlines()[-1])


def speed(args):
    results = {"numvae": [], "PyTorch": []}
    for round_ in range(args.rounds):
        for kind, name in (("numvae", "numvae"), ("torch", "PyTorch")):
            seconds = run_worker(kind, args.steps, args.batch)
            results[name].append(args.batch / seconds)
            print(f"round {round_ + 1}: {name:8s} {1e3 * seconds:7.1f} ms/step  "
                  f"{args.batch / seconds:7.0f} examples/s", flush=True)
    import numpy as np
    median = {name: float(np.median(values)) for name, values in results.items()}
    load = os.getloadavg()[0]
    print(f"\nCPU: {cpu_name()} ({os.cpu_count()} cores, load {load:.1f}), batch {args.batch}, "
          f"float32, 1 thread")
    print(f"median throughput: numvae {median['numvae']:.0f}, PyTorch {median['PyTorch']:.0f} "
          f"examples/s: numvae at {median['numvae'] / median['PyTorch']:.2f} x PyTorch")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    profile = layer_profile(args.batch)
    total = profile["whole step (loss_and_grad)"] + profile["Adam update"]
    print(f"\nwhere numvae's step goes ({1e3 * total:.1f} ms with Adam; layers timed alone):")
    for name, seconds in sorted(profile.items(), key=lambda item: -item[1]):
        print(f"  {1e3 * seconds:7.2f} ms  {100 * seconds / total:5.1f} %  {name}")
    return dict(cpu=cpu_name(), load=load, batch=args.batch, throughput=results, median=median,
                profile_ms={k: 1e3 * v for k, v in profile.items()})


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        function = worker_numvae if argv[1] == "numvae" else worker_torch
        print(function(int(argv[2]), int(argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    result = speed(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
