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
