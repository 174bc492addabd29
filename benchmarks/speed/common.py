"""What the sections of ``python -m benchmarks.speed`` share: the architectures, the data cache, the
optimisers by name, and running one configuration in a fresh interpreter.

The parent process never imports numpy (ru_maxrss of a child starts at its parent's
peak); every import of numpy or numvae here is inside a function that a worker calls.
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# None: $NUMVAE_DATA_DIR, else the cache folder numvae train fills (downloading into it)
DEFAULT_DATA_DIR = None
ARCHITECTURES = {
    # the slides' model and the PyTorch examples' model (as in experiments/quality)
    "slides": dict(shared_dim=128, latent_dim=2),
    "examples": dict(shared_dim=400, latent_dim=20, encoder_hidden=(), decoder_hidden=(400,)),
}
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
EPOCH = 60_000
RESULT_TAG = "SPEED-RESULT "
# the optimisers a training worker can use (``--optimizer``): what ``numvae train`` uses,
# and the textbook Adam
OPTIMIZERS = ("fast", "adam")
DEFAULT_CHUNK = 32768


def rss_mib():
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux).

    Linux carries ru_maxrss over fork and exec: a child starts with its parent's resident
    size as its peak. So the parent process stays small (it never loads numpy or MNIST)."""
    import resource
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def load_cached(cache, name):
    import numpy as np
    return np.load(Path(cache) / f"{name}.npy")


def subset(images, n_examples, seed):
    """The first ``n_examples`` images of a fixed random order (a contiguous copy), or all."""
    import numpy as np
    if n_examples >= len(images):
        return images
    order = np.random.default_rng(seed + 1).permutation(len(images))[:n_examples]
    return np.ascontiguousarray(images[np.sort(order)])


def median_ratio(a, b):
    return statistics.median(x / y for x, y in zip(a, b))


def make_model(cfg, dtype=None):
    import numpy as np

    import numvae
    dtype = np.dtype(cfg.get("dtype", "float32") if dtype is None else dtype)
    return numvae.VAE(784, **ARCHITECTURES[cfg["arch"]], dtype=dtype, seed=cfg["seed"])


def make_optimizer(kind, params, chunk=DEFAULT_CHUNK, lr=1e-3):
    """The package's own optimiser classes (never a copy): ``fast`` is
    ``numvae.training.optim_fast.FastAdam`` (what ``numvae train`` uses), ``adam`` the textbook
    ``numvae.training.optim.Adam``."""
    if kind == "fast":
        from numvae.training.optim_fast import FastAdam
        return FastAdam(params, lr=lr, chunk=chunk)
    if kind == "adam":
        from numvae.training.optim import Adam
        return Adam(params, lr=lr)
    raise ValueError(f"unknown optimizer {kind!r}; expected one of {OPTIMIZERS}")


def optimizer_label(kind, chunk=DEFAULT_CHUNK):
    return {"fast": f"FastAdam(chunk={chunk})",
            "adam": "numvae.training.optim.Adam (textbook)"}[kind]


def worker_env(threads):
    """The environment of a worker: this one, with the thread counts set, and the
    repository first on PYTHONPATH so that the worker imports this worktree's numvae."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO) if not path else os.pathsep.join([str(REPO), path])
    return env


def run_worker(cfg, threads):
    """Run one configuration in a fresh interpreter with the BLAS thread count set (numvae
    with two processes: one thread each)."""
    cfg = dict(cfg, threads=threads)
    one_each = cfg.get("processes", 1) == 2 and cfg.get("kind") == "numvae"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--worker", json.dumps(cfg)],
                          env=worker_env(1 if one_each else threads), cwd=REPO,
                          capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(f"worker {cfg['kind']} failed (exit {proc.returncode}):\n"
                       f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def write_json(path, result):
    """Write ``result`` to ``path`` as indented JSON (nothing if ``path`` is None)."""
    if path:
        with open(path, "w") as file:
            json.dump(result, file, indent=1)


def log(*args):
    print(*args, flush=True)


def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


# sections with a command line of their own: run as they are, in a fresh interpreter
MODULE_SECTIONS = {"conv-layers": "benchmarks.speed.conv_layers",
                   "conv-vae": "benchmarks.speed.conv_vae",
                   "iwae-training": "benchmarks.speed.iwae_training",
                   "explorer": "benchmarks.speed.explorer"}
QUICK_OPTIONS = {"conv-layers": ["--repeats", "1", "--steps", "2"],
                 "conv-vae": ["--rounds", "1", "--steps", "3"],
                 "iwae-training": ["--steps", "10", "--rounds", "1"],
                 "explorer": ["--repeats", "5"]}


def run_module_section(name, options=()):
    """``python -m <module> <options>`` of a section with its own command line (its
    defaults, or ``QUICK_OPTIONS`` for a taste), one BLAS thread; returns its report as it
    printed it."""
    module = MODULE_SECTIONS[name]
    command = [sys.executable, "-m", module, *options]
    proc = subprocess.run(command, env=worker_env(1), cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"section {name} failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return f"{name.upper()} (python -m {module} {' '.join(command[3:])}):\n{proc.stdout.strip()}"

