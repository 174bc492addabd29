"""The Gaussian-mixture prior on MNIST, latent size 2, 10 components, beside the standard
normal prior: the latent spaces with the components' means and 1-sigma ellipses, samples
from each component, the unsupervised clustering accuracy of the most responsible
component (best one-to-one matching by the Hungarian algorithm), test -ELBO and IWAE.

    python -m experiments.mixture_prior [--epochs 30] [--dataset mnist-mini]
        [--out experiments/mixture_prior/results]

Writes mixture_prior_latent.png, mixture_prior_components.png, mixture_prior.json and
mixture_prior.md into --out. The slides' dense model (784-256-128-2, decoder 2-32-256-784), Adam lr
1e-3,
batch 128, the same seed for both priors.
"""
import argparse
import json
import sys
import time
from pathlib import Path

from matplotlib.figure import Figure

import numvae
from numvae import plots
from numvae.diagnostics import evaluate
from numvae.io import datasets
from numvae.model.priors import GaussianMixture
from numvae.training.loop import fit

# a run writes into runs/ (ignored by git) unless told otherwise: never over committed files
DEFAULT_OUT = Path("runs") / "experiments" / "mixture_prior"


def train(prior, data, epochs, seed):
    model = numvae.VAE(784, 128, 2, prior=GaussianMixture(components=10) if prior == "mixture"
                       else prior, seed=seed)
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
    if model.prior.name == "mixture":
        _, accuracy, mapping = plots.mixture_clusters(model, test.images, test.labels)
        result.update(clustering_accuracy=accuracy,
                      component_to_digit={str(k): v for k, v in mapping.items()})
    return result


def markdown(results):
    """The two priors side by side, as a Markdown table."""
    lines = [f"{results['dataset']}, {results['epochs']} epochs, seed {results['seed']}", "",
             "| prior | test -ELBO | test KL | -log p(x), IWAE | active units | clustering accuracy |",
             "|---|---:|---:|---:|---:|---:|"]
    for prior in ("standard_normal", "mixture"):
        r = results[prior]
        accuracy = f"{r['clustering_accuracy']:.1%}" if "clustering_accuracy" in r else ""
        lines.append(f"| {prior} | {r['test_negative_elbo']:.2f} +- {r['test_negative_elbo_se']:.2f} "
                     f"| {r['test_kl']:.2f} | {r['iwae_negative_log_px']:.2f} (K = {r['iwae_k']}, "
                     f"{r['iwae_images']} images) | {r['active_units']} | {accuracy} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--dataset", default="mnist-mini")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iwae-k", type=int, default=1000)
    parser.add_argument("--iwae-n", type=int, default=500)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where the results go (default runs/experiments/mixture_prior; "
                        "the committed ones: experiments/mixture_prior/results)")
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
    (args.out / "mixture_prior.md").write_text(markdown(results))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
