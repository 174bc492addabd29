"""The rate-distortion plane (Alemi et al. 2018, "Fixing a broken ELBO") and posterior
collapse, shown and fixed, on mnist-mini.

    python -m experiments.rate_distortion                    # every run (resumable)
    python -m experiments.rate_distortion --stage sweep      # beta sweep, latent 2 and 32
    python -m experiments.rate_distortion --stage collapse   # collapse; free bits; cyclical
    python -m experiments.rate_distortion --stage report     # JSON, Markdown and figures

Each run trains the slides' VAE (784-256-128 encoder, 32-256-784 decoder, Bernoulli
likelihood) on the 10,000 training images of mnist-mini, dynamically binarised, with Adam
(lr 1e-3, batch 128, seed 0). After every epoch it measures, on the first 1,000 test images
(binarised once, seed 2018), the rate R, the distortion D, the mutual information I_q, the
marginal KL, the active units and the KL of each latent dimension
(``numvae.diagnostics.latent_info``). Each run's result is written to
``results/each_run/<name>.json`` as it finishes; a restart skips finished runs. The report
writes ``results/results.json``, ``results/results.md`` and the figures beside them.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from numvae.diagnostics.evaluate import evaluate_elbo
from numvae.diagnostics.latent_info import latent_information, latent_information_callback
from numvae.io import datasets
from numvae.io.files import atomic_write_bytes
from numvae.model.free_bits import FreeBitsELBO
from numvae.model.objectives import ELBO
from numvae.model.vae import VAE
from numvae.training.loop import fit
from numvae.training.optim_fast import FastAdam

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
RUNS = RESULTS / "each_run"
TEST_SEED = 2018
BETAS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0)
# the order of the runs: a stopped sweep still spans the range (the CPU is shared)
BETA_ORDER = (1.0, 0.1, 10.0, 0.3, 3.0, 0.5, 2.0, 5.0, 0.2, 0.7, 1.5, 7.0)
LATENTS = (2, 32)
EPOCHS = 30


def sweep_recipes(epochs=EPOCHS):
    """One run per (beta, latent): latent 2 and 32 alternate, so a stopped sweep has both."""
    return [dict(name=f"sweep_z{latent}_beta{beta:g}", latent=latent, beta=beta, epochs=epochs)
            for beta in BETA_ORDER for latent in LATENTS]


COLLAPSE_EPOCHS = 32


def collapse_recipes(epochs=COLLAPSE_EPOCHS):
    """A setting that collapses (latent 32, beta 5), then the same with free bits (a floor
    of 0.5 nats per dimension) and with cyclical annealing of the KL weight (4 cycles of
    epochs / 4, rising over the first half of each, so the last epochs are at beta 5)."""
    base = dict(latent=32, beta=5.0, epochs=epochs)
    return [dict(base, name="collapse_plain"),
            dict(base, name="collapse_free_bits", free_bits=0.5),
            dict(base, name="collapse_cyclical", kl_schedule=dict(name="cyclical",
                                                                  cycle_epochs=epochs // 4,
                                                                  ramp=0.5))]


def all_recipes():
    """beta = 1 of both latents, the three collapse runs, then the rest of the sweep."""
    sweep = sweep_recipes()
    return sweep[:2] + collapse_recipes() + sweep[2:]


def load_data():
    train, test = datasets.load_mnist_mini()
    test_images = datasets.binarize(test.images, np.random.default_rng(TEST_SEED))
    return train.images, test_images


def make_model(recipe):
    """The slides' VAE with the recipe's latent width, KL weight and free-bits floor."""
    objective = (FreeBitsELBO(kl_weight=recipe["beta"], free_bits=recipe["free_bits"])
                 if recipe.get("free_bits") else ELBO(kl_weight=recipe["beta"]))
    return VAE(784, 128, recipe["latent"], objective=objective, seed=0)


def fit_options(recipe):
    if not recipe.get("kl_schedule"):
        return {}
    from numvae.training.kl_schedules import kl_schedule_from_settings
    return dict(kl_schedule=kl_schedule_from_settings(recipe["kl_schedule"]))


def train_one(recipe, train_images, test_images, log):
    model = make_model(recipe)
    history = {}
    measure = latent_information_callback(test_images, n_images=1000, seed=0)

    def keep(state):
        history.update(state["history"])
    start = time.perf_counter()
    fit(model, FastAdam(model.params, lr=1e-3), train_images, epochs=recipe["epochs"],
        batch_size=128, seed=0, binarize=True, progress=False, log=None,
        callbacks=[measure, keep], **fit_options(recipe))
    wall = time.perf_counter() - start
    final = latent_information(model, test_images, n_images=1000, seed=0)
    elbo = evaluate_elbo(model, test_images, seed=0)
    history.pop("grad_norm", None), history.pop("grad_norm_step", None)
    final["kl_per_dim"] = final["kl_per_dim"].tolist()
    result = dict(recipe=recipe, final_1000=final,
                  test_all=dict(n=elbo["n"], negative_elbo=elbo["loss"],
                                negative_elbo_se=elbo["loss_se"], rate=elbo["kl"],
                                distortion=elbo["reconstruction"]),
                  train_seconds=sum(history["seconds"]), wall_seconds=wall, history=history)
    log(f"{recipe['name']}: R {final['rate']:.2f}  D {final['distortion']:.2f}  I_q "
        f"{final['mutual_info']:.2f}  active {final['active_units']}  ({wall:.0f} s)")
    return result


def run_stage(recipes, log=print):
    RUNS.mkdir(parents=True, exist_ok=True)
    train_images, test_images = load_data()
    for recipe in recipes:
        path = RUNS / f"{recipe['name']}.json"
        if path.exists():
            log(f"{recipe['name']}: done already ({path.name})")
            continue
        result = train_one(recipe, train_images, test_images, log)
        atomic_write_bytes(path, (json.dumps(result, indent=1) + "\n").encode())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=["all", "sweep", "collapse", "report"],
                        default="all", help="all (default): every run, then nothing else")
    parser.add_argument("--first", type=int, help="only the first N runs of the stage")
    parser.add_argument("--reverse", action="store_true",
                        help="take the runs last first (a second worker on a shared machine)")
    args = parser.parse_args(argv)
    recipes = dict(all=all_recipes, sweep=sweep_recipes, collapse=collapse_recipes)
    if args.stage in recipes:
        chosen = recipes[args.stage]()[:args.first]
        run_stage(chosen[::-1] if args.reverse else chosen,
                  log=lambda line: print(line, flush=True))
    else:
        from experiments.rate_distortion.report import write_report
        write_report(RUNS, RESULTS)
    return 0


if __name__ == "__main__":
    main()
