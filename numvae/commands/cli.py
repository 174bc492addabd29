"""The ``numvae`` command: train, evaluate, sample, plot, inspect, export, import, exercise,
explore.

Each sub-command lives in its own module of ``numvae.commands`` (its options and its
``run``); this module only assembles the parser and turns every failure the user can
cause (a bad option, a missing checkpoint, a folder that cannot be written, data that
cannot be read) into one line on stderr and a non-zero exit code, never a traceback.
Every such line has the same form: ``numvae train: error: <what went wrong>``.
"""
import argparse
import difflib
import sys

from numvae import __version__
from numvae.commands import (
    evaluate,
    exercise,
    explore,
    export,
    import_,
    inspect,
    plot,
    sample,
    train,
)
from numvae.commands.common import Parser, UsageError, add_memory_option
from numvae.io import datasets
from numvae.training.checkpoint import CheckpointError

COMMANDS = {"train": train, "evaluate": evaluate, "sample": sample, "plot": plot,
            "inspect": inspect, "export": export, "import": import_, "exercise": exercise,
            "explore": explore}
BUILD_MODELS = ("train", "evaluate", "sample", "plot", "inspect", "export", "import")


def build_parser(typed_only=False):
    """The parser of every command; ``typed_only``: without defaults (``typed_options``)."""
    parser = Parser(prog="numvae", description="A variational auto-encoder in NumPy, "
                    "every gradient derived by hand.")
    parser.add_argument("--version", action="version", version=f"numvae {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for name, module in COMMANDS.items():
        sub = module.add_parser(commands)
        if name in BUILD_MODELS:  # each builds a model: sizes are checked first
            add_memory_option(sub)
        for option in sub._actions if typed_only else ():
            option.default = argparse.SUPPRESS
    return parser


def typed_options(argv):
    """The names (``dest``) of the options typed in ``argv``: the same parser with every
    default taken away, so that only what was typed lands in the namespace."""
    return set(vars(build_parser(typed_only=True).parse_args(argv))) - {"command"}


def check_command(argv):
    """Refuse a mistyped command with the nearest one: ``numvae trian`` -> did you mean train?

    The command is the first word that is not an option (``numvae`` itself takes only
    ``--help`` and ``--version``, which take no value)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    if word is None or word in COMMANDS:
        return
    near = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}?" if near else f"the commands are {', '.join(COMMANDS)}"
    raise UsageError(f"unknown command {word[:40]!r}; {hint} (see numvae --help)", code=2)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    command = next((a for a in argv if not a.startswith("-")), None)
    prog = f"numvae {command}" if command in COMMANDS else "numvae"  # every error line's start
    try:
        check_command(argv)
        args = build_parser().parse_args(argv)
        args.typed = typed_options(argv)  # a resumed run compares them with its checkpoint
        return COMMANDS[args.command].run(args)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.code
    except (CheckpointError, datasets.DataUnavailableError, datasets.IDXError,
            FloatingPointError, OSError, ValueError, TypeError) as err:
        # FloatingPointError covers TrainingDivergedError and validation.NumericalError
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except MemoryError:  # the sizes passed their check, but the machine had less to give
        print(f"{prog}: error: out of memory (a MemoryError); nothing was written since the "
              "last save; try a smaller --batch-size, or free memory", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM/SIGHUP during a training run
        print("numvae: interrupted", file=sys.stderr)
        return 128 + getattr(stop, "signum", 2)


if __name__ == "__main__":
    sys.exit(main())
