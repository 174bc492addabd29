"""Write the tutorials as executed Jupyter notebooks, figures inline.

    pip install -e ".[notebooks]"          # jupytext, nbclient, ipykernel
    python tutorials/make_notebooks.py     # every tutorial, into tutorials/output/notebooks/
    python tutorials/make_notebooks.py --quick 09_train_mnist 13_slides_recipe

Each script (``# %%`` cells) is converted by jupytext and run top to bottom in a fresh
kernel by nbclient, with ``tutorials/`` as the working directory (so that ``import
_common`` works) and the figures going to ``tutorials/output/<name>/`` as when the script
runs. ``--quick`` gives each notebook the tutorials' quick mode (through the environment
variable NUMVAE_TUTORIAL_ARGS, read by ``_common.parse_args``). An existing notebook is
never replaced without ``--overwrite``: it may hold your own notes.
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


def make_notebook(script, target, timeout):
    """Convert ``script`` to a notebook, execute it in a kernel, write it to ``target``."""
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(script)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
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
    args = parser.parse_args(argv)
    try:
        import jupytext, nbclient, ipykernel  # noqa: F401  (only to say what is missing)
    except ImportError as err:
        raise SystemExit(f"this needs {err.name}: pip install -e \".[notebooks]\"") from None
    scripts = tutorial_scripts(args.names)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["NUMVAE_TUTORIAL_ARGS"] = "--quick" if args.quick else ""  # read by the kernel
    for script in scripts:
        target = args.out / f"{script.stem}.ipynb"
        if target.exists() and not args.overwrite:
            print(f"{target} exists: kept (--overwrite replaces it)")
            continue
        print(f"{script.name} -> {target}", flush=True)
        make_notebook(script, target, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
