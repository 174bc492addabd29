"""Ctrl-C at any moment of ``numvae``'s start, imports included: one line and exit code 130."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Seconds between the first import inside numvae.commands.entry.main's try (the first import-time
# line after numvae.commands.entry's own) and our SIGINT. The imports of NumPy and the rest of
# numvae that follow take a tenth of a second or more.
DELAYS = (0.0, 0.001, 0.003, 0.01, 0.02, 0.03)
MARK = "numvae.commands.entry"


def interrupt_early(command, delay, tmp_path):
    """Start ``command`` under ``python -X importtime``; send SIGINT ``delay`` s after its
    first import inside numvae.commands.entry.main; return (exit code, stderr without the
    import-time lines)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    process = subprocess.Popen([sys.executable, "-X", "importtime", *command],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment, cwd=tmp_path)
    try:
        # A Ctrl-C before this point lands in Python's own start-up (importing site,
        # runpy, the package), which no program can guard: see numvae/commands/entry.py.
        lines = iter(process.stderr)
        for line in lines:
            if line.split("|")[-1].strip() == MARK:
                break
        next(lines)  # printed once a module imported inside the try is loaded
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    return process.returncode, "".join(line + "\n" for line in err.splitlines()
                                       if not line.startswith("import time:"))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
@pytest.mark.parametrize("how", ["python -m numvae", "numvae"])
def test_ctrl_c_during_imports_gives_one_line_and_code_130(tmp_path, how):
    train = ["train", "--dataset", "toy", "--epochs", "1", "--no-plots", "--out",
             str(tmp_path / "run")]
    if how == "numvae":  # what the console script that pip writes does
        command = ["-c", "import sys; from numvae.commands.entry import main; sys.exit(main())",
                   *train]
    else:
        command = ["-m", "numvae", *train]
    for delay in DELAYS:
        code, err = interrupt_early(command, delay, tmp_path)
        assert (code, err) == (130, "numvae: interrupted\n"), f"SIGINT after {delay} s"


def test_entry_module_and_package_import_nothing_heavy():
    code = ("import sys, numvae, numvae.commands.entry; "
            "print(sorted(m for m in ('numpy', 'numvae.commands.cli', 'numvae.model.vae') if m in sys.modules))")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.returncode == 0, process.stderr
    assert process.stdout == "[]\n"


def test_lazy_names_still_work():
    import numvae
    from numvae.nn.layers import Dense
    assert numvae.Dense is Dense and numvae.VAE.__name__ == "VAE" and numvae.model.kl.kl_divergence
    # any subpackage, on first use (its own modules are imported as usual)
    assert numvae.diagnostics.__name__ == "numvae.diagnostics" and numvae.io.__name__ == "numvae.io"
    assert set(numvae.__all__) <= set(dir(numvae))
    with pytest.raises(AttributeError, match="module 'numvae' has no attribute 'nothing'"):
        _ = numvae.nothing


def test_python_m_uses_the_entry_module():
    # the console script's target is checked in the built wheel (tests/test_packaging.py)
    assert "from numvae.commands.entry import main" in (ROOT / "numvae" / "__main__.py").read_text()


def test_entry_runs_the_command_and_leaves_sigint_as_it_was(capsys):
    import signal

    from numvae.commands.entry import main
    assert main(["train", "--no-such-option"]) == 2
    assert "no-such-option" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
