"""Tests for numvae.io.files: atomic file writes."""
import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import call_on_a_named_pipe
from numvae.io.files import (
    NotRegularFileError,
    atomic_write,
    atomic_write_bytes,
    open_regular,
    remove_stale_temporaries,
)


def leftovers(folder, keep):
    """Files in ``folder`` other than ``keep`` (e.g. forgotten temporary files)."""
    return sorted(name for name in os.listdir(folder) if name not in keep)


def test_creates_file(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_write(target) as file:
        file.write(b"hello ")
        file.write(b"world")
    assert target.read_bytes() == b"hello world"
    assert leftovers(tmp_path, {"out.bin"}) == []


def test_replaces_existing_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old content")
    atomic_write_bytes(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert leftovers(tmp_path, {"out.bin"}) == []


def test_temporary_file_is_hidden_next_to_target(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_write(target) as file:
        file.write(b"partial")
        temps = leftovers(tmp_path, set())
        assert not target.exists()  # nothing visible under the real name yet
    assert len(temps) == 1
    assert temps[0].startswith(".") and temps[0].endswith(".tmp")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_exception_half_way_keeps_previous_file(tmp_path, error):
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    with pytest.raises(error):
        with atomic_write(target) as file:
            file.write(b"half of the new cont")
            raise error("interrupted")
    assert target.read_bytes() == b"previous"
    assert leftovers(tmp_path, {"out.bin"}) == []


def test_exception_without_previous_file_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="boom"):
        with atomic_write(tmp_path / "new.bin") as file:
            file.write(b"x" * 100_000)
            raise ValueError("boom")
    assert leftovers(tmp_path, set()) == []


def test_missing_folder_is_named(tmp_path):
    folder = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        atomic_write_bytes(folder / "out.bin", b"data")
    assert not folder.exists()


def test_folder_that_is_a_file(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="plain"):
        atomic_write_bytes(tmp_path / "plain" / "out.bin", b"data")


def test_target_that_is_a_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(IsADirectoryError, match="sub"):
        atomic_write_bytes(tmp_path / "sub", b"data")
    assert leftovers(tmp_path, {"sub"}) == []


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="needs POSIX permissions that apply (not root)")
def test_read_only_folder_is_named(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="locked"):
            atomic_write_bytes(folder / "out.bin", b"data")
    finally:
        folder.chmod(0o700)


def test_permission_error_names_the_target_and_the_folder(tmp_path, monkeypatch):
    # The same check as above, but it also runs as root, who may write anywhere.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError) as caught:
        atomic_write_bytes(tmp_path / "out.bin", b"data")
    monkeypatch.undo()
    assert str(caught.value) == (f"cannot write {tmp_path / 'out.bin'}: folder {tmp_path} is "
                                 f"not writable (permission denied)")  # not the temporary file
    assert leftovers(tmp_path, set()) == []


class FullDisk:
    """A file whose writes fail as on a full disk (ENOSPC)."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_a_full_disk_names_the_target_and_keeps_its_previous_version(tmp_path):
    target = tmp_path / "checkpoint.npz"
    target.write_bytes(b"the last good checkpoint")
    with pytest.raises(OSError) as caught:
        with atomic_write(target) as file:
            FullDisk(file).write(b"new")
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value) == (f"cannot write {target}: No space left on device; its "
                                 f"previous version is kept")
    assert target.read_bytes() == b"the last good checkpoint"
    assert leftovers(tmp_path, {"checkpoint.npz"}) == []


def test_a_full_disk_in_export_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    pytest.importorskip("safetensors")
    import numvae
    from numvae.commands.cli import main
    from numvae.training.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "m.npz", numvae.VAE(4, 3, 2, seed=0))
    real_fdopen = os.fdopen
    monkeypatch.setattr("numvae.io.files.os.fdopen",
                        lambda *args, **kwargs: FullDisk(real_fdopen(*args, **kwargs)))
    code = main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.safetensors")])
    err = capsys.readouterr().err
    assert code == 1 and err == (f"numvae export: error: cannot write {tmp_path / 'm.safetensors'}: "
                                 f"No space left on device; nothing written\n")
    assert leftovers(tmp_path, {"m.npz"}) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_permissions_follow_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "out.bin", b"data")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o644


def test_bad_arguments():
    with pytest.raises(TypeError, match="data: expected bytes, got str"):
        atomic_write_bytes("x.bin", "text")
    with pytest.raises(TypeError, match="path: expected a path"):
        atomic_write_bytes(42, b"data")


# ---------------------------------------------------------------- temporary files of killed saves

ROOT = Path(__file__).resolve().parents[1]
SAVE_AND_HANG = """
import sys, time
from numvae.io.files import atomic_write
with atomic_write(sys.argv[1]) as file:
    file.write(b"half a save")
    file.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def start_hanging_save(target):
    """A child process half way through saving ``target``, returned once its temporary file exists."""
    child = subprocess.Popen([sys.executable, "-c", SAVE_AND_HANG, str(target)],
                             stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout.readline() == "writing\n"
    return child


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 and os.kill(pid, 0) are POSIX")
def test_next_save_removes_temporaries_of_killed_saves_only(tmp_path):
    target = tmp_path / "c.npz"
    target.write_bytes(b"previous")
    killed, alive = start_hanging_save(target), start_hanging_save(target)
    try:
        killed.send_signal(signal.SIGKILL)  # kill -9: no chance to clean up
        killed.wait(timeout=30)
        temps = leftovers(tmp_path, {"c.npz"})
        assert len(temps) == 2 and all(name.startswith(".c.npz.") for name in temps)
        killed_temp = [name for name in temps if f".{killed.pid}." in name]
        alive_temp = [name for name in temps if f".{alive.pid}." in name]
        assert len(killed_temp) == 1 and len(alive_temp) == 1
        # Look-alikes that must survive: another target's, an old unnamed one, a folder.
        others = [".c.npz.bak", ".c.npz.tmp", f".d.npz.{killed.pid}.0123456789ab.tmp",
                  f".c.npz.{killed.pid}.0123456789ab.tmp.keep",
                  f".c.npz.{killed.pid}.XYZ456789abc.tmp",
                  ".c.npz.0123456789ab.tmp", "c.npz.tmp"]
        for name in others:
            (tmp_path / name).write_bytes(b"not ours")
        (tmp_path / f".c.npz.{killed.pid}.aaaaaaaaaaaa.tmp").mkdir()
        atomic_write_bytes(target, b"new")
        assert target.read_bytes() == b"new"
        assert leftovers(tmp_path, {"c.npz"}) == sorted(
            alive_temp + others + [f".c.npz.{killed.pid}.aaaaaaaaaaaa.tmp"])
    finally:
        alive.kill()
        alive.wait(timeout=30)
        alive.stdout.close()
        killed.stdout.close()


@pytest.mark.skipif(sys.platform == "win32", reason="os.kill(pid, 0) is POSIX")
def test_stale_temporaries_of_a_dead_process_are_removed(tmp_path):
    target = tmp_path / "out.bin"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True,
                          text=True, check=True)
    pid = int(dead.stdout)  # a process that has ended (and, almost surely, whose id is free)
    stale = [f".out.bin.{pid}.{i:012x}.tmp" for i in range(3)]
    for name in stale:
        (tmp_path / name).write_bytes(b"x" * 1000)
    mine = f".out.bin.{os.getpid()}.ffffffffffff.tmp"  # this very process: still running
    (tmp_path / mine).write_bytes(b"in progress")
    assert sorted(remove_stale_temporaries(target)) == stale
    assert remove_stale_temporaries(target) == []
    atomic_write_bytes(target, b"data")
    assert leftovers(tmp_path, {"out.bin"}) == [mine]


# ---------------------------------------------------------------- opening only regular files

def test_open_regular(tmp_path):
    (tmp_path / "file").write_bytes(b"content")
    with open_regular(tmp_path / "file") as file:
        assert file.read() == b"content"
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing")
    with pytest.raises(NotRegularFileError, match="is a folder, expected a file") as info:
        open_regular(tmp_path)
    assert info.value.kind == "a folder" and isinstance(info.value, OSError)
    if os.path.exists("/dev/null"):
        with pytest.raises(NotRegularFileError, match="is a device"):
            open_regular("/dev/null")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_open_regular_refuses_a_named_pipe_without_waiting(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)

    def attempt():
        try:
            open_regular(pipe).close()
        except NotRegularFileError as err:
            return err.kind
    assert call_on_a_named_pipe(attempt, pipe, "open_regular") == "a named pipe"
