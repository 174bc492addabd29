"""``numvae exercise``: list the exercises, copy fresh stubs into a folder, grade a file."""
from pathlib import Path

from .. import exercises
from ..exercises import grader
from .common import Parser, UsageError


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
    check = actions.add_parser("check", help="check the exercise functions in FILE")
    check.add_argument("file")
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
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"numvae: error: {path} is not a file")
    results = grader.check_file(path)
    print(grader.format_results(results))
    passed = sum(result.status == grader.PASSED for result in results)
    print(f"{passed} of {len(results)} passed")
    return 0 if grader.all_passed(results) else 1
