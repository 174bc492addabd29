"""Helpers of the iwae_table tests (tests/test_iwae_table*.py; their fixtures
``tiny_mnist`` and ``trained`` are in conftest.py)."""
import shutil

import numpy as np

from numvae.io.idx import write_idx


def write_tiny_mnist(folder):
    """The four MNIST files in ``folder``, 60 training and 30 test images of random grey
    levels."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 30)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz",
                  rng.integers(0, 10, n, dtype=np.uint8))
    return folder


def options(data_dir, results_dir, *more):
    """A VAE k=1 row on the tiny data: batch 20, so 3 steps an epoch; K = 4 on 10 images."""
    return ["--model", "vae", "--k", "1", "--eval-k", "4", "--eval-images", "10",
            "--data-dir", str(data_dir), "--results-dir", str(results_dir), *more]


def copy_of(trained, tmp_path):
    """A copy of the trained rows' folder, and its row vae_k1."""
    shutil.copytree(trained, tmp_path / "rows")
    return tmp_path / "rows", tmp_path / "rows" / "vae_k1"


def kept_final(epoch, k, nll=90.0):
    """A complete --final evaluation of the row vae_k1 (two images), to write by hand."""
    return dict(row="vae_k1", epoch=epoch, k=k, chunk=10, n_images=2,
                per_example_log_px=[-1.0, -2.0], nll=nll, nll_se=0.5, negative_elbo=3.0,
                negative_elbo_se=0.1)
