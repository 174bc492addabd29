"""The ``numvae`` command's entry point, cheap to import.

``numvae.commands.cli`` imports NumPy and most of numvae, which takes a tenth of a second or
more. A Ctrl-C in that time used to print a KeyboardInterrupt traceback instead of
the command's promise: one line on stderr and exit code 130. Catching the
KeyboardInterrupt around the imports is not enough: it can be raised inside one of
importlib's weak-reference callbacks, where Python only prints "Exception ignored"
and carries on. So, during the imports, Ctrl-C merely sets a flag, read once they
are done; the command itself then gets Python's usual KeyboardInterrupt (training
relies on it to save a checkpoint before it stops).

What no program can guard is Python's own start-up before this module runs
(importing ``site``, ``runpy`` and the ``numvae`` package, whose imports are lazy
for this reason): a few milliseconds.
"""
import signal
import sys

INTERRUPTED = 130  # the shell's code for a process ended by SIGINT (128 + 2)


def main(argv=None):
    """Run the ``numvae`` command (``numvae.commands.cli.main``) and return its exit code.

    Ctrl-C at any point, the imports included, gives "numvae: interrupted" on
    stderr (numvae.commands.cli's own handler says the same) and 130.
    """
    try:
        cli_main = _import_quietly()
        if cli_main is None:
            print("numvae: interrupted", file=sys.stderr)
            return INTERRUPTED
        return cli_main(argv)
    except KeyboardInterrupt:  # in the instants around the imports
        print("numvae: interrupted", file=sys.stderr)
        return INTERRUPTED


def _import_quietly():
    """``numvae.commands.cli.main``, imported while Ctrl-C only sets a flag; None if it was pressed."""
    pressed = []
    # Only replace Python's usual handler: a SIGINT that was ignored (a job started in the
    # background, nohup) stays ignored, and signal.signal only works in the main thread.
    ours = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ours:
        try:
            signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
        except ValueError:  # called from another thread: leave the handler alone
            ours = False
    try:
        from numvae.commands.cli import main as cli_main  # the slow import
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    return None if pressed else cli_main
