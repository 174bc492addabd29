"""The convolutional VAE (``architecture="conv"``) against the slides' dense model, after
the same number of epochs.

    python -m experiments.conv_vae [--epochs 10] [--dataset mnist-mini] [--data-dir ../shared/mnist]

Test negative ELBO and IWAE estimate of log p(x) of the conv VAE and of the slides' dense
model (784-256-128-2, decoder 2-32-256-784), both latent size 2, shared width 128, Adam lr
1e-3, batch 128, seed 0. Writes ``quality_<dataset>.json`` and ``quality_<dataset>.md``
into ``--out`` (default: experiments/conv_vae/results/). The speed half is a benchmark:
``python -m benchmarks.speed.conv_vae``.
"""
import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.speed.conv_layers import cpu_name

# a run writes into runs/ (ignored by git) unless told otherwise: never over committed files
DEFAULT_OUT = Path("runs") / "experiments" / "conv_vae"


def quality(args):
    import numvae
    from numvae.diagnostics import evaluate
    from numvae.io import datasets
    from numvae.training.loop import fit
    train_data, test, used = datasets.load_dataset(args.dataset, args.data_dir, announce=print)
    out = {}
    for arch, options in (("dense (slides)", {}), ("conv", dict(architecture="conv"))):
        model = numvae.VAE(784, 128, 2, seed=args.seed, **options)
        start = time.perf_counter()
        fit(model, numvae.FastAdam(model.params, lr=1e-3), train_data, epochs=args.epochs,
            batch_size=128, seed=args.seed, progress=False,
            log=lambda line, arch=arch: print(f"[{arch}] {line}", flush=True))
        seconds = time.perf_counter() - start
        elbo = evaluate.evaluate_elbo(model, test.images)
        iwae = evaluate.iwae_log_likelihood(model, test.images[:args.iwae_n], k=args.iwae_k)
        out[arch] = dict(test_negative_elbo=elbo["loss"], se=elbo["loss_se"],
                         iwae_negative_log_px=-iwae["log_px"], iwae_se=iwae["log_px_se"],
                         train_seconds=seconds, n_params=int(model.n_params()))
        print(arch, json.dumps(out[arch]), flush=True)
    print(f"\n{used}, {args.epochs} epochs, test set {len(test.images)} images "
          f"(IWAE: K={args.iwae_k} on the first {args.iwae_n}); CPU {cpu_name()}")
    for arch, r in out.items():
        print(f"  {arch:15s} -ELBO {r['test_negative_elbo']:7.2f} +- {r['se']:.2f}   "
              f"-log p(x) IWAE {r['iwae_negative_log_px']:7.2f}   {r['n_params']:,} parameters, "
              f"{r['train_seconds']:.0f} s")
    return dict(dataset=used, epochs=args.epochs, iwae_k=args.iwae_k, iwae_n=args.iwae_n,
                cpu=cpu_name(), results=out)


def markdown(result):
    """The results as a Markdown table."""
    lines = [f"{result['dataset']}, {result['epochs']} epochs (IWAE: K = {result['iwae_k']} on "
             f"the first {result['iwae_n']} test images); CPU {result['cpu']}", "",
             "| model | test -ELBO | -log p(x), IWAE | parameters | training seconds |",
             "|---|---:|---:|---:|---:|"]
    for arch, r in result["results"].items():
        lines.append(f"| {arch} | {r['test_negative_elbo']:.2f} +- {r['se']:.2f} | "
                     f"{r['iwae_negative_log_px']:.2f} | {r['n_params']:,} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dataset", default="mnist-mini")
    parser.add_argument("--data-dir", help="the MNIST IDX files (e.g. ../shared/mnist)")
    parser.add_argument("--iwae-k", type=int, default=500)
    parser.add_argument("--iwae-n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where the results go (default runs/experiments/conv_vae; "
                        "the committed ones: experiments/conv_vae/results)")
    args = parser.parse_args(argv)
    result = quality(args)
    name = "mini" if result["dataset"] == "mnist-mini" else result["dataset"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"quality_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"quality_{name}.md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
