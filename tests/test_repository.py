"""What the repository tracks: results (JSON, Markdown, PNG) and code, no file over 1 MB but
the test fixtures (tests/data/), the shipped data and model (numvae/data/) and a long run's
resume state (``<row>/resume/checkpoint.npz``); .gitignore keeps every other checkpoint out.
Skipped where the tree is not a git checkout (an unpacked sdist, say)."""
import fnmatch
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIMIT = 2**20  # 1 MB
ALLOWED = ("tests/data/*", "numvae/data/*", "*/resume/checkpoint.npz")


def git(*args):
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def tracked():
    if shutil.which("git") is None or git("rev-parse", "--is-inside-work-tree").returncode:
        pytest.skip("not a git checkout")
    return git("ls-files", "-z").stdout.split("\0")[:-1]


def oversized(paths, size_of):
    """The paths over LIMIT bytes that no ALLOWED pattern names."""
    return [path for path in paths
            if size_of(path) > LIMIT and not any(fnmatch.fnmatch(path, p) for p in ALLOWED)]


def test_no_tracked_file_is_over_1_mb_but_fixtures_data_and_resume_state(tracked):
    def size_of(path):
        file = REPO / path
        return file.stat().st_size if file.is_file() else 0  # deleted, not yet committed
    big = oversized(tracked, size_of)
    assert not big, f"tracked files over 1 MB (a checkpoint? results are JSON, Markdown, PNG): {big}"


def test_the_size_check_can_fail():
    sizes = {"experiments/iwae_table/results/vae_k1/checkpoint.npz": 5 * LIMIT,
             "experiments/iwae_table/results/vae_k1/resume/checkpoint.npz": 5 * LIMIT,
             "experiments/iwae_table/results/vae_k1/resume/other.npz": 2 * LIMIT,
             "tests/data/pinned_0_1_0.npz": 2 * LIMIT, "numvae/data/model.npz": 2 * LIMIT,
             "docs/figures/small.png": LIMIT}
    assert oversized(sizes, sizes.get) == ["experiments/iwae_table/results/vae_k1/checkpoint.npz",
                                           "experiments/iwae_table/results/vae_k1/resume/other.npz"]


@pytest.mark.parametrize("path, ignored", [
    ("experiments/iwae_table/results/vae_k1/checkpoint.npz", True),
    ("runs/mnist/checkpoint.npz", True),
    ("experiments/some_run/results/model.npz", True),
    ("experiments/iwae_table/results/iwae_k50/.checkpoint.npz.123.0123456789ab.tmp", True),
    ("experiments/iwae_table/results/iwae_k50/resume/checkpoint.npz", False),
    ("tests/data/checkpoint_v1.npz", False),
    ("numvae/data/model.npz", False),
    ("experiments/iwae_table/results/iwae_k50/results.json", False),
])
def test_gitignore_keeps_checkpoints_out(tracked, path, ignored):
    # --no-index: the rules alone, whether or not the path is tracked
    proc = git("check-ignore", "--no-index", "-q", path)
    assert proc.returncode == (0 if ignored else 1), (path, proc.stderr)
