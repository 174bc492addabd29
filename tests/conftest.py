"""Fixtures shared by the tests (helper functions live in helpers.py)."""
import os
import sys

# The tests multiply tiny matrices, where BLAS threads cost more than they bring, and
# slow down by orders of magnitude when another process holds a core. One thread, set
# before NumPy is first imported (and inherited by the subprocesses the tests start).
NUMPY_ALREADY_IMPORTED = "numpy" in sys.modules
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from helpers import SHARED_MNIST  # noqa: E402

# On CI (CI=true), hypothesis draws the same examples every run, so that a landing never
# depends on luck; on a developer's machine it explores new ones each time.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def mnist_dir():
    """The real MNIST files in ../shared/mnist, or a clean skip when they are absent."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("../shared/mnist is not present")
    return SHARED_MNIST


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    """A tiny MNIST written as IDX files (iwae_table_rows.write_tiny_mnist)."""
    from iwae_table_rows import write_tiny_mnist
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


@pytest.fixture(scope="module")
def trained(tiny_mnist, tmp_path_factory):
    """An iwae_table row (VAE k=1) trained through its first stage (epoch 1) on the tiny
    MNIST, to copy and damage."""
    from experiments.iwae_table import iwae_table
    from iwae_table_rows import options
    results_dir = tmp_path_factory.mktemp("trained")
    iwae_table.main(options(tiny_mnist, results_dir, "--stages", "1"))
    return results_dir
