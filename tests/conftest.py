"""Fixtures shared by the tests (helper functions live in helpers.py)."""
import pytest

from helpers import SHARED_MNIST


@pytest.fixture
def mnist_dir():
    """The real MNIST files in ../shared/mnist, or a clean skip when they are absent."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("../shared/mnist is not present")
    return SHARED_MNIST
