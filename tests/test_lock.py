"""numvae.io.lock: one run per folder. Two real ``numvae train`` processes on one --out (the
second is refused in one line), a dead run's lock taken over with a line saying so, another
host's lock refused, and a folder holding only a dead run's temporary files counted empty."""
import os
import signal
import socket
import subprocess
import sys

import pytest

from numvae.io.lock import LOCK_NAME, FolderBusyError, RunLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = ["--dataset", "toy", "--shared-dim", "16", "--batch-size", "64", "--no-plots",
       "--no-progress"]
ENV = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1")


def numvae(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "numvae", *argv], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=120)


def dead_pid():
    """The id of a process that has ended (and, for the test's few seconds, not reused)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def error_lines(result):
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if "error" in line]


def test_a_second_run_into_a_running_runs_folder_is_refused_in_one_line(tmp_path):
    first = subprocess.Popen([sys.executable, "-m", "numvae", "train", *TOY, "--epochs",
                              "100000", "--out", "run"], cwd=tmp_path, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first.stdout.readline()  # "numvae: training ...": it holds the lock by now
        before = (tmp_path / "run" / LOCK_NAME).read_text()
        assert before.split()[:2] == [str(first.pid), socket.gethostname()]
        second = numvae("train", *TOY, "--epochs", "1", "--seed", "3", "--out", "run",
                        "--overwrite", cwd=tmp_path)
        lines = error_lines(second)
        assert second.returncode == 1 and len(lines) == 1, second.stderr
        assert f"numvae run {first.pid} on {socket.gethostname()}" in lines[0]
        assert LOCK_NAME in lines[0]
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert not (tmp_path / "run" / LOCK_NAME).exists()  # released on exit
    assert not (tmp_path / "run" / "metrics.json").exists()  # the second run wrote nothing


def test_a_dead_runs_lock_is_taken_over_with_a_line(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    pid = dead_pid()
    (folder / LOCK_NAME).write_text(f"{pid} {socket.gethostname()} 2026-12-07T10:00:00\n")
    result = numvae("train", *TOY, "--epochs", "1", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"taking over the lock of run {pid}" in result.stderr
    assert (folder / "checkpoint.npz").exists() and not (folder / LOCK_NAME).exists()


def test_another_hosts_lock_is_refused_naming_the_host(tmp_path):
    (tmp_path / LOCK_NAME).write_text("4242 elsewhere.example 2026-12-07T10:00:00\n")
    with pytest.raises(FolderBusyError, match="run 4242 on elsewhere.example.*delete"):
        RunLock.acquire(tmp_path)
    assert (tmp_path / LOCK_NAME).exists()  # left for its owner


def test_one_lock_per_folder_within_a_process_too_and_released_once(tmp_path):
    with RunLock.acquire(tmp_path) as lock:
        with pytest.raises(FolderBusyError, match=f"numvae run {os.getpid()}"):
            RunLock.acquire(tmp_path, announce=pytest.fail)
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()
    lock.release()  # a second release does nothing
    RunLock.acquire(tmp_path, announce=pytest.fail).release()  # free again, nothing taken over


def test_a_folder_holding_only_a_dead_runs_temporaries_counts_as_empty(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    # what a run killed during its first save leaves: its lock and a temporary checkpoint
    pid = dead_pid()
    temporary = folder / f".checkpoint.npz.{pid}.0123456789ab.tmp"
    temporary.write_bytes(b"half a checkpoint")
    (folder / LOCK_NAME).write_text(f"{pid} {socket.gethostname()} 2026-12-07T10:00:00\n")
    resume = numvae("train", "--resume", "run/checkpoint.npz", cwd=tmp_path)
    assert resume.returncode == 1 and "does not exist" in resume.stderr, resume.stderr
    result = numvae("train", *TOY, "--epochs", "1", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not temporary.exists() and (folder / "checkpoint.npz").exists()


def test_a_folder_without_a_checkpoint_is_refused_without_suggesting_resume(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for index in range(50):
        (folder / f"notes-{index:02d}.txt").write_text("mine")
    result = numvae("train", *TOY, "--epochs", "1", "--out", "run", cwd=tmp_path)
    lines = error_lines(result)
    assert result.returncode == 1 and len(lines) == 1
    assert "notes-00.txt, notes-01.txt, notes-02.txt and 47 more" in lines[0]
    assert "--resume" not in lines[0] and "no checkpoint.npz" in lines[0]
    assert not (folder / LOCK_NAME).exists()  # a refused run leaves no lock behind


def test_sigterm_while_the_figures_are_made_releases_the_lock_and_exits_143(tmp_path):
    child = subprocess.Popen([sys.executable, "-m", "numvae", "train", "--dataset", "toy",
                              "--shared-dim", "16", "--epochs", "1", "--no-progress", "--out",
                              "run"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    # the start-up lines, the epoch's line, "test -ELBO ...": the figures come next
    line = "start"  # ("": the run ended)
    while line and not line.startswith("test -ELBO"):
        line = child.stdout.readline()
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143 and err.strip().endswith("numvae: interrupted"), err
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    assert (tmp_path / "run" / "checkpoint.npz").exists()
