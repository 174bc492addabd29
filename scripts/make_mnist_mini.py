"""Build numvae/data/mnist-mini-*.gz, the MNIST subset shipped with numvae.

A one-off tool for maintainers, not part of the package: see numvae/data/README.md
for how the subset is drawn. From the repository root, with the four official
MNIST files in ../shared/mnist:

    python scripts/make_mnist_mini.py ../shared/mnist numvae/data
"""
import argparse
import sys
from pathlib import Path

import numpy as np

# Run from a checkout: use the numvae next to this script (the one whose data it
# rebuilds), not whichever numvae happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numvae.io.datasets import MNIST_FILES, DataUnavailableError, read_idx, write_idx  # noqa: E402

PREFIX = "mnist-mini-"


def make_mnist_mini(source_dir, out_dir, n_train=10000, n_test=2000, seed=0):
    """Draw the embedded subset from the official MNIST files in ``source_dir``.

    With one ``rng = np.random.default_rng(seed)``: for each digit 0..9 in turn,
    ``rng.choice(<indices of that digit>, n_train // 10, replace=False)`` in the
    official training set; then the same with ``n_test // 10`` in the official
    test set. The images keep their original order (sorted indices). Writes
    ``out_dir/mnist-mini-<official name>`` (gzip level 9, creating ``out_dir``);
    returns the four paths.
    """
    source, out = Path(source_dir), Path(out_dir)
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 10 or value % 10:
            raise ValueError(f"{name}: expected a positive multiple of 10 "
                             f"(as many of each digit), got {value!r}")
    missing = [name for name in MNIST_FILES if not (source / name).is_file()]
    if missing:
        raise DataUnavailableError(f"source_dir {source}: missing {', '.join(missing)}")
    images, labels, test_images, test_labels = (read_idx(source / name) for name in MNIST_FILES)
    rng = np.random.default_rng(seed)
    train = _stratified_indices(labels, n_train // 10, rng, "training")
    test = _stratified_indices(test_labels, n_test // 10, rng, "test")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / (PREFIX + name) for name in MNIST_FILES]
    for path, array in zip(paths,
                           (images[train], labels[train], test_images[test], test_labels[test])):
        write_idx(path, array)
    return paths


def _stratified_indices(labels, per_digit, rng, which):
    """Sorted indices of ``per_digit`` images of each digit, drawn without replacement."""
    chosen = []
    for digit in range(10):
        candidates = np.flatnonzero(labels == digit)
        if len(candidates) < per_digit:
            raise ValueError(f"the {which} set has {len(candidates)} images of digit {digit}, "
                             f"fewer than the {per_digit} requested")
        chosen.append(rng.choice(candidates, size=per_digit, replace=False))
    return np.sort(np.concatenate(chosen))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build the MNIST subset shipped with numvae.")
    parser.add_argument("source_dir", help="folder holding the four official MNIST .gz files")
    parser.add_argument("out_dir", help="where to write mnist-mini-*.gz (numvae/data)")
    parser.add_argument("--n-train", type=int, default=10000,
                        help="training images (default 10000)")
    parser.add_argument("--n-test", type=int, default=2000, help="test images (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the one generator (default 0)")
    args = parser.parse_args(argv)
    try:
        paths = make_mnist_mini(args.source_dir, args.out_dir, args.n_train, args.n_test, args.seed)
    except (OSError, ValueError, DataUnavailableError) as err:
        parser.exit(1, f"make_mnist_mini: error: {err}\n")
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
