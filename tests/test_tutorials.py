"""The tutorials: each runs in --quick mode, in this process (so that pytest's
filterwarnings=error turns any warning into a failure), says what to expect and writes at
least one PNG; and the linear VAE of tutorial 11 recovers probabilistic PCA."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
# tutorials that need optional packages: skipped where one is missing
NEEDS = {"13_graduating_to_pytorch": ("torch", "safetensors")}


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


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_tutorial_source_habits(script):
    text = script.read_text()
    assert text.startswith("# %% [markdown]")          # opens as a notebook
    assert 'if __name__ == "__main__":' in text
    for forbidden in ("pyplot", "np.random.seed", "plt.show"):
        assert forbidden not in text, forbidden


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_tutorial_runs_quick(script, tmp_path, monkeypatch, capsys):
    for package in NEEDS.get(script.stem, ()):
        pytest.importorskip(package)
    module = load(script, monkeypatch)
    legacy_state = np.random.get_state()
    module.main(["--quick", "--out", str(tmp_path)])
    assert sorted(tmp_path.glob("*.png")), "no figure written"
    assert "You should see" in capsys.readouterr().out
    after = np.random.get_state()                     # the global generator is untouched
    assert legacy_state[0] == after[0] and np.array_equal(legacy_state[1], after[1])
    assert legacy_state[2:] == after[2:]


def test_linear_vae_recovers_ppca(monkeypatch):
    """Lucas et al. (2019): the linear VAE's optimum is the pPCA maximum-likelihood fit."""
    result = load(TUTORIALS / "11_linear_vae_ppca.py", monkeypatch).run(quick=True, seed=0)
    assert result["angle_degrees"] < 5.0
    assert abs(result["sigma2"] - result["sigma2_ml"]) / result["sigma2_ml"] < 0.1
    # ELBO <= log-likelihood <= the ML log-likelihood, and at the optimum the bound is tight
    gap = result["negative_elbo"] - result["negative_log_likelihood_ml"]
    assert -1e-9 <= gap < 0.05


def test_pytorch_tutorial_without_torch_says_so_and_stops(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)     # as if torch were not installed
    module = load(TUTORIALS / "13_graduating_to_pytorch.py", monkeypatch)
    assert module.main(["--quick", "--out", str(tmp_path)]) is None
    assert "This tutorial needs torch: pip install torch" in capsys.readouterr().out
