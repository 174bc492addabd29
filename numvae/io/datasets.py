"""Data for numvae: full MNIST, an embedded 10,000-image MNIST subset, Fashion-MNIST,
scikit-learn's 8x8 digits (embedded), a toy set.

Images are float32 arrays of shape (n, d), one flattened image per row, grey
levels in [0, 1]; labels are int64 arrays of shape (n,). MNIST comes as four IDX
files (see ``numvae.io.idx``): ``load_mnist`` finds them in a folder you name, in
``$NUMVAE_DATA_DIR`` or in a cache folder it downloads them into, while
``load_mnist_mini`` reads the subset shipped in the package, so tutorials work offline.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import os
import sys
import urllib.request
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from numvae.io.digits import read_digits
from numvae.io.files import as_path, atomic_write_bytes
from numvae.io.idx import IDXError, read_gzipped_idx, read_idx, write_idx

__all__ = ["Dataset", "DataUnavailableError", "IDXError", "binarize", "load_dataset",
           "load_digits", "load_fashion_mnist", "load_mnist", "load_mnist_mini", "make_toy",
           "mnist_cache_dir", "read_idx", "train_val_split", "write_idx"]

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/")
# SHA-256 of the *decompressed* content of each file. We hash the content, not the
# .gz file, because the same content can be gzipped in many ways (our reference
# copies were recompressed, yet hold exactly the official bytes). Tests swap these.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, Zalando Research, MIT licence): the same four
# IDX files and shapes as MNIST, ten classes of clothing. SHA-256 of the decompressed content
# of the files in Debian's dataset-fashion-mnist package (0.0~git20200523.55506a9-1, from
# github.com/zalandoresearch/fashion-mnist at commit 55506a9), found there when installed.
FASHION_MNIST_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's package
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
DATASET_NAMES = ("auto", "mnist", "mnist-mini", "fashion-mnist", "digits", "toy")
_MAX_DOWNLOAD_BYTES = 20_000_000  # the largest MNIST .gz is 9.9 MB
_DATA_DIR = Path(__file__).resolve().parents[1] / "data"  # numvae/data: package data
_MINI_PREFIX = "mnist-mini-"


class DataUnavailableError(RuntimeError):
    """A data set could not be found, read or downloaded."""


class Dataset(NamedTuple):
    """``images``: float32 (n, d) in [0, 1], one flattened image per row;
    ``labels``: int64 (n,), the class of each image (the digit, for MNIST)."""
    images: np.ndarray
    labels: np.ndarray


# ---------------------------------------------------------------- full MNIST

def mnist_cache_dir(name: str = "mnist") -> Path:
    """Where downloaded MNIST files are kept: ``$XDG_CACHE_HOME/numvae/mnist``, else
    ``~/.cache/numvae/mnist``; on Windows ``%LOCALAPPDATA%\\numvae\\mnist``. ``name``:
    the folder of another data set in the same format ("fashion-mnist")."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    else:
        base = os.environ.get("XDG_CACHE_HOME", "")
        if not os.path.isabs(base):  # the XDG spec says to ignore relative paths
            base = Path.home() / ".cache"
    return Path(base) / "numvae" / name


def load_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = True,
               timeout: float = 30.0) -> tuple[Dataset, Dataset]:
    """Load the full MNIST training (60,000 images) and test (10,000) sets.

    The four files are looked for in ``data_dir`` if given, else in the folder
    named by the environment variable ``NUMVAE_DATA_DIR`` if set, else in
    ``mnist_cache_dir()``, downloading missing files into it if ``download``
    (``timeout`` seconds per mirror). A folder you name must hold the files:
    nothing is downloaded into it and there is no fallback, so a typo cannot go
    unnoticed. Files may be gzipped or raw, named with or without ``.gz``.

    Returns (train, test) Datasets: images float32 (60000, 784) and (10000, 784)
    in [0, 1], labels int64 0-9. Raises DataUnavailableError if the files cannot
    be found, read or downloaded.
    """
    _check_download_options(download, timeout)
    folder = _explicit_dir(data_dir)
    if folder is None:
        folder = _cached(mnist_cache_dir(), download, timeout, MNIST_MIRRORS, MNIST_SHA256)
    return _load_folder(folder)


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = True,
                       timeout: float = 30.0) -> tuple[Dataset, Dataset]:
    """Load Fashion-MNIST's training (60,000 images) and test (10,000) sets: the same
    files, shapes and checks as ``load_mnist``; labels 0-9 name ``FASHION_MNIST_CLASSES``.

    The files are looked for in ``data_dir`` if given, else in Debian's
    ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``) if it
    holds them, else in ``mnist_cache_dir("fashion-mnist")``, downloading missing files
    into it if ``download`` (checked against ``FASHION_MNIST_SHA256``).
    """
    _check_download_options(download, timeout)
    if data_dir is not None:
        folder = _explicit_dir(data_dir, "Fashion-MNIST")
    elif not _missing_files(FASHION_MNIST_SYSTEM_DIR, MNIST_FILES):
        folder = FASHION_MNIST_SYSTEM_DIR
    else:
        folder = _cached(mnist_cache_dir("fashion-mnist"), download, timeout,
                         FASHION_MNIST_MIRRORS, FASHION_MNIST_SHA256)
    return _load_folder(folder, what="Fashion-MNIST")


def _check_download_options(download, timeout):
    if not isinstance(download, bool):
        raise TypeError(f"download: expected True or False, got {download!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")


def _cached(folder, download, timeout, mirrors, sha256):
    """The cache ``folder``, its missing files downloaded (or refused without ``download``)."""
    missing = _missing_files(folder, MNIST_FILES)
    if missing and not download:
        raise DataUnavailableError(f"{folder}: missing {', '.join(missing)} and download=False")
    if missing:
        _download_missing(folder, timeout, mirrors, sha256)
    return folder


def _explicit_dir(data_dir, what="MNIST"):
    """The folder the user named (argument, else $NUMVAE_DATA_DIR for MNIST), or None."""
    source = "data_dir"
    if data_dir is None and what == "MNIST":
        data_dir, source = os.environ.get("NUMVAE_DATA_DIR") or None, "NUMVAE_DATA_DIR"
    if data_dir is None:
        return None
    folder = as_path(data_dir, source)
    if not folder.is_dir():
        raise DataUnavailableError(f"{source}: folder {folder} does not exist "
                                   f"(expected the {what} files, e.g. {MNIST_FILES[0]}, in it)")
    return folder


def _find_file(folder, name):
    """``folder/name``, else the same without .gz, else None."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _missing_files(folder, names):
    return [name for name in names if _find_file(folder, name) is None]


def _load_folder(folder, prefix="", what="MNIST"):
    """Read the four MNIST files (names starting with ``prefix``) in ``folder``."""
    names = [prefix + name for name in MNIST_FILES]
    missing = _missing_files(folder, names)
    if missing:
        raise DataUnavailableError(f"{folder}: missing {', '.join(missing)} (with or without .gz)")
    try:
        arrays = [read_idx(_find_file(folder, name)) for name in names]
        train = _to_dataset(arrays[0], arrays[1], names[0], names[1])
        test = _to_dataset(arrays[2], arrays[3], names[2], names[3])
    except (OSError, IDXError) as err:
        raise DataUnavailableError(f"cannot read {what} in {folder}: {err}") from err
    return train, test


def _to_dataset(images, labels, images_name, labels_name):
    """Check uint8 images (n, 28, 28) and labels (n,) agree; flatten and scale to [0, 1]."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IDXError(f"{images_name}: expected images of shape (n, 28, 28), got {images.shape}")
    if labels.shape != (len(images),):
        raise IDXError(f"{labels_name}: expected {len(images)} labels (one per image "
                       f"in {images_name}), got shape {labels.shape}")
    if labels.size and labels.max() > 9:
        raise IDXError(f"{labels_name}: expected digits 0-9, found label {labels.max()}")
    flat = images.reshape(len(images), 28 * 28).astype(np.float32) / 255.0
    return Dataset(flat, labels.astype(np.int64))


def _download_missing(folder, timeout, mirrors, sha256):
    """Download each MNIST file missing from ``folder``: fetch, check, then save atomically."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataUnavailableError(f"cannot create the cache folder {folder}: {err}") from err
    for name in _missing_files(folder, MNIST_FILES):
        data = _download(name, timeout, mirrors, sha256)
        try:
            atomic_write_bytes(folder / name, data)
        except OSError as err:
            raise DataUnavailableError(f"cannot save {name} in {folder}: {err}") from err


def _download(name, timeout, mirrors, sha256):
    """The bytes of ``name`` from the first mirror that serves the right content."""
    reasons = []
    for mirror in mirrors:
        url = mirror + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read(_MAX_DOWNLOAD_BYTES + 1)  # one byte more shows it is too big
            _verify_download(name, data, sha256)
            return data
        except (OSError, http.client.HTTPException, ValueError) as err:
            reasons.append(f"{url}: {_one_line(err)}")
    raise DataUnavailableError(f"could not download {name} ({'; '.join(reasons)})")


def _verify_download(name, data, sha256=None):
    """Check that downloaded ``data`` decompresses to the content in ``sha256`` (a dict
    like MNIST_SHA256, the default).

    The content is read as an IDX file, so a "gzip bomb" is refused as soon as it
    inflates beyond what its header promises (see ``numvae.io.idx.read_idx``)."""
    if len(data) > _MAX_DOWNLOAD_BYTES:
        raise ValueError(f"larger than {_MAX_DOWNLOAD_BYTES} bytes")
    header, items = read_gzipped_idx(io.BytesIO(data), "download")
    expected = (MNIST_SHA256 if sha256 is None else sha256)[name]
    digest = hashlib.sha256(header + items.data).hexdigest()
    if digest != expected:
        raise ValueError(f"SHA-256 of the content is {digest[:16]}..., expected {expected[:16]}...")


def _one_line(err):
    return " ".join(str(err).split()) or type(err).__name__


# ---------------------------------------------------------------- MNIST subset

def load_mnist_mini() -> tuple[Dataset, Dataset]:
    """Load the MNIST subset shipped with numvae (see numvae/data/README.md).

    Returns (train, test) Datasets: images float32 (10000, 784) and (2000, 784)
    in [0, 1], labels int64; 1,000 (train) and 200 (test) images of each digit.
    """
    return _load_folder(_DATA_DIR, prefix=_MINI_PREFIX)


def load_digits() -> tuple[Dataset, Dataset]:
    """Load the 1,797 8x8 handwritten digits shipped with numvae (scikit-learn's copy of the
    UCI test set, Alpaydin & Kaynak 1998; ``numvae.io.digits``): pixels 0-16 divided by 16.

    Returns (train, test) Datasets: images float32 (1500, 64) and (297, 64) in [0, 1],
    labels int64 0-9; the test set is the file's last 297 rows.
    """
    try:
        images, labels = read_digits()
    except (OSError, ValueError, EOFError) as err:
        raise DataUnavailableError(f"cannot read the embedded digits: {_one_line(err)}") from err
    cut = len(images) - DIGITS_TEST
    return Dataset(images[:cut], labels[:cut]), Dataset(images[cut:], labels[cut:])


DIGITS_TEST = 297  # the last 297 of the 1,797 digits are the test set, 1,500 the training set


# ---------------------------------------------------------------- choosing by name

def load_dataset(name: str = "auto", data_dir: str | os.PathLike | None = None, *,
                 download: bool = True, timeout: float = 30.0,
                 announce: Callable[[str], object] = print) -> tuple[Dataset, Dataset, str]:
    """Load a data set by name, for the command line.

    ``name`` is "mnist", "mnist-mini", "fashion-mnist", "digits", "toy" or "auto": full
    MNIST if it can be
    found or downloaded, else the embedded subset, saying so in one line through
    ``announce``. A folder you name (``data_dir`` or ``$NUMVAE_DATA_DIR``) is never
    silently replaced by the subset. ``data_dir``, ``download`` and ``timeout`` are
    as for ``load_mnist``; ``data_dir`` is only for "auto", "mnist" and "fashion-mnist".

    Returns (train, test, used_name), the name of what was actually loaded.
    """
    if not isinstance(name, str) or name not in DATASET_NAMES:
        raise ValueError(f"name: expected one of {', '.join(DATASET_NAMES)}, got {name!r}")
    if data_dir is not None and name in ("mnist-mini", "digits", "toy"):
        raise ValueError(f"data_dir: only used with 'auto' or 'mnist' (or 'fashion-mnist'), "
                         f"got {str(data_dir)!r} with {name!r}")
    if name == "toy":
        return make_toy(2000, seed=0), make_toy(500, seed=1), "toy"
    if name == "mnist-mini":
        return (*load_mnist_mini(), "mnist-mini")
    if name == "digits":
        return (*load_digits(), "digits")
    if name == "fashion-mnist":
        return (*load_fashion_mnist(data_dir, download=download, timeout=timeout),
                "fashion-mnist")
    if name == "mnist" or _explicit_dir(data_dir) is not None:
        return (*load_mnist(data_dir, download=download, timeout=timeout), "mnist")
    try:
        return (*load_mnist(download=download, timeout=timeout), "mnist")
    except DataUnavailableError as err:
        announce(f"Full MNIST not available ({_one_line(err)}); "
                 f"using the embedded 10,000-image subset (mnist-mini).")
    return (*load_mnist_mini(), "mnist-mini")


# ---------------------------------------------------------------- toy data and helpers

def make_toy(n: int = 2000, *, side: int = 8, seed: int = 0) -> Dataset:
    """A synthetic data set whose images vary along two hidden coordinates.

    Each image is one Gaussian blob (standard deviation 1 pixel) centred at
    (row, col), drawn uniformly over the square of pixel centres [0, side - 1]^2:
    a VAE with a 2-D latent space should find (row, col) again. The label is the
    quadrant of the centre (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right)
    so that figures can colour by it. Same seed, same data.

    Returns a Dataset: images float32 (n, side * side) in [0, 1], labels int64 (n,).
    """
    _check_int(n, "n", low=1)
    _check_int(side, "side", low=2)
    _check_int(seed, "seed", low=0)
    centres = np.random.default_rng(seed).uniform(0, side - 1, size=(n, 2))  # (n, 2): row, col
    grid = np.arange(side)
    row_gap = grid[None, :, None] - centres[:, 0, None, None]  # (n, side, 1)
    col_gap = grid[None, None, :] - centres[:, 1, None, None]  # (n, 1, side)
    images = np.exp(-(row_gap**2 + col_gap**2) / 2.0)          # (n, side, side)
    middle = (side - 1) / 2
    labels = 2 * (centres[:, 0] >= middle) + (centres[:, 1] >= middle)
    return Dataset(images.reshape(n, side * side).astype(np.float32), labels.astype(np.int64))


def binarize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dynamic binarisation: each pixel becomes 1 with probability equal to its grey level.

    Drawing afresh each time an image is used (say, each epoch) gives a Bernoulli
    decoder true 0/1 data yet keeps the information in the grey levels.
    ``images`` is a float array such as (n, 784) in [0, 1]; ``rng`` a numpy
    Generator owned by the caller. Returns 0s and 1s, same shape and dtype.
    """
    if not isinstance(images, np.ndarray) or not np.issubdtype(images.dtype, np.floating):
        got = getattr(images, "dtype", type(images).__name__)
        raise TypeError(f"images: expected a float numpy array, got {got}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    if images.size and not np.all((images >= 0) & (images <= 1)):
        raise ValueError(f"images: expected grey levels in [0, 1], got values from "
                         f"{images.min()} to {images.max()}")
    return (rng.random(images.shape) < images).astype(images.dtype)


def train_val_split(data: Dataset, n_val: int, *, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split ``data`` at random into (train, validation), ``n_val`` images in the latter.

    Both parts keep the original order of their images; the same seed gives the
    same split. Returns two Datasets, of n - n_val and n_val images.
    """
    if not isinstance(data, Dataset):
        raise TypeError(f"data: expected a Dataset, got {type(data).__name__}")
    n = len(data.labels)
    _check_int(n_val, "n_val", low=0)
    if n_val >= n:
        raise ValueError(f"n_val: expected an integer in [0, {n}) for {n} images, got {n_val}")
    order = np.random.default_rng(seed).permutation(n)
    train, val = np.sort(order[n_val:]), np.sort(order[:n_val])
    return (Dataset(data.images[train], data.labels[train]),
            Dataset(data.images[val], data.labels[val]))


def _check_int(value, name, low):
    """A TypeError unless ``value`` is an integer, a ValueError if it is below ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value}")
