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


def test_a_tutorial_and_an_exercise_notebook_run_when_copied_alone(tmp_path, monkeypatch):
    """make_notebooks.py writes a tutorial (executed, figures inline) and the exercises'
    student notebooks; copied alone into an empty folder, each runs in a fresh kernel: no
    import of files beside it, the install cell first, the check cell grading the
    functions written in the notebook."""
    for package in ("jupytext", "nbclient", "ipykernel", "nbformat"):
        pytest.importorskip(package)
    import nbformat
    from nbclient import NotebookClient
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(TUTORIALS.parent), os.environ.get("PYTHONPATH", "")]), OPENBLAS_NUM_THREADS="1")
    made = tmp_path / "made"
    done = subprocess.run([sys.executable, str(TUTORIALS / "make_notebooks.py"), "--quick",
                           "--exercises", "--out", str(made), "05_decoder"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    tutorial = (made / "05_decoder.ipynb").read_text()
    assert "You should see" in tutorial and '"image/png"' in tutorial
    empty = tmp_path / "empty"
    empty.mkdir()
    for source in (made / "05_decoder.ipynb", made / "exercises" / "04_kl.ipynb"):
        (empty / source.name).write_bytes(source.read_bytes())
    exercise = nbformat.read(str(empty / "04_kl.ipynb"), as_version=4)
    assert "pip install" in exercise.cells[0].source and "import numvae" in exercise.cells[1].source
    assert exercise.cells[2].source.startswith("# Exercise 04")
    solution = (Path(__file__).with_name("exercise_solution.py")).read_text().split("\n\n\n")
    exercise.cells[3].source = "import numpy as np\n\n\n" + "\n\n\n".join(solution[10:12])
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    monkeypatch.setenv("NUMVAE_TUTORIAL_ARGS", "--quick")
    NotebookClient(exercise, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(empty)}}).execute()
    check_output = "".join(o.get("text", "") for o in exercise.cells[-1].outputs)
    assert check_output.splitlines() == ["kl_divergence: passed", "kl_divergence_backward: passed"]
    tutorial = nbformat.read(str(empty / "05_decoder.ipynb"), as_version=4)
    NotebookClient(tutorial, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(empty)}}).execute()
    assert sorted((empty / "output" / "05_decoder").glob("*.png")), "no figure beside the notebook"
    assert sorted(p.name for p in empty.iterdir()) == ["04_kl.ipynb", "05_decoder.ipynb", "output"]


def test_notebook_headings_are_numbered_as_their_files():
    for script in SCRIPTS:
        heading = script.read_text().splitlines()[1]
        assert heading.startswith(f"# # {int(script.name[:2])}. "), (script.name, heading)
