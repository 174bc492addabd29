"""Tests for numvae._io: atomic file writes."""
import os
import sys

import pytest

from numvae._io import atomic_write, atomic_write_bytes


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


def test_permission_error_names_the_folder(tmp_path, monkeypatch):
    # The same check as above, but it also runs as root, who may write anywhere.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError, match=f"cannot write in folder {tmp_path}"):
        atomic_write_bytes(tmp_path / "out.bin", b"data")
    monkeypatch.undo()
    assert leftovers(tmp_path, set()) == []


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
