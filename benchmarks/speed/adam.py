"""Section ``adam`` of python -m benchmarks.speed: the optimiser's step by itself.

Compared, each in its own process and the processes alternated in time (round r runs
every variant once, in an order rotated by r): the textbook ``numvae.training.optim.Adam``
(array by array: the reference) and ``numvae.training.optim_fast.FastAdam`` at several
``chunk`` sizes, on each architecture, float32, one BLAS thread by default. (The Adam of
numvae 0.1.0, once the reference here, is no longer kept beside the benchmark: its figures
are pinned in docs/performance.md, and ``git show 80a7efa:numvae/optim.py`` shows it.)

The gradients are real ones: the model first takes ``--adam-warm-steps`` training steps
on MNIST, then the optimiser under test is built and its ``step`` is timed on the last
gradient, in ``--adam-rounds`` blocks of ``--adam-block`` steps (the block covers the
denormal flush every 50 steps of FastAdam); the median block is reported,
and the fastest block (the least disturbed by other programs on a shared machine).
"""
import statistics
import time

from benchmarks.speed.common import (
    load_cached,
    log,
    make_model,
    make_optimizer,
    optimizer_label,
    rss_mib,
    run_worker,
)
from benchmarks.speed.training import step_function

REFERENCE = ("adam", None)  # the textbook Adam


def worker_adam(cfg):
    """ms per ``optimizer.step`` of one optimiser (kind, chunk) on a real gradient."""
    from numvae.training.optim_fast import FastAdam
    images = load_cached(cfg["cache"], "train")
    model = make_model(dict(cfg, dtype="float32"))
    train = step_function(model, FastAdam(model.params), images, cfg["batch"], cfg["seed"])
    for _ in range(cfg["warm_steps"]):
        train()
    optimizer = make_optimizer(cfg["optimizer"], model.params, cfg.get("chunk") or 32768)
    if cfg["optimizer"] == "fast":  # the chunk sizes are what is compared: no layout tuning
        optimizer.use_layout("slices on threads")
    grads = model.grads
    for _ in range(5):  # warm-up: page faults of the moments
        optimizer.step(grads)
    blocks = []
    for _ in range(cfg["rounds"]):
        t0 = time.perf_counter()
        for _ in range(cfg["block"]):
            optimizer.step(grads)
        blocks.append((time.perf_counter() - t0) / cfg["block"])
    return dict(ms=1e3 * statistics.median(blocks), best_ms=1e3 * min(blocks),
                n_params=model.n_params(), peak_mib=rss_mib())


def variants(chunks):
    return [REFERENCE] + [("fast", chunk) for chunk in chunks]


def _label(kind, chunk):
    return optimizer_label(kind, chunk) if kind == "fast" else optimizer_label(kind)


def run_adam(args, cache, results):
    """Alternate the variants round by round on each architecture; one table."""
    chosen = variants(args.adam_chunks)
    rows = []
    for arch in args.arch:
        runs = {v: [] for v in chosen}
        for r in range(args.adam_repeats):
            shift = r % len(chosen)
            for kind, chunk in chosen[shift:] + chosen[:shift]:
                cfg = dict(kind="adam", cache=str(cache), arch=arch, seed=args.seed, batch=128,
                           optimizer=kind, chunk=chunk, warm_steps=args.adam_warm_steps,
                           rounds=args.adam_rounds, block=args.adam_block)
                runs[(kind, chunk)].append(run_worker(cfg, args.adam_threads))
            log(f"  adam {arch} round {r + 1}: " + ", ".join(
                f"{_label(*v)} {runs[v][-1]['ms']:.3f} ms" for v in chosen))
        rows += [_row(arch, v, runs[v], runs[REFERENCE]) for v in chosen]
    results["adam"] = rows
    return adam_table(rows, args)


def _row(arch, variant, runs, reference):
    """Medians over the processes, and the median of the per-round ratios to the textbook Adam: of the
    median block (``ms``) and of the fastest block (``best_ms``: the least disturbed by the
    other programs on the machine)."""
    ms, best = [run["ms"] for run in runs], [run["best_ms"] for run in runs]
    ratio = statistics.median(a / b["ms"] for a, b in zip(ms, reference))
    best_ratio = statistics.median(a / b["best_ms"] for a, b in zip(best, reference))
    return dict(arch=arch, n_params=runs[0]["n_params"], optimizer=variant[0],
                chunk=variant[1], label=_label(*variant), ms=statistics.median(ms),
                ms_range=(min(ms), max(ms)), ratio_to_textbook=ratio, runs=ms,
                best_ms=statistics.median(best), best_ratio_to_textbook=best_ratio)


def adam_table(rows, args):
    lines = [f"ADAM: optimizer.step alone, float32, {args.adam_threads} thread(s), "
             f"{args.adam_repeats} alternated processes per variant, median of "
             f"{args.adam_rounds} blocks of {args.adam_block} steps in each",
             f"{'arch':>8} {'params':>8} | {'optimizer':<32} {'ms/step':>8} {'(range)':>13} "
             f"{'/ Adam':>8} {'faster by':>9} | {'best ms':>8} {'/ Adam':>8}"]
    lines.append("-" * len(lines[1]))
    for r in rows:
        low, high = r["ms_range"]
        lines.append(f"{r['arch']:>8} {r['n_params']:>8,} | {r['label']:<32} {r['ms']:>8.3f} "
                     f"{f'{low:.3f}-{high:.3f}':>13} {r['ratio_to_textbook']:>8.2f} "
                     f"{100 * (1 - r['ratio_to_textbook']):>8.0f}% | {r['best_ms']:>8.3f} "
                     f"{r['best_ratio_to_textbook']:>8.2f}")
    return "\n".join(lines)
