"""IDX files, the format of MNIST: read them without trusting them, write them atomically.

An IDX file is two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, each dimension as a big-endian uint32, then the items in C order.
Files downloaded or found on disk may be truncated, corrupt or hostile (a small
gzip file that inflates to gigabytes), so ``read_idx`` reads the header first and
then only the bytes it promises; every way a file can be bad is an ``IDXError``.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from numvae.io.files import (
    NotRegularFileError,
    as_path,
    atomic_write_bytes,
    open_regular,
)

__all__ = ["IDXError", "read_idx", "read_gzipped_idx", "write_idx"]

# The most items an IDX header may promise: full MNIST's largest file has
# 60000 x 28 x 28 = 47,040,000. This also bounds what a download may inflate to.
_MAX_IDX_ITEMS = 50_000_000
_MAX_IDX_DIMS = 4  # MNIST uses 1 and 3; the format allows 255
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16",
              0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}


class IDXError(ValueError):
    """A file is not a well-formed uint8 IDX file."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzipped or raw, into a uint8 array shaped as its header says.

    An IDX file is two zero bytes, a type code (0x08 = unsigned byte), the number
    of dimensions, each dimension as a big-endian uint32, then the items in C
    order, e.g. (60000, 28, 28). Gzip is recognised by its first two bytes
    (1f 8b), not by the name. Raises IDXError for anything malformed, or for a
    path that is not a regular file; FileNotFoundError if there is nothing there.

    Memory stays bounded whatever the file holds: the header is read first, a
    header promising more than ``_MAX_IDX_ITEMS`` items is refused, then exactly
    the bytes it promises are decompressed, plus one to check that nothing follows.
    """
    path = as_path(path, "path")
    try:
        file = open_regular(path)  # a named pipe would make open() wait forever
    except NotRegularFileError as err:
        raise IDXError(f"{path}: is {err.kind}, expected an IDX file") from None
    with file:
        if file.read(2) != b"\x1f\x8b":
            file.seek(0)
            return _read_idx_stream(file, path, "file")[1]
        file.seek(0)
        return read_gzipped_idx(file, path)[1]


def read_gzipped_idx(file, name):
    """Read the gzip ``file`` (a binary file object) as an IDX file named ``name`` in messages.

    Returns (header bytes, uint8 items array); raises IDXError for a corrupt gzip
    stream or a malformed IDX content, having inflated at most the bytes promised.
    """
    try:
        # GzipFile.read(n) inflates at most n bytes at a time (zlib's max_length),
        # so a "gzip bomb" is never inflated beyond what we ask for.
        with gzip.GzipFile(fileobj=file, mode="rb") as stream:
            return _read_idx_stream(stream, name, "decompressed file")
    except (OSError, EOFError, zlib.error) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise IDXError(f"{name}: corrupt gzip stream ({reason})") from err


def _read_idx_stream(stream, name, what):
    """Read one IDX file from the binary ``stream``: (header bytes, uint8 items array).

    Reads the header, then exactly the number of bytes it implies, then checks that
    the stream ends there; never reads more than ``_MAX_IDX_ITEMS + 1`` item bytes.
    """
    header, dims = _read_idx_header(stream, name, what)
    count, shape = math.prod(dims), " x ".join(str(d) for d in dims)
    if count > _MAX_IDX_ITEMS:
        number = f"{count:,}" if count < 10**15 else f"{count:.1e}"  # short, even for 4 x 2^32
        total = shape if len(dims) == 1 else f"{shape} = {number}"
        raise IDXError(f"{name}: IDX header promises {total} items, more than the "
                       f"{_MAX_IDX_ITEMS:,} numvae reads (full MNIST has 47,040,000)")
    items = np.empty(count, dtype=np.uint8)
    got = stream.readinto(memoryview(items)) if count else 0  # no extra copy of 47 MB
    expected = len(header) + count
    if got < count:
        raise IDXError(f"{name}: {what} is {len(header) + got} bytes, expected {expected} "
                       f"for {shape} uint8 items (truncated?)")
    if stream.read(1):
        raise IDXError(f"{name}: {what} is longer than the {expected} bytes expected "
                       f"for {shape} uint8 items (trailing bytes?)")
    return header, items.reshape(dims)


def _read_idx_header(stream, name, what):
    """(header bytes, dimensions) of the IDX file ``stream`` starts with, after checking them."""
    start = stream.read(4)
    if len(start) < 4:
        size = "empty" if not start else f"{len(start)} bytes, too short"
        raise IDXError(f"{name}: {what} is {size}, expected an IDX file (at least a 4-byte header)")
    if start[0] != 0 or start[1] != 0:
        raise IDXError(f"{name}: not an IDX file: it starts with bytes "
                       f"{start[0]:02x} {start[1]:02x}, expected 00 00")
    type_code, ndim = start[2], start[3]
    if type_code != 0x08:
        kind = _IDX_TYPES.get(type_code, "unknown type")
        raise IDXError(f"{name}: IDX type code is 0x{type_code:02x} ({kind}), "
                       f"expected 0x08 (unsigned byte), the only type supported")
    if not 1 <= ndim <= _MAX_IDX_DIMS:
        raise IDXError(f"{name}: IDX header says {ndim} dimensions, expected 1 to {_MAX_IDX_DIMS}")
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise IDXError(f"{name}: {what} is {4 + len(sizes)} bytes, too short for an IDX header "
                       f"with {ndim} dimensions ({4 + 4 * ndim} bytes) (truncated?)")
    return start + sizes, struct.unpack(f">{ndim}I", sizes)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (uint8, at least 1-D) as an IDX file, atomically;
    gzipped (level 9) if ``path`` ends in .gz."""
    path = as_path(path, "path")
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        got = getattr(array, "dtype", type(array).__name__)
        raise TypeError(f"array: expected a numpy array of dtype uint8, got {got}")
    if array.ndim == 0:
        raise ValueError("array: expected at least 1 dimension, got a 0-d array")
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)  # mtime=0: same array, same bytes
    atomic_write_bytes(path, data)
