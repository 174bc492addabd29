"""What ``pip install .`` installs: the licence, ``py.typed``, the data, the stubs, the command.

The wheel is built from a copy of the sources in a temporary folder (so that the checkout
gains no ``build/`` or ``.egg-info``), without build isolation: no network, about 2 s.
"""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import numvae

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} cannot read PEP 639's license fields")
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "numvae", source / "numvae",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation",
                           "--no-index", "-q", "-w", str(out), str(source)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = out.glob("numvae-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield {name: archive.read(name) for name in archive.namelist()}


def test_the_wheel_holds_the_licence_and_py_typed(wheel):
    info = f"numvae-{numvae.__version__}.dist-info"
    assert wheel[f"{info}/licenses/LICENSE"] == (ROOT / "LICENSE").read_bytes()
    assert wheel[f"{info}/licenses/LICENSE"].startswith(b"MIT License")
    assert "numvae/py.typed" in wheel


def test_the_version_has_one_source(wheel):
    metadata = wheel[f"numvae-{numvae.__version__}.dist-info/METADATA"].decode()
    assert f"\nVersion: {numvae.__version__}\n" in metadata
    assert "\nLicense-Expression: MIT\n" in metadata
    assert "Requires-Dist: numpy" in metadata and "Requires-Dist: matplotlib" in metadata
    # no other run-time dependency: extras only
    required = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert all("extra ==" in line for line in required if "numpy" not in line
               and "matplotlib" not in line), required


def test_the_wheel_ships_the_data_the_stubs_and_the_command(wheel):
    for path in (ROOT / "numvae" / "data").iterdir():
        if path.is_file():
            assert f"numvae/data/{path.name}" in wheel, path.name
    stubs = sorted((ROOT / "numvae" / "exercises" / "stubs").glob("*.py"))
    assert stubs and all(f"numvae/exercises/stubs/{p.name}" in wheel for p in stubs)
    entry_points = wheel[f"numvae-{numvae.__version__}.dist-info/entry_points.txt"].decode()
    assert "numvae = numvae.commands.entry:main" in entry_points


def test_the_wheel_ships_the_explorer_page(wheel):
    static = sorted((ROOT / "numvae" / "explorer" / "static").iterdir())
    assert len(static) >= 5 and all(f"numvae/explorer/static/{p.name}" in wheel for p in static)
