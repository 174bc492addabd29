"""The batch grader (numvae/exercises/isolation.py, batch.py, child.py): each student file in a
child process of its own, so that no file can fool or hang the grading of another.

Each file below does one thing a student's file might do (exit, patch NumPy, loop, close
stdout, raise a BaseException, allocate without end); the tests check that it gets one
named line and that every other file's grade stays right. Timeouts are small (2 s) so that
the tests stay fast; the files are graded two at a time, as on the 2-core machine.
"""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from numvae.commands.cli import main
from numvae.exercises import batch, grader, isolation

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = (Path(__file__).with_name("exercise_solution.py")).read_text(encoding="utf-8")
FAST = isolation.Limits(timeout=2.0, jobs=2)

KL_RIGHT = """
import numpy as np
def kl_divergence(mean, log_var):
    return 0.5 * np.sum(mean**2 + np.exp(log_var) - 1 - log_var, axis=1)
"""
KL_WITHOUT_EXP = """
import numpy as np
def kl_divergence(mean, log_var):
    return 0.5 * np.sum(mean**2 - 1 - log_var, axis=1)
"""
PATCHES_NUMPY = """
import numpy as np
np.exp = lambda x: 0 * x
import numvae.exercises.grader as g
g.close = lambda got, want: True
def kl_divergence(mean, log_var):
    return 0.5 * np.sum(mean**2 + np.exp(log_var) - 1 - log_var, axis=1)
"""
DENSE_RIGHT = "\n".join(SOLUTION.split("\n\n\n")[1:3])  # dense_forward, dense_backward
EXITS_IN_ONE_FUNCTION = """
import os
import numpy as np
def dense_forward(x, W, b):
    return x @ W + b
def relu_backward(dy, x):
    os._exit(0)
def sigmoid_backward(dy, y):
    while True:
        pass
def iwae_bound(log_weights):
    top = log_weights.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.mean(np.exp(log_weights - top), axis=1))
"""


def write(folder, name, source):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(source, encoding="utf-8")
    return path


def by_function(results):
    return {result.function: result for result in results}


def test_a_file_that_exits_or_loops_in_one_function_loses_only_that_function(tmp_path):
    path = write(tmp_path, "student.py", EXITS_IN_ONE_FUNCTION)
    results = by_function(isolation.grade_files([path], FAST)[path])
    assert results["dense_forward"].status == grader.PASSED
    assert results["relu_backward"].status == grader.CRASHED
    assert "exit code 0" in results["relu_backward"].message
    assert results["sigmoid_backward"] == ("sigmoid_backward", grader.TIMED_OUT,
                                           "still running after 2 s")
    assert results["iwae_bound"].status == grader.PASSED  # graded by a new child


@pytest.mark.parametrize("source, status, words", [
    ("import os\nos._exit(0)\n", grader.CRASHED, "exit code 0"),
    ("while True:\n    pass\n", grader.TIMED_OUT, "importing it took over 2 s"),
    ("raise KeyboardInterrupt\n", grader.WRONG, "could not be imported: KeyboardInterrupt"),
    ("class Mine(BaseException):\n    pass\nraise Mine('no')\n", grader.WRONG, "Mine: no"),
    ("raise GeneratorExit\n", grader.WRONG, "GeneratorExit"),
], ids=["exit", "loop", "interrupt", "base-exception", "generator-exit"])
def test_a_file_lost_on_import_gets_one_line_and_the_next_file_is_graded(tmp_path, source,
                                                                          status, words):
    bad = write(tmp_path / "a", "01_dense.py", source + DENSE_RIGHT)
    good = write(tmp_path / "b", "01_dense.py", DENSE_RIGHT)
    graded = isolation.grade_files([bad, good], FAST)
    assert [r.function for r in graded[bad]] == [isolation.IMPORT]
    assert graded[bad][0].status == status and words in graded[bad][0].message, graded[bad]
    assert "while importing" in graded[bad][0].message or status == grader.WRONG
    assert [(r.function, r.status) for r in graded[good]] == [
        ("dense_forward", grader.PASSED), ("dense_backward", grader.PASSED)]


def test_raising_any_base_exception_in_a_function_is_the_students_error(tmp_path):
    source = ("def kl_divergence(mean, log_var):\n    raise KeyboardInterrupt\n"
              "def iwae_bound(w):\n    raise GeneratorExit\n"
              "class Mine(BaseException):\n    pass\n"
              "def relu_backward(dy, x):\n    raise Mine('stop')\n")
    path = write(tmp_path, "student.py", source)
    results = by_function(isolation.grade_files([path], FAST)[path])
    assert results["kl_divergence"].message.startswith("your code raised KeyboardInterrupt")
    assert results["iwae_bound"].message.startswith("your code raised GeneratorExit")
    assert results["relu_backward"].message.startswith("your code raised Mine: stop")
    assert all(r.status == grader.WRONG for r in results.values())


def test_patching_numpy_or_the_grader_changes_no_other_grade(tmp_path):
    """The issue's case: np.exp patched in one file, a KL without its exp term in the next."""
    patcher = write(tmp_path, "a.py", PATCHES_NUMPY)
    wrong = write(tmp_path, "b.py", KL_WITHOUT_EXP)
    right = write(tmp_path, "c.py", KL_RIGHT)
    graded = isolation.grade_files([patcher, wrong, right], FAST)
    assert graded[wrong][0].status == grader.WRONG
    assert graded[right][0].status == grader.PASSED
    # the patcher's own KL uses its zero exp: wrong, whatever it did to the grader's close
    assert graded[patcher][0].status == grader.WRONG


def test_closing_stdout_and_every_descriptor_hides_no_result(tmp_path):
    source = ("import os, sys\nprint('noise on stdout')\nsys.stdout.close()\nsys.stderr.close()\n"
              "os.closerange(0, 1024)\n" + KL_RIGHT)
    path = write(tmp_path, "student.py", source)
    assert isolation.grade_files([path], FAST)[path] == [("kl_divergence", grader.PASSED, "")]


def test_allocating_without_end_is_a_memory_error_of_the_students(tmp_path):
    source = ("import numpy as np\nhoard = []\ndef iwae_bound(w):\n    while True:\n"
              "        hoard.append(np.empty(10**8))\n")  # 800 MB a time, never touched
    path = write(tmp_path, "student.py", source)
    result = isolation.grade_files([path], FAST)[path][0]
    assert result.status == grader.WRONG and "MemoryError" in result.message, result


def test_isolated_grades_equal_the_in_process_ones(tmp_path):
    """The child's outcomes come back through JSON: the same grades, hints and notes."""
    mistaken = SOLUTION.replace("dlog_var = 0.5 * (np.exp(log_var) - 1)\n",
                                "dlog_var = 0.5 * np.exp(log_var)\n")
    paths = [write(tmp_path / "a", "all.py", SOLUTION), write(tmp_path / "b", "all.py", mistaken)]
    graded = isolation.grade_files(paths, isolation.Limits(timeout=30.0, jobs=2))
    for path in paths:
        assert graded[path] == grader.check_file(path)
    assert any(r.status == grader.WRONG for r in graded[paths[1]])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_class_folder_summary_csv_missing_and_a_fifo_skipped(tmp_path, capsys):
    klass = tmp_path / "class"
    write(klass / "ada", "04_kl.py", KL_RIGHT + "\n" + SOLUTION.split("\n\n\n")[11])
    write(klass / "bob", "04_kl.py", KL_WITHOUT_EXP)
    write(klass / "cy", "notes.py", "x = 1\n")
    os.mkfifo(klass / "cy" / "x.py")
    (klass / ".hidden").mkdir()
    out_csv = tmp_path / "grades.csv"
    code = main(["exercise", "check", str(klass), "--exercises", "04", "--csv", str(out_csv),
                 "--timeout", "5"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"skipped {klass / 'cy' / 'x.py'}: a named pipe, not a regular file" in out
    table = out[out.index("student"):].splitlines()
    assert table[0].split() == ["student", "04", "passed"]
    assert table[1].split() == ["ada", "ok", "2/2"]
    assert table[2].split() == ["bob", "wrong", "0/2"]
    assert table[3].split() == ["cy", "missing", "0/2"]
    with out_csv.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [(r["student"], r["function"], r["status"]) for r in rows] == [
        ("ada", "kl_divergence", "passed"), ("ada", "kl_divergence_backward", "passed"),
        ("bob", "kl_divergence", "wrong"), ("bob", "kl_divergence_backward", "missing"),
        ("cy", "kl_divergence", "missing"), ("cy", "kl_divergence_backward", "missing")]
    assert main(["exercise", "check", str(klass), "--csv", str(out_csv)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err


def test_exit_codes_of_a_passing_folder_a_missing_exercise_and_usage_errors(tmp_path, capsys):
    one = write(tmp_path / "one", "01_dense.py", DENSE_RIGHT)
    assert main(["exercise", "check", str(one), "--timeout", "5"]) == 1  # relu, sigmoid missing
    assert "missing: relu_backward, sigmoid_backward" in capsys.readouterr().out
    assert main(["exercise", "check", str(one.parent), "--exercises", "01"]) == 1
    write(tmp_path / "one", "more.py", "\n".join(SOLUTION.split("\n\n\n")[3:5]))
    assert main(["exercise", "check", str(one.parent), "--exercises", "01"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "4 of 4 passed"
    assert main(["exercise", "check", str(tmp_path / "nothing")]) == 2
    assert main(["exercise", "check", str(one), "--exercises", "99"]) == 2
    assert main(["exercise", "check", str(one), "--timeout", "-1"]) == 2


def test_the_command_in_a_real_process_grades_a_class_with_a_looping_student(tmp_path):
    klass = tmp_path / "class"
    write(klass / "ann", "04_kl.py", KL_RIGHT)
    write(klass / "ben", "04_kl.py", "def kl_divergence(mean, log_var):\n    while True:\n"
                                     "        pass\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "numvae", "exercise", "check", str(klass),
                           "--exercises", "04", "--timeout", "2"],
                          check=False, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "kl_divergence: timed out: still running after 2 s" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "1 of 4 passed"


def test_a_function_comes_from_its_exercises_file_and_a_lost_file_is_not_replaced(tmp_path):
    """student_rows alone, on made-up results: 06_vae_forward.py also defines
    encoder_forward (a helper), but 02_encoder.py was lost on import: 02 is "crashed"."""
    own, helper = tmp_path / "02_encoder.py", tmp_path / "06_vae_forward.py"
    kl, other = tmp_path / "04_kl.py", tmp_path / "helpers.py"
    graded = {
        own: [grader.Result(isolation.IMPORT, grader.CRASHED, "exit code 0")],
        helper: [grader.Result("encoder_forward", grader.PASSED, ""),
                 grader.Result("vae_forward", grader.PASSED, "")],
        other: [grader.Result("kl_divergence", grader.PASSED, "")],
        kl: [grader.Result("kl_divergence", grader.WRONG, "differs")],
    }
    student = batch.Student("ann", [own, kl, helper, other],
                            ["02_encoder", "04_kl", "06_vae_forward"])
    rows = {row.function: row for row in batch.student_rows(student, graded)}
    assert (rows["encoder_forward"].status, rows["encoder_forward"].file) == (grader.CRASHED, own)
    assert (rows["kl_divergence"].status, rows["kl_divergence"].file) == (grader.WRONG, kl)
    assert rows["kl_divergence_backward"].status == grader.MISSING
    assert rows["vae_forward"].status == grader.PASSED
    assert list(rows) == ["encoder_forward", "kl_divergence", "kl_divergence_backward",
                          "vae_forward"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_grade_files_given_a_named_pipe_never_opens_it(tmp_path):
    """Called directly (not through the folder walk that skips it), the grader still does
    not wait on a pipe: the child's import fails at once and says so."""
    pipe = tmp_path / "x.py"
    os.mkfifo(pipe)
    result = isolation.grade_files([pipe], FAST)[pipe]
    assert len(result) == 1 and result[0].function == isolation.IMPORT, result
    assert result[0].status == grader.WRONG and "is a named pipe" in result[0].message, result
