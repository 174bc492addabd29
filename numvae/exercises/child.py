"""The grader's child process: ``python -m numvae.exercises.child RESULTS STUDENT_FILE ...``.

One child per student file (``numvae.exercises.isolation`` starts it and watches it). It
limits its own address space and CPU time, draws the inputs, and only then imports the
student's file; it runs the exercise functions the file defines and appends one JSON line
per event to RESULTS, a file the parent named: "loading", "import_failed", "found",
"start" (a function begins: the parent times it), "done" (its outcomes), "end". The file
is opened, appended to and closed for each line, so a student's code that closes stdout or
every descriptor loses nothing; stdout itself is never used. Nothing here judges: the
parent compares the outcomes with numvae's answers, computed where no student code runs.
"""
import argparse
import json
import resource
import sys

from numvae.exercises import attempt
from numvae.io.files import open_regular


def write(results, event):
    """Append one event to the RESULTS file, as one JSON line (NaN and inf allowed)."""
    line = json.dumps(event, allow_nan=True) + "\n"
    with open(results, "a", encoding="utf-8") as file:
        file.write(line)


def limit_myself(memory_bytes, cpu_seconds):
    """Hard limits, which the student's code cannot raise again: its address space (an
    allocation without end raises MemoryError) and its CPU time (SIGXCPU ends it)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m numvae.exercises.child")
    parser.add_argument("results")
    parser.add_argument("student_file")
    parser.add_argument("functions", nargs="*", help="grade only these (default: all found)")
    parser.add_argument("--memory-bytes", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    limit_myself(args.memory_bytes, args.cpu_seconds)
    # the inputs, before the student's code can patch NumPy
    cases = attempt.all_cases(attempt.mentioned(args.student_file))
    write(args.results, {"event": "loading"})
    try:
        open_regular(args.student_file).close()  # a named pipe is refused, never waited on
    except OSError as err:
        write(args.results, {"event": "import_failed", "text": str(err)})
        write(args.results, {"event": "end"})
        return 0
    try:
        module = attempt.load_student(args.student_file, caught=BaseException)
    except attempt.StudentError as err:
        write(args.results, {"event": "import_failed", "text": str(err)})
        write(args.results, {"event": "end"})
        return 0
    wanted = set(args.functions)
    found = [name for name in attempt.known_functions()
             if callable(getattr(module, name, None)) and (not wanted or name in wanted)]
    write(args.results, {"event": "found", "functions": found})
    for name in found:
        if name not in cases:  # defined under another name in the file's text: drawn now
            cases.update(attempt.all_cases([name]))
        write(args.results, {"event": "start", "function": name})
        outcomes = attempt.attempt(name, getattr(module, name), module, cases[name],
                                   args.student_file, caught=BaseException)
        write(args.results, {"event": "done", "function": name,
                             "outcomes": attempt.encode(outcomes)})
    write(args.results, {"event": "end"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
