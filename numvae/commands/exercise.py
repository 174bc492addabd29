"""``numvae exercise``: list the exercises, copy fresh stubs into a folder, grade a file."""
from pathlib import Path

from numvae import exercises
from numvae.commands.common import Parser, UsageError
from numvae.exercises import grader


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
    check = actions.add_parser("check", help="check the exercise functions in FILE "
                               "(or in every .py file of a folder)")
    check.add_argument("file", metavar="FILE")
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
    if path.is_dir():  # every exercise file of a folder, e.g. the one ``start`` filled
        files = sorted(path.glob("*.py"))
    elif path.is_file():
        files = [path]
    else:
        raise UsageError(f"numvae: error: {path} is not a file or a folder")
    if not files:
        raise UsageError(f"numvae: error: {path} has no .py file to check")
    results = []
    for file in files:
        file_results = grader.check_file(file)
        if len(files) > 1:
            print(f"{file.name}:")
        print(grader.format_results(file_results))
        results += file_results
    passed = sum(result.status == grader.PASSED for result in results)
    print(f"{passed} of {len(results)} passed")
    return 0 if grader.all_passed(results) else 1
