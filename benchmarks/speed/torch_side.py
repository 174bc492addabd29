"""The PyTorch side of the ``matrix`` and ``headline`` sections of python -m benchmarks.speed:
the numvae model in PyTorch (its mirror, ``numvae.interop.to_torch``: the same layers and
initial weights), trained the same way (same data order, Adam lr 1e-3).

PyTorch is optional and never a dependency of numvae: it is imported only in the worker,
and only if ``torch_available()``.
"""
import subprocess
import sys
import time

from benchmarks.speed.common import load_cached, make_model, rss_mib, subset


def torch_available():
    return subprocess.run([sys.executable, "-c", "import torch"],
                          capture_output=True).returncode == 0


def torch_model(cfg):
    """The numvae model of ``cfg`` (architecture, seed) as its PyTorch mirror
    (``numvae.interop.to_torch``: Linear/ReLU, the two heads, the Sigmoid), float32, and its
    latent width: calling it with x and eps gives the training loss, the mean over the batch
    of -log p(x|z) (Bernoulli, from the logits) + the analytic KL."""
    from numvae.interop import to_torch
    model = make_model(dict(cfg, dtype="float32"))
    return to_torch(model), model.latent_dim


def worker_torch(cfg):
    """The same training in PyTorch: same data order as fit (np.random.default_rng(seed))."""
    import numpy as np
    import torch
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    images = load_cached(cfg["cache"], "train")
    batch, seed = cfg["batch"], cfg["seed"]
    data = torch.from_numpy(subset(images, cfg["n_examples"], seed))
    n = len(data)

    def make():
        model, latent_dim = torch_model(cfg)
        return (model, latent_dim), torch.optim.Adam(model.parameters(), lr=1e-3)

    def run_step(model, optimizer, x):
        model, latent_dim = model
        optimizer.zero_grad(set_to_none=True)
        loss = model(x, torch.randn(len(x), latent_dim))
        loss.backward()
        optimizer.step()
        return loss.item()

    warm, warm_opt = make()
    for _ in range(3):
        run_step(warm, warm_opt, data[:batch])
    model, optimizer = make()
    setup_mib = rss_mib()
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
    result = dict(examples=cfg["epochs"] * n, seconds=seconds,
                  examples_per_second=cfg["epochs"] * n / seconds,
                  epoch_examples_per_second=epoch_rates, steps=steps,
                  step_ms=1e3 * seconds / steps, final_loss=losses[-1], setup_mib=setup_mib,
                  torch=torch.__version__)
    if cfg.get("best_rounds"):
        order = torch.from_numpy(np.random.default_rng(seed).permutation(n))
        position = [0]

        def step():
            p = position[0] % (n - batch)
            position[0] += batch
            run_step(model, optimizer, data[order[p:p + batch]])
        result["best_step_ms"] = best_block_ms(step, result["step_ms"], cfg["best_rounds"])
    result["peak_mib"] = rss_mib()
    return result


def best_block_ms(step, step_ms, rounds):
    """ms per step in the fastest of ``rounds`` blocks of about 0.1 s: the block least
    disturbed by the other programs on a shared machine."""
    reps = max(3, int(0.1 / (step_ms / 1e3)))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            step()
        best = min(best, (time.perf_counter() - t0) / reps)
    return 1e3 * best
