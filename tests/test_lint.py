"""``ruff check`` (configured in pyproject.toml) is clean over the code; skips without ruff."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ["numvae", "tests", "tutorials", "benchmarks", "experiments", "scripts"]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_ruff_finds_nothing():
    done = subprocess.run(["ruff", "check", "--no-cache", "--output-format", "concise",
                           *[f for f in FOLDERS if (ROOT / f).is_dir()]],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (
        f"{done.stdout}{done.stderr}\nfix with: ruff check --fix {' '.join(FOLDERS)} "
        f"(then the rest by hand)")
