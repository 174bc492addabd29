"""Grading a class: find the students' files, grade each in a child process of its own
(``isolation``), and report: one line per function, a summary table (students x
exercises) and, if asked, a CSV with one row per student and function.

A PATH is a file (one student), a folder holding .py files (one student: every .py file
under it, subfolders included), or a folder of students' folders (each subfolder a
student). Only regular files are read: a named pipe or a device called ``x.py`` is skipped
with a line, never opened. Each exercise function is taken from the file named after its
exercise (``04_kl.py`` for ``kl_divergence``) if that file defines it, else from the first
file that does (a file named after its exercise that cannot be imported gives each of
its functions that failure); an expected function that no file defines is "missing" and
counts as not passed. A folder is expected to hold every exercise (or those ``exercises`` names); a
single file, the exercises whose functions it defines.
"""
import csv
import io
import os
import stat
from collections import namedtuple
from pathlib import Path

from numvae.exercises import EXERCISES, grader, isolation

Student = namedtuple("Student", "name files expected")
Row = namedtuple("Row", "student exercise function status file message")
SHORT = {grader.PASSED: "ok", grader.WRONG: "wrong", grader.NOT_DONE: "todo",
         grader.CRASHED: "crash", grader.TIMED_OUT: "timeout", grader.MISSING: "missing"}
EXERCISE_OF = {function: exercise.name for exercise in EXERCISES for function in exercise.functions}


def exercise_names(selection):
    """"02,03,kl" style selection -> exercise names ("02_encoder", ...); ValueError names
    what is not an exercise."""
    names = []
    for item in (part.strip() for part in selection.split(",") if part.strip()):
        matches = [e.name for e in EXERCISES if e.name == item or e.name.split("_")[0] == item]
        if not matches:
            raise ValueError(f"--exercises: {item!r} is not an exercise (numvae exercise list "
                             f"shows them: 01 ... {EXERCISES[-1].name.split('_')[0]})")
        names += [m for m in matches if m not in names]
    return names


def _regular_py_files(folder, skipped):
    """Every ``*.py`` under ``folder`` that is a regular file, in a stable order; anything
    else of that name gets a line in ``skipped``. Hidden folders and caches are left out."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = Path(root) / name
            kind = _kind(path)
            if kind == "file":
                found.append(path)
            else:
                skipped.append(f"skipped {path}: {kind}, not a regular file")
    return found


def _kind(path):
    try:
        mode = os.stat(path).st_mode  # follows a link: a link to a pipe is a pipe
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    return "a folder" if stat.S_ISDIR(mode) else "a device or socket"


def find_students(path, expected=None):
    """(students, skipped lines) for PATH; ``expected``: exercise names, default all (a
    single file: the ones whose functions it defines, known once it is graded: None)."""
    path, skipped = Path(path), []
    every = expected or [e.name for e in EXERCISES]
    kind = _kind(path)
    if kind == "file":
        return [Student(path.stem, [path], expected)], skipped
    if kind != "a folder":
        raise FileNotFoundError(f"{path} is not a file or a folder" if kind.startswith("unreadable")
                                else f"{path} is {kind}, not a file or a folder")
    direct = [p for p in sorted(path.iterdir()) if p.name.endswith(".py")]
    if direct:  # one student's folder
        return [Student(path.resolve().name, _regular_py_files(path, skipped), every)], skipped
    students = []
    for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
                         and p.name != "__pycache__"):
        files = _regular_py_files(folder, skipped)
        if files:
            students.append(Student(folder.name, files, every))
    return students, skipped


def student_rows(student, graded):
    """One Row per expected function of ``student``, given {path: [Result]}."""
    by_function, imports = {}, {}
    for path in student.files:
        for result in graded.get(path, []):
            if result.function == isolation.IMPORT:
                imports[path.stem] = (path, result)
            elif result.function in EXERCISE_OF:
                own = path.stem == EXERCISE_OF[result.function]
                if result.function not in by_function or own:
                    by_function[result.function] = (path, result)
    expected = student.expected or sorted({EXERCISE_OF[f] for f in by_function},
                                          key=[e.name for e in EXERCISES].index)
    rows = []
    for exercise in (e for e in EXERCISES if e.name in expected):
        for function in exercise.functions:
            if exercise.name in imports:  # its own file is there but was lost on import
                path, result = imports[exercise.name]
            elif function in by_function:
                path, result = by_function[function]
            else:
                path, result = "", grader.Result(function, grader.MISSING, f"no file defines it "
                                                 f"(expected in {exercise.name}.py)")
            rows.append(Row(student.name, exercise.name, function, result.status, path,
                            result.message))
    return rows


def details(student, graded, rows, several):
    """The lines for one student: each file's Results, then what is missing."""
    lines = [f"== {student.name}"] if several else []
    for path in student.files:
        results = graded.get(path, [])
        if results:
            lines += [f"{path.name}:" if len(student.files) > 1 else None,
                      grader.format_results(results)]
    missing = [row.function for row in rows if row.status == grader.MISSING]
    if missing:
        lines.append(f"missing: {', '.join(missing)}")
    return [line for line in lines if line is not None]


def summary(rows_by_student):
    """The table: one line per student, one column per exercise expected of anyone; a cell
    is "ok" when every function of the exercise passed, else the first other status."""
    shown = [e.name for e in EXERCISES
             if any(row.exercise == e.name for rows in rows_by_student.values() for row in rows)]
    width = max([7] + [len(name) for name in rows_by_student])
    lines = [f"{'student':<{width}}  " + " ".join(f"{n.split('_')[0]:>7}" for n in shown)
             + "   passed"]
    for name, rows in rows_by_student.items():
        cells = []
        for exercise in shown:
            mine = [row for row in rows if row.exercise == exercise]
            failing = [row.status for row in mine if row.status != grader.PASSED]
            cells.append("" if not mine else SHORT[failing[0]] if failing else "ok")
        passed = sum(row.status == grader.PASSED for row in rows)
        lines.append(f"{name:<{width}}  " + " ".join(f"{c:>7}" for c in cells)
                     + f"   {passed}/{len(rows)}")
    lines.append("(ok: every function passed; todo: not done yet; crash: its process was lost; "
                 "timeout: over the time limit)")
    return lines


def csv_text(rows_by_student):
    """The CSV: a header, then one row per student and function."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(Row._fields)
    for rows in rows_by_student.values():
        for row in rows:
            writer.writerow([row.student, row.exercise, row.function, row.status,
                             str(row.file), row.message])
    return buffer.getvalue()


def grade_class(students, limits=None):
    """Grade every student's files (``limits``: an ``isolation.Limits``, default its
    defaults): {student name: [Row, ...]} and {path: [Result]}."""
    limits = limits or isolation.Limits()
    paths = [path for student in students for path in student.files]
    graded = isolation.grade_files(paths, limits)
    return {student.name: student_rows(student, graded) for student in students}, graded
