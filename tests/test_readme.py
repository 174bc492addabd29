"""The README's Python example runs, and prints what its comments say it prints."""
import contextlib
import io
import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_example_runs_and_prints_what_it_promises():
    blocks = python_blocks()
    assert len(blocks) == 1, "update this test when the README gains Python examples"
    out = io.StringIO()
    namespace = {}
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], str(README), "exec"), namespace)
    loss, error = (float(word) for word in out.getvalue().split())
    assert 540 < loss < 552          # "about 546"
    assert error < 1e-6              # "a relative error below 1e-6"
    assert namespace["opt"].t == 1   # the Adam step ran


# --- the shell commands of the README and of docs/*.md --------------------------------------------------------------
# Every `numvae` command in the README's bash blocks must parse as written; the cheap ones run,
# in README order, in an empty folder with HOME and the caches in a temporary folder and no
# ../shared beside it: a fresh clone on a machine with no MNIST. A command is cheap when it
# trains on the embedded digits or the toy set, or reads only what such a run wrote. Training
# on MNIST, pip, the tutorials and the experiments are left out (they take minutes or the
# network); the scripts and modules they name must exist.

NEEDS_THE_USER = ("$EDITOR", "submissions/", "ann/")  # an editor, the students' files


def bash_lines():
    """(line, command) for every command line of the README's bash blocks, comments dropped;
    a line chained with && gives one command per part."""
    # the pages of the docs site (the command line's walk-through on the digits among them),
    # then the README, which sends readers to them
    pages = [*sorted((README.parent / "docs").glob("*.md")), README]
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            code = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
            lines += [(line, part.strip()) for part in code.split("&&") if part.strip()]
    return lines


def numvae_commands():
    return [(line, shlex.split(command)) for line, command in bash_lines()
            if command.startswith("numvae ")]


def is_cheap(argv, skipped):
    if any(mark in " ".join(argv) for mark in NEEDS_THE_USER):
        return False
    if any(arg.startswith(folder) for arg in argv for folder in skipped):
        return False  # reads what an expensive command (not run) would have written
    if argv[1] != "train":
        return True
    dataset = argv[argv.index("--dataset") + 1] if "--dataset" in argv else "auto"
    return dataset in ("digits", "toy")


def test_every_numvae_command_in_the_readme_parses():
    from numvae.commands.cli import build_parser
    commands = numvae_commands()
    assert len(commands) >= 20, "fewer numvae commands than expected: is the README parsed?"
    for line, argv in commands:
        assert not any("<" in arg and ">" in arg for arg in argv), f"a placeholder: {line}"
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exit_:  # --help or --version: fine
            assert exit_.code == 0, line
        except Exception as err:  # the one-line usage error
            raise AssertionError(f"README: {line!r} does not parse: {err}") from None


def test_the_scripts_the_readme_runs_exist():
    root = README.parent
    for line, command in bash_lines():
        words = shlex.split(command)
        if words[:2] == ["python", "-m"] and words[2].split(".")[0] in ("experiments",
                                                                        "benchmarks"):
            module = root.joinpath(*words[2].split("."))
            assert module.is_dir() or module.with_suffix(".py").is_file(), line
        elif words[0] == "python" and words[1].endswith(".py"):
            assert (root / words[1]).is_file(), line
        assert "../shared" not in command, f"only this checkout has ../shared: {line}"
        assert not re.search(r"\bcp\b.*docs/", command), f"overwrites a tracked file: {line}"


def test_the_readme_s_cheap_commands_run_as_written(tmp_path, monkeypatch, capsys):
    from numvae.commands.cli import main
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    work = tmp_path / "clone" / "numvae"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("NUMVAE_DATA_DIR", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    skipped, ran, seen = [], [], set()
    for line, argv in numvae_commands():
        if tuple(argv) in seen:  # the same line on two pages is one command, run once
            continue
        seen.add(tuple(argv))
        if not is_cheap(argv, skipped):
            if argv[1] == "train":
                # without --out a run writes runs/<timestamp>, which no README line reads
                skipped.append(argv[argv.index("--out") + 1] if "--out" in argv else "runs/2")
            continue
        code = main(argv[1:])
        out, err = capsys.readouterr()
        if argv[1:3] == ["exercise", "check"]:  # fresh stubs: "not done yet", exit code 1
            assert code == 1 and "not done yet" in out, f"README: {line!r}: {out}{err}"
        else:
            assert code == 0, f"README: {line!r} failed with code {code}: {err}"
        ran.append(argv[1])
    # the walk-through runs every kind of command at least once
    assert {"train", "evaluate", "sample", "plot", "inspect", "export", "import",
            "exercise"} <= set(ran), ran
    assert not (home / ".cache" / "numvae" / "mnist").exists()  # nothing downloaded
