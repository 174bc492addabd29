"""Where the time of one K = 50 IWAE training step goes, by pass (issue 26).

    python -m benchmarks.speed.iwae_profile [--threads 1] [--k 50] [--batch 20]
        [--rounds 4] [--block 20] [--textbook] [--json FILE]

The model and optimiser of ``benchmarks.speed.iwae_training`` (Burda et al.'s 784-200-200-50
tanh model, FastAdam); the step is the package's ``train_step``. As in ``profile.py``,
timers are wrapped around the package's own functions (never copies of them) and are
exclusive; the Dense layers are timed one by one (the encoder's run on ``batch`` rows, the
decoder's on K * batch). Plain blocks (the true step time), instrumented blocks and the
GEMM floor (the same matrix products alone) alternate ``--rounds`` times.

``--threads`` sets the BLAS thread count (OPENBLAS_NUM_THREADS and the like) before NumPy
is imported: run it as its own process.
"""
import argparse
import json
import os
import sys

from benchmarks.speed.common import THREAD_VARIABLES

OTHER = "Python and small ops in "


def iwae_targets(model, optimizer):
    """(owner, attribute, label) of every function the IWAE profile wraps: each Dense
    layer on its own, then the parts of the step (``profile.targets``, less its Dense
    entries, plus the IWAE's own)."""
    from benchmarks.speed.profile import DENSE_BACKWARD, DENSE_FORWARD, targets
    from numvae.model import likelihoods, objectives, posteriors, priors
    from numvae.nn import layers
    chosen = []
    for where, layer_list in (("encoder", encoder_dense(model)), ("decoder", decoder_dense(model))):
        for layer in layer_list:
            name = f"{where} {layer!r}"
            chosen += [(layer, "forward", f"{name} forward (x @ W + b)"),
                       (layer, "backward", f"{name} backward (x^T dy, sum dy, dy W^T)")]
    own = [(layers.Tanh, "forward", "tanh forward"),
           (layers.Tanh, "backward", "tanh backward (dy * (1 - y^2))"),
           (likelihoods, "softplus", "softplus (abs, exp, log1p, max)"),
           (likelihoods, "bernoulli_nll_rows", "softplus loss, split by rows (pool)"),
           (likelihoods, "bernoulli_nll_backward_rows", "dnll * (p - x), split by rows (pool)"),
           (objectives, "log_weights", "log w = -nll + log p - log q (log_weights)"),
           (posteriors.DiagonalGaussian, "log_prob", "log q, log p and their gradients"),
           (posteriors.DiagonalGaussian, "log_prob_backward", "log q, log p and their gradients"),
           (priors.StandardNormal, "log_prob", "log q, log p and their gradients"),
           (priors.StandardNormal, "log_prob_backward", "log q, log p and their gradients"),
           (objectives.IWAE, "forward", OTHER + "IWAE.forward (log-sum-exp, w~, KL)"),
           (objectives.IWAE, "backward", OTHER + "IWAE.backward")]
    shared = [entry for entry in targets(optimizer) if entry[2] not in (DENSE_FORWARD, DENSE_BACKWARD)]
    return chosen + own + shared


def encoder_dense(model):
    from numvae.nn.layers import Dense
    return ([layer for layer in model.encoder.compressor.layers if isinstance(layer, Dense)]
            + list(model.encoder.heads.values()))


def decoder_dense(model):
    from numvae.nn.layers import Dense
    return [layer for layer in model.decoder.decompressor.layers if isinstance(layer, Dense)]


def make_step(model, optimizer, batch, seed=0, n_batches=50):
    """One step of ``train_step`` on the next of ``n_batches`` random binary batches."""
    import numpy as np

    from numvae.training.loop import train_step
    rng = np.random.default_rng(seed)
    batches = (rng.random((n_batches, batch, model.input_dim)) < 0.3).astype(model.dtype)
    position = [0]

    def step():
        x = batches[position[0] % n_batches]
        position[0] += 1
        train_step(model, optimizer, x, 1.0, (0, 0))
    return step


def run_profile(k, batch, rounds, block, seed=0, textbook=False):
    """The profile of the IWAE step: ``profile.profile``'s dict (step_ms, parts, floor_ms ...).
    ``textbook``: with the fast paths of issue 26 off (the step as it was before them)."""
    from benchmarks.speed import profile as dense_profile
    from benchmarks.speed.iwae_training import make_numvae
    from benchmarks.speed.training import GemmFloor
    from numvae.nn.threads import restore, set_threads
    model, optimizer = make_numvae(k, seed)
    model.objective.fast_backward = not textbook
    previous = set_threads(1) if textbook else None  # the elementwise pool off too
    try:
        chosen = iwae_targets(model, optimizer)
        step = make_step(model, optimizer, batch, seed)
        for _ in range(5):  # warm-up: BLAS threads started, pages faulted in
            step()
        cfg = dict(profile_rounds=rounds, profile_block=block)
        return dense_profile.profile(f"K = {k}, batch {batch}", cfg, model, optimizer, step,
                                     GemmFloor(model, batch, seed), chosen)
    finally:
        if previous is not None:
            restore(previous)


def table(result, threads):
    """The profile as Markdown: part, ms per step, share of the instrumented step."""
    parts = sorted(result["parts"].items(), key=lambda item: -item[1])
    total = result["instrumented_step_ms"]
    lines = [f"| part of the step ({threads} thread(s)) | ms | share |", "|---|---:|---:|"]
    lines += [f"| {name} | {ms:.3f} | {100 * ms / total:.1f} % |" for name, ms in parts]
    lines.append(f"| unaccounted (loop, timer overhead) | {total - sum(result['parts'].values()):.3f} | |")
    lines += [f"| **instrumented step** | {total:.3f} | |",
              f"| **plain step (no timers)** | {result['step_ms']:.3f} | |",
              f"| GEMM floor (the same products alone) | {result['floor_ms']:.3f} | |",
              f"| plain step / GEMM floor | {result['step_ms'] / result['floor_ms']:.2f} | |"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--textbook", action="store_true", help="the fast paths off")
    parser.add_argument("--json", help="write the profile here")
    args = parser.parse_args(argv)
    if "numpy" in sys.modules:
        raise SystemExit("iwae_profile: numpy is already imported; run it as its own process")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(args.threads)
    result = run_profile(args.k, args.batch, args.rounds, args.block, textbook=args.textbook)
    from numvae.nn.threads import thread_count
    result.update(threads=args.threads, k=args.k, batch=args.batch, textbook=args.textbook,
                  pool_threads=thread_count())
    print(table(result, args.threads))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=1)


if __name__ == "__main__":
    main()
