"""Quality benchmark (issue 3): train on full MNIST and print the test-set negative ELBO
and the importance-weighted estimate of log p(x).

    python benchmarks/quality.py [--data-dir ../shared/mnist] [--epochs 10] [--arch slides examples]

Both architectures use the Bernoulli likelihood on the [0, 1] grey levels, Adam lr 1e-3,
batch 128. Reference (a PyTorch model of the same architecture trained the same way on
this kind of machine): slides 148.7 nats, examples 105.5 nats test negative ELBO after
10 epochs; IWAE K=500 about -145.4 and -100.2.
"""
import argparse
import time
from pathlib import Path

import numpy as np

import numvae
from numvae.io import datasets
from numvae.diagnostics import evaluate
from numvae.training import loop

ARCHITECTURES = {
    "slides": dict(shared_dim=128, latent_dim=2),
    "examples": dict(shared_dim=400, latent_dim=20, encoder_hidden=(), decoder_hidden=(400,)),
}
REFERENCE = {"slides": (148.7, -145.4), "examples": (105.5, -100.2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = Path(__file__).resolve().parents[2] / "shared" / "mnist"
    parser.add_argument("--data-dir", default=str(default_dir))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--arch", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--iwae-k", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--iwae-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train_data, test_data = datasets.load_mnist(args.data_dir, download=False)
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
              f"(rec {result['reconstruction']:.2f}, KL {result['kl']:.2f}); PyTorch reference {reference_elbo}")
        for k in args.iwae_k:
            start = time.perf_counter()
            iwae = evaluate.iwae_log_likelihood(model, test_data.images[:args.iwae_n], k=k)
            print(f"{'':>8}  IWAE K={k} on the first {args.iwae_n} test images: "
                  f"{iwae['log_px']:.2f} +- {iwae['log_px_se']:.2f} nats "
                  f"({time.perf_counter() - start:.1f} s); PyTorch reference K=500: {reference_iwae}")


if __name__ == "__main__":
    main()
