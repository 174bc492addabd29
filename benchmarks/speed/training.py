"""Sections ``matrix`` and ``headline`` of python -m benchmarks.speed: numvae's training
throughput (``numvae.training.loop.fit`` with the optimiser ``numvae train`` uses, FastAdam, or
another one with ``--optimizer``), the GEMM floor, and the alternated PyTorch runs."""
import statistics
import time

from benchmarks.speed.common import (
    DEFAULT_CHUNK,
    EPOCH,
    fmt,
    load_cached,
    log,
    make_model,
    make_optimizer,
    median_ratio,
    rss_mib,
    run_worker,
    subset,
)
from benchmarks.speed.torch_side import best_block_ms


def dense_layers(model):
    """[(Dense layer, is the network's first layer, rows per example)] in forward order:
    the encoder sees each example once, the decoder once per sample of z."""
    from numvae.nn.layers import Dense
    encoder = [layer for layer in model.encoder.compressor.layers if isinstance(layer, Dense)]
    encoder += list(model.encoder.heads.values())
    decoder = [layer for layer in model.decoder.decompressor.layers if isinstance(layer, Dense)]
    first = model.encoder.compressor.layers[0]
    return ([(layer, layer is first, 1) for layer in encoder]
            + [(layer, False, model.n_samples) for layer in decoder])


class GemmFloor:
    """The matrix products of one training step alone, with the same shapes and dtype:
    for each Dense layer x @ W (forward), x^T dy and dy W^T (backward; the network's first
    layer skips dy W^T, as ``Sequential.backward(need_input_grad=False)`` does). Results
    go into preallocated arrays (out=), so only the BLAS calls are timed."""

    def __init__(self, model, batch, seed=0):
        import numpy as np
        rng = np.random.default_rng(seed)
        dtype = model.dtype
        self.products, self.flops = [], 0
        for layer, first, samples in dense_layers(model):
            rows = batch * samples
            n_in, n_out = layer.params["W"].shape
            x = rng.standard_normal((rows, n_in)).astype(dtype)
            W = layer.params["W"].copy()
            dy = rng.standard_normal((rows, n_out)).astype(dtype)
            self.products.append((x, W, np.empty((rows, n_out), dtype)))               # x @ W
            self.products.append((x.T, dy, np.empty((n_in, n_out), dtype)))            # x^T dy
            self.flops += 2 * 2 * rows * n_in * n_out
            if not first:
                self.products.append((dy, W.T, np.empty((rows, n_in), dtype)))        # dy W^T
                self.flops += 2 * rows * n_in * n_out

    def __call__(self):
        import numpy as np
        for a, b, out in self.products:
            np.matmul(a, b, out=out)


def step_function(model, optimizer, images, batch, seed):
    """One step of fit's loop on a fixed random order: gather a batch, then the package's
    ``numvae.training.loop.train_step`` (forward, backward, finite check, optimiser step)."""
    import numpy as np

    from numvae.training import loop
    order = np.random.default_rng(seed).permutation(len(images))
    position = [0]

    def step():
        p = position[0] % (len(images) - batch)
        position[0] += batch
        loop.train_step(model, optimizer, images[order[p:p + batch]], None, (1, 1))
    return step


def alternate(functions, rounds, reps):
    """Per function, the seconds of one call in each of ``rounds`` rounds of ``reps``
    calls, the functions alternated round by round (robust to the load changing)."""
    times = [[] for _ in functions]
    for _ in range(rounds):
        for fn, record in zip(functions, times):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            record.append((time.perf_counter() - t0) / reps)
    return times


def worker_numvae(cfg):
    """Train with numvae.training.loop.fit; then alternate timed training steps and the GEMM floor."""
    from numvae.training import loop
    images = load_cached(cfg["cache"], "train")
    batch, seed = cfg["batch"], cfg["seed"]
    kind, chunk = cfg.get("optimizer", "fast"), cfg.get("chunk", DEFAULT_CHUNK)
    data = subset(images, cfg["n_examples"], seed)
    model = make_model(cfg)
    optimizer = make_optimizer(kind, model.params, chunk)
    warm = model.copy()  # start the BLAS threads, fault the pages in: not part of the timing
    warm_step = step_function(warm, make_optimizer(kind, warm.params, chunk), data, batch, seed)
    for _ in range(3):
        warm_step()
    setup_mib = rss_mib()
    start = time.perf_counter()
    history = loop.fit(model, optimizer, data, epochs=cfg["epochs"], batch_size=batch,
                        seed=seed, progress=False, log=None, processes=cfg.get("processes", 1))
    wall = time.perf_counter() - start
    seconds = sum(history["seconds"])
    examples = cfg["epochs"] * len(data)
    result = dict(examples=examples, seconds=seconds, wall=wall, optimizer=kind, chunk=chunk,
                  examples_per_second=examples / seconds,
                  epoch_examples_per_second=history["examples_per_second"],
                  steps=cfg["epochs"] * -(-len(data) // batch),
                  final_loss=history["train_loss"][-1], setup_mib=setup_mib)
    result["step_ms"] = 1e3 * seconds / result["steps"]
    if cfg.get("best_rounds"):
        step = step_function(model, optimizer, images, batch, seed + 1)
        result["best_step_ms"] = best_block_ms(step, result["step_ms"], cfg["best_rounds"])
    if cfg["floor_rounds"]:
        # one fit step alternated with the GEMM floor: the ratio is robust to the load
        floor = GemmFloor(model, batch, seed)
        step = step_function(model, optimizer, images, batch, seed)
        reps = max(3, int(0.25 / (result["step_ms"] / 1e3)))
        step_times, floor_times = alternate([step, floor], cfg["floor_rounds"], reps)
        result.update(alt_step_ms=1e3 * statistics.median(step_times),
                      floor_ms=1e3 * statistics.median(floor_times),
                      step_over_floor=median_ratio(step_times, floor_times),
                      floor_gflops=floor.flops / statistics.median(floor_times) / 1e9)
    from numvae.nn.threads import thread_count
    result["peak_mib"], result["pool_threads"] = rss_mib(), thread_count()
    return result


def _pairs(cfg, threads, repeats, with_torch, label):
    """Alternate numvae, PyTorch, numvae, PyTorch ...: returns (numvae runs, torch runs)."""
    ours, theirs = [], []
    for r in range(repeats):
        result = run_worker(dict(cfg, kind="numvae"), threads)
        ours.append(result)
        line = f"  {label} run {r + 1}: numvae {result['examples_per_second']:8.0f} ex/s"
        if "step_over_floor" in result:
            line += f" (step/GEMM floor {result['step_over_floor']:.2f})"
        if with_torch:
            other = run_worker(dict(cfg, kind="torch"), threads)
            theirs.append(other)
            line += (f", PyTorch {other['examples_per_second']:8.0f} ex/s, ratio "
                     f"{result['examples_per_second'] / other['examples_per_second']:.2f}")
            if "best_step_ms" in result and "best_step_ms" in other:
                line += f", best blocks {other['best_step_ms'] / result['best_step_ms']:.2f}"
        log(line)
    return ours, theirs


def summarize(config, ours, theirs):
    row = dict(config)
    rates = [r["examples_per_second"] for r in ours]
    row.update(numvae_rate=statistics.median(rates), numvae_rates=rates,
               epoch_seconds=EPOCH / statistics.median(rates),
               numvae_loss=ours[-1]["final_loss"], numvae_peak=max(r["peak_mib"] for r in ours),
               numvae_setup=max(r["setup_mib"] for r in ours),
               step_ms=statistics.median(r["step_ms"] for r in ours))
    floors = [r for r in ours if "floor_ms" in r]
    if floors:  # medians over the runs (each an alternation of steps and floor in-process)
        row.update({key: statistics.median(r[key] for r in floors) for key in
                    ("floor_ms", "alt_step_ms", "step_over_floor", "floor_gflops")})
        row["step_over_floor_range"] = (min(r["step_over_floor"] for r in floors),
                                        max(r["step_over_floor"] for r in floors))
    if theirs:
        their_rates = [r["examples_per_second"] for r in theirs]
        each = [a / b for a, b in zip(rates, their_rates)]
        row.update(torch_rate=statistics.median(their_rates), torch_rates=their_rates,
                   ratio=median_ratio(rates, their_rates), ratio_range=(min(each), max(each)),
                   torch_loss=theirs[-1]["final_loss"],
                   torch_peak=max(r["peak_mib"] for r in theirs))
        if all("best_step_ms" in r for r in ours + theirs):
            best = [t["best_step_ms"] / o["best_step_ms"] for o, t in zip(ours, theirs)]
            row.update(best_ratio=statistics.median(best), best_ratio_range=(min(best), max(best)),
                       numvae_best_ms=statistics.median(o["best_step_ms"] for o in ours),
                       torch_best_ms=statistics.median(t["best_step_ms"] for t in theirs))
    if len(ours[0].get("epoch_examples_per_second", [])) > 1:
        row["numvae_epoch_rates"] = ours[0]["epoch_examples_per_second"]
    return row


def run_training(args, cache, n_train, with_torch, headline):
    rows = []
    if headline:
        grid = [(arch, 128, "float32", 2) for arch in args.arch]
        epochs, n_examples = args.headline_epochs, n_train
    else:
        # "2p": numvae's steps shared by two processes, PyTorch on two threads
        counts = list(args.threads) + (["2p"] if getattr(args, "two_processes", False) else [])
        grid = [(a, b, d, t) for a in args.arch for b in args.batch for d in args.dtype
                for t in counts]
        epochs = args.epochs or 1
    for arch, batch, dtype, threads in grid:
        if not headline:  # full epochs, or one pass over a subset of steps x batch images
            n_examples = n_train if args.epochs else min(n_train, args.steps * batch)
        cfg = dict(cache=str(cache), arch=arch, batch=batch, dtype=dtype, epochs=epochs,
                   n_examples=n_examples, seed=args.seed, floor_rounds=args.floor_rounds,
                   optimizer=args.optimizer, chunk=args.chunk, best_rounds=args.best_rounds)
        if threads == "2p":  # the floor and best blocks time one process's steps: left out
            cfg.update(processes=2, floor_rounds=0, best_rounds=0)
        pair = with_torch and dtype == "float32"
        label = f"{arch:>8} batch {batch:>3} {dtype} {threads} thr"
        ours, theirs = _pairs(cfg, 2 if threads == "2p" else threads, args.repeats, pair, label)
        rows.append(summarize(dict(arch=arch, batch=batch, dtype=dtype, threads=threads,
                                   epochs=epochs, examples=n_examples), ours, theirs))
    return rows


def _row_line(r):
    examples = (f"{r['epochs']}x{r['examples'] // 1000}k" if r["examples"] >= 1000
                else str(r["examples"]))
    rng, best = r.get("ratio_range"), r.get("best_ratio_range")
    return (f"{r['arch']:>8} {r['batch']:>5} {r['dtype']:>7} {r['threads']:>3} {examples:>9} | "
            f"{r['numvae_rate']:>11.0f} {r['epoch_seconds']:>7.1f} "
            f"{fmt(r.get('torch_rate'), '12.0f'):>12} {fmt(r.get('ratio'), '9.2f'):>9} "
            f"{(f'{rng[0]:.2f}-{rng[1]:.2f}' if rng else '-'):>11} "
            f"{fmt(r.get('best_ratio'), '9.2f'):>9} "
            f"{(f'{best[0]:.2f}-{best[1]:.2f}' if best else '-'):>11} | "
            f"{fmt(r.get('alt_step_ms'), '7.2f'):>7} {fmt(r.get('floor_ms'), '8.2f'):>8} "
            f"{fmt(r.get('step_over_floor'), '10.2f'):>10} "
            f"{fmt(r.get('floor_gflops'), '10.1f'):>10} | "
            f"{r['numvae_peak']:>8.0f} {fmt(r.get('torch_peak'), '7.0f'):>7} | "
            f"{r['numvae_loss']:>6.1f} {fmt(r.get('torch_loss'), '7.1f'):>7}")


def training_table(rows, title):
    lines = [title,
             f"{'arch':>8} {'batch':>5} {'dtype':>7} {'thr':>3} {'examples':>9} | "
             f"{'numvae ex/s':>11} {'s/epoch':>7} {'PyTorch ex/s':>12} {'numvae/PT':>9} "
             f"{'(range)':>11} {'best n/PT':>9} {'(range)':>11} | {'step ms':>7} {'floor ms':>8} {'step/floor':>10} "
             f"{'floor GF/s':>10} | {'peak MiB':>8} {'PT peak':>7} | {'loss':>6} {'PT loss':>7}"]
    lines.append("-" * len(lines[1]))
    for r in rows:
        lines.append(_row_line(r))
        if r.get("numvae_epoch_rates"):
            lines.append(f"{'':>36}numvae ex/s per epoch: "
                         + ", ".join(f"{v:.0f}" for v in r["numvae_epoch_rates"]))
    return "\n".join(lines)
