"""Sections ``iwae``, ``gradcheck`` and ``tests`` of python -m benchmarks.speed, and the worker
that loads MNIST once into a cache of .npy files for all the others."""
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.speed.common import (
    ARCHITECTURES,
    REPO,
    load_cached,
    log,
    rss_mib,
    run_worker,
    worker_env,
)


def worker_cache(cfg):
    """Load MNIST once with numvae.io.datasets.load_mnist; save float32 .npy files that each
    worker loads without the conversion's temporaries (so peak memory is the training's).
    Also describe the environment (numpy, BLAS, CPU)."""
    import numpy as np

    from numvae.io import datasets
    start = time.perf_counter()
    train, test = datasets.load_mnist(cfg["data_dir"])
    np.save(Path(cfg["cache"]) / "train.npy", train.images)
    np.save(Path(cfg["cache"]) / "test.npy", test.images)
    info = dict(python=platform.python_version(), numpy=np.__version__, cpus=os.cpu_count(),
                **{k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "NUMVAE_THREADS")
                   if k in os.environ})
    try:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{config.get('name')} {config.get('version')}"
    except Exception:  # older numpy: show_config has no dict mode
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(n_train=len(train.images), n_test=len(test.images), environment=info,
                seconds=time.perf_counter() - start)


def worker_iwae(cfg):
    import numpy as np

    import numvae
    from numvae.diagnostics import evaluate
    test = load_cached(cfg["cache"], "test")[:cfg["n_images"]]
    model = numvae.VAE(784, **ARCHITECTURES[cfg["arch"]], dtype=np.dtype(cfg["dtype"]),
                       seed=cfg["seed"])
    start = time.perf_counter()
    options = {} if cfg.get("max_rows") is None else dict(max_rows=cfg["max_rows"])
    result = evaluate.iwae_log_likelihood(model, test, k=cfg["k"], **options)
    seconds = time.perf_counter() - start
    return dict(seconds=seconds, log_px=result["log_px"], rows=cfg["k"] * len(test),
                peak_mib=rss_mib())


def worker_gradcheck(cfg):
    import numpy as np

    import numvae
    from numvae.diagnostics import gradcheck
    x = load_cached(cfg["cache"], "test")[:cfg["batch"]].astype(np.float64)
    model = numvae.VAE(784, **ARCHITECTURES[cfg["arch"]], dtype=np.float64, seed=cfg["seed"])
    # time one loss evaluation, for the per-evaluation cost
    eps = np.random.default_rng(0).standard_normal((1, len(x), model.latent_dim))
    for _ in range(5):
        model.loss(x, eps)
    t0 = time.perf_counter()
    for _ in range(50):
        model.loss(x, eps)
    loss_ms = 1e3 * (time.perf_counter() - t0) / 50
    start = time.perf_counter()
    direction_errors = gradcheck.check_model_directions(model, x, n_directions=cfg["n_directions"])
    direction_seconds = time.perf_counter() - start
    n_entries = cfg["n_entries"]
    start = time.perf_counter()
    errors = gradcheck.check_model(model, x, n_entries=n_entries)
    seconds = time.perf_counter() - start
    checked = {name: (p.size if n_entries is None else min(n_entries, p.size))
               for name, p in model.params.items()}
    return dict(seconds=seconds, entries=sum(checked.values()), total_entries=model.n_params(),
                arrays=len(checked), loss_evaluations=2 * sum(checked.values()) + 1,
                loss_ms=loss_ms, max_error=max(errors.values()), errors=errors,
                direction_seconds=direction_seconds, n_directions=cfg["n_directions"],
                direction_max_error=max(direction_errors.values()),
                direction_errors=direction_errors, peak_mib=rss_mib())


def run_tests():
    """The whole test suite, at one BLAS thread, importing this worktree's numvae."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=REPO, env=worker_env(1), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tail = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    return dict(seconds=seconds, returncode=proc.returncode, summary=tail[-1] if tail else "")


def run_iwae(args, cache, results):
    rows = "default" if args.iwae_max_rows is None else args.iwae_max_rows
    lines = [f"IWAE: iwae_log_likelihood, K={args.iwae_k}, {args.iwae_n} test images, max_rows "
             f"{rows}, float32, {args.iwae_threads} threads, untrained model (seed {args.seed})"]
    results["iwae"] = {}
    for arch in args.arch:
        cfg = dict(kind="iwae", cache=str(cache), arch=arch, k=args.iwae_k, n_images=args.iwae_n,
                   dtype="float32", seed=args.seed, max_rows=args.iwae_max_rows)
        r = run_worker(cfg, args.iwae_threads)
        results["iwae"][arch] = r
        lines.append(f"{arch:>8}: {r['seconds']:7.1f} s  ({r['rows'] / r['seconds'] / 1e3:,.0f}k "
                     f"decoded images/s; peak {r['peak_mib']:.0f} MiB; log p(x) {r['log_px']:.1f})")
        log(lines[-1])
    return "\n".join(lines)


def run_gradcheck(args, cache, results):
    cfg = dict(kind="gradcheck", cache=str(cache), arch="slides", batch=args.gradcheck_batch,
               n_entries=args.gradcheck_entries, n_directions=args.gradcheck_directions,
               seed=args.seed)
    r = run_worker(cfg, args.gradcheck_threads)
    results["gradcheck"] = r
    full = "every entry" if args.gradcheck_entries is None else f"{args.gradcheck_entries} entries"
    extrapolated = r["seconds"] * r["total_entries"] / r["entries"]
    text = (f"GRADCHECK: slides model, float64, batch {args.gradcheck_batch}, "
            f"{args.gradcheck_threads} thread(s)\n"
            f"  check_model_directions, all {r['total_entries']:,} entries along "
            f"{r['n_directions']} random directions per array "
            f"({2 * r['n_directions'] * r['arrays'] + 1} loss evaluations): "
            f"{r['direction_seconds']:.2f} s; largest relative error "
            f"{r['direction_max_error']:.2e}\n"
            f"  check_model, {full} "
            f"of each of the {r['arrays']} parameter arrays = {r['entries']:,} of "
            f"{r['total_entries']:,} entries, {r['loss_evaluations']:,} loss evaluations: "
            f"{r['seconds']:.1f} s ({r['loss_ms']:.3f} ms per loss evaluation; all "
            f"{r['total_entries']:,} entries would take about {extrapolated:.0f} s); "
            f"largest relative error {r['max_error']:.2e}")
    log(text)
    return text


def run_test_suite(results):
    r = run_tests()
    results["tests"] = r
    text = (f"TESTS: python -m pytest -q: {r['seconds']:.1f} s wall, exit {r['returncode']}: "
            f"{r['summary']}")
    log(text)
    return text
