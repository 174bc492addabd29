"""Quality run (issue 3): train on full MNIST and report the test-set negative ELBO and
the importance-weighted estimate of log p(x).

    python -m experiments.quality [--data-dir DIR] [--epochs 10] [--arch slides examples]

Writes quality.json and quality.md into ``--out`` (default: experiments/quality/results/).

Both architectures use the Bernoulli likelihood on the [0, 1] grey levels, Adam lr 1e-3,
batch 128. Reference (a PyTorch model of the same architecture trained the same way on
this kind of machine): slides 148.7 nats, examples 105.5 nats test negative ELBO after
10 epochs; IWAE K=500 about -145.4 and -100.2.
"""
import argparse
import json
import time
from pathlib import Path

import numvae
from numvae.diagnostics import evaluate
from numvae.io import datasets
from numvae.training import loop

ARCHITECTURES = {
    "slides": dict(shared_dim=128, latent_dim=2),
    "examples": dict(shared_dim=400, latent_dim=20, encoder_hidden=(), decoder_hidden=(400,)),
}
REFERENCE = {"slides": (148.7, -145.4), "examples": (105.5, -100.2)}
# a run writes into runs/ (ignored by git) unless told otherwise: never over committed files
DEFAULT_OUT = Path("runs") / "experiments" / "quality"


def markdown(rows, epochs):
    """The rows as a Markdown table, beside the PyTorch reference."""
    lines = [f"MNIST, {epochs} epochs, Adam lr 1e-3, batch 128", "",
             "| arch | test -ELBO | PyTorch -ELBO | IWAE log p(x) (K, images) | PyTorch (K = 500) |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        reference_elbo, reference_iwae = REFERENCE[row["arch"]]
        for iwae in row["iwae"]:
            lines.append(f"| {row['arch']} | {row['negative_elbo']:.2f} +- {row['negative_elbo_se']:.2f} "
                         f"| {reference_elbo} | {iwae['log_px']:.2f} +- {iwae['log_px_se']:.2f} "
                         f"({iwae['k']}, {iwae['n_images']}) | {reference_iwae} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder holding the four MNIST files (default: "
                        "$NUMVAE_DATA_DIR, else the cache numvae train fills, downloading)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--arch", nargs="+", default=list(ARCHITECTURES),
                        choices=list(ARCHITECTURES))
    parser.add_argument("--iwae-k", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--iwae-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where the results go (default runs/experiments/quality; "
                        "the committed ones: experiments/quality/results)")
    args = parser.parse_args(argv)
    rows = []
    train_data, test_data = datasets.load_mnist(args.data_dir)
    print(f"MNIST: {len(train_data.images)} training, {len(test_data.images)} test images")
    for arch in args.arch:
        model = numvae.VAE(784, **ARCHITECTURES[arch], seed=args.seed)
        optimizer = numvae.Adam(model.params, lr=1e-3)
        start = time.perf_counter()
        loop.fit(model, optimizer, train_data, epochs=args.epochs, batch_size=128,
                  seed=args.seed, progress=False, log=None)
        seconds = time.perf_counter() - start
        result = evaluate.evaluate_elbo(model, test_data.images)
        reference_elbo, reference_iwae = REFERENCE[arch]
        print(f"{arch:>8}: {args.epochs} epochs in {seconds:.1f} s; test -ELBO "
              f"{result['loss']:.2f} +- {result['loss_se']:.2f} nats "
              f"(rec {result['reconstruction']:.2f}, KL {result['kl']:.2f}); "
              f"PyTorch reference {reference_elbo}")
        row = dict(arch=arch, epochs=args.epochs, seconds=seconds, negative_elbo=result["loss"],
                   negative_elbo_se=result["loss_se"], reconstruction=result["reconstruction"],
                   kl=result["kl"], iwae=[])
        rows.append(row)
        for k in args.iwae_k:
            start = time.perf_counter()
            iwae = evaluate.iwae_log_likelihood(model, test_data.images[:args.iwae_n], k=k)
            print(f"{'':>8}  IWAE K={k} on the first {args.iwae_n} test images: "
                  f"{iwae['log_px']:.2f} +- {iwae['log_px_se']:.2f} nats "
                  f"({time.perf_counter() - start:.1f} s); PyTorch reference K=500: {reference_iwae}")
            row["iwae"].append(dict(k=k, n_images=args.iwae_n, log_px=iwae["log_px"],
                                    log_px_se=iwae["log_px_se"]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(rows, indent=1) + "\n")
    (args.out / "quality.md").write_text(markdown(rows, args.epochs))


if __name__ == "__main__":
    main()
