"""The tutorials: each runs as a script in --quick mode (``runpy`` with ``sys.argv`` set,
in this process, so that pytest's filterwarnings=error turns any warning into a failure),
says what to expect and writes at least one PNG; the linear VAE of tutorial 11 recovers
probabilistic PCA; and, with the notebooks extra installed, a tutorial converted to a
notebook runs in a Jupyter kernel."""
import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
# tutorials that need optional packages: skipped where one is missing
NEEDS = {"21_graduating_to_pytorch": ("torch", "safetensors")}
# tutorial 21 keeps its story in main(): torch.multiprocessing.spawn re-imports the main
# script in each worker process, which must not run the story again
WITH_MAIN = {"21_graduating_to_pytorch"}


def load(path, monkeypatch):
    """Import a tutorial script by path (its name starts with a digit); its helper
    ``_common`` is found through sys.path, as when the script runs from tutorials/."""
    monkeypatch.syspath_prepend(str(TUTORIALS))
    spec = importlib.util.spec_from_file_location(f"tutorial_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tutorials_are_numbered_in_course_order_without_gaps():
    """No fixed count: new tutorials take the next numbers."""
    assert len(SCRIPTS) >= 12
    assert [path.name[:2] for path in SCRIPTS] == [f"{i:02d}" for i in range(1, len(SCRIPTS) + 1)]


def run_script(script, argv, monkeypatch):
    """Run a tutorial as ``python script *argv`` would, in this process; its globals."""
    monkeypatch.syspath_prepend(str(TUTORIALS))
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    return runpy.run_path(str(script), run_name="__main__")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_tutorial_source_habits(script):
    text = script.read_text()
    assert text.startswith("# %% [markdown]")          # opens as a notebook
    if script.stem in WITH_MAIN:
        assert 'if __name__ == "__main__":' in text
    else:                                              # the story in top-level cells
        assert "def main(" not in text and text.count("\n# %%\n") >= 3
    for forbidden in ("pyplot", "np.random.seed", "plt.show"):
        assert forbidden not in text, forbidden


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_tutorial_runs_quick(script, tmp_path, monkeypatch, capsys):
    for package in NEEDS.get(script.stem, ()):
        pytest.importorskip(package)
    legacy_state = np.random.get_state()
    run_script(script, ["--quick", "--out", str(tmp_path)], monkeypatch)
    assert sorted(tmp_path.glob("*.png")), "no figure written"
    assert "You should see" in capsys.readouterr().out
    after = np.random.get_state()                     # the global generator is untouched
    assert legacy_state[0] == after[0] and np.array_equal(legacy_state[1], after[1])
    assert legacy_state[2:] == after[2:]


def test_linear_vae_recovers_ppca(monkeypatch, tmp_path):
    """Lucas et al. (2019): the linear VAE's optimum is the pPCA maximum-likelihood fit."""
    script = TUTORIALS / "11_linear_vae_ppca.py"
    result = run_script(script, ["--quick", "--out", str(tmp_path)], monkeypatch)["result"]
    assert result["angle_degrees"] < 5.0
    assert abs(result["sigma2"] - result["sigma2_ml"]) / result["sigma2_ml"] < 0.1
    # ELBO <= log-likelihood <= the ML log-likelihood, and at the optimum the bound is tight
    gap = result["negative_elbo"] - result["negative_log_likelihood_ml"]
    assert -1e-9 <= gap < 0.05


def test_pytorch_tutorial_without_torch_says_so_and_stops(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)     # as if torch were not installed
    module = load(TUTORIALS / "21_graduating_to_pytorch.py", monkeypatch)
    assert module.main(["--quick", "--out", str(tmp_path)]) is None
    assert "This tutorial needs torch: pip install torch" in capsys.readouterr().out


def test_a_tutorial_runs_as_a_notebook(tmp_path):
    """make_notebooks.py converts a tutorial (jupytext) and runs it in a kernel (nbclient):
    the executed notebook has the printed lines and a figure inline."""
    for package in ("jupytext", "nbclient", "ipykernel"):
        pytest.importorskip(package)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(TUTORIALS.parent), os.environ.get("PYTHONPATH", "")]), OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(TUTORIALS / "make_notebooks.py"), "--quick",
                           "--out", str(tmp_path), "03_elbo"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    notebook = (tmp_path / "03_elbo.ipynb").read_text()
    assert "You should see" in notebook and '"image/png"' in notebook
