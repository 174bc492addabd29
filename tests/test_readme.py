"""The README's Python example runs, and prints what its comments say it prints."""
import contextlib
import io
import re
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
