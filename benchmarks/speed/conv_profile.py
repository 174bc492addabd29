"""Where the convolutional VAE's training step spends its time, pass by pass, at 1 and 2 threads.

    python -m benchmarks.speed.conv_profile [--threads 1 2] [--rounds 4] [--block 10] [--json F]
    python -m benchmarks.speed.conv_profile --phases off on   # before and after eq. CV8's path
    python -m benchmarks.speed.conv_profile --baseline DIR    # and numvae imported from DIR

The step is the one ``benchmarks.speed.conv_vae`` times (``VAE(784, 128, 2,
architecture="conv")``, batch 128, float32, ``loss_and_grad`` then ``FastAdam.step``). Timers
are put around the package's own functions (wrapped, never re-implemented; exclusive: a
timer's time excludes the timed functions it calls), in a fresh process per thread count:

im2col          the patch matrices (Conv2d forward, ConvTranspose2d backward)
col2im          the scatter-add of patches (Conv2d backward, ConvTranspose2d forward)
phases          the same maps gathered by phases (numvae.nn.conv_phases): copies and product
conv GEMMs+     what the conv layers do besides: their matrix products, layout copies, bias
Dense           the two Dense layers (their GEMMs, bias)
activations     ReLU and its backward mask
likelihood      the Bernoulli loss on the logits and its gradient
latent          reparameterisation and KL with their gradients
optimiser       FastAdam.step
the rest        the step's time outside every timer (Python, checks, reshapes, timers)

Plain (untimed) steps, timed steps and the conv products alone on arrays of the step's shapes
(the "conv GEMM floor", from ``benchmarks.speed.conv_layers.stage_jobs``) alternate
``--rounds`` times; figures are per step, medians over rounds for the plain step and the
floor, means for the timed parts. Whatever else the conv layers spend is their "conv GEMMs+"
minus the floor.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.speed.common import worker_env
from benchmarks.speed.conv_layers import cpu_name
from benchmarks.speed.profile import Timers, instrument

ROOT = Path(__file__).resolve().parents[2]
PASSES = ["im2col", "col2im", "phases", "conv GEMMs+", "Dense", "activations", "likelihood", "latent",
          "optimiser"]


def targets(optimizer):
    """(owner, attribute, pass) of every function timed; the conv module's functions are
    looked up by name, so that a path missing from this checkout is skipped."""
    from numvae.model import kl, likelihoods, posteriors
    from numvae.nn import conv, layers
    found = [(conv, name, part) for name, part in (
        ("im2col_channels_last", "im2col"), ("col2im_channels_last", "col2im"),
        ("im2col_strided", "im2col"), ("col2im_by_offsets", "col2im"),
        ("transposed_conv_by_phases", "phases"))
        if hasattr(conv, name)]
    for cls in (conv.FastConv2d, conv.FastConvTranspose2d, layers.Dense):
        for method in ("forward", "backward"):
            found.append((cls, method, "Dense" if cls is layers.Dense else "conv GEMMs+"))
    found += [(layers.ReLU, "forward", "activations"), (layers.ReLU, "backward", "activations"),
              (likelihoods, "bernoulli_nll", "likelihood"),
              (likelihoods, "bernoulli_nll_backward", "likelihood"),
              (likelihoods.Bernoulli, "nll_backward", "likelihood"),
              (kl, "kl_divergence", "latent"), (kl, "kl_divergence_backward", "latent"),
              (posteriors.DiagonalGaussian, "rsample", "latent"),
              (posteriors.DiagonalGaussian, "rsample_backward", "latent"),
              (type(optimizer), "step", "optimiser")]
    return found


def worker(rounds, block, phases=True, batch=128):
    """One process, its thread count set by the parent: {pass: ms per step, ...}."""
    import numpy as np

    import numvae
    from benchmarks.speed.conv_layers import numvae_stack, stage_jobs
    from benchmarks.speed.conv_vae import batches, use_phases
    use_phases(phases)
    model = numvae.VAE(784, 128, 2, architecture="conv", seed=0)
    optimizer = numvae.FastAdam(model.params, lr=1e-3)
    x, eps = batches(2, batch)
    floor = stage_jobs(numvae_stack(True), np.zeros((batch, 1, 28, 28), np.float32))[0]["GEMM"]

    def step():
        model.loss_and_grad(x[0], eps[0][None])
        optimizer.step(model.grads)

    def blocked(function):
        start = time.perf_counter()
        for _ in range(block):
            function()
        return 1e3 * (time.perf_counter() - start) / block

    for _ in range(3):  # warm-up
        step()
    timers, plain, timed, floors = Timers(), [], [], []
    for _ in range(rounds):
        plain.append(blocked(step))
        floors.append(blocked(floor))
        undo = instrument(timers, optimizer, targets(optimizer))
        try:
            timed.append(blocked(step))
        finally:
            undo()
    n_steps = rounds * block
    parts = {name: 1e3 * timers.seconds.get(name, 0.0) / n_steps for name in PASSES}
    timed_ms = statistics.mean(timed)
    parts["the rest"] = timed_ms - sum(parts.values())
    return dict(parts=parts, timed_step_ms=timed_ms, step_ms=statistics.median(plain),
                step_range_ms=[min(plain), max(plain)],
                conv_gemm_floor_ms=statistics.median(floors))


def table(results):
    """Markdown: one column per configuration, ms per step and share of the timed step."""
    lines = ["| pass | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results)]
    for name in [*PASSES, "the rest"]:
        cells = [f"{r['parts'][name]:.1f} ms ({100 * r['parts'][name] / r['timed_step_ms']:.0f} %)"
                 for r in results.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for key, label in (("timed_step_ms", "timed step (timers on)"),
                       ("step_ms", "plain step, median"),
                       ("conv_gemm_floor_ms", "conv GEMM floor (the conv products alone)")):
        lines.append(f"| {label} | " + " | ".join(f"{r[key]:.1f} ms" for r in results.values())
                     + " |")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        print(json.dumps(worker(int(argv[1]), int(argv[2]), argv[3] == "on")))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--block", type=int, default=10, help="steps per timed block")
    parser.add_argument("--phases", nargs="+", choices=["on", "off"], default=["on"],
                        help="the phase path on, off, or both one after the other")
    parser.add_argument("--baseline", type=Path,
                        help="first profile numvae imported from this folder (an older numvae/, "
                             "as for benchmarks.speed.conv_vae --baseline)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = {}
    variants = [*([("baseline", "off")] if args.baseline else []),
                *((f"phases {phases}", phases) for phases in args.phases)]
    for threads in args.threads:
        for label, phases in variants:
            env = worker_env(threads)
            if label == "baseline":  # python -m puts its working folder first on sys.path
                env["PYTHONPATH"] = os.pathsep.join([str(args.baseline), env["PYTHONPATH"]])
            out = subprocess.run([sys.executable, "-m", "benchmarks.speed.conv_profile",
                                  "worker", str(args.rounds), str(args.block), phases],
                                 cwd=args.baseline if label == "baseline" else ROOT, check=True,
                                 env=env, capture_output=True, text=True).stdout
            name = f"{threads} thread{'s' * (threads > 1)}, {label}"
            results[name] = json.loads(out.strip().splitlines()[-1])
    import numpy  # the parent's own import, after the workers, only to name the versions
    print(f"CPU: {cpu_name()}; numpy {numpy.__version__}; batch 128, float32; "
          f"{args.rounds} rounds of {args.block} steps")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(dict(cpu=cpu_name(), numpy=numpy.__version__,
                                             rounds=args.rounds, block=args.block,
                                             results=results), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
