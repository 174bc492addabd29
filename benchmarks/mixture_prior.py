"""The Gaussian-mixture prior on MNIST, latent size 2, 10 components, beside the standard
normal prior: the latent spaces with the components' means and 1-sigma ellipses, samples
from each component, the unsupervised clustering accuracy of the most responsible
component (best one-to-one matching by the Hungarian algorithm), test -ELBO and IWAE.

    PYTHONPATH=. python benchmarks/mixture_prior.py [--epochs 30] [--dataset mnist-mini]
        [--out docs/figures]

Writes mixture_prior_latent.png, mixture_prior_components.png and mixture_prior.json into
--out. The slides' dense model (784-256-128-2, decoder 2-32-256-784), Adam lr 1e-3,
batch 128, the same seed for both priors.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae.io import datasets
from numvae.diagnostics import evaluate
from numvae import plots
from numvae.training.loop import fit


def train(prior, data, epochs, seed):
    model = numvae.VAE(784, 128, 2, prior=prior, prior_components=10, seed=seed)
    optimizer = numvae.FastAdam(model.params, lr=1e-3)
    start = time.perf_counter()
    fit(model, optimizer, data, epochs=epochs, batch_size=128, seed=seed, progress=False,
        log=lambda line: print(f"[{prior}] {line}", flush=True))
    return model, time.perf_counter() - start


def scores(model, test, iwae_n, k):
    elbo = evaluate.evaluate_elbo(model, test.images)
    iwae = evaluate.iwae_log_likelihood(model, test.images[:iwae_n], k=k)
    n_active, variance = evaluate.active_units(model, test.images)
    result = dict(test_negative_elbo=elbo["loss"], test_negative_elbo_se=elbo["loss_se"],
                  test_kl=elbo["kl"], iwae_negative_log_px=-iwae["log_px"],
                  iwae_k=k, iwae_images=iwae_n, active_units=n_active,
                  mean_variance=variance.tolist())
    if model.config["prior"] == "mixture":
        _, accuracy, mapping = plots.mixture_clusters(model, test.images, test.labels)
        result.update(clustering_accuracy=accuracy,
                      component_to_digit={str(k): v for k, v in mapping.items()})
    return result


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--dataset", default="mnist-mini")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iwae-k", type=int, default=1000)
    parser.add_argument("--iwae-n", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args(argv)
    train_data, test, used = datasets.load_dataset(args.dataset, announce=print)
    results = dict(dataset=used, epochs=args.epochs, seed=args.seed)
    models = {}
    for prior in ("standard_normal", "mixture"):
        models[prior], seconds = train(prior, train_data, args.epochs, args.seed)
        results[prior] = dict(scores(models[prior], test, args.iwae_n, args.iwae_k),
                              train_seconds=seconds)
        print(prior, json.dumps(results[prior]), flush=True)
    fig = Figure(figsize=(14, 6.5), layout="constrained")
    for ax, prior in zip(fig.subplots(1, 2), ("standard_normal", "mixture")):
        plots.latent_space_with_components(models[prior], test.images, test.labels, ax=ax)
    accuracy = results["mixture"]["clustering_accuracy"]
    fig.suptitle(f"{used}, {args.epochs} epochs, test images coloured by digit; clustering "
                 f"accuracy of the most responsible component: {accuracy:.1%}")
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "mixture_prior_latent.png", dpi=110)
    plots.component_samples(models["mixture"], path=args.out / "mixture_prior_components.png")
    (args.out / "mixture_prior.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
