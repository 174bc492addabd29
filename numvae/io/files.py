"""Files: written atomically (a reader sees the old file or the new one, never half),
read only if they are regular files (``open_regular``).

Writing straight onto a file and failing half way (a crash, a full disk,
Ctrl-C) leaves a truncated file that still looks valid by its name. Instead we
write a temporary file in the same folder, flush it to disk, and rename it over
the target. ``os.replace`` is atomic when both names are on the same file
system, which is why the temporary file sits next to the target and not in /tmp.

A process killed outright (``kill -9``, a power cut) cannot delete its temporary
file. Each name therefore carries the writer's process id, ``.<name>.<pid>.<random>.tmp``,
and the next save of the same file removes those whose process no longer runs.
"""
from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_bytes", "as_path", "open_regular", "NotRegularFileError",
           "remove_stale_temporaries", "process_running", "remove_dead_temporaries"]

# the name of every temporary file atomic_write makes: .<name>.<pid>.<12 hex digits>.tmp
TEMPORARY = re.compile(r"\.(.+)\.(\d+)\.[0-9a-f]{12}\.tmp")


class NotRegularFileError(OSError):
    """A path to read names a folder, a named pipe, a device...: ``kind`` says which."""

    def __init__(self, path, kind):
        super().__init__(f"{path} is {kind}, expected a file")
        self.kind = kind


def as_path(value: str | os.PathLike, name: str) -> Path:
    """``value`` as a Path; a TypeError naming the argument ``name`` otherwise."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a path (str or os.PathLike), got {type(value).__name__}")
    return Path(value)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for writing in binary mode, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace. Its folder must exist.

    Yields
    ------
    file : binary file object
        A temporary file ``.<name>.<pid>.<random>.tmp`` in the same folder. On normal
        exit it is flushed, fsynced and renamed onto ``path``. If the body raises
        anything (even KeyboardInterrupt) it is deleted and ``path`` is left as
        it was. Before it is created, temporary files of ``path`` left by processes
        that no longer run are deleted (see ``remove_stale_temporaries``).

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
    remove_stale_temporaries(path)
    temp = folder / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    fd = _create(temp, path)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(temp, path)
    except BaseException as err:
        # Anything at all, even Ctrl-C: drop our temporary file, keep the old target.
        with contextlib.suppress(OSError):
            os.remove(temp)
        if isinstance(err, OSError) and str(path) not in str(err):
            raise naming_target(err, path) from err  # a full disk: say which file
        raise


def naming_target(err, path):
    """The OSError ``err`` (of its class where it can be rebuilt) with a message that names
    the file being written, ``path``, and says that its previous version is kept."""
    message = (f"cannot write {path}: {err.strerror or err}; "
               f"{'its previous version is kept' if Path(path).exists() else 'nothing written'}")
    try:
        named = type(err)(message)
    except TypeError:  # a subclass whose constructor takes other arguments
        named = OSError(message)
    named.errno = err.errno
    return named


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Delete the temporary files of ``path`` whose writing process no longer runs.

    Only names ``.<name>.<pid>.<12 hex digits>.tmp`` for this very ``path`` are
    considered, and only if process ``pid`` does not exist: files of running
    processes (a save in progress) and every other file are left alone; a process id
    since reused by a new process keeps its file until that one ends. Returns the
    names removed. Does nothing on Windows, where there is no harmless way to ask
    whether a process exists (``os.kill(pid, 0)`` would stop it).
    """
    path = Path(path)
    if sys.platform == "win32":
        return []
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[0-9a-f]{12}\.tmp")
    removed = []
    # unreadable: the save says so
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if (match and entry.is_file(follow_symlinks=False)
                    and not process_running(int(match.group(1)))):
                with contextlib.suppress(OSError):  # e.g. another save removed it first
                    os.remove(entry.path)
                    removed.append(entry.name)
    return removed


def remove_dead_temporaries(folder):
    """Delete every temporary file of ``atomic_write`` in ``folder`` (whatever its target)
    whose writing process no longer runs; returns the names removed. What a run killed
    during a save leaves behind, and nothing else."""
    if sys.platform == "win32":
        return []
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = TEMPORARY.fullmatch(entry.name)
            if (match and entry.is_file(follow_symlinks=False)
                    and not process_running(int(match.group(2)))):
                with contextlib.suppress(OSError):
                    os.remove(entry.path)
                    removed.append(entry.name)
    return removed


def process_running(pid):
    """Whether process ``pid`` exists; when in doubt, yes (so that its file is kept)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):  # PermissionError: it exists, run by another user
        return True
    return True


def _create(temp, path):
    """Create the new file ``temp``, next to ``path``, and return its descriptor."""
    # O_EXCL: never reuse an existing file. Mode 0o666 is reduced by the umask,
    # so the final file gets the same permissions as one made by open().
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        return os.open(temp, flags, 0o666)
    except PermissionError as err:
        raise PermissionError(f"cannot write {path}: folder {path.parent} is not writable "
                              f"(permission denied)") from err


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for reading in binary mode, if it is a regular file.

    Opening a named pipe waits for a writer, maybe forever, and a device may never
    end, so anything but a regular file is refused from ``os.stat`` alone, with a
    NotRegularFileError; FileNotFoundError if nothing is there. ``O_NONBLOCK``
    keeps the open from waiting should the path be swapped between stat and
    open, and ``fstat`` then checks what was actually opened.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(path, _file_kind(mode))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    file = os.fdopen(fd, "rb")
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        file.close()
        raise NotRegularFileError(path, _file_kind(mode))
    return file


def _file_kind(mode):
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def atomic_write_bytes(path: str | os.PathLike, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` (bytes) to ``path`` atomically; see ``atomic_write``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data: expected bytes, got {type(data).__name__}")
    with atomic_write(path) as file:
        file.write(data)
