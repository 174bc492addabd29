"""Speed benchmark: numvae's training throughput on real MNIST, against the GEMM floor and
(when it is installed) an identical PyTorch model; plus the IWAE estimate, a full gradient
check and the test suite.

    python -m benchmarks.speed                 # the default sections: ~25 min, 2 quiet cores
    python -m benchmarks.speed --quick         # 1-2 minutes: a taste of each section
    python -m benchmarks.speed --sections headline iwae
    python -m benchmarks.speed --sections matrix --arch examples --batch 128 --threads 1 --steps 200
    python -m benchmarks.speed --sections profile --arch slides --threads 1 --profile-epochs 3
    python -m benchmarks.speed --sections adam                       # the optimiser's step alone
    python -m benchmarks.speed --sections matrix --optimizer adam    # train with the textbook Adam

Sections (``--sections``):

matrix     for each architecture x batch x dtype x thread count, a sub-run of ``--steps``
           steps (or ``--epochs`` full epochs) of ``numvae.training.loop.fit`` with the optimiser
           ``numvae train`` uses (FastAdam; ``--optimizer adam`` the textbook Adam,
           ``--chunk`` FastAdam's slice): training examples/s,
           seconds per 60,000-image epoch, peak memory, and the step time divided by the
           "GEMM floor", the time of the very same matrix products alone. For float32,
           when PyTorch is importable, an identical PyTorch model is trained in separate
           processes, alternating numvae, PyTorch, numvae, PyTorch (``--repeats`` pairs).
           ``--two-processes`` adds a row per configuration, "2p": numvae's steps shared by
           two processes (``fit(..., processes=2)``, the BLAS on one thread in each)
           against PyTorch on two threads.
headline   three full epochs (``--headline-epochs``) at batch 128, float32, 2 threads,
           numvae vs PyTorch.
iwae       numvae.diagnostics.evaluate.iwae_log_likelihood with K=5000 on 1,000 test images.
gradcheck  the slides' model in float64 on a batch of 8 test images: every entry of every
           parameter at once along random directions (check_model_directions, 2 loss
           evaluations per direction), then entry by entry (check_model, 2 per entry;
           ``--gradcheck-entries`` random entries of each array, default all).
tests      ``python -m pytest -q`` in the repository, wall time.
profile    where the time of one training step goes (timers wrapped around the package's
           own functions: Dense.forward/backward, VAE.forward/backward, FastAdam.step ...),
           early in training and after ``--profile-epochs`` epochs.
adam       the optimiser's step alone, in alternated processes: the textbook
           numvae.training.optim.Adam (the reference) and FastAdam at each of
           ``--adam-chunks``; 1 thread (``--adam-threads``).

conv-layers, conv-vae, iwae-training
           sections with a command line of their own, run here with their defaults (a
           taste with ``--quick``): numvae's Conv2d / ConvTranspose2d against PyTorch's,
           the conv VAE's training step, the K = 50 IWAE's (each against PyTorch);
           explorer: the explorer page's decoding and training step in headless Chromium;
           ``python -m benchmarks.speed.conv_layers --help`` gives their options.

The sections live in their own modules of this package: training.py (matrix, headline),
torch_side.py (the PyTorch side), profile.py, adam.py, checks.py (iwae, gradcheck, tests,
the MNIST cache), conv_layers.py, conv_vae.py, iwae_training.py, explorer.py and common.py; this file is
the driver. iwae_profile.py (the K = 50 IWAE step by pass) runs on its own:
``python -m benchmarks.speed.iwae_profile --threads 1``.

Every configuration runs in a fresh subprocess, because the BLAS thread count
(OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS; torch.set_num_threads for
PyTorch) must be set before numpy is imported, and so that ru_maxrss is that
configuration's own peak. Timings on a shared machine are noisy: compare the ratios, which
come from runs alternated in time, rather than absolute numbers from different runs.

PyTorch is optional and never a dependency of numvae: it is imported only if available.
The environment is used as it is (OPENBLAS_CORETYPE included: it picks OpenBLAS's kernels,
and so changes the GEMM floor); only the thread counts are set, per configuration, and the
repository is put first on PYTHONPATH so that every worker imports this checkout's numvae.
"""
import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from benchmarks.speed.adam import run_adam, worker_adam
from benchmarks.speed.checks import (
    run_gradcheck,
    run_iwae,
    run_test_suite,
    worker_cache,
    worker_gradcheck,
    worker_iwae,
)
from benchmarks.speed.common import (
    ARCHITECTURES,
    DEFAULT_CHUNK,
    DEFAULT_DATA_DIR,
    MODULE_SECTIONS,
    OPTIMIZERS,
    QUICK_OPTIONS,
    RESULT_TAG,
    log,
    run_module_section,
    run_worker,
)
from benchmarks.speed.profile import profile_table, worker_profile
from benchmarks.speed.torch_side import torch_available, worker_torch
from benchmarks.speed.training import run_training, training_table, worker_numvae

SECTIONS = ["matrix", "headline", "adam", "iwae", "gradcheck", "tests", "profile",
            *MODULE_SECTIONS]
DEFAULT_SECTIONS = ["matrix", "headline", "adam", "iwae", "gradcheck", "tests"]
WORKERS = dict(numvae=worker_numvae, torch=worker_torch, iwae=worker_iwae,
               gradcheck=worker_gradcheck, profile=worker_profile, cache=worker_cache,
               adam=worker_adam)


def worker_main(cfg):
    result = WORKERS[cfg["kind"]](cfg)
    print(RESULT_TAG + json.dumps(result), flush=True)


def _training_options(parser):
    parser.add_argument("--arch", nargs="+", choices=list(ARCHITECTURES),
                        default=list(ARCHITECTURES))
    parser.add_argument("--batch", nargs="+", type=int, default=[32, 128, 512])
    parser.add_argument("--dtype", nargs="+", choices=["float32", "float64"],
                        default=["float32", "float64"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=150,
                        help="matrix: steps per sub-run (one pass over steps x batch images)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="matrix: full 60,000-image epochs instead of --steps")
    parser.add_argument("--repeats", type=int, default=2,
                        help="numvae/PyTorch pairs per configuration (A B A B ...)")
    parser.add_argument("--floor-rounds", type=int, default=5,
                        help="alternated rounds of training steps and GEMM floor, in every "
                             "numvae run (0: skip)")
    parser.add_argument("--best-rounds", type=int, default=5,
                        help="blocks of ~0.1 s of steps after training, numvae and PyTorch; "
                             "the fastest block gives a second ratio, robust to load (0: skip)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="fast",
                        help="numvae's optimiser: fast = FastAdam, what `numvae train` uses "
                             "(default); adam = the textbook numvae.training.optim.Adam")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                        help="FastAdam's chunk (entries per slice)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--two-processes", action="store_true",
                        help="matrix: also numvae with fit(processes=2) against PyTorch on 2 threads")


def _other_options(parser):
    parser.add_argument("--iwae-k", type=int, default=5000)
    parser.add_argument("--iwae-n", type=int, default=1000)
    parser.add_argument("--iwae-threads", type=int, default=2)
    parser.add_argument("--iwae-max-rows", type=int, default=None,
                        help="max_rows of iwae_log_likelihood (default: the package's default)")
    parser.add_argument("--gradcheck-batch", type=int, default=8)
    parser.add_argument("--gradcheck-entries", type=int, default=None,
                        help="entries checked per parameter array (default: all of them)")
    parser.add_argument("--gradcheck-threads", type=int, default=1)
    parser.add_argument("--gradcheck-directions", type=int, default=8,
                        help="random directions per parameter array for check_model_directions")
    parser.add_argument("--headline-epochs", type=int, default=3,
                        help="headline: full epochs per run (3; fewer on a busy machine)")
    parser.add_argument("--profile-epochs", type=int, default=3)
    parser.add_argument("--profile-rounds", type=int, default=4)
    parser.add_argument("--profile-block", type=int, default=40)
    parser.add_argument("--adam-chunks", nargs="+", type=int, default=[8192, 16384, 32768, 65536],
                        help="adam: FastAdam chunk sizes to time")
    parser.add_argument("--adam-repeats", type=int, default=5,
                        help="adam: alternated processes per variant")
    parser.add_argument("--adam-rounds", type=int, default=7, help="adam: timed blocks per process")
    parser.add_argument("--adam-block", type=int, default=100, help="adam: steps per timed block")
    parser.add_argument("--adam-warm-steps", type=int, default=20,
                        help="adam: training steps before timing (real gradients)")
    parser.add_argument("--adam-threads", type=int, default=1)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS,
                        help="what to run (default: " + " ".join(DEFAULT_SECTIONS) + ")")
    parser.add_argument("--quick", action="store_true",
                        help="1-2 minutes: batch 128 float32, 40 steps, one pair; Adam "
                             "one round; IWAE on 100 images; gradcheck of 5 entries per array; "
                             "no tests")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                        help="folder holding the four MNIST files (default: $NUMVAE_DATA_DIR, "
                        "else numvae's cache, downloading into it)")
    _training_options(parser)
    _other_options(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write every result to this JSON file")
    return parser.parse_args(argv)


def chosen_sections(args):
    chosen = args.sections or DEFAULT_SECTIONS
    if args.quick:
        chosen = args.sections or ["matrix", "adam", "iwae", "gradcheck"]
        args.batch, args.dtype = [128], ["float32"]
        args.steps, args.repeats, args.floor_rounds = 40, 1, 3
        args.iwae_n, args.gradcheck_entries = 100, 5
        args.profile_epochs, args.profile_rounds, args.profile_block = 0, 2, 20
        args.adam_repeats, args.adam_rounds, args.adam_block = 1, 3, 50
        args.adam_warm_steps, args.best_rounds = 5, 2
    return chosen


def run_profiles(args, cache, results):
    results["profile"], tables = [], []
    for arch in args.arch:
        for batch in args.batch:
            for dtype in args.dtype:
                for threads in args.threads:
                    cfg = dict(kind="profile", cache=str(cache), arch=arch, batch=batch,
                               dtype=dtype, seed=args.seed, profile_epochs=args.profile_epochs,
                               profile_rounds=args.profile_rounds,
                               profile_block=args.profile_block, optimizer=args.optimizer,
                               chunk=args.chunk)
                    r = run_worker(cfg, threads)
                    results["profile"].append(dict(cfg, threads=threads, result=r))
                    tables.append(profile_table(r, dict(cfg, threads=threads)))
                    log(tables[-1])
    return "\n\n".join(tables)


def run_training_sections(chosen, args, cache, n_train, with_torch, results, tables):
    optimizer = f"numvae with {args.optimizer}" + (f" (chunk {args.chunk})" if args.optimizer == "fast" else "")
    if "headline" in chosen:
        log(f"headline: {args.headline_epochs} full epochs, batch 128, float32, 2 threads")
        rows = run_training(args, cache, n_train, with_torch, headline=True)
        results["headline"] = rows
        tables.append(training_table(rows, f"HEADLINE: {args.headline_epochs} full epochs (60k images "
                                           f"each), batch 128, "
                                           f"float32, 2 threads, {optimizer}; ratio = median of "
                                           f"alternated pairs"))
    if "matrix" in chosen:
        what = f"{args.epochs} full epoch(s)" if args.epochs else f"{args.steps} steps"
        log(f"matrix: sub-runs of {what}")
        rows = run_training(args, cache, n_train, with_torch, headline=False)
        results["matrix"] = rows
        tables.append(training_table(rows, f"MATRIX: sub-runs of {what} of numvae.training.loop.fit, "
                                           f"{optimizer} (PyTorch: float32 only); ratio = median "
                                           f"of alternated pairs"))


def run_sections(chosen, args, cache, with_torch, results):
    loaded = run_worker(dict(kind="cache", cache=str(cache), data_dir=args.data_dir), 1)
    results["environment"] = loaded["environment"]
    log("environment: " + ", ".join(f"{k}={v}" for k, v in loaded["environment"].items()))
    log(f"MNIST: {loaded['n_train']} training, {loaded['n_test']} test images "
        f"(loaded in {loaded['seconds']:.1f} s)")
    tables = []
    run_training_sections(chosen, args, cache, loaded["n_train"], with_torch, results, tables)
    if "adam" in chosen:
        log("adam: the optimiser's step alone, alternated processes")
        tables.append(run_adam(args, cache, results))
        log(tables[-1])
    if "iwae" in chosen:
        tables.append(run_iwae(args, cache, results))
    if "gradcheck" in chosen:
        tables.append(run_gradcheck(args, cache, results))
    if "tests" in chosen:
        tables.append(run_test_suite(results))
    if "profile" in chosen:
        tables.append(run_profiles(args, cache, results))
    for name in MODULE_SECTIONS:
        if name in chosen:
            log(f"{name}: python -m {MODULE_SECTIONS[name]}")
            tables.append(run_module_section(name, QUICK_OPTIONS[name] if args.quick else ()))
            log(tables[-1])
    return tables


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker_main(json.loads(args.worker))
        return
    chosen = chosen_sections(args)
    with_torch = not args.no_torch and torch_available()
    results = dict(torch=with_torch, args=vars(args), load_average_start=os.getloadavg())
    log(f"PyTorch: {'available' if with_torch else 'not used'}; sections: {' '.join(chosen)}")
    cache = Path(tempfile.mkdtemp(prefix="numvae-speed-"))
    try:
        tables = run_sections(chosen, args, cache, with_torch, results)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    results["load_average_end"] = os.getloadavg()
    print("\n" + "=" * 100)
    print("\n\n".join(tables))
    print(f"\nload average (1, 5, 15 min) at start "
          f"{tuple(round(v, 2) for v in results['load_average_start'])}, at end "
          f"{tuple(round(v, 2) for v in results['load_average_end'])} on {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
