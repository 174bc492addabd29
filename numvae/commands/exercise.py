"""``numvae exercise``: list the exercises, copy fresh stubs into a folder, grade a file, a
student's folder or a whole class (each file in a child process of its own)."""
import os
from pathlib import Path

from numvae import exercises
from numvae.commands.common import Parser, UsageError, float_in, int_in, output_file
from numvae.exercises import batch, grader, isolation
from numvae.io.files import atomic_write_bytes


def add_parser(commands):
    p = commands.add_parser("exercise", help="exercises: write the VAE's pieces yourself, "
                            "then let numvae check them")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True
    actions.add_parser("list", help="the exercises, one line each")
    start = actions.add_parser("start", help="copy fresh exercise stubs into DIR")
    start.add_argument("dir")
    start.add_argument("--overwrite", action="store_true",
                       help="replace stubs already in DIR (your work there is lost)")
    check = actions.add_parser(
        "check", help="grade exercise files: PATH is a file, a student's folder, or a folder "
        "of students' folders; each file runs in a child process of its own")
    check.add_argument("path", metavar="PATH", help="a .py file, a student's folder (every .py "
                       "file under it), or a folder of students' folders (one per student)")
    check.add_argument("--csv", metavar="FILE", help="also write one row per student and "
                       "function to FILE (.csv)")
    check.add_argument("--overwrite", action="store_true", help="replace an existing --csv FILE")
    check.add_argument("--timeout", type=float_in(0.1, 86_400.0), default=isolation.DEFAULT_TIMEOUT,
                       metavar="S", help="seconds each function may take (default "
                       f"{isolation.DEFAULT_TIMEOUT:g}; the capstone {isolation.CAPSTONE_FACTOR} times more)")
    check.add_argument("--jobs", type=int_in(1, 256), default=max(1, os.cpu_count() or 1),
                       help="files graded at once (default: the number of cores)")
    check.add_argument("--exercises", metavar="LIST", help="the exercises expected of a "
                       "folder, e.g. 02,03,04,06,07 (default: all)")
    return p


def run(args):
    return {"list": run_list, "start": run_start, "check": run_check}[args.action](args)


def run_list(args):
    for exercise in exercises.EXERCISES:
        print(f"{exercise.name}.py  {exercise.title}: {', '.join(exercise.functions)}")
    return 0


def run_start(args):
    try:
        written = exercises.start(args.dir, overwrite=args.overwrite)
    except exercises.StubsExist as err:
        raise UsageError(f"numvae: error: {args.dir} already has {', '.join(err.existing)}; "
                         f"your work there is kept (--overwrite replaces it with fresh stubs)"
                         ) from None
    print(f"wrote {len(written)} exercise stubs into {args.dir}; edit one, then run "
          f"numvae exercise check {Path(args.dir) / written[0].name}")
    return 0


def run_check(args):
    try:
        expected = batch.exercise_names(args.exercises) if args.exercises else None
        students, skipped = batch.find_students(args.path, expected)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(f"numvae: error: {err}", code=2) from None
    csv_path = None
    if args.csv:  # checked before any grading; an existing file is a usage error too
        try:
            csv_path = output_file(args.csv, ".csv", args.overwrite)
        except UsageError as err:
            raise UsageError(str(err), code=2) from None
    for line in skipped:
        print(line)
    if not any(student.files for student in students):
        raise UsageError(f"numvae: error: {args.path} has no .py file to check", code=2)
    limits = isolation.Limits(args.timeout, isolation.MEMORY_BYTES, args.jobs)
    rows_by_student, graded = batch.grade_class(students, limits)
    several = len(students) > 1
    for student in students:
        print("\n".join(batch.details(student, graded, rows_by_student[student.name], several)))
    rows = [row for rows in rows_by_student.values() for row in rows]
    if not rows and not any(graded.values()):
        print(f"{args.path}: defines none of the exercise functions (see numvae exercise list)")
    if several or args.csv:
        print("\n".join(batch.summary(rows_by_student)))
    if csv_path:
        atomic_write_bytes(csv_path, batch.csv_text(rows_by_student).encode("utf-8"))
        print(f"wrote {csv_path}")
    passed = sum(row.status == grader.PASSED for row in rows)
    print(f"{passed} of {len(rows)} passed")
    every_file_read = not any(isolation.IMPORT == r.function for rs in graded.values() for r in rs)
    return 0 if rows and passed == len(rows) and every_file_read else 1
