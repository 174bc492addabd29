"""Write files atomically: a reader sees the old file or the new one, never half.

Writing straight onto a file and failing half way (a crash, a full disk,
Ctrl-C) leaves a truncated file that still looks valid by its name. Instead we
write a temporary file in the same folder, flush it to disk, and rename it over
the target. ``os.replace`` is atomic when both names are on the same file
system, which is why the temporary file sits next to the target and not in /tmp.
"""
import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "as_path"]


def as_path(value, name):
    """``value`` as a Path; a TypeError naming the argument ``name`` otherwise."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a path (str or os.PathLike), got {type(value).__name__}")
    return Path(value)


@contextlib.contextmanager
def atomic_write(path):
    """Open ``path`` for writing in binary mode, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace. Its folder must exist.

    Yields
    ------
    file : binary file object
        A temporary file ``.<name>.<random>.tmp`` in the same folder. On normal
        exit it is flushed, fsynced and renamed onto ``path``. If the body raises
        anything (even KeyboardInterrupt) it is deleted and ``path`` is left as
        it was.

    Raises
    ------
    FileNotFoundError, NotADirectoryError, PermissionError
        If the folder does not exist, is not a folder or is not writable.
    IsADirectoryError
        If ``path`` itself is a folder.
    """
    path = as_path(path, "path")
    folder = path.parent
    if not folder.exists():
        raise FileNotFoundError(f"cannot write {path.name}: folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write {path.name}: {folder} is not a folder")
    if path.is_dir():
        raise IsADirectoryError(f"path: {path} is a folder, expected a file name")
    temp = folder / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = _create(temp, folder)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(temp, path)
    except BaseException:
        # Anything at all, even Ctrl-C: drop our temporary file, keep the old target.
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise


def _create(temp, folder):
    """Create the new file ``temp`` and return its descriptor."""
    # O_EXCL: never reuse an existing file. Mode 0o666 is reduced by the umask,
    # so the final file gets the same permissions as one made by open().
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        return os.open(temp, flags, 0o666)
    except PermissionError as err:
        raise PermissionError(f"cannot write in folder {folder}: permission denied") from err


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically; see ``atomic_write``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data: expected bytes, got {type(data).__name__}")
    with atomic_write(path) as file:
        file.write(data)
