"""Burda, Grosse & Salakhutdinov (2016), Table 1, MNIST, one and two stochastic layers, reproduced.

    python -m experiments.iwae_table --model iwae --k 5 --stages 5      # one row, resumable
    python -m experiments.iwae_table --layers 2 --model vae --k 1 --stages 6   # two layers
    python -m experiments.iwae_table --table                           # the side-by-side table

The set-up of the paper: 784-200-200-50 (tanh) encoder and 50-200-200-784 decoder,
Bernoulli likelihood, dynamically binarised training images (all 60,000), Adam (beta2 =
0.999, eps = 1e-4), batch 20, the learning-rate schedule "burda" (stage i = 0..7 lasts 3^i
epochs at 1e-3 * 10^(-i/7); ``--stages 5`` is the first 121 epochs), test log-likelihood
estimated with K = 5000 on the test images, binarised once with a fixed seed. With
``--layers 2``: 784-200-200-100 (z1) then 100-100-100-50 (z2), started as Burda et al.'s
published code starts it (Glorot's uniform weights, zero biases, the output bias at the
logit of the training images' mean; docs/burda.md).

Every epoch ends with a resume checkpoint (``<out>/resume/checkpoint.npz``: parameters,
optimiser and generator state only; the history is in results.json): kill the run at any
point and run the same command again to resume where it was. At the end of each stage the
test NLL (K = ``--eval-k`` on the first ``--eval-images`` test images, per example, so that
two rows can be compared pair by pair) and the test negative ELBO are written to
``<out>/results.json``; ``--table`` gathers every row into ``results/iwae_table.md``.

The results (JSON, Markdown, PNG) are committed; a checkpoint is not, except a row's
``resume/checkpoint.npz`` at a stage's end while the row is still to be continued on
another day, deleted once the row is final. A row whose results say epoch E but whose
resume checkpoint is missing is refused (``--restart`` trains it again from epoch 0,
replacing its results); ``--table`` and the table after ``--final`` read the results only.

    python -m experiments.iwae_table --model iwae --k 5 --final         # all 10,000 test images

``--final`` evaluates the row's last checkpoint as the paper does, on every test image
(K = ``--eval-k``), in chunks of ``--final-chunk`` images, each saved to ``<out>/final.json``
as it ends, so that a stopped evaluation resumes at its next chunk. Chunk c is drawn with seed
epoch + 1000 c: chunk 0 is then the stage-end evaluation of that epoch, taken from it. An
earlier complete evaluation is kept, not replaced: ``result_files.keep_earlier_final``.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from experiments.iwae_table.result_files import (
    earlier_final_paths,
    keep_earlier_final,
    read_final,
    read_results,
    trained_epochs,
)
from experiments.iwae_table.table import RESULTS, write_table
from numvae.commands.common import int_in

ROOT = Path(__file__).resolve().parent

TEST_SEED = 2016  # the test images are binarised once, with this seed
# what every row's checkpoint records (read by numvae evaluate, plot and inspect)
DATA_PREPARATION = dict(dataset="mnist", binarize=True, test_binarize_seed=TEST_SEED)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["vae", "iwae"], default="vae")
    parser.add_argument("--k", type=int, default=1, help="samples of z per example")
    parser.add_argument("--stages", type=int, default=5, help="stages of the schedule (1..8)")
    parser.add_argument("--layers", type=int, choices=[1, 2], default=1,
                        help="stochastic layers: 1 (784-200-200-50) or 2 (784-200-200-100 "
                             "then 100-100-100-50, numvae.model.two_layer, started as Burda "
                             "et al.'s code starts it)")
    parser.add_argument("--posterior", default="diagonal_gaussian",
                        help="diagonal_gaussian or iaf")
    parser.add_argument("--flow-steps", type=int, default=2)
    parser.add_argument("--flow-hidden", type=int, nargs="+", default=[200])
    parser.add_argument("--data-dir", default=str(ROOT.parents[2] / "shared" / "mnist"))
    parser.add_argument("--results-dir", type=Path, default=RESULTS,
                        help="the folder of the rows and the table (default: "
                             "experiments/iwae_table/results)")
    parser.add_argument("--out", help="the row's folder (default: <results-dir>/<row>)")
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--eval-images", type=int_in(2, 10_000), default=1000,
                        help="test images for the NLL at each stage's end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, help="fewer training images (smoke tests)")
    parser.add_argument("--table", action="store_true", help="only write the table")
    parser.add_argument("--final", action="store_true",
                        help="evaluate the last checkpoint on all the test images")
    parser.add_argument("--final-chunk", type=int_in(1, 10_000), default=1000,
                        help="test images per saved chunk of --final")
    parser.add_argument("--restart", action="store_true",
                        help="train the row from epoch 0 again, replacing its results.json "
                             "and final.json (the only way to retrain a row that has results)")
    return parser.parse_args(argv)


def row_name(args):
    flow = f"_iaf{args.flow_steps}" if args.posterior == "iaf" else ""
    layers = "_2layers" if args.layers == 2 else ""
    return f"{args.model}_k{args.k}{flow}{layers}"


def build_model(args, pixel_means):
    """The row's model at epoch 0; ``pixel_means`` (784,): the training images' mean."""
    import numvae
    if args.layers == 2:  # Burda et al.'s code: 200-200 to z1 (100 units), 100-100 to z2 (50)
        if args.posterior != "diagonal_gaussian":
            raise SystemExit("iwae_table: --layers 2 has diagonal Gaussian layers only "
                             "(no --posterior)")
        from numvae.model.two_layer import TwoLayerVAE
        # the widths and the start of Burda et al.'s published code (docs/burda.md, "Why the
        # two-layer rows started behind"): Glorot's uniform weights, zero biases, the output
        # at the mean image
        model = TwoLayerVAE(784, (100, 50), ((200, 200), (100, 100)), activation="tanh",
                            objective="elbo" if args.model == "vae" else "iwae",
                            n_samples=args.k, init="glorot", seed=args.seed)
        model.set_output_bias(pixel_means)
        return model
    from numvae.model.objectives import ELBO, IWAE
    from numvae.model.posteriors import IAF
    posterior = (IAF(steps=args.flow_steps, hidden=tuple(args.flow_hidden))
                 if args.posterior == "iaf" else args.posterior)
    return numvae.VAE(784, 200, 50, encoder_hidden=(200,), decoder_hidden=(200, 200),
                      activation="tanh", posterior=posterior,
                      objective=ELBO(n_samples=args.k) if args.model == "vae" else IWAE(k=args.k),
                      seed=args.seed)


def load_data(args):
    from numvae.io import datasets
    train, test = datasets.load_mnist(args.data_dir, download=False)
    images = train.images if args.n_train is None else train.images[:args.n_train]
    test_images = datasets.binarize(test.images, np.random.default_rng(TEST_SEED))
    return images, test_images


def evaluate_stage(model, test_images, args, epoch):
    """Test NLL (K = eval_k, per example) and negative ELBO at the end of a stage."""
    from numvae.diagnostics import evaluate
    start = time.perf_counter()
    subset = test_images[:args.eval_images]
    nll = evaluate.iwae_log_likelihood(model, subset, k=args.eval_k, seed=epoch)
    elbo = evaluate.evaluate_elbo(model, subset, seed=epoch)
    return dict(epoch=epoch, nll=-nll["log_px"], nll_se=nll["log_px_se"],
                negative_elbo=elbo["loss"], negative_elbo_se=elbo["loss_se"],
                active_units=active_units(model, subset),
                per_example_log_px=nll["per_example"].tolist(), k=args.eval_k,
                n_images=len(subset), seconds=time.perf_counter() - start)


def active_units(model, images):
    """Burda et al.'s active units (Cov_x E_q[z_u|x] > 0.01) of each stochastic layer: a list."""
    from numvae.diagnostics import evaluate
    if hasattr(model, "expected_latents"):
        layers = evaluate.active_units_per_layer(model, images)
        return [layers["z1"][0], layers["z2"][0]]
    return [evaluate.active_units(model, images)[0]]


def write_json(path, value):
    from numvae.io.files import atomic_write_bytes
    atomic_write_bytes(path, (json.dumps(value, indent=1) + "\n").encode())


def row_folder(args):
    return Path(args.out) if args.out else args.results_dir / row_name(args)


def resume_path(out):
    """Where a row's resume checkpoint lives: parameters, optimiser and generator state."""
    return out / "resume" / "checkpoint.npz"


def refuse_old_place(out, program="iwae_table"):
    """A checkpoint where 0.2 kept it (``<row>/checkpoint.npz``) is never used silently,
    nor left beside the resume checkpoint: one line says where it goes."""
    old = out / "checkpoint.npz"
    if old.exists():
        raise SystemExit(f"{program}: {old} is a checkpoint at 0.2's place; a row's resume "
                         f"checkpoint is {resume_path(out)}: move it there "
                         f"(mv {old} {resume_path(out)}), replacing any older one")


def start_or_resume(args, out, ends, pixel_means):
    """The row's results so far and what ``fit`` resumes from, or a refusal: results that
    say epoch E are never retrained from epoch 0 without ``--restart``."""
    from numvae.training.checkpoint import CheckpointError, load_checkpoint
    from numvae.training.optim_fast import FastAdam
    results_path, checkpoint_path = out / "results.json", resume_path(out)
    fresh = dict(row=row_name(args), args=dict(vars(args), results_dir=str(args.results_dir)),
                 stage_ends=ends, stages=[],
                 epoch_seconds=[], train_loss=[])
    if args.restart:
        for stale in (results_path, out / "final.json", checkpoint_path,
                      *earlier_final_paths(out)):
            if stale.exists():
                stale.unlink()
                print(f"--restart: removed {stale}", flush=True)
    refuse_old_place(out)
    results = read_results(results_path) if results_path.exists() else fresh
    epochs = trained_epochs(results)
    if not checkpoint_path.exists():
        if epochs:
            raise SystemExit(f"iwae_table: {results_path} says the row was trained to epoch "
                             f"{epochs}, but {checkpoint_path} is missing: put the row's resume "
                             f"checkpoint there, or train it again from epoch 0 with --restart "
                             f"(its results are then replaced)")
        model = build_model(args, pixel_means)
        optimizer = FastAdam(model.params, lr=1e-3, betas=(0.9, 0.999), eps=1e-4)
        return results, model, optimizer, dict(train_state=None, train_permutation=None)
    try:
        saved = load_checkpoint(checkpoint_path)
    except CheckpointError as err:
        raise SystemExit(f"iwae_table: {err}") from None
    epoch = saved.train_state.get("epoch", 0)
    if epoch not in (epochs, epochs - 1):  # the results are written just before the checkpoint
        raise SystemExit(f"iwae_table: {checkpoint_path} is at epoch {epoch}, but "
                         f"{results_path} says epoch {epochs}: they belong to different runs")
    refuse_another_two_layer_model(args, saved.model, checkpoint_path, pixel_means)
    print(f"resuming {checkpoint_path} at epoch {epoch}", flush=True)
    return results, saved.model, saved.optimizer, dict(
        train_state=saved.train_state, train_permutation=saved.train_permutation)


def refuse_another_two_layer_model(args, saved_model, checkpoint_path, pixel_means):
    """A two-layer row trained before the widths and start of Burda et al.'s code (issue 25:
    100-100 and 50-50, PyTorch's start) is never continued as if it were this row's model."""
    if args.layers != 2:
        return
    expected = build_model(args, pixel_means).config
    if saved_model.config != expected:
        differ = ", ".join(f"{key} {saved_model.config.get(key)!r} (now {value!r})"
                           for key, value in expected.items()
                           if saved_model.config.get(key) != value)
        raise SystemExit(f"iwae_table: {checkpoint_path} holds another two-layer model: "
                         f"{differ}; train the row again from epoch 0 with --restart (its "
                         f"results are then replaced)")


def run(args):
    from numvae.training import loop
    from numvae.training.checkpoint import save_checkpoint
    from numvae.training.schedules import Burda
    out = row_folder(args)
    ends = Burda.stage_ends(args.stages)
    images, test_images = load_data(args)
    results, model, optimizer, resume = start_or_resume(args, out, ends, images.mean(axis=0))
    results_path = out / "results.json"
    resume_path(out).parent.mkdir(parents=True, exist_ok=True)

    def save(state):
        if not state["interrupted"]:
            epoch = state["train_state"]["epoch"]
            history = state["history"]  # this run's epochs only: the rest is in results.json
            results["epoch_seconds"][epoch - 1:] = history["seconds"][-1:]
            results["train_loss"][epoch - 1:] = history["train_loss"][-1:]
            if epoch in ends and all(s["epoch"] != epoch for s in results["stages"]):
                stage = evaluate_stage(model, test_images, args, epoch)
                results["stages"].append(stage)
                print(f"stage end, epoch {epoch}: test NLL {stage['nll']:.2f} +- "
                      f"{stage['nll_se']:.2f}, -ELBO {stage['negative_elbo']:.2f} "
                      f"({stage['seconds']:.0f} s)", flush=True)
            write_json(results_path, results)
        # parameters, optimiser and generator state only (history=None), and how the data
        # were prepared, so that numvae evaluate on this checkpoint binarises as the table
        train_state = {**state["train_state"], "data_preparation": DATA_PREPARATION}
        save_checkpoint(resume_path(out), model, optimizer, None, train_state,
                        state["train_permutation"])

    loop.fit(model, optimizer, images, epochs=ends[-1], batch_size=20, seed=args.seed,
             binarize=True, schedule="burda", callbacks=[save], progress=False,
             log=lambda line: print(line, flush=True), **resume)
    write_table(out.parent)


def final_checkpoint(out):
    """The row's resume checkpoint for ``--final``, or None when final.json is complete and
    there is no checkpoint (a final row keeps its results only); else a refusal."""
    from numvae.training.checkpoint import CheckpointError, load_checkpoint
    results_path, final_path, checkpoint_path = (out / "results.json", out / "final.json",
                                                 resume_path(out))
    if not results_path.exists():
        raise SystemExit(f"iwae_table --final: {out} has no results.json: no stage evaluated; "
                         f"train the row through a stage first (the same options without "
                         f"--final)")
    read_results(results_path)
    refuse_old_place(out, "iwae_table --final")
    final = read_final(final_path) if final_path.exists() else None
    if not checkpoint_path.exists():
        if final is not None and "nll" in final:
            print(f"iwae_table --final: {final_path} holds epoch {final['epoch']} on all "
                  f"{final['n_images']} test images, and the row has no resume checkpoint to "
                  f"evaluate: nothing to do", flush=True)
            return None
        raise SystemExit(f"iwae_table --final: {checkpoint_path} is missing and {final_path} "
                         f"is {'incomplete' if final else 'absent'}: train the row first")
    try:
        return load_checkpoint(checkpoint_path)
    except CheckpointError as err:
        raise SystemExit(f"iwae_table --final: {err}") from None


def evaluate_final(args):
    """<out>/final.json: the NLL (K = eval_k) of the row's resume checkpoint on every test
    image, chunk by chunk (each saved as it ends), and the negative ELBO and the active units
    of each stochastic layer on every test image.
    A file of its own, so that a training run writing results.json cannot overwrite it."""
    from numvae.diagnostics import evaluate
    out = row_folder(args)
    final_path = out / "final.json"
    saved = final_checkpoint(out)
    if saved is None:
        return
    results = read_results(out / "results.json")
    epoch, chunk = saved.train_state["epoch"], args.final_chunk
    _, test_images = load_data(args)
    final = read_final(final_path) if final_path.exists() else None
    complete = bool(final) and "nll" in final
    same = bool(final) and (final["epoch"], final["k"]) == (epoch, args.eval_k)
    if same and final["chunk"] != chunk:  # another chunk size would change the seeds only
        print(f"final.json holds {len(final['per_example_log_px'])} test images of epoch "
              f"{epoch}, K = {args.eval_k}, in chunks of {final['chunk']}: kept, and "
              f"continued in chunks of {final['chunk']}, not {chunk}", flush=True)
        chunk = final["chunk"]
    if final and (final["epoch"], final["k"], final["chunk"]) != (epoch, args.eval_k, chunk):
        kept = keep_earlier_final(final_path, final) if complete else None
        note = f" (kept as {kept.name})" if kept else " (unfinished, of another epoch or K)"
        print(f"final.json holds epoch {final['epoch']}, K = {final['k']}, chunks of "
              f"{final['chunk']}{note}: starting again for epoch {epoch}, K = {args.eval_k}, "
              f"chunks of {chunk}", flush=True)
        final = None
    if final is None:
        final = dict(row=results["row"], epoch=epoch, k=args.eval_k, chunk=chunk,
                     per_example_log_px=[])
        stage = [s for s in results["stages"] if s["epoch"] == epoch and s["k"] == args.eval_k
                 and s["n_images"] == chunk]
        if stage:  # chunk 0, seed = epoch: the stage-end evaluation itself
            final["per_example_log_px"] = list(stage[0]["per_example_log_px"])
        # at once: the kept copy never sits beside the evaluation it was copied from
        write_json(final_path, final)
    start = time.perf_counter()
    while len(final["per_example_log_px"]) < len(test_images):
        c = len(final["per_example_log_px"]) // chunk
        nll = evaluate.iwae_log_likelihood(saved.model, test_images[c * chunk:(c + 1) * chunk],
                                           k=args.eval_k, seed=epoch + 1000 * c)
        final["per_example_log_px"] += nll["per_example"].tolist()
        write_json(final_path, final)
        print(f"final, chunk {c}: {len(final['per_example_log_px'])} images "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    log_px = np.asarray(final["per_example_log_px"])
    elbo = evaluate.evaluate_elbo(saved.model, test_images, seed=epoch)
    final.update(nll=float(-log_px.mean()), n_images=len(log_px),
                 nll_se=float(log_px.std(ddof=1) / math.sqrt(len(log_px))),
                 negative_elbo=elbo["loss"], negative_elbo_se=elbo["loss_se"],
                 active_units=active_units(saved.model, test_images))
    write_json(final_path, final)
    print(f"final, epoch {epoch}: test NLL {final['nll']:.2f} +- {final['nll_se']:.2f} on "
          f"{len(log_px)} images, -ELBO {elbo['loss']:.2f}, active units "
          f"{'+'.join(str(n) for n in final['active_units'])}")


def main(argv=None):
    from numvae.io.datasets import DataUnavailableError
    try:
        return run_command(parse_args(argv))
    except DataUnavailableError as err:  # no MNIST where --data-dir points: one line, not a trace
        print(f"iwae_table: {err}", file=sys.stderr)
        return 2


def run_command(args):
    """What ``main`` does once the arguments are read: --table, --final or training."""
    if args.table:
        write_table(args.results_dir)
    elif args.final:
        evaluate_final(args)
        write_table(row_folder(args).parent)
    else:
        from numvae.training.loop import TrainingInterrupted
        try:
            run(args)
        except TrainingInterrupted as stop:
            # the callback saved the resume state between two steps: say so in one line,
            # and exit as the shell expects of a process ended by that signal
            print(f"iwae_table: {stop.args[0]}: stopped between two steps, resume state saved "
                  f"in {resume_path(row_folder(args))}; run the same command to go on",
                  file=sys.stderr)
            return 128 + stop.signum
    return 0


if __name__ == "__main__":
    main()
