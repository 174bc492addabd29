"""Write the tutorials as executed Jupyter notebooks, figures inline, and the exercises as
student notebooks.

    pip install -e ".[notebooks]"          # jupytext, nbclient, ipykernel, Jupyter
    python tutorials/make_notebooks.py     # every tutorial, into tutorials/output/notebooks/
    python tutorials/make_notebooks.py --quick 09_train_mnist 13_slides_recipe
    python tutorials/make_notebooks.py --exercises   # the exercises: OUT/exercises/01_dense.ipynb ...

Each script (``# %%`` cells) is converted by jupytext and run top to bottom in a fresh
kernel by nbclient, with ``tutorials/`` as the working directory and the figures going to
``tutorials/output/<name>/`` as when the script runs. ``--quick`` gives each notebook the
tutorials' quick mode (through the environment variable NUMVAE_TUTORIAL_ARGS, read by
``numvae.plots.tutorial.parse_args``). Each notebook starts with a cell that says how to
install numvae and checks that it is there, and imports nothing from beside it: copied
alone into any folder where numvae is installed, it runs (its figures go to ``output/``
there). An exercise notebook has the stub's task, its code (the functions to write) and a
``check`` cell that grades them in the kernel. An existing notebook is never replaced
without ``--overwrite``: it may hold your own notes.
"""
import argparse
import os
import sys
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parent


def tutorial_scripts(names):
    """The tutorial scripts, all of them or those named (with or without ".py")."""
    scripts = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
    if not names:
        return scripts
    by_name = {path.stem: path for path in scripts}
    missing = [name for name in names if name.removesuffix(".py") not in by_name]
    if missing:
        raise SystemExit(f"no tutorial named {', '.join(missing)}; "
                         f"the tutorials are: {', '.join(by_name)}")
    return [by_name[name.removesuffix(".py")] for name in names]


INSTALL = """This notebook needs **numvae**, installed where its kernel runs. numvae is not
on a package index: from a clone of numvae, `pip install ".[notebooks]"`; or, from a wheel
built once with `python -m pip wheel --no-deps -w dist .`, `pip install
numvae-0.3.0-py3-none-any.whl`. The next cell checks (and sets one BLAS thread, before
NumPy starts, so that the times stated here hold on a shared machine)."""
INSTALL_CHECK = """import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
try:
    import numvae
except ImportError:
    raise ModuleNotFoundError('numvae is not installed here: from a clone of numvae, '
                              'pip install ".[notebooks]" (see the cell above)') from None
print(f"numvae {numvae.__version__}")"""
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


def install_cells():
    """The two cells every notebook starts with: how to install numvae, and a check."""
    import nbformat
    return [nbformat.v4.new_markdown_cell(INSTALL), nbformat.v4.new_code_cell(INSTALL_CHECK)]


def exercise_notebook(stub):
    """A student notebook from an exercise stub: its task (the docstring), its code (the
    functions to write) and a check cell."""
    import ast

    import nbformat
    source = stub.read_text(encoding="utf-8")
    task = ast.get_docstring(ast.parse(source))
    code = source.split('"""', 2)[2].strip()  # what follows the module docstring
    title, _, rest = task.partition("\n")
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": KERNEL})
    notebook.cells = install_cells() + [
        nbformat.v4.new_markdown_cell(f"# {title}\n\n{rest.strip()}"),
        nbformat.v4.new_code_cell(code),
        nbformat.v4.new_markdown_cell("## Check\n\nRun this cell after each change: one line "
                                      "per function, `passed`, `not done yet` or `wrong`, and why."),
        nbformat.v4.new_code_cell("from numvae.exercises.grader import check\n\n"
                                  "results = check(globals())")]
    return notebook


def make_exercise_notebooks(folder, overwrite):
    """Write every exercise's student notebook into ``folder``."""
    import nbformat

    from numvae import exercises
    folder.mkdir(parents=True, exist_ok=True)
    for exercise in exercises.EXERCISES:
        target = folder / f"{exercise.name}.ipynb"
        if target.exists() and not overwrite:
            print(f"{target} exists: kept (--overwrite replaces it)")
            continue
        nbformat.write(exercise_notebook(exercises.stub_path(exercise.name)), str(target))
        print(f"{exercise.name}.py -> {target}")


def make_notebook(script, target, timeout):
    """Convert ``script`` to a notebook, execute it in a kernel, write it to ``target``."""
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(script)
    notebook.metadata["kernelspec"] = KERNEL
    notebook.cells = install_cells() + notebook.cells
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(TUTORIALS)}}).execute()
    jupytext.write(notebook, target, fmt="ipynb")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="tutorials to convert (default: all)")
    parser.add_argument("--out", type=Path, default=TUTORIALS / "output" / "notebooks",
                        help="folder for the .ipynb files (default: tutorials/output/notebooks)")
    parser.add_argument("--quick", action="store_true", help="run each tutorial's quick mode")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace notebooks that exist already")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--exercises", action="store_true",
                        help="write the exercises' student notebooks into OUT/exercises/ "
                        "(and the tutorials named, if any)")
    args = parser.parse_args(argv)
    try:
        import ipykernel  # noqa: F401  (only to say what is missing)
        import jupytext  # noqa: F401
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401  (only to say what is missing)
    except ImportError as err:
        raise SystemExit(f"this needs {err.name}: pip install -e \".[notebooks]\"") from None
    scripts = tutorial_scripts(args.names)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["NUMVAE_TUTORIAL_ARGS"] = "--quick" if args.quick else ""  # read by the kernel
    if args.exercises:
        make_exercise_notebooks(args.out / "exercises", args.overwrite)
        if not args.names:
            return 0
    for script in scripts:
        target = args.out / f"{script.stem}.ipynb"
        if target.exists() and not args.overwrite:
            print(f"{target} exists: kept (--overwrite replaces it)")
            continue
        print(f"{script.name} -> {target}", flush=True)
        make_notebook(script, target, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
