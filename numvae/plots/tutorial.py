"""What every tutorial shares: its command line (--quick, --out), its output folder, section
titles, and figures shown inline in a notebook.

In the package (not beside the tutorials) so that a tutorial, or the notebook made from it,
runs when copied alone into any folder where numvae is installed. A tutorial runs as
``python NN_name.py [--quick] [--out DIR]``; its figures go to ``DIR``, by default
``output/NN_name/`` next to the script (in a notebook: in the notebook's folder). Inside
Jupyter the kernel's own arguments are ignored, so "Run All" runs the full tutorial; the
environment variable ``NUMVAE_TUTORIAL_ARGS`` (e.g. "--quick") gives a notebook its
arguments (``tutorials/make_notebooks.py --quick`` sets it).
"""
import argparse
import io
import os
import shlex
import sys
from pathlib import Path


def in_notebook():
    """True inside a Jupyter kernel."""
    return "ipykernel" in sys.modules


def default_folder():
    """Where a tutorial's ``output/`` goes: beside the script that runs, or the current
    folder in a notebook (which has no script)."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if script and not in_notebook():
        return Path(script).resolve().parent
    return Path.cwd()


def parse_args(name, description, argv=None):
    """Parse ``[--quick] [--out DIR]``; create the output folder.

    name: the tutorial's file name without ".py", e.g. "01_autoencoders".
    Returns the argparse namespace, with ``out`` a ``pathlib.Path`` that exists.
    """
    parser = argparse.ArgumentParser(prog=f"{name}.py", description=description)
    parser.add_argument("--quick", action="store_true",
                        help="a smaller, faster run (a few seconds), for tests")
    parser.add_argument("--out", type=Path, default=default_folder() / "output" / name,
                        help=f"folder for the figures (default: output/{name} beside the script)")
    if argv is None and in_notebook():
        # in a notebook, sys.argv holds the kernel's arguments, not ours
        argv = shlex.split(os.environ.get("NUMVAE_TUTORIAL_ARGS", ""))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def banner(text):
    """Print a section title, so that a tutorial's output reads like its prose."""
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)))


def figure_path(folder, name):
    """``folder / name``, announced on the way: "figure: <path>"."""
    path = Path(folder) / name
    print(f"figure: {path}")
    return path


def show(fig):
    """Show a matplotlib Figure inline when running in a notebook; as a script, do nothing
    (the figure is saved already). Returns nothing, so that a cell does not show it twice."""
    if not in_notebook():
        return
    from IPython.display import Image, display  # only ever imported inside Jupyter
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    display(Image(data=buffer.getvalue()))
