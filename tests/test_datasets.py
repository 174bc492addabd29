"""Tests for numvae.io.datasets.

No test touches the network: an autouse fixture replaces urllib.request.urlopen
(tests that need downloads serve local bytes), points the cache at a temporary
folder and removes NUMVAE_DATA_DIR.
"""
import gzip
import hashlib
import http.client
import importlib.util
import io
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numvae.io import datasets
from numvae.io.datasets import (
    Dataset,
    DataUnavailableError,
    binarize,
    load_dataset,
    load_mnist,
    load_mnist_mini,
    make_toy,
    mnist_cache_dir,
    read_idx,
    train_val_split,
    write_idx,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "mnist"
PACKAGE_DATA = Path(datasets.__file__).resolve().parents[1] / "data"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_mnist_mini.py"
MNIST_FILES = datasets.MNIST_FILES
FIRST_MIRROR, SECOND_MIRROR = datasets.MNIST_MIRRORS
# The autouse fixture gives every test a fresh tmp_path, so Hypothesis examples
# that rewrite one file in it are independent; hence this suppression.
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to use the network")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.delenv("NUMVAE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def fake_mnist(folder, n_train=50, n_test=20, *, gz=True, seed=0):
    """Write four small random MNIST-like IDX files; return their arrays by official name."""
    rng = np.random.default_rng(seed)
    arrays = dict(zip(MNIST_FILES, [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
                                    rng.integers(0, 10, n_train, dtype=np.uint8),
                                    rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
                                    rng.integers(0, 10, n_test, dtype=np.uint8)]))
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(folder / (name if gz else name.removesuffix(".gz")), array)
    return arrays


def check_matches(train, test, arrays):
    """``train`` and ``test`` hold exactly the fake ``arrays``, flattened and scaled."""
    train_images, train_labels, test_images, test_labels = arrays.values()
    for data, images, labels in [(train, train_images, train_labels),
                                 (test, test_images, test_labels)]:
        assert data.images.dtype == np.float32 and data.labels.dtype == np.int64
        assert data.images.shape == (len(images), 784)
        np.testing.assert_array_equal(data.images, images.reshape(-1, 784) / np.float32(255))
        np.testing.assert_array_equal(data.labels, labels)


def files_in(folder):
    return sorted(os.listdir(folder)) if folder.exists() else []


# ---------------------------------------------------------------- load_mnist from folders

@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_explicit_folder(tmp_path, gz):
    arrays = fake_mnist(tmp_path / "mnist", gz=gz)
    train, test = load_mnist(tmp_path / "mnist")
    check_matches(train, test, arrays)
    assert isinstance(train, Dataset) and train.images.min() >= 0 and train.images.max() <= 1


def test_explicit_folder_missing_file_is_an_error_without_download(tmp_path):
    fake_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataUnavailableError, match="mnist: missing t10k-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path / "mnist", download=True)  # the guard fails the test if it downloads
    assert files_in(tmp_path / "cache") == []


def test_explicit_folder_that_does_not_exist(tmp_path):
    with pytest.raises(DataUnavailableError, match="data_dir: folder .*nowhere does not exist"):
        load_mnist(tmp_path / "nowhere")


@pytest.mark.parametrize("name, array, message", [
    ("train-images-idx3-ubyte.gz", None, "truncated"),
    ("train-labels-idx1-ubyte.gz", np.zeros(49, np.uint8), "expected 50 labels"),
    ("t10k-labels-idx1-ubyte.gz", np.full(20, 10, np.uint8), "expected digits 0-9, found label 10"),
    ("t10k-images-idx3-ubyte.gz", np.zeros((20, 27, 28), np.uint8), r"shape \(n, 28, 28\)"),
])
def test_explicit_folder_with_bad_file(tmp_path, name, array, message):
    fake_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / name
    if array is None:
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    else:
        write_idx(path, array)
    with pytest.raises(DataUnavailableError, match=message) as info:
        load_mnist(tmp_path / "mnist")
    assert "mnist" in str(info.value) and name.split("-idx")[0] in str(info.value)


def test_env_var_folder(tmp_path, monkeypatch):
    arrays = fake_mnist(tmp_path / "env")
    monkeypatch.setenv("NUMVAE_DATA_DIR", str(tmp_path / "env"))
    check_matches(*load_mnist(), arrays)
    # An explicit argument still wins over the environment variable.
    other = fake_mnist(tmp_path / "arg", seed=1)
    check_matches(*load_mnist(tmp_path / "arg"), other)


def test_env_var_folder_unusable_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMVAE_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(DataUnavailableError, match="NUMVAE_DATA_DIR: folder .*typo"):
        load_mnist()
    (tmp_path / "typo").mkdir()
    with pytest.raises(DataUnavailableError, match="missing train-images"):
        load_mnist()


def test_cache_dir_location(tmp_path, monkeypatch):
    assert mnist_cache_dir() == tmp_path / "cache" / "numvae" / "mnist"
    if sys.platform != "win32":
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert mnist_cache_dir() == tmp_path / "home" / ".cache" / "numvae" / "mnist"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
        assert mnist_cache_dir() == tmp_path / "home" / ".cache" / "numvae" / "mnist"


def test_load_mnist_from_cache(tmp_path):
    arrays = fake_mnist(mnist_cache_dir(), gz=False)
    check_matches(*load_mnist(), arrays)


def test_empty_cache_without_download(tmp_path):
    with pytest.raises(DataUnavailableError, match="missing .* and download=False"):
        load_mnist(download=False)


def test_load_mnist_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="download"):
        load_mnist(download="yes")
    with pytest.raises(ValueError, match="timeout"):
        load_mnist(timeout=0)
    with pytest.raises(TypeError, match="data_dir: expected a path"):
        load_mnist(12)


# ---------------------------------------------------------------- downloads

class FakeMirrors:
    """Stands in for urllib.request.urlopen: answers by URL and records each request.

    An answer is bytes, an exception to raise at connection, or an exception
    to raise while reading (wrapped in ``FailWhileReading``).
    """

    def __init__(self, answers):
        self.answers, self.requests = answers, []

    def __call__(self, url, timeout=None):
        self.requests.append((url, timeout))
        answer = self.answers.get(url, urllib.error.URLError("no route to host"))
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, FailWhileReading):
            return BrokenResponse(answer.error)
        return io.BytesIO(answer)

    def urls(self):
        return [url for url, _ in self.requests]


class FailWhileReading:
    """An answer that connects fine, then fails with ``error`` while reading."""

    def __init__(self, error):
        self.error = error


class BrokenResponse(io.BytesIO):
    def __init__(self, error):
        super().__init__(b"partial data")
        self.error = error

    def read(self, *args):
        raise self.error


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Fake MNIST files (as gzipped bytes, by name) whose hashes load_mnist expects."""
    arrays = fake_mnist(tmp_path / "server")
    files = {name: (tmp_path / "server" / name).read_bytes() for name in MNIST_FILES}
    hashes = {name: hashlib.sha256(gzip.decompress(data)).hexdigest()
              for name, data in files.items()}
    monkeypatch.setattr(datasets, "MNIST_SHA256", hashes)
    return arrays, files


def serve(monkeypatch, answers):
    mirrors = FakeMirrors(answers)
    monkeypatch.setattr(urllib.request, "urlopen", mirrors)
    return mirrors


def test_download_good_files_land_in_cache(tmp_path, monkeypatch, server):
    arrays, files = server
    mirrors = serve(monkeypatch, {FIRST_MIRROR + name: data for name, data in files.items()})
    check_matches(*load_mnist(timeout=5.0), arrays)
    assert mirrors.requests == [(FIRST_MIRROR + name, 5.0) for name in MNIST_FILES]
    assert files_in(mnist_cache_dir()) == sorted(MNIST_FILES)  # no temporary files left
    for name, data in files.items():
        assert (mnist_cache_dir() / name).read_bytes() == data
    check_matches(*load_mnist(), arrays)  # the second time, from the cache alone
    assert len(mirrors.requests) == 4


def test_download_tries_the_next_mirror(tmp_path, monkeypatch, server):
    arrays, files = server
    answers = {SECOND_MIRROR + name: data for name, data in files.items()}
    answers[FIRST_MIRROR + MNIST_FILES[0]] = urllib.error.HTTPError(
        FIRST_MIRROR + MNIST_FILES[0], 503, "Service Unavailable", {}, None)
    mirrors = serve(monkeypatch, answers)
    check_matches(*load_mnist(), arrays)
    assert mirrors.urls()[:2] == [FIRST_MIRROR + MNIST_FILES[0], SECOND_MIRROR + MNIST_FILES[0]]


def test_download_only_missing_files(tmp_path, monkeypatch, server):
    arrays, files = server
    mnist_cache_dir().mkdir(parents=True)
    for name in MNIST_FILES[:3]:
        (mnist_cache_dir() / name).write_bytes(files[name])
    mirrors = serve(monkeypatch, {FIRST_MIRROR + MNIST_FILES[3]: files[MNIST_FILES[3]]})
    check_matches(*load_mnist(), arrays)
    assert mirrors.urls() == [FIRST_MIRROR + MNIST_FILES[3]]


def test_download_hash_mismatch_leaves_no_file(tmp_path, monkeypatch, server):
    fake_mnist(tmp_path / "other", seed=7)  # well-formed files, but not the expected ones
    other = {name: (tmp_path / "other" / name).read_bytes() for name in MNIST_FILES}
    mirrors = serve(monkeypatch, {mirror + name: data for name, data in other.items()
                                  for mirror in (FIRST_MIRROR, SECOND_MIRROR)})
    with pytest.raises(DataUnavailableError,
                       match="could not download train-images-idx3-ubyte.gz") as info:
        load_mnist()
    message = str(info.value)
    assert "SHA-256" in message and FIRST_MIRROR in message and SECOND_MIRROR in message
    assert "\n" not in message
    assert len(mirrors.requests) == 2
    assert files_in(mnist_cache_dir()) == []


@pytest.mark.parametrize("answer", [
    FailWhileReading(http.client.IncompleteRead(b"partial")),
    FailWhileReading(ConnectionResetError("connection reset by peer")),
    FailWhileReading(TimeoutError("timed out")),
    "half",  # the connection closed half way, unnoticed by the HTTP layer
    "empty",
    TimeoutError("timed out"),
])
def test_download_failing_part_way_leaves_no_file(tmp_path, monkeypatch, server, answer):
    arrays, files = server
    answers = {FIRST_MIRROR + name: data for name, data in files.items()}
    bad = MNIST_FILES[2]  # the first two files download fine
    if answer == "half":
        answer = files[bad][:len(files[bad]) // 2]
    elif answer == "empty":
        answer = b""
    answers[FIRST_MIRROR + bad] = answer
    serve(monkeypatch, answers)
    with pytest.raises(DataUnavailableError, match=f"could not download {bad}"):
        load_mnist()
    # Good files are kept; nothing that looks like the broken one, and no temporary file.
    assert files_in(mnist_cache_dir()) == sorted(MNIST_FILES[:2])


def test_download_refuses_oversized_answer(tmp_path, monkeypatch, server):
    monkeypatch.setattr(datasets, "_MAX_DOWNLOAD_BYTES", 100)
    serve(monkeypatch, {FIRST_MIRROR + name: data for name, data in server[1].items()})
    with pytest.raises(DataUnavailableError, match="larger than 100 bytes"):
        load_mnist()
    assert files_in(mnist_cache_dir()) == []


def test_unwritable_cache_is_unavailable(tmp_path, monkeypatch):
    (tmp_path / "cache").write_bytes(b"a file where the cache folder should be")
    with pytest.raises(DataUnavailableError, match="cannot create the cache folder"):
        load_mnist()


# ---------------------------------------------------------------- the embedded subset

def test_mnist_mini_shapes_and_counts():
    train, test = load_mnist_mini()
    for data, n in [(train, 10_000), (test, 2_000)]:
        assert data.images.shape == (n, 784) and data.images.dtype == np.float32
        assert data.labels.shape == (n,) and data.labels.dtype == np.int64
        assert data.images.min() == 0 and data.images.max() == 1
        np.testing.assert_array_equal(np.bincount(data.labels, minlength=10), [n // 10] * 10)
    # Kept in MNIST order, so the digits are interleaved, not sorted by class.
    assert len(set(train.labels[:30].tolist())) > 5


def test_mnist_mini_readme_lists_the_hashes():
    readme = (PACKAGE_DATA / "README.md").read_text(encoding="utf-8")
    for name in MNIST_FILES:
        data = (PACKAGE_DATA / f"mnist-mini-{name}").read_bytes()
        assert hashlib.sha256(data).hexdigest() in readme
        assert hashlib.sha256(gzip.decompress(data)).hexdigest() in readme
    assert "python scripts/make_mnist_mini.py ../shared/mnist numvae/data" in readme


def load_script():
    """scripts/make_mnist_mini.py as a module (it is a tool, not part of the package)."""
    spec = importlib.util.spec_from_file_location("make_mnist_mini", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_mnist_mini(*args, **kwargs):
    return load_script().make_mnist_mini(*args, **kwargs)


def test_make_mnist_mini_is_not_in_the_package():
    assert not hasattr(datasets, "make_mnist_mini")
    assert len(Path(datasets.__file__).read_text(encoding="utf-8").splitlines()) < 400


@pytest.fixture(scope="module")
def real_mnist():
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"real MNIST not found at {SHARED_MNIST}")
    return {name: read_idx(SHARED_MNIST / name) for name in MNIST_FILES}


def test_mnist_sha256_constants_match_real_files(real_mnist):
    for name in MNIST_FILES:
        content = gzip.decompress((SHARED_MNIST / name).read_bytes())
        assert hashlib.sha256(content).hexdigest() == datasets.MNIST_SHA256[name]


def test_mnist_mini_images_come_from_real_mnist(real_mnist):
    mini = load_mnist_mini()
    for data, images_name, labels_name in [(mini[0], *MNIST_FILES[:2]),
                                           (mini[1], *MNIST_FILES[2:])]:
        index_of = {image.tobytes(): i for i, image in enumerate(real_mnist[images_name])}
        pixels = np.round(data.images * 255).astype(np.uint8).reshape(-1, 28, 28)
        found = [index_of[image.tobytes()] for image in pixels]  # KeyError: not a real image
        assert found == sorted(found)  # in their original order
        np.testing.assert_array_equal(real_mnist[labels_name][found], data.labels)


def test_make_mnist_mini_reproduces_the_shipped_files(real_mnist, tmp_path):
    paths = make_mnist_mini(SHARED_MNIST, tmp_path)
    assert [p.name for p in paths] == [f"mnist-mini-{name}" for name in MNIST_FILES]
    for path in paths:
        np.testing.assert_array_equal(read_idx(path), read_idx(PACKAGE_DATA / path.name))


def test_load_real_mnist(real_mnist):
    train, test = load_mnist(SHARED_MNIST)
    assert train.images.shape == (60_000, 784) and test.images.shape == (10_000, 784)
    np.testing.assert_array_equal(train.labels, real_mnist[MNIST_FILES[1]])


def test_make_mnist_mini_on_small_files(tmp_path):
    rng = np.random.default_rng(0)
    source = {MNIST_FILES[0]: rng.integers(0, 256, (100, 28, 28), dtype=np.uint8),
              MNIST_FILES[1]: (np.arange(100) % 10).astype(np.uint8),
              MNIST_FILES[2]: rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
              MNIST_FILES[3]: (np.arange(40) % 10).astype(np.uint8)}
    (tmp_path / "src").mkdir()
    for name, array in source.items():
        write_idx(tmp_path / "src" / name, array)
    paths = make_mnist_mini(tmp_path / "src", tmp_path / "out", n_train=50, n_test=20)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    np.testing.assert_array_equal(np.bincount(labels), [5] * 10)
    np.testing.assert_array_equal(np.bincount(read_idx(paths[3])), [2] * 10)
    index = [np.flatnonzero((source[MNIST_FILES[0]] == image).all(axis=(1, 2)))[0]
             for image in images]
    assert index == sorted(index) and len(set(index)) == 50
    np.testing.assert_array_equal(source[MNIST_FILES[1]][index], labels)
    again = make_mnist_mini(tmp_path / "src", tmp_path / "again", n_train=50, n_test=20)
    other = make_mnist_mini(tmp_path / "src", tmp_path / "other", n_train=50, n_test=20, seed=1)
    assert paths[0].read_bytes() == again[0].read_bytes() != other[0].read_bytes()
    with pytest.raises(ValueError, match="n_train: expected a positive multiple of 10"):
        make_mnist_mini(tmp_path / "src", tmp_path / "out", n_train=55)
    with pytest.raises(ValueError,
                       match="training set has 10 images of digit 0, fewer than the 20"):
        make_mnist_mini(tmp_path / "src", tmp_path / "out", n_train=200)
    with pytest.raises(DataUnavailableError, match="source_dir"):
        make_mnist_mini(tmp_path / "nothing", tmp_path / "out")


def test_make_mnist_mini_script_runs_from_a_checkout(tmp_path):
    # No PYTHONPATH: the script finds the numvae beside it by itself.
    for name, array in zip(MNIST_FILES, [np.zeros((20, 28, 28), np.uint8),
                                         np.arange(20, dtype=np.uint8) % 10,
                                         np.ones((10, 28, 28), np.uint8),
                                         np.arange(10, dtype=np.uint8)]):
        write_idx(tmp_path / name, array)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    def run(*args):
        return subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), *args],
                              capture_output=True,
                              text=True, env=environment, cwd=tmp_path, timeout=60)
    process = run(str(tmp_path / "out"), "--n-train", "20", "--n-test", "10")
    assert process.returncode == 0, process.stderr
    assert process.stdout.split() == [str(tmp_path / "out" / f"mnist-mini-{name}") for name in MNIST_FILES]
    np.testing.assert_array_equal(read_idx(tmp_path / "out" / f"mnist-mini-{MNIST_FILES[3]}"),
                                  np.arange(10))
    refused = run(str(tmp_path / "big"))  # 1,000 of each digit wanted, 2 available
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "fewer than the 1000 requested" in refused.stderr and not (tmp_path / "big").exists()


# ---------------------------------------------------------------- load_dataset

def test_auto_falls_back_to_mini_with_one_line(tmp_path, monkeypatch):
    mirrors = serve(monkeypatch, {})  # every mirror fails
    messages = []
    train, test, used = load_dataset(announce=messages.append)
    assert used == "mnist-mini" and train.images.shape == (10_000, 784) and test.images.shape == (2_000, 784)
    assert len(messages) == 1 and "\n" not in messages[0]
    assert messages[0].startswith("Full MNIST not available (could not download train-images-idx3-ubyte.gz (")
    assert messages[0].endswith("); using the embedded 10,000-image subset (mnist-mini).")
    assert "no route to host" in messages[0]
    assert len(mirrors.requests) == 2
    assert files_in(mnist_cache_dir()) == []


def test_auto_uses_full_mnist_when_available(tmp_path):
    arrays = fake_mnist(mnist_cache_dir())
    messages = []
    train, test, used = load_dataset("auto", announce=messages.append)
    assert used == "mnist" and messages == []
    check_matches(train, test, arrays)


def test_auto_without_download_falls_back(tmp_path):
    messages = []
    assert load_dataset(download=False, announce=messages.append)[2] == "mnist-mini"
    assert "download=False" in messages[0]


@pytest.mark.parametrize("name", ["auto", "mnist"])
def test_named_folder_never_falls_back(tmp_path, monkeypatch, name):
    messages = []
    with pytest.raises(DataUnavailableError, match="missing"):
        load_dataset(name, tmp_path, announce=messages.append)
    monkeypatch.setenv("NUMVAE_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(DataUnavailableError, match="NUMVAE_DATA_DIR"):
        load_dataset(name, announce=messages.append)
    assert messages == []


def test_explicit_mnist_never_falls_back(tmp_path, monkeypatch):
    serve(monkeypatch, {})
    messages = []
    with pytest.raises(DataUnavailableError, match="could not download"):
        load_dataset("mnist", announce=messages.append)
    assert messages == []


def test_explicit_mnist_with_folder(tmp_path):
    arrays = fake_mnist(tmp_path / "d")
    train, test, used = load_dataset("mnist", tmp_path / "d")
    assert used == "mnist"
    check_matches(train, test, arrays)


def test_other_names():
    train, test, used = load_dataset("toy")
    assert used == "toy" and train.images.shape == (2000, 64) and test.images.shape == (500, 64)
    assert load_dataset("mnist-mini")[2] == "mnist-mini"


@pytest.mark.parametrize("name", ["MNIST", "fashion", "", None, 3])
def test_unknown_name(name):
    with pytest.raises(ValueError, match="name: expected one of auto, mnist, mnist-mini, "
                       "fashion-mnist, digits, toy"):
        load_dataset(name)


def test_data_dir_with_a_name_that_does_not_use_it(tmp_path):
    with pytest.raises(ValueError, match="data_dir: only used with 'auto' or 'mnist'"):
        load_dataset("toy", tmp_path)


# ---------------------------------------------------------------- toy data

def test_make_toy():
    data = make_toy(2000)
    assert data.images.shape == (2000, 64) and data.images.dtype == np.float32
    assert data.labels.shape == (2000,) and data.labels.dtype == np.int64
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert data.images.max(axis=1).min() > 0.6  # a blob is never far from a pixel centre
    counts = np.bincount(data.labels, minlength=4)
    assert counts.sum() == 2000 and counts.min() > 400  # four roughly equal quadrants
    # The brightest pixel lies in the quadrant the label names.
    row, col = np.divmod(data.images.argmax(axis=1), 8)
    np.testing.assert_array_equal(2 * (row >= 4) + (col >= 4), data.labels)


def test_make_toy_seeds_and_sizes():
    np.testing.assert_array_equal(make_toy(50, seed=3).images, make_toy(50, seed=3).images)
    assert not np.array_equal(make_toy(50, seed=3).images, make_toy(50, seed=4).images)
    assert make_toy(10, side=5).images.shape == (10, 25)
    with pytest.raises(ValueError, match="n: expected an integer >= 1, got 0"):
        make_toy(0)
    with pytest.raises(TypeError, match="n: expected an integer, got float"):
        make_toy(2.5)
    with pytest.raises(ValueError, match="side"):
        make_toy(10, side=1)


# ---------------------------------------------------------------- binarize

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binarize_matches_grey_levels(dtype):
    grey = np.linspace(0, 1, 11, dtype=dtype)
    images = np.tile(grey, (20_000, 1))  # (20000, 11)
    binary = binarize(images, np.random.default_rng(0))
    assert binary.dtype == dtype and binary.shape == images.shape
    assert set(np.unique(binary).tolist()) <= {0.0, 1.0}
    np.testing.assert_allclose(binary.mean(axis=0), grey, atol=0.015)
    assert binary[:, 0].max() == 0 and binary[:, -1].min() == 1  # exactly, at 0 and 1


def test_binarize_uses_the_callers_generator():
    images = make_toy(20).images
    a = binarize(images, np.random.default_rng(5))
    np.testing.assert_array_equal(a, binarize(images, np.random.default_rng(5)))
    rng = np.random.default_rng(5)
    assert not np.array_equal(binarize(images, rng), binarize(images, rng))  # fresh draws


@pytest.mark.parametrize("images, rng, error, message", [
    (np.zeros(3), np.random.RandomState(0), TypeError, "rng: expected a numpy Generator"),
    (np.zeros(3), 0, TypeError, r"rng: expected a numpy Generator .*, got int"),
    (np.zeros(3, np.uint8), None, TypeError, "images: expected a float numpy array, got uint8"),
    ([0.5], None, TypeError, "got list"),
    (np.array([0.5, 1.5]), None, ValueError, r"grey levels in \[0, 1\]"),
    (np.array([0.5, np.nan]), None, ValueError, r"grey levels in \[0, 1\]"),
])
def test_binarize_bad_input(images, rng, error, message):
    with pytest.raises(error, match=message):
        binarize(images, np.random.default_rng(0) if rng is None else rng)


# ---------------------------------------------------------------- train_val_split

def numbered(n):
    """A Dataset whose image i holds the number i, to follow images around."""
    return Dataset(np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32),
                   np.arange(n, dtype=np.int64))


@FUZZ
@given(n=st.integers(1, 60), data=st.data())
def test_train_val_split_partitions(n, data):
    n_val = data.draw(st.integers(0, n - 1))
    train, val = train_val_split(numbered(n), n_val, seed=data.draw(st.integers(0, 5)))
    assert len(train.labels) == n - n_val and len(val.labels) == n_val
    assert train.images.shape == (n - n_val, 3) and val.images.shape == (n_val, 3)
    # disjoint, complete
    assert sorted(train.labels.tolist() + val.labels.tolist()) == list(range(n))
    np.testing.assert_array_equal(train.images[:, 0], train.labels)  # images travel with labels
    assert list(val.labels) == sorted(val.labels)  # original order kept


def test_train_val_split_is_seeded():
    a = train_val_split(numbered(100), 20, seed=1)[1].labels
    np.testing.assert_array_equal(a, train_val_split(numbered(100), 20, seed=1)[1].labels)
    assert not np.array_equal(a, train_val_split(numbered(100), 20, seed=2)[1].labels)


@pytest.mark.parametrize("n_val, error, message", [
    (10, ValueError, r"n_val: expected an integer in \[0, 10\) for 10 images, got 10"),
    (-1, ValueError, "n_val: expected an integer >= 0, got -1"),
    (2.0, TypeError, "n_val: expected an integer, got float"),
    (True, TypeError, "n_val: expected an integer, got bool"),
    ("3", TypeError, "n_val: expected an integer, got str"),
])
def test_train_val_split_bad_n_val(n_val, error, message):
    with pytest.raises(error, match=message):
        train_val_split(numbered(10), n_val)


def test_train_val_split_needs_a_dataset():
    with pytest.raises(TypeError, match="data: expected a Dataset, got tuple"):
        train_val_split((np.zeros((4, 2)), np.zeros(4)), 1)
    assert train_val_split(numbered(5), np.int64(2))[1].labels.shape == (2,)


# --- Fashion-MNIST and the embedded digits (issue 27) ----------------------------------------

def test_fashion_mnist_downloads_into_its_own_cache_checked_against_its_hashes(
        tmp_path, monkeypatch):
    arrays = fake_mnist(tmp_path / "server", seed=3)
    files = {name: (tmp_path / "server" / name).read_bytes() for name in MNIST_FILES}
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "not-installed")
    monkeypatch.setattr(datasets, "FASHION_MNIST_SHA256", {
        name: hashlib.sha256(gzip.decompress(data)).hexdigest() for name, data in files.items()})
    first = datasets.FASHION_MNIST_MIRRORS[0]
    mirrors = serve(monkeypatch, {first + name: data for name, data in files.items()})
    check_matches(*datasets.load_fashion_mnist(timeout=5.0), arrays)
    assert [url for url, _ in mirrors.requests] == [first + name for name in MNIST_FILES]
    assert files_in(mnist_cache_dir("fashion-mnist")) == sorted(MNIST_FILES)
    assert not mnist_cache_dir().exists()  # MNIST's cache is not Fashion-MNIST's
    # MNIST's hashes do not vouch for these files: a download for MNIST is refused
    serve(monkeypatch, {m + name: data for m in datasets.MNIST_MIRRORS
                        for name, data in files.items()})
    with pytest.raises(DataUnavailableError, match="SHA-256 of the content"):
        load_mnist()


def test_fashion_mnist_in_a_named_folder_and_by_name(tmp_path, monkeypatch):
    arrays = fake_mnist(tmp_path / "fashion", seed=4)
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "not-installed")
    check_matches(*datasets.load_fashion_mnist(tmp_path / "fashion"), arrays)
    train, test, used = datasets.load_dataset("fashion-mnist", tmp_path / "fashion")
    assert used == "fashion-mnist" and len(train.images) == 50 and len(test.images) == 20
    with pytest.raises(DataUnavailableError, match="expected the Fashion-MNIST files"):
        datasets.load_fashion_mnist(tmp_path / "nowhere")
    with pytest.raises(DataUnavailableError, match="missing .* and download=False"):
        datasets.load_fashion_mnist(download=False)


@pytest.mark.skipif(not all((datasets.FASHION_MNIST_SYSTEM_DIR / name).is_file()
                            for name in MNIST_FILES),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_the_real_fashion_mnist_files_from_debian():
    train, test = datasets.load_fashion_mnist(download=False)
    assert train.images.shape == (60000, 784) and test.images.shape == (10000, 784)
    # 6,000 and 1,000 images of each of the ten classes (Xiao et al. 2017)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert len(datasets.FASHION_MNIST_CLASSES) == 10
    for name in MNIST_FILES:  # the recorded hashes are these files' content
        content = gzip.decompress((datasets.FASHION_MNIST_SYSTEM_DIR / name).read_bytes())
        assert hashlib.sha256(content).hexdigest() == datasets.FASHION_MNIST_SHA256[name]


def test_the_embedded_digits():
    train, test, used = datasets.load_dataset("digits")
    assert used == "digits" and train.images.shape == (1500, 64) and test.images.shape == (297, 64)
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    images = np.concatenate([train.images, test.images])
    pixels = np.round(images * 16)
    np.testing.assert_array_equal(images, pixels / np.float32(16))  # integers 0-16, over 16
    assert pixels.min() == 0 and pixels.max() == 16
    assert np.bincount(np.concatenate([train.labels, test.labels])).tolist() == [
        178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # scikit-learn's class counts
    # the file is scikit-learn's, unchanged (numvae/data/README.md gives the same sum)
    path = Path(datasets.__file__).resolve().parents[1] / "data" / "digits.csv.gz"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == (
        "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22")
    with pytest.raises(ValueError, match="only used with"):
        datasets.load_dataset("digits", "somewhere")
