"""scikit-learn's 1,797 handwritten digits, 8x8 pixels in 0-16, shipped inside numvae
(``numvae/data/digits.csv.gz``, see numvae/data/README.md): a data set on which a whole
training run takes seconds. ``numvae.io.datasets.load_digits`` splits it."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DIGITS_PATH = Path(__file__).resolve().parents[1] / "data" / "digits.csv.gz"


def read_digits(path: str | os.PathLike = DIGITS_PATH) -> tuple[np.ndarray, np.ndarray]:
    """The file's images and labels: float32 (1797, 64) in [0, 1] (pixels 0-16 divided by
    16) and int64 (1797,) digits 0-9. Raises OSError or ValueError naming the file."""
    with gzip.open(path, "rt", encoding="ascii") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.int64, ndmin=2)
    if (table.shape != (1797, 65) or table.min() < 0 or table[:, :64].max() > 16
            or table[:, 64].max() > 9):
        raise ValueError(f"{path}: expected 1797 rows of 64 pixels in 0-16 and a digit 0-9; "
                         f"got shape {table.shape}")
    return (table[:, :64] / 16.0).astype(np.float32), table[:, 64]
