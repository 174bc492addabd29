"""Read .npz files without trusting them: bounded memory, no unpickling, one error class.

A .npz file (what ``np.savez`` writes) is a zip archive with one ``<name>.npy``
member per array. ``np.load`` trusts it: it inflates whatever a member holds, and
believes the shape its header declares. A file that is damaged, or made to harm
(a small member that inflates to gigabytes, a header declaring 10**12 items, a
pickled object, a named pipe in place of a file), should instead give one clear
error naming the file and the member. ``read_npz`` therefore

1. opens only a regular file (see ``numvae.io.files.open_regular``), of bounded size;
2. reads the zip directory, then only the members the caller expects: others are
   named in the error (or ignored), never inflated;
3. parses each member's .npy header itself and checks the dtype (no objects, so
   nothing is ever unpickled), the shape and the size it declares against the
   caller's expectations and byte budget BEFORE reading any data;
4. then reads exactly the declared bytes, and checks that nothing more follows.

The .npy format: the magic ``\\x93NUMPY``, a version byte pair (1.0, 2.0 or 3.0),
the header length (uint16 for 1.0, uint32 after), then a Python dict literal such
as ``{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }``, then the items.
"""
import ast
import contextlib
import math
import os
import re
import struct
import warnings
import zipfile
import zlib
from typing import NamedTuple, Optional

import numpy as np

from numvae.io.files import NotRegularFileError, as_path, open_regular

__all__ = ["Member", "NpzError", "NpzReader", "read_npz"]

# the file may exceed the data budget by this much (zip and .npy headers)
_ZIP_OVERHEAD = 2**20
_MAX_MEMBERS = 10_000        # entries in the zip directory ...
_MAX_DIRECTORY = 2**20       # ... and its bytes (a checkpoint's takes a few kB)
_MAX_HEADER = 10_000         # bytes of a .npy header dict (numpy's own limit)
_MAX_NDIM = 8
_CHUNK = 2**20               # data is read (and inflated) at most this much at a time
# plain dtypes only: '<f8', '|b1', '<U40', '|O'; the item size may be large (a long run's
# history is a string of millions of characters): the member's bytes are checked against
# the reader's limit before anything is read
_DESCR = re.compile(r"[<>|=]?[A-Za-z]\d{0,10}")
# Everything a damaged file can make the standard library or numpy raise:
_LOW_LEVEL = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
              EOFError, OSError, KeyError, ValueError, TypeError, OverflowError, struct.error,
              zlib.error)


class NpzError(ValueError):
    """A .npz file cannot be read, is damaged, or does not hold what was expected."""


class Member(NamedTuple):
    """What one array of a .npz file must be.

    ``kinds``: the allowed dtype kinds, numpy's one-letter codes ("f" float, "i" signed
    and "u" unsigned integer, "b" bool, "U" string), e.g. "iu"; ``shape``: the exact
    shape, or None for any; ``required``: whether a file without it is an error.
    """
    kinds: str
    shape: Optional[tuple] = None
    required: bool = True


class _Bad(Exception):
    """Internal: what is wrong, turned into the caller's error class at the boundary."""


def read_npz(path, expected, *, max_total_bytes, max_member_bytes=None, unexpected="error",
             error=NpzError):
    """Read the arrays named in ``expected`` from the .npz file ``path``, checking each.

    ``expected``: array name (as given to ``np.savez``, without ``.npy``) -> ``Member``
    (or a tuple ``(kinds, shape, required)``). ``max_total_bytes``: the most data bytes
    all arrays read may declare together (the file may be 1 MiB larger);
    ``max_member_bytes``: the most one array may declare (default: the total).
    ``unexpected``: "error" or "ignore" for members not in ``expected``, which are
    never inflated. ``error``: called with a one-line message to make the exception
    raised, e.g. ``CheckpointError``; by default ``NpzError`` (a ValueError).

    Returns a dict name -> array for each expected member present: writable, of the
    declared dtype (one of the allowed kinds) and shape. Raises ``error(message)``
    for every way the file can be bad, naming the file and, where it applies, the member.
    """
    specs = _check_expected(expected)
    with NpzReader(path, max_total_bytes=max_total_bytes, max_member_bytes=max_member_bytes,
                   error=error) as npz:
        npz.check_names(specs, unexpected)
        return {name: npz.read(name, spec) for name, spec in specs.items() if name in npz.names}


class NpzReader:
    """An open .npz file, its arrays read one at a time, each checked as by ``read_npz``.

    For files whose expected content depends on what they hold: a checkpoint's
    parameter shapes follow from the configuration stored in it. Every array comes
    from the one open file, hence from one version of it::

        with NpzReader(path, max_total_bytes=2**28, error=CheckpointError) as npz:
            config = json.loads(str(npz.read("config", Member("U", ()))))
            npz.check_names({...every member the configuration implies...})
            weights = npz.read("param/encoder.mean.W", Member("f", (256, 2)))

    ``max_total_bytes``, ``max_member_bytes`` and ``error`` are as for ``read_npz``;
    the budget counts every array read. ``names``: the arrays in the file, from the
    zip directory alone (nothing is inflated to list them).
    """

    def __init__(self, path, *, max_total_bytes, max_member_bytes=None, error=NpzError):
        self.path, self.error = as_path(path, "path"), error
        self.left = _check_bytes(max_total_bytes, "max_total_bytes")
        self.max_member_bytes = _check_bytes(
            max_total_bytes if max_member_bytes is None else max_member_bytes, "max_member_bytes")
        self._file = self._archive = None
        with self._reporting():
            self._file = _open_regular(self.path, max_total_bytes + _ZIP_OVERHEAD)
            try:
                self._archive = _zip(self._file)
                self._entries, self._others = _entries(self._archive)
            except BaseException:
                self.close()
                raise
        self.names = list(self._entries)

    def check_names(self, expected, unexpected="error"):
        """Raise ``error`` if a required member of ``expected`` (as for ``read_npz``) is
        missing, or, with ``unexpected="error"``, if the file holds one not in it."""
        specs = _check_expected(expected)
        if unexpected not in ("error", "ignore"):
            raise ValueError(f"unexpected: expected 'error' or 'ignore', got {unexpected!r}")
        missing = [name for name, spec in specs.items()
                   if spec.required and name not in self._entries]
        extra = [name for name in self._entries if name not in specs] + self._others
        with self._reporting():
            if missing:
                raise _Bad(f"has no member {_listing(missing)}")
            if extra and unexpected == "error":
                raise _Bad(f"has unexpected member{'s' * (len(extra) > 1)} {_listing(extra)}")

    def read(self, name, member):
        """The array ``name``, checked against ``member`` (a Member or a tuple) before its data
        is read; its declared bytes count against the budget. ``error`` if it is absent."""
        spec = _check_expected({name: member})[name]
        with self._reporting():
            if name not in self._entries:
                raise _Bad(f"has no member {_short(name)}")
            limit = min(self.left, self.max_member_bytes)
            array = _read_member(self._archive, self._entries[name], spec, limit)
        self.left -= array.nbytes
        return array

    def close(self):
        """Close the file (also done on leaving a ``with`` block)."""
        if self._archive is not None:
            self._archive.close()
        if self._file is not None:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @contextlib.contextmanager
    def _reporting(self):
        """Turn a _Bad into the caller's error, naming the file."""
        try:
            yield
        except _Bad as bad:
            raise self.error(f"{self.path}: {bad}") from None


def _check_bytes(value, name):
    """``value`` if it is a number of bytes; a TypeError or ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a number of bytes (int), got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: expected a number of bytes >= 0, got {value}")
    return value


def _check_expected(expected):
    """``expected`` as a dict name -> Member; a TypeError or ValueError naming the entry otherwise."""
    if not isinstance(expected, dict):
        raise TypeError(f"expected: expected a dict name -> Member, got {type(expected).__name__}")
    specs = {}
    for name, spec in expected.items():
        spec = Member(*spec) if isinstance(spec, tuple) and not isinstance(spec, Member) else spec
        if not isinstance(name, str) or not isinstance(spec, Member):
            raise TypeError(f"expected: entry {name!r} must map a str to a Member, got {spec!r}")
        if not isinstance(spec.kinds, str) or not spec.kinds.isalpha() or "O" in spec.kinds:
            raise ValueError(f"expected[{name!r}].kinds: expected dtype kind letters such as 'f' "
                             f"or 'iu' (never 'O'), got {spec.kinds!r}")
        if spec.shape is not None and not (isinstance(spec.shape, tuple)
                                           and all(isinstance(d, int) for d in spec.shape)):
            raise TypeError(f"expected[{name!r}].shape: expected a tuple of ints or None, got {spec.shape!r}")
        specs[name] = spec
    return specs


def _open_regular(path, max_file_bytes):
    """``open_regular(path)``, then refuse a file larger than ``max_file_bytes``."""
    try:
        file = open_regular(path)
    except FileNotFoundError:
        raise _Bad("does not exist") from None
    except NotRegularFileError as err:
        raise _Bad(f"is {err.kind}, expected a .npz file") from None
    except OSError as err:
        raise _Bad(f"cannot be opened ({err.strerror or err})") from None
    size = os.fstat(file.fileno()).st_size
    if size > max_file_bytes:
        file.close()
        raise _Bad(f"is {size:,} bytes, more than the {max_file_bytes:,} allowed")
    return file


def _zip(file):
    """``file`` as a ZipFile (which leaves closing ``file`` to the caller); _Bad if not a zip."""
    try:
        _check_end_record(file)
        return zipfile.ZipFile(file)
    except _LOW_LEVEL as err:
        raise _Bad(f"is not a .npz (zip) archive, or its directory is damaged ({_reason(err)})") from None


def _check_end_record(file):
    """Refuse a zip directory too large to parse, judged from the archive's end record alone.

    zipfile parses the whole directory into objects ten times its size; a small
    archive of many tiny entries would take much memory. (The file size bounds the
    directory too; this check is cheaper and stricter.)
    """
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - 22 - 65535))  # the end record: 22 bytes and a comment of up to 64 KiB
    tail = file.read()
    file.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return  # not a zip archive: zipfile says so
    if tail[max(0, at - 20):at - 16] == b"PK\x06\x07":
        raise _Bad("is a zip64 archive (over 65,535 members or 4 GiB), more than numvae reads")
    directory_size = struct.unpack("<I", tail[at + 12:at + 16])[0]
    if directory_size > _MAX_DIRECTORY:
        raise _Bad(f"has a {directory_size:,}-byte zip directory, more than the {_MAX_DIRECTORY:,} allowed")


def _infolist(archive):
    """The entries of the zip directory, at most ``_MAX_MEMBERS`` of them."""
    infos = archive.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise _Bad(f"has {len(infos):,} members, more than the {_MAX_MEMBERS:,} allowed")
    return infos


def _key(filename):
    """The array name of zip member ``filename`` ("a/b.npy" -> "a/b"), or None if not an array."""
    return filename[:-4] if filename.endswith(".npy") else None


def _entries(archive):
    """({array name: zip entry}, [names of the other entries]), checking names only."""
    entries, others = {}, []
    for info in _infolist(archive):
        name = _key(info.filename)
        if name in entries:  # two entries, one name: which one np.load would read is unclear
            raise _Bad(f"member {_short(name)} appears twice")
        if name is None:
            others.append(info.filename)
        else:
            entries[name] = info
    return entries, others


def _read_member(archive, info, spec, limit):
    """The array in zip entry ``info``, checked against ``spec``; at most ``limit`` data bytes."""
    name = _short(_key(info.filename))
    if info.flag_bits & 0x1:
        raise _Bad(f"member {name} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # bzip2 and lzma inflate without an output bound in zipfile; numpy never writes them
        raise _Bad(f"member {name} uses zip compression method {info.compress_type}, "
                   f"expected stored (0) or deflated (8)")
    try:
        with archive.open(info) as stream:
            dtype, shape, fortran = _read_npy_header(stream)
            _check_declared(dtype, shape, spec, limit)
            data = _read_exact(stream, math.prod(shape) * dtype.itemsize)
    except _Bad as bad:
        raise _Bad(f"member {name} {bad}") from None
    except _LOW_LEVEL as err:
        raise _Bad(f"member {name} is damaged ({_reason(err)})") from None
    array = np.frombuffer(data, dtype=dtype)  # a bytearray: the array is writable
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _read_npy_header(stream):
    """(dtype, shape, fortran_order) from the .npy header at the start of ``stream``."""
    start = stream.read(8)
    if start[:6] != b"\x93NUMPY":
        raise _Bad("is not a .npy array (it does not start with \\x93NUMPY)")
    if len(start) < 8 or (start[6], start[7]) not in ((1, 0), (2, 0), (3, 0)):
        raise _Bad(f"has .npy format version {'.'.join(map(str, start[6:8]))}, expected 1.0, 2.0 or 3.0")
    size_format = "<H" if start[6] == 1 else "<I"
    length = struct.unpack(size_format, _read_exact_bytes(stream, struct.calcsize(size_format)))[0]
    if length > _MAX_HEADER:
        raise _Bad(f"declares a {length:,}-byte .npy header, more than the {_MAX_HEADER:,} allowed")
    text = _read_exact_bytes(stream, length).decode("utf-8" if start[6] == 3 else "latin-1")
    try:
        header = ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as err:
        raise _Bad(f"has a malformed .npy header ({type(err).__name__})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise _Bad("has a .npy header that is not a dict of descr, fortran_order and shape")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str) or not _DESCR.fullmatch(descr):
        raise _Bad(f"has dtype {_short(descr)}, expected a plain dtype such as '<f8'")
    if not isinstance(fortran, bool):
        raise _Bad(f"has fortran_order {_short(fortran)}, expected True or False")
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_NDIM and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise _Bad(f"has shape {_short(shape)}, expected a tuple of at most {_MAX_NDIM} sizes >= 0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deprecated alias is refused, not warned about
        try:
            return np.dtype(descr), shape, fortran
        except (TypeError, ValueError, Warning):
            raise _Bad(f"has an unknown dtype {_short(descr)}") from None


def _check_declared(dtype, shape, spec, limit):
    """Check a member's declared dtype, shape and size before reading any of its data."""
    if dtype.hasobject:
        raise _Bad("holds pickled Python objects; numvae never unpickles (it could run code)")
    if dtype.kind not in spec.kinds:
        raise _Bad(f"has dtype {dtype.str} (kind '{dtype.kind}'), expected kind {' or '.join(spec.kinds)}")
    if spec.shape is not None and shape != spec.shape:
        raise _Bad(f"has shape {_short(shape)}, expected {spec.shape}")
    if dtype.itemsize == 0:
        raise _Bad(f"has the empty dtype {dtype.str}")
    size = math.prod(shape) * dtype.itemsize
    if size > limit:
        raise _Bad(f"declares {_short(shape)} items of {dtype.str}, {size:.3g} bytes, "
                   f"more than the {limit:,} allowed")


def _read_exact(stream, size):
    """Exactly ``size`` bytes of ``stream`` as a bytearray, then check that it ends there.

    Reading in chunks inflates at most ``_CHUNK`` bytes beyond what was declared."""
    data, done = bytearray(size), 0
    view = memoryview(data)
    while done < size:
        chunk = stream.read(min(_CHUNK, size - done))
        if not chunk:
            raise _Bad(f"holds {done:,} of the {size:,} data bytes its header declares (truncated)")
        view[done:done + len(chunk)] = chunk
        done += len(chunk)
    if stream.read(1):
        raise _Bad(f"holds more than the {size:,} data bytes its header declares")
    return data


def _read_exact_bytes(stream, size):
    """``size`` bytes of a .npy header from ``stream``; _Bad if it ends first."""
    data = stream.read(size)
    if len(data) < size:
        raise _Bad("has a truncated .npy header")
    return data


def _short(value, width=40):
    """``repr(value)``, cut to ``width`` characters: names and values from a file can be anything."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _listing(names, most=5):
    """The first ``most`` of ``names``, shortened, and how many more: messages stay one short line."""
    shown = ", ".join(_short(name) for name in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _reason(err):
    """A library's exception as a short one-line reason."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 80 else text[:77] + "..."
