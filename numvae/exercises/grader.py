"""The grader's judge: compare what a student's functions returned with numvae's answers.

    >>> results = check_file("01_dense.py")            # doctest: +SKIP
    >>> print(format_results(results))                 # doctest: +SKIP
    dense_forward: passed
    dense_backward: wrong: dW has shape (5, 4); expected (4, 5) (x (3, 4), W (4, 5)). Hint: ...

The student's functions are run by ``numvae.exercises.attempt``, which records their
outputs (``numvae exercise check`` runs it in a child process per file: see
``isolation``); this module never calls student code. For each function: its values
against numvae's (``reference``, computed before any student code runs in this process) on
several random float64 inputs; for a backward, what central differences of the student's
own forward said, so that the message says which of the two is wrong; the shapes; in-place
updates where the task asks for them. A function that still raises NotImplementedError is
"not done yet"; an exception in the student's code is reported with their file and line.
"""
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from numvae.exercises import reference as answers
from numvae.exercises.attempt import (
    StudentError,
    all_cases,
    as_array,
    attempt,
    copy_case,
    decode,
    forward_label,
    known_functions,
    load_student,
    mentioned,
    named,
    quiet,
)
from numvae.exercises.mistakes import ACCEPTED, HINTS, MISTAKES
from numvae.exercises.specs import SPECS, Wrong, shape_hint

PASSED, NOT_DONE, WRONG = "passed", "not done yet", "wrong"
CRASHED, TIMED_OUT, MISSING = "crashed", "timed out", "missing"
Result = namedtuple("Result", "function status message")
_CASES, _REFERENCE = {}, {}


# --- numvae's answers, before any student code runs -------------------------------------

def prepare_references(functions=None):
    """Draw the cases of ``functions`` (default: every one) and compute numvae's answers on
    them, once per process: call it before a student's file is imported here, so that a
    file which patches NumPy cannot change the answers it is compared with."""
    for function in known_functions() if functions is None else functions:
        if function not in _REFERENCE:
            _CASES.update(all_cases([function]))
            spec, reference = SPECS[function], getattr(answers, function)
            with quiet():
                _REFERENCE[function] = [named(spec, spec.call(reference, copy_case(case)))
                                        for case in _CASES[function]]


# --- comparing ---------------------------------------------------------------------------

def close(got, want, rtol=1e-7):
    """Equal up to roundoff: relative ``rtol`` (1e-7; the capstone's training 1e-9), and
    absolute 1e-10 of the array's largest entry."""
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    return bool(np.allclose(got, want, rtol=rtol, atol=min(1e-10, rtol) * scale))


def same(got, want):
    """``close`` where ``want`` is finite, and the same infinities and NaNs elsewhere (a
    wrong variant may be -inf exactly where the student's answer is)."""
    if got.shape != want.shape:
        return False
    finite = np.isfinite(want)
    if not np.array_equal(finite, np.isfinite(got)):
        return False
    return close(got[finite], want[finite]) and np.array_equal(got[~finite], want[~finite],
                                                               equal_nan=True)


def compare(function, spec, got, want, case):
    """Raise Wrong (``output``: the name) at the first output whose shape or values differ
    from numvae's, unless the answer is an accepted variant (``ACCEPTED``, e.g. Adam's
    efficient form): then return its note."""
    for name, expected in want.items():
        expected = np.asarray(expected, np.float64)
        try:
            value = got.get(name)
            if isinstance(value, str):
                raise Wrong(value)
            value = as_array(value, name) if not hasattr(value, "shape") else value
            _compare_one(function, spec, name, value, expected, case, want)
        except Wrong as wrong:
            note = _accepted(function, got, case, want)
            if note:
                return note
            wrong.output = name
            raise
    return None


def _compare_one(function, spec, name, value, expected, case, want):
    if value.shape != expected.shape:
        raise Wrong(f"{name} has shape {value.shape}; expected {expected.shape} "
                    f"({case.text})", shape_hint(function, name, value.shape, case))
    if np.isfinite(expected).all() and not np.isfinite(value).all():
        raise Wrong(f"{name} is not finite ({case.text})",
                    diagnose(function, spec, name, value, case) or spec.overflow_hint)
    if not close(value, expected, spec.rtol):
        error = np.max(np.abs(value - expected)) / max(np.max(np.abs(expected)), 1e-300)
        raise Wrong(f"{name} differs from numvae's by up to {error:.2g} (relative) "
                    f"({case.text}{_where(name, want)}{_first_step(name, value, expected, spec)})",
                    diagnose(function, spec, name, value, case) or case.extra.get("hint"))


def _first_step(name, value, expected, spec):
    """For the capstone's losses: the first step whose loss differs."""
    if name != "losses" or value.ndim != 1:
        return ""
    differs = [i for i in range(len(value)) if not close(value[i:i + 1], expected[i:i + 1],
                                                         spec.rtol)]
    return f"; first at step {differs[0] + 1}" if differs else ""


def _where(name, want):
    """For a wrong gradient of exercise 08, that those checked before it are right."""
    names = [key for key in want if key.startswith("grads[")]
    if name not in names or name == names[0]:
        return ""
    return "; the gradients nearer the output, checked before it, are right"


def _variant_value(function, variant, case, name):
    """Output ``name`` of a wrong (or accepted) variant of ``function`` on ``case``."""
    spec = SPECS[function]
    with quiet():
        return as_array(named(spec, spec.call(variant, copy_case(case)))[name], name)


def diagnose(function, spec, name, value, case):
    """The classic mistake whose wrong answer equals the student's ``name``, if any."""
    for hint, variant in MISTAKES.get(function, {}).items():
        try:
            guess = _variant_value(function, variant, case, name)
        except Exception:  # noqa: BLE001, S112 -- a variant that does not apply to these inputs
            continue
        if same(value, guess):
            return hint.split(":")[0]  # "adam_bias:m only" is a variant of "adam_bias"
    return None


def _accepted(function, got, case, want):
    """The note of an accepted variant (e.g. Adam's efficient form) that the student's
    answer equals on every output; else None."""
    for variant, note in ACCEPTED.get(function, {}).values():
        try:
            values = {name: _variant_value(function, variant, case, name) for name in want}
        except Exception:  # noqa: BLE001, S112 -- as in diagnose
            continue
        mine = {name: got.get(name) for name in want}
        if all(isinstance(mine[name], np.ndarray) and same(mine[name], values[name])
               for name in want):
            return note
    return None


# --- judging one function's outcomes ------------------------------------------------------

def _fd_sentence(function, spec, wrong, fd, got, want):
    """What central differences of the student's forward add to a wrong result."""
    verdict, detail = fd or ("unknown", "")
    label = forward_label(function, spec)
    if spec.forward == function:  # exercise 08: the loss and its gradients in one function
        if getattr(wrong, "output", None) == "loss":
            grads_right = all(isinstance(got.get(name), np.ndarray)
                              and same(got[name], np.asarray(value, np.float64))
                              for name, value in want.items() if name != "loss")
            if grads_right:
                return " Your gradients are right: only the loss's value is off."
        elif verdict == "agrees":
            return ""
    if verdict == "agrees":
        return (f" It agrees with central differences of {label}: so {label} is wrong too; "
                f"fix it first.")
    if verdict == "disagrees":
        return (f" It disagrees with central differences of {label} as well ({detail}): "
                f"the mistake is in the gradient.")
    return f" ({detail})" if detail else ""


def _raised(function, outcome):
    kind = outcome["raised"]
    if kind == "not_done":
        where = outcome.get("where", "")
        return Result(function, NOT_DONE,
                      f"it calls {where}" if where not in ("", function) else "")
    if kind == "wrong":
        raise Wrong(outcome.get("text", ""), outcome.get("hint"))
    return Result(function, WRONG, str(outcome.get("text", "")))


def judge(function, outcomes):
    """The Result of ``function`` from the student's ``outcomes`` (``attempt.attempt``)."""
    prepare_references([function])
    spec, notes = SPECS[function], []
    try:
        for case, want, outcome in zip(_CASES[function], _REFERENCE[function], outcomes):
            if "raised" in outcome:
                return _raised(function, outcome)
            got = outcome["outputs"]
            try:
                note = compare(function, spec, got, want, case)
            except Wrong as wrong:
                sentence = _fd_sentence(function, spec, wrong, outcome.get("fd"), got, want)
                wrong.text += ("." + sentence) if sentence else ""
                raise
            if note and note not in notes:
                notes.append(note)
        if len(outcomes) < len(_CASES[function]):
            return Result(function, CRASHED, "it returned no result for some inputs")
        verdict, detail = outcomes[-1].get("fd") or ("unknown", "")
        if spec.forward and spec.forward != function and verdict == "disagrees":
            notes.append(f"but central differences of your {spec.forward} disagree with it "
                         f"({detail}): fix {spec.forward}")
        return Result(function, PASSED, "; ".join(notes))
    except Wrong as wrong:
        hint = f" Hint: {HINTS[wrong.hint]}." if wrong.hint else ""
        text = wrong.text if wrong.text.endswith(".") else wrong.text + "."
        return Result(function, WRONG, text + hint)


def judge_encoded(function, encoded):
    """``judge`` of outcomes that came back as JSON; anything malformed is "crashed"."""
    try:
        outcomes = decode(encoded)
    except (TypeError, ValueError, KeyError, AttributeError):
        return Result(function, CRASHED, "its result came back unreadable")
    return judge(function, outcomes)


# --- in this process -------------------------------------------------------------------------

def check_file(path):
    """Grade every exercise function the file at ``path`` defines, IN THIS PROCESS: a list of
    Results (one for the file itself if it cannot be imported or defines none). For your
    own file (a notebook's check cell, a test); ``numvae exercise check`` grades each file
    in a child process of its own (``isolation.grade_files``), which no file can fool."""
    path = Path(path)
    prepare_references(mentioned(path))  # before the student's code runs here
    try:
        module = load_student(path)
    except StudentError as err:
        return [Result(path.name, WRONG, f"could not be imported: {err}")]
    found = [name for name in known_functions() if callable(getattr(module, name, None))]
    if not found:
        return [Result(path.name, WRONG, "defines none of the exercise functions "
                       "(see numvae exercise list)")]
    prepare_references(found)
    return [judge(name, attempt(name, getattr(module, name), module, _CASES[name], path))
            for name in found]


def check(namespace, show=True):
    """Grade the exercise functions defined in ``namespace`` (a notebook's ``globals()``),
    in this process: the check cell of an exercise notebook. Prints one line per function
    (``show``) and returns the Results."""
    found = [name for name in known_functions() if callable(namespace.get(name))]
    prepare_references(found)
    results = []
    for name in found:
        fn = namespace[name]
        where = getattr(getattr(fn, "__code__", None), "co_filename", "<notebook>")
        module = SimpleNamespace(**namespace, __file__=where)  # finds the forward by name
        results.append(judge(name, attempt(name, fn, module, _CASES[name], where)))
    if show:
        print(format_results(results) if results else
              "none of the exercise functions is defined here (see numvae exercise list)")
    return results


def format_results(results):
    """One line per function: "name: status" and, if any, why ("name: passed (note)")."""
    def line(result):
        if not result.message:
            return f"{result.function}: {result.status}"
        if result.status == PASSED:
            return f"{result.function}: {result.status} ({result.message})"
        return f"{result.function}: {result.status}: {result.message}"
    return "\n".join(line(result) for result in results)


def all_passed(results):
    """True when there is at least one result and every one passed (exit code 0)."""
    return bool(results) and all(r.status == PASSED for r in results)
