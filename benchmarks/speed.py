"""Speed benchmark: numvae's training throughput on real MNIST, against the GEMM floor and
(when it is installed) an identical PyTorch model; plus the IWAE estimate, a full gradient
check and the test suite.

    python benchmarks/speed.py                 # all but the profile: ~25 min on a quiet 2-core machine
    python benchmarks/speed.py --quick         # under a minute: a taste of each section
    python benchmarks/speed.py --sections headline iwae
    python benchmarks/speed.py --sections matrix --arch examples --batch 128 --threads 1 --steps 200
    python benchmarks/speed.py --sections profile --arch slides --threads 1 --profile-epochs 3

Sections (``--sections``):

matrix     for each architecture x batch x dtype x thread count, a sub-run of ``--steps``
           steps (or ``--epochs`` full epochs) of ``numvae.train.fit``: training examples/s,
           seconds per 60,000-image epoch, peak memory, and the step time divided by the
           "GEMM floor", the time of the very same matrix products alone. For float32,
           when PyTorch is importable, an identical PyTorch model is trained in separate
           processes, alternating numvae, PyTorch, numvae, PyTorch (``--repeats`` pairs).
headline   three full epochs at batch 128, float32, 2 threads, numvae vs PyTorch.
iwae       numvae.evaluate.iwae_log_likelihood with K=5000 on 1,000 test images.
gradcheck  the slides' model in float64 on a batch of 8 test images: every entry of every
           parameter at once along random directions (check_model_directions, 2 loss
           evaluations per direction), then entry by entry (check_model, 2 per entry;
           ``--gradcheck-entries`` random entries of each array, default all).
tests      ``python -m pytest -q`` in the repository, wall time.
profile    where the time of one training step goes (timers around the step's parts),
           early in training and after ``--profile-epochs`` epochs.

Every configuration runs in a fresh subprocess, because the BLAS thread count
(OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS; torch.set_num_threads for
PyTorch) must be set before numpy is imported, and so that ru_maxrss is that
configuration's own peak. Timings on a shared machine are noisy: compare the ratios, which
come from runs alternated in time, rather than absolute numbers from different runs.

PyTorch is optional and never a dependency of numvae: it is imported only if available.
The environment is used as it is (OPENBLAS_CORETYPE included: it picks OpenBLAS's kernels,
and so changes the GEMM floor); only the thread counts are set, per configuration.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "mnist"
ARCHITECTURES = {
    # the slides' model and the PyTorch examples' model (as in benchmarks/quality.py)
    "slides": dict(shared_dim=128, latent_dim=2),
    "examples": dict(shared_dim=400, latent_dim=20, encoder_hidden=(), decoder_hidden=(400,)),
}
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
EPOCH = 60_000
RESULT_TAG = "SPEED-RESULT "


# ================================================================ workers (subprocesses)

def _rss_mib():
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux).

    Linux carries ru_maxrss over fork and exec: a child starts with its parent's resident
    size as its peak. So the parent process stays small (it never loads numpy or MNIST)."""
    import resource
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _load_cached(cache, name):
    import numpy as np
    return np.load(Path(cache) / f"{name}.npy")


def _subset(images, n_examples, seed):
    """The first ``n_examples`` images of a fixed random order (a contiguous copy), or all."""
    import numpy as np
    if n_examples >= len(images):
        return images
    order = np.random.default_rng(seed + 1).permutation(len(images))[:n_examples]
    return np.ascontiguousarray(images[np.sort(order)])


def dense_layers(model):
    """[(Dense layer, is the network's first layer, rows per example)] in forward order:
    the encoder sees each example once, the decoder once per sample of z."""
    from numvae.layers import Dense
    encoder = [layer for layer in model.encoder.compressor.layers if isinstance(layer, Dense)]
    encoder += [model.encoder.mean, model.encoder.log_var]
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


def _median_ratio(a, b):
    return statistics.median(x / y for x, y in zip(a, b))


def worker_numvae(cfg):
    """Train with numvae.train.fit; then alternate timed training steps and the GEMM floor."""
    import numpy as np

    import numvae
    from numvae import train
    images = _load_cached(cfg["cache"], "train")
    dtype = np.dtype(cfg["dtype"])
    batch, seed = cfg["batch"], cfg["seed"]
    data = _subset(images, cfg["n_examples"], seed)
    model = numvae.VAE(784, **ARCHITECTURES[cfg["arch"]], dtype=dtype, seed=seed)
    optimizer = numvae.Adam(model.params, lr=1e-3)
    warm = model.copy()  # start the BLAS threads, fault the pages in: not part of the timing
    warm_opt = numvae.Adam(warm.params, lr=1e-3)
    for _ in range(3):
        warm.loss_and_grad(data[:batch])
        warm_opt.step(warm.grads)
    setup_mib = _rss_mib()
    start = time.perf_counter()
    history = train.fit(model, optimizer, data, epochs=cfg["epochs"], batch_size=batch,
                        seed=seed, progress=False, log=None)
    wall = time.perf_counter() - start
    seconds = sum(history["seconds"])
    examples = cfg["epochs"] * len(data)
    result = dict(examples=examples, seconds=seconds, wall=wall,
                  examples_per_second=examples / seconds,
                  epoch_examples_per_second=history["examples_per_second"],
                  steps=cfg["epochs"] * -(-len(data) // batch),
                  final_loss=history["train_loss"][-1], setup_mib=setup_mib)
    result["step_ms"] = 1e3 * seconds / result["steps"]

    if cfg["floor_rounds"]:
        # One fit step (gather, loss_and_grad, finite checks, Adam), alternated with the
        # GEMM floor: the ratio of the two is robust to the machine's load changing.
        floor = GemmFloor(model, batch, seed)
        order = np.random.default_rng(seed).permutation(len(images))
        position = [0]
        flat_grads = model.flat_grads

        def step():
            p = position[0] % (len(images) - batch)
            position[0] += batch
            x = images[order[p:p + batch]]
            loss = model.loss_and_grad(x)
            train._check_finite(loss, model.grads, flat_grads, 1, 1)
            optimizer.step(model.grads)

        reps = max(3, int(0.25 / (result["step_ms"] / 1e3)))
        step_times, floor_times = [], []
        for _ in range(cfg["floor_rounds"]):
            for fn, times in ((step, step_times), (floor, floor_times)):
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                times.append((time.perf_counter() - t0) / reps)
        result.update(alt_step_ms=1e3 * statistics.median(step_times),
                      floor_ms=1e3 * statistics.median(floor_times),
                      step_over_floor=_median_ratio(step_times, floor_times),
                      floor_gflops=floor.flops / statistics.median(floor_times) / 1e9)
    result["peak_mib"] = _rss_mib()
    return result


def torch_model(arch):
    """The numvae architecture in PyTorch: Linear/ReLU, two heads, logits out."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    config = {"encoder_hidden": (256,), "decoder_hidden": (32, 256), **ARCHITECTURES[arch]}

    def mlp(sizes):
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        return layers

    class TorchVAE(nn.Module):
        def __init__(self, input_dim, shared_dim, latent_dim, encoder_hidden, decoder_hidden):
            super().__init__()
            self.compressor = nn.Sequential(*mlp([input_dim, *encoder_hidden, shared_dim]))
            self.mean = nn.Linear(shared_dim, latent_dim)
            self.log_var = nn.Linear(shared_dim, latent_dim)
            sizes = [latent_dim, *decoder_hidden]
            self.decoder = nn.Sequential(*mlp(sizes), nn.Linear(sizes[-1], input_dim))

        def loss(self, x):
            """Mean over the batch of BCE-with-logits summed over pixels + analytic KL."""
            shared = self.compressor(x)
            mean, log_var = self.mean(shared), self.log_var(shared)
            z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
            logits = self.decoder(z)
            reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = 0.5 * torch.sum(mean * mean + torch.exp(log_var) - 1.0 - log_var)
            return (reconstruction + kl) / x.shape[0]

    return TorchVAE(784, **config)


def worker_torch(cfg):
    """The same training in PyTorch: same data order as fit (np.random.default_rng(seed))."""
    import numpy as np
    import torch
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    images = _load_cached(cfg["cache"], "train")
    batch, seed = cfg["batch"], cfg["seed"]
    data = torch.from_numpy(_subset(images, cfg["n_examples"], seed))
    n = len(data)

    def make():
        model = torch_model(cfg["arch"])
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    def run_step(model, optimizer, x):
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(x)
        loss.backward()
        optimizer.step()
        return loss.item()

    warm, warm_opt = make()
    for _ in range(3):
        run_step(warm, warm_opt, data[:batch])
    model, optimizer = make()
    setup_mib = _rss_mib()
    rng = np.random.default_rng(seed)
    seconds, epoch_rates, losses = 0.0, [], []
    for _ in range(cfg["epochs"]):
        permutation = torch.from_numpy(rng.permutation(n))
        start = time.perf_counter()
        total = 0.0
        for first in range(0, n, batch):
            x = data[permutation[first:first + batch]]
            total += run_step(model, optimizer, x) * len(x)
        elapsed = time.perf_counter() - start
        seconds += elapsed
        epoch_rates.append(n / elapsed)
        losses.append(total / n)
    steps = cfg["epochs"] * -(-n // batch)
    return dict(examples=cfg["epochs"] * n, seconds=seconds,
                examples_per_second=cfg["epochs"] * n / seconds,
                epoch_examples_per_second=epoch_rates, steps=steps,
                step_ms=1e3 * seconds / steps, final_loss=losses[-1], setup_mib=setup_mib,
                peak_mib=_rss_mib(), torch=torch.__version__)


def worker_iwae(cfg):
    import numpy as np

    import numvae
    from numvae import evaluate
    test = _load_cached(cfg["cache"], "test")[:cfg["n_images"]]
    model = numvae.VAE(784, **ARCHITECTURES[cfg["arch"]], dtype=np.dtype(cfg["dtype"]),
                       seed=cfg["seed"])
    start = time.perf_counter()
    options = {} if cfg.get("max_rows") is None else dict(max_rows=cfg["max_rows"])
    result = evaluate.iwae_log_likelihood(model, test, k=cfg["k"], **options)
    seconds = time.perf_counter() - start
    return dict(seconds=seconds, log_px=result["log_px"], rows=cfg["k"] * len(test),
                peak_mib=_rss_mib())


def worker_gradcheck(cfg):
    import numpy as np

    import numvae
    from numvae import gradcheck
    x = _load_cached(cfg["cache"], "test")[:cfg["batch"]].astype(np.float64)
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
                direction_errors=direction_errors, peak_mib=_rss_mib())


# ---------------------------------------------------------------- profile worker

class Timers:
    """Exclusive (self) time per category; nested timers subtract from their parent."""

    def __init__(self):
        self.seconds, self.calls, self.stack, self.enabled = {}, {}, [], True

    def add(self, name, elapsed, child):
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - child
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.stack:
            self.stack[-1] += elapsed

    def section(self, name):
        timers = self

        class Section:
            def __enter__(self):
                timers.stack.append(0.0)
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                elapsed = time.perf_counter() - self.t0
                timers.add(name, elapsed, timers.stack.pop())
        return Section()

    def wrap(self, name, fn):
        timers = self

        def wrapper(*args, **kwargs):
            timers.stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                timers.add(name, elapsed, timers.stack.pop())
        wrapper.__wrapped__ = fn
        return wrapper

    def reset(self):
        self.seconds, self.calls = {}, {}


def instrument(timers):
    """Put timers around the parts of the training step (monkeypatching, this process only).

    Functions are wrapped as they are; Dense.forward/backward are replaced by copies of
    the package's code with a timer around each line, to split the GEMMs from the bias
    work. Returns a function that undoes everything."""
    import numpy as np

    from numvae import layers, losses, optim, train, vae
    T = timers.section
    saved = []

    def patch(owner, name, new):
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    def dense_forward(self, x):
        self.x = x
        with T("GEMM (x@W, x^T dy, dy W^T)"):
            y = x @ self.params["W"]
        with T("bias add + bias grad (Dense)"):
            y += self.params["b"]
        return y

    def dense_backward(self, dy, need_input_grad=True):
        with T("GEMM (x@W, x^T dy, dy W^T)"):
            np.matmul(self.x.T, dy, out=self.grads["W"])
        with T("bias add + bias grad (Dense)"):
            np.sum(dy, axis=0, out=self.grads["b"])
        if need_input_grad:
            with T("GEMM (x@W, x^T dy, dy W^T)"):
                return dy @ self.params["W"].T
        return None

    patch(layers.Dense, "forward", dense_forward)
    patch(layers.Dense, "backward", dense_backward)
    for owner, name, label in [
            (layers.ReLU, "forward", "ReLU forward (np.maximum)"),
            (layers.ReLU, "backward", "ReLU backward (dy * (y > 0))"),
            (layers.Sigmoid, "forward", "sigmoid forward (decoder output)"),
            (losses, "bernoulli_nll", "softplus loss (bernoulli_nll)"),
            (losses, "bernoulli_nll_backward", "sigmoid(a) - x (bernoulli_nll_backward)"),
            (losses, "safe_exp", "exp + isfinite (safe_exp)"),
            (losses, "kl_divergence", "KL and its gradient"),
            (losses, "kl_divergence_backward", "KL and its gradient"),
            (vae, "check_data", "input checks (check_data, check_eps)"),
            (vae, "check_eps", "input checks (check_data, check_eps)"),
            (vae.VAE, "draw_eps", "draw eps (standard_normal)"),
            (vae.VAE, "loss_and_grad", "other: Python and small ops in loss_and_grad"),
            (optim.Adam, "step", "Adam.step"),
            (train, "_check_finite", "_check_finite (gradient norms)")]:
        patch(owner, name, timers.wrap(label, getattr(owner, name)))

    def undo():
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)
    return undo


def _denormal_count(arrays):
    import numpy as np
    count = total = 0
    for a in arrays:
        tiny = np.finfo(a.dtype).tiny
        count += int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))
        total += a.size
    return count, total


def worker_profile(cfg):
    """Break one training step (the body of fit's loop) into timed parts, early and late."""
    import numpy as np

    import numvae
    from numvae import train
    images = _load_cached(cfg["cache"], "train")
    batch, seed = cfg["batch"], cfg["seed"]
    model = numvae.VAE(784, **ARCHITECTURES[cfg["arch"]], dtype=np.dtype(cfg["dtype"]), seed=seed)
    optimizer = numvae.Adam(model.params, lr=1e-3)
    timers = Timers()
    order = np.random.default_rng(seed).permutation(len(images))
    position = [0]
    flat_grads = model.flat_grads

    def fit_step(gather_timer=None):
        p = position[0] % (len(images) - batch)
        position[0] += batch
        rows = order[p:p + batch]
        if gather_timer is None:
            x = images[rows]
        else:
            with gather_timer("gather images[rows]"):
                x = images[rows]
        loss = model.loss_and_grad(x)
        train._check_finite(loss, model.grads, flat_grads, 1, 1)
        optimizer.step(model.grads)

    def timed_block(n_steps, instrumented):
        t0 = time.perf_counter()
        for _ in range(n_steps):
            fit_step(timers.section if instrumented else None)
        return (time.perf_counter() - t0) / n_steps

    def profile(label):
        # alternate instrumented and plain blocks: the plain ones give the true step time
        # (and so the timers' own overhead); the instrumented ones the breakdown.
        timers.reset()
        plain, instrumented = [], []
        block = cfg["profile_block"]
        for _ in range(cfg["profile_rounds"]):
            plain.append(timed_block(block, False))
            undo = instrument(timers)
            try:
                instrumented.append(timed_block(block, True))
            finally:
                undo()
        n_steps = block * cfg["profile_rounds"]
        parts = {name: 1e3 * s / n_steps for name, s in timers.seconds.items()}
        m_count = _denormal_count(optimizer.m.values())
        v_count = _denormal_count(optimizer.v.values())
        g_count = _denormal_count(model.grads.values())
        # Adam alone on the current state: its cost by itself (state copied back after)
        saved = {k: (optimizer.m[k].copy(), optimizer.v[k].copy(), model.params[k].copy())
                 for k in model.params}
        t_saved = optimizer.t
        t0 = time.perf_counter()
        for _ in range(block):
            optimizer.step(model.grads)
        adam_alone = 1e3 * (time.perf_counter() - t0) / block
        for k, (m, v, p) in saved.items():
            optimizer.m[k][...], optimizer.v[k][...], model.params[k][...] = m, v, p
        optimizer.t = t_saved
        return dict(label=label, step_ms=1e3 * statistics.median(plain),
                    instrumented_step_ms=1e3 * statistics.mean(instrumented), parts=parts,
                    adam_alone_ms=adam_alone, denormals_m=m_count, denormals_v=v_count,
                    denormals_grads=g_count, adam_t=optimizer.t)

    # first a check that the instrumented code computes exactly what the package does
    x = images[:batch]
    eps = model.draw_eps(batch)
    reference = model.copy()
    reference.loss_and_grad(x, eps)
    undo = instrument(Timers())
    try:
        model.loss_and_grad(x, eps)
    finally:
        undo()
    identical = all(np.array_equal(model.grads[k], reference.grads[k]) for k in model.grads)
    for _ in range(3):  # warm-up
        fit_step()
    n_profiled = 2 * cfg["profile_rounds"] * cfg["profile_block"]
    results = [profile(f"early (steps 4-{3 + n_profiled})")]
    if cfg["profile_epochs"]:
        history = train.fit(model, optimizer, images, epochs=cfg["profile_epochs"],
                            batch_size=batch, seed=seed, progress=False, log=None)
        results.append(profile(f"after {cfg['profile_epochs']} more epochs"))
        epoch_rates = history["examples_per_second"]
    else:
        epoch_rates = []
    return dict(identical=identical, profiles=results, epoch_examples_per_second=epoch_rates,
                peak_mib=_rss_mib())


def worker_cache(cfg):
    """Load MNIST once with numvae.datasets.load_mnist; save float32 .npy files that each
    worker loads without the conversion's temporaries (so peak memory is the training's).
    Also describe the environment (numpy, BLAS, CPU)."""
    import numpy as np

    from numvae import datasets
    start = time.perf_counter()
    train, test = datasets.load_mnist(cfg["data_dir"], download=False)
    np.save(Path(cfg["cache"]) / "train.npy", train.images)
    np.save(Path(cfg["cache"]) / "test.npy", test.images)
    info = dict(python=platform.python_version(), numpy=np.__version__, cpus=os.cpu_count(),
                **{k: os.environ[k] for k in ("OPENBLAS_CORETYPE",) if k in os.environ})
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


WORKERS = dict(numvae=worker_numvae, torch=worker_torch, iwae=worker_iwae,
               gradcheck=worker_gradcheck, profile=worker_profile, cache=worker_cache)


def worker_main(cfg):
    result = WORKERS[cfg["kind"]](cfg)
    print(RESULT_TAG + json.dumps(result), flush=True)


# ================================================================ the parent process

def torch_available():
    return subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0


def run_worker(cfg, threads):
    """Run one configuration in a fresh interpreter with the BLAS thread count set."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    cfg = dict(cfg, threads=threads)
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)],
                          env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(f"worker {cfg['kind']} failed (exit {proc.returncode}):\n"
                       f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def log(*args):
    print(*args, flush=True)


def _pairs(cfg, threads, repeats, with_torch, label):
    """Alternate numvae, PyTorch, numvae, PyTorch ...: returns (numvae runs, torch runs)."""
    ours, theirs = [], []
    for r in range(repeats):
        result = run_worker(dict(cfg, kind="numvae", floor_rounds=cfg["floor_rounds"] if r == 0 else 0),
                            threads)
        ours.append(result)
        line = f"  {label} run {r + 1}: numvae {result['examples_per_second']:8.0f} ex/s"
        if "step_over_floor" in result:
            line += f" (step/GEMM floor {result['step_over_floor']:.2f})"
        if with_torch:
            other = run_worker(dict(cfg, kind="torch"), threads)
            theirs.append(other)
            line += (f", PyTorch {other['examples_per_second']:8.0f} ex/s, ratio "
                     f"{result['examples_per_second'] / other['examples_per_second']:.2f}")
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
    floor = next((r for r in ours if "floor_ms" in r), None)
    if floor:
        row.update(floor_ms=floor["floor_ms"], alt_step_ms=floor["alt_step_ms"],
                   step_over_floor=floor["step_over_floor"], floor_gflops=floor["floor_gflops"])
    if theirs:
        their_rates = [r["examples_per_second"] for r in theirs]
        row.update(torch_rate=statistics.median(their_rates), torch_rates=their_rates,
                   ratio=_median_ratio(rates, their_rates),
                   ratio_range=(min(a / b for a, b in zip(rates, their_rates)),
                                max(a / b for a, b in zip(rates, their_rates))),
                   torch_loss=theirs[-1]["final_loss"], torch_peak=max(r["peak_mib"] for r in theirs))
    if len(ours[0].get("epoch_examples_per_second", [])) > 1:
        row["numvae_epoch_rates"] = ours[0]["epoch_examples_per_second"]
    return row


def run_training(args, cache, n_train, with_torch, headline):
    rows = []
    if headline:
        grid = [(arch, 128, "float32", 2) for arch in args.arch]
        epochs, n_examples = 3, n_train
    else:
        grid = [(a, b, d, t) for a in args.arch for b in args.batch for d in args.dtype
                for t in args.threads]
        epochs = args.epochs or 1
    for arch, batch, dtype, threads in grid:
        if not headline:  # full epochs, or one pass over a subset of steps x batch images
            n_examples = n_train if args.epochs else min(n_train, args.steps * batch)
        cfg = dict(cache=str(cache), arch=arch, batch=batch, dtype=dtype, epochs=epochs,
                   n_examples=n_examples, seed=args.seed, floor_rounds=args.floor_rounds)
        pair = with_torch and dtype == "float32"
        label = f"{arch:>8} batch {batch:>3} {dtype} {threads} thr"
        ours, theirs = _pairs(cfg, threads, args.repeats, pair, label)
        rows.append(summarize(dict(arch=arch, batch=batch, dtype=dtype, threads=threads,
                                   epochs=epochs, examples=n_examples), ours, theirs))
    return rows


def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def training_table(rows, title):
    lines = [title,
             f"{'arch':>8} {'batch':>5} {'dtype':>7} {'thr':>3} {'examples':>9} | "
             f"{'numvae ex/s':>11} {'s/epoch':>7} {'PyTorch ex/s':>12} {'numvae/PT':>9} "
             f"{'(range)':>11} | {'step ms':>7} {'floor ms':>8} {'step/floor':>10} "
             f"{'floor GF/s':>10} | {'peak MiB':>8} {'PT peak':>7} | {'loss':>6} {'PT loss':>7}"]
    lines.append("-" * len(lines[1]))
    for r in rows:
        examples = f"{r['epochs']}x{r['examples'] // 1000}k" if r["examples"] >= 1000 else str(r["examples"])
        rng = r.get("ratio_range")
        lines.append(
            f"{r['arch']:>8} {r['batch']:>5} {r['dtype']:>7} {r['threads']:>3} {examples:>9} | "
            f"{r['numvae_rate']:>11.0f} {r['epoch_seconds']:>7.1f} {_fmt(r.get('torch_rate'), '12.0f'):>12} "
            f"{_fmt(r.get('ratio'), '9.2f'):>9} "
            f"{(f'{rng[0]:.2f}-{rng[1]:.2f}' if rng else '-'):>11} | "
            f"{_fmt(r.get('alt_step_ms'), '7.2f'):>7} {_fmt(r.get('floor_ms'), '8.2f'):>8} "
            f"{_fmt(r.get('step_over_floor'), '10.2f'):>10} {_fmt(r.get('floor_gflops'), '10.1f'):>10} | "
            f"{r['numvae_peak']:>8.0f} {_fmt(r.get('torch_peak'), '7.0f'):>7} | "
            f"{r['numvae_loss']:>6.1f} {_fmt(r.get('torch_loss'), '7.1f'):>7}")
        if r.get("numvae_epoch_rates"):
            lines.append(f"{'':>36}numvae ex/s per epoch: "
                         + ", ".join(f"{v:.0f}" for v in r["numvae_epoch_rates"]))
    return "\n".join(lines)


def profile_table(result, cfg):
    lines = [f"PROFILE {cfg['arch']} batch {cfg['batch']} {cfg['dtype']} {cfg['threads']} thread(s)"
             f" (instrumented code gives identical gradients: {result['identical']})"]
    profiles = result["profiles"]
    names = sorted({n for p in profiles for n in p["parts"]},
                   key=lambda n: -profiles[0]["parts"].get(n, 0.0))
    header = f"{'part of the step':<48}" + "".join(f"{p['label']:>26}" for p in profiles)
    lines += [header, "-" * len(header)]
    for name in names:
        cells = ""
        for p in profiles:
            ms = p["parts"].get(name, 0.0)
            cells += f"{ms:>13.3f} ms {100 * ms / p['instrumented_step_ms']:>6.1f} %  "
        lines.append(f"{name:<48}{cells}")
    lines.append(f"{'unaccounted (fit loop body, timer overhead)':<48}" + "".join(
        f"{p['instrumented_step_ms'] - sum(p['parts'].values()):>13.3f} ms "
        f"{100 * (1 - sum(p['parts'].values()) / p['instrumented_step_ms']):>6.1f} %  " for p in profiles))
    for key, label in [("instrumented_step_ms", "instrumented step (timers on)"),
                       ("step_ms", "plain step (no timers), alternated"),
                       ("adam_alone_ms", "Adam.step alone on the current state")]:
        lines.append(f"{label:<48}" + "".join(f"{p[key]:>13.3f} ms{'':>11}" for p in profiles))
    for key, label in [("denormals_m", "denormal entries in Adam m"),
                       ("denormals_v", "denormal entries in Adam v"),
                       ("denormals_grads", "denormal entries in the gradients")]:
        lines.append(f"{label:<48}" + "".join(f"{p[key][0]:>13} / {p[key][1]:<10}" for p in profiles))
    if result["epoch_examples_per_second"]:
        lines.append("fit examples/s per epoch in between: "
                     + ", ".join(f"{v:.0f}" for v in result["epoch_examples_per_second"]))
    return "\n".join(lines)


def run_tests():
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tail = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    return dict(seconds=seconds, returncode=proc.returncode, summary=tail[-1] if tail else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    sections = ["matrix", "headline", "iwae", "gradcheck", "tests", "profile"]
    parser.add_argument("--sections", nargs="+", choices=sections,
                        help="what to run (default: all but profile)")
    parser.add_argument("--quick", action="store_true",
                        help="about one minute: batch 128 float32, 40 steps, one pair; "
                             "IWAE on 100 images; gradcheck of 5 entries per array; no tests")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--arch", nargs="+", choices=list(ARCHITECTURES), default=list(ARCHITECTURES))
    parser.add_argument("--batch", nargs="+", type=int, default=[32, 128, 512])
    parser.add_argument("--dtype", nargs="+", choices=["float32", "float64"], default=["float32", "float64"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=150,
                        help="matrix: steps per sub-run (one pass over steps x batch images)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="matrix: full 60,000-image epochs instead of --steps")
    parser.add_argument("--repeats", type=int, default=2,
                        help="numvae/PyTorch pairs per configuration (A B A B ...)")
    parser.add_argument("--floor-rounds", type=int, default=5,
                        help="alternated rounds of training steps and GEMM floor (0: skip)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
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
    parser.add_argument("--profile-epochs", type=int, default=3)
    parser.add_argument("--profile-rounds", type=int, default=4)
    parser.add_argument("--profile-block", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write every result to this JSON file")
    args = parser.parse_args(argv)

    if args.worker:
        worker_main(json.loads(args.worker))
        return

    chosen = args.sections or [s for s in sections if s != "profile"]
    if args.quick:
        chosen = args.sections or ["matrix", "iwae", "gradcheck"]
        args.batch, args.dtype = [128], ["float32"]
        args.steps, args.repeats, args.floor_rounds = 40, 1, 3
        args.iwae_n, args.gradcheck_entries = 100, 5
        args.profile_epochs, args.profile_rounds, args.profile_block = 0, 2, 20
    with_torch = not args.no_torch and torch_available()
    results = dict(torch=with_torch, args=vars(args), load_average_start=os.getloadavg())
    log(f"PyTorch: {'available' if with_torch else 'not used'}; sections: {' '.join(chosen)}")
    tables = []
    cache = Path(tempfile.mkdtemp(prefix="numvae-speed-"))
    try:
        loaded = run_worker(dict(kind="cache", cache=str(cache), data_dir=args.data_dir), 1)
        n_train, n_test = loaded["n_train"], loaded["n_test"]
        results["environment"] = loaded["environment"]
        log("environment: " + ", ".join(f"{k}={v}" for k, v in loaded["environment"].items()))
        log(f"MNIST: {n_train} training, {n_test} test images (loaded in {loaded['seconds']:.1f} s)")
        if "headline" in chosen:
            log("headline: 3 full epochs, batch 128, float32, 2 threads")
            rows = run_training(args, cache, n_train, with_torch, headline=True)
            results["headline"] = rows
            tables.append(training_table(rows, "HEADLINE: 3 full epochs (60k images each), batch 128, "
                                               "float32, 2 threads; ratio = median of alternated pairs"))
        if "matrix" in chosen:
            what = f"{args.epochs} full epoch(s)" if args.epochs else f"{args.steps} steps"
            log(f"matrix: sub-runs of {what}")
            rows = run_training(args, cache, n_train, with_torch, headline=False)
            results["matrix"] = rows
            tables.append(training_table(rows, f"MATRIX: sub-runs of {what} of numvae.train.fit "
                                               f"(PyTorch: float32 only); ratio = median of alternated pairs"))
        if "iwae" in chosen:
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
            tables.append("\n".join(lines))
        if "gradcheck" in chosen:
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
            tables.append(text)
        if "tests" in chosen:
            r = run_tests()
            results["tests"] = r
            text = f"TESTS: python -m pytest -q: {r['seconds']:.1f} s wall, exit {r['returncode']}: {r['summary']}"
            log(text)
            tables.append(text)
        if "profile" in chosen:
            results["profile"] = []
            for arch in args.arch:
                for batch in args.batch:
                    for dtype in args.dtype:
                        for threads in args.threads:
                            cfg = dict(kind="profile", cache=str(cache), arch=arch, batch=batch,
                                       dtype=dtype, seed=args.seed, profile_epochs=args.profile_epochs,
                                       profile_rounds=args.profile_rounds,
                                       profile_block=args.profile_block)
                            r = run_worker(cfg, threads)
                            results["profile"].append(dict(cfg, threads=threads, result=r))
                            tables.append(profile_table(r, dict(cfg, threads=threads)))
                            log(tables[-1])
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
