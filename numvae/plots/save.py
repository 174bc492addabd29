"""Saving a figure: a PNG, written atomically, at one resolution for every figure."""
import os

from numvae.io.files import atomic_write

DPI = 120


def save(fig, path):
    """Save ``fig`` as a PNG at ``path`` when one is given; return the figure."""
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be None, a str or a path-like object; got {path!r}")
        with atomic_write(path) as file:  # an interrupted save keeps the previous picture
            fig.savefig(file, dpi=DPI, format="png")  # format fixed: a PNG whatever the suffix
    return fig
