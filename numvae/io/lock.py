"""One run per folder: a training run holds a lock file in its output folder.

Two runs writing into one folder would mix their checkpoints, histories and figures. So a
run creates ``.numvae.lock`` in the folder exclusively (``O_EXCL``) and writes its process
id, host name and start time into it; a second run finds it and is refused. The holder
also keeps an ``flock`` on the file, which the kernel drops the instant the process dies
(even by ``kill -9``): a lock file nobody holds is a dead run's, and the next run takes it
over, with a line saying so. On exit the run deletes the file.
"""
import contextlib
import os
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; the process id alone tells a dead run
    fcntl = None

from numvae.io.files import process_running

LOCK_NAME = ".numvae.lock"


class FolderBusyError(OSError):
    """The folder is another run's: the message names it, the lock file and its holder."""


def _flock(fd):
    """Whether this process now holds the flock of ``fd`` (always, without fcntl)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _holder(fd):
    """(pid, host, started) written in the lock file, or None if it holds no such line."""
    os.lseek(fd, 0, os.SEEK_SET)
    fields = os.read(fd, 1000).decode("utf-8", "replace").split()
    if len(fields) < 3 or not fields[0].isdigit():
        return None
    return int(fields[0]), fields[1], " ".join(fields[2:])


def _describe(holder):
    if holder is None:
        return "another numvae run"
    pid, host, started = holder
    return f"numvae run {pid} on {host} (started {started})"


class RunLock:
    """The lock of a run on ``folder``; ``release()`` (or leaving a ``with``) deletes it."""

    def __init__(self, path, fd):
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, folder, announce=None):
        """Take the lock of ``folder`` (which must exist), or raise FolderBusyError."""
        announce = announce or (lambda line: print(line, file=sys.stderr))
        path = Path(folder) / LOCK_NAME
        for _ in range(100):  # another run may create or delete the file meanwhile
            try:
                fd, created = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                try:
                    fd, created = os.open(path, os.O_RDWR), False
                except FileNotFoundError:
                    continue
            lock = cls._hold(path, fd, created, announce)
            if lock is not None:
                return lock
        raise FolderBusyError(f"cannot take the lock {path}: other runs keep changing it")

    @classmethod
    def _hold(cls, path, fd, created, announce):
        """The lock on the open file ``fd``, None to try again, or FolderBusyError."""
        holder = None if created else _holder(fd)
        if not _flock(fd):
            os.close(fd)
            raise FolderBusyError(f"{path.parent} is in use by {_describe(holder)}; "
                                  f"lock file {path}")
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:  # its holder deleted it as we opened it
            same = False
        if not same:
            os.close(fd)
            return None
        if holder is not None:
            pid, host, started = holder
            if host != socket.gethostname() or (fcntl is None and process_running(pid)):
                os.close(fd)  # a run on another machine: whether it is alive cannot be told
                raise FolderBusyError(f"{path.parent} is in use by {_describe(holder)}; if "
                                      f"that run is over, delete {path}")
            announce(f"numvae: {path.parent}: taking over the lock of run {pid} (started "
                     f"{started}), which no longer runs")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {started}\n".encode())
        os.fsync(fd)
        return cls(path, fd)

    def release(self):
        """Delete the lock file, then let go of it (once; later calls do nothing)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(self.fd), os.stat(self.path)):
                os.remove(self.path)
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
