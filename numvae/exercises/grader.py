"""The grader: import a student's file, check each exercise function it defines.

    >>> results = check_file("01_dense.py")            # doctest: +SKIP
    >>> print(format_results(results))                 # doctest: +SKIP
    dense_forward: passed
    dense_backward: wrong: dW has shape (5, 4); expected (4, 5) (x (3, 4), W (4, 5)). Hint: ...

For each function: its values against numvae's (``reference``) on several random float64
inputs; for a backward, its gradient against central differences of the student's own
forward too, so that the message says which of the two is wrong; the shapes; in-place
updates where the task asks for them. A function that still raises NotImplementedError is
"not done yet"; an exception in the student's code is reported with their file and line.
"""
import contextlib
import copy
import importlib.util
import itertools
import sys
import traceback
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np

from numvae.diagnostics.gradcheck import check_arrays
from numvae.exercises import EXERCISES
from numvae.exercises import reference as answers
from numvae.exercises.mistakes import HINTS, MISTAKES
from numvae.exercises.specs import SPECS, Wrong, shape_hint

PASSED, NOT_DONE, WRONG = "passed", "not done yet", "wrong"
Result = namedtuple("Result", "function status message")
SEED = 20231  # the same inputs at every run: a grade never depends on luck
FD_AGREES = 1e-5  # relative error of a correct float64 gradient: ~1e-9; a lost 1/2: 0.5
_module_numbers = itertools.count()


class NotDone(Exception):
    """The student's function raised NotImplementedError."""


class StudentError(Exception):
    """The student's code raised an exception; the text names their file and line."""


# --- running the student's code ----------------------------------------------------------

def load_student(path):
    """Import the file at ``path`` as a fresh module (a new name each time, so an edited file
    is read again). Raises StudentError with the student's line if the import fails."""
    path = Path(path).resolve()
    name = f"_numvae_student_{next(_module_numbers)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # the student's own helper modules next to the file
    try:
        with _quiet():
            spec.loader.exec_module(module)
    except SyntaxError as err:
        raise StudentError(f"SyntaxError: {err.msg} ({path.name}, line {err.lineno})") from None
    except (Exception, SystemExit) as err:  # noqa: BLE001 -- any error in the file is theirs
        raise StudentError(describe(err, path)) from None
    finally:
        sys.path.remove(str(path.parent))
    return module


@contextlib.contextmanager
def _quiet():
    """No RuntimeWarning from a student's overflow: the grader reports it as a hint."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _student_frame(err, path):
    """The last frame of the error's traceback that lies in the student's file, or None."""
    frames = traceback.extract_tb(err.__traceback__)
    mine = [frame for frame in frames if Path(frame.filename).resolve() == Path(path).resolve()]
    return mine[-1] if mine else None


def describe(err, path):
    """"ValueError: ... (01_dense.py, line 12, in dense_backward: return dy @ W)": the
    error and where it happened in the student's file (nothing more if it happened outside
    it, as when the function does not take the arguments of its signature)."""
    text = f"{type(err).__name__}: {err}"
    frame = _student_frame(err, path)
    if frame is None:
        return text
    code = f": {frame.line.strip()}" if frame.line else ""
    return f"{text} ({Path(frame.filename).name}, line {frame.lineno}, in {frame.name}{code})"


def _copy_case(case):
    """The student gets copies: a function that writes into its inputs spoils nothing."""
    return case._replace(args=copy.deepcopy(case.args), extra=copy.deepcopy(case.extra))


def run_student(call, fn, case, path):
    """``call(fn, case)`` on a copy of the case, the student's exceptions translated."""
    with _quiet():
        try:
            return call(fn, _copy_case(case))
        except Wrong:
            raise
        except NotImplementedError as err:
            frame = _student_frame(err, path)
            raise NotDone(frame.name if frame else "") from None
        except (Exception, SystemExit) as err:  # noqa: BLE001 -- the student's, shown as theirs
            raise StudentError(f"your code raised {describe(err, path)}") from None


# --- comparing ---------------------------------------------------------------------------

def named(spec, out, keys=None):
    """The outputs as {name: value}: ``spec.outputs`` names a tuple's items; a dict keeps
    its own names (``keys``: the ones expected)."""
    if spec.outputs == "dict":
        if not isinstance(out, dict):
            raise Wrong(f"should return a dict; got {type(out).__name__}")
        return {key: out.get(key) for key in (keys or out)}
    if len(spec.outputs) == 1:
        return {spec.outputs[0]: out}
    if not isinstance(out, (tuple, list)) or len(out) != len(spec.outputs):
        raise Wrong(f"should return a tuple ({', '.join(spec.outputs)}); got {type(out).__name__}")
    return dict(zip(spec.outputs, out))


def as_array(value, name):
    """``value`` as a float64 array, or Wrong naming ``name`` if it is missing or not numbers."""
    if value is None:
        raise Wrong(f"{name} is missing from what you return")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Wrong(f"{name} is not an array of numbers (got {type(value).__name__})") from None


def close(got, want):
    """Equal up to roundoff: relative 1e-7, and absolute 1e-10 of the array's largest entry."""
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    return bool(np.allclose(got, want, rtol=1e-7, atol=1e-10 * scale))


def compare(function, spec, got, want, case):
    """Raise Wrong at the first output whose shape or values differ from numvae's."""
    for name, expected in want.items():
        expected = np.asarray(expected, np.float64)
        value = as_array(got.get(name), name)
        if value.shape != expected.shape:
            raise Wrong(f"{name} has shape {value.shape}; expected {expected.shape} "
                        f"({case.text})", shape_hint(function, name, value.shape, case))
        if np.isfinite(expected).all() and not np.isfinite(value).all():
            raise Wrong(f"{name} is not finite ({case.text})",
                        diagnose(function, spec, name, value, case) or spec.overflow_hint)
        if not close(value, expected):
            error = np.max(np.abs(value - expected)) / max(np.max(np.abs(expected)), 1e-300)
            raise Wrong(f"{name} differs from numvae's by up to {error:.2g} (relative) "
                        f"({case.text}{_where(name, want)})",
                        diagnose(function, spec, name, value, case) or case.extra.get("hint"))


def _where(name, want):
    """For a wrong gradient of exercise 08, that those checked before it are right."""
    names = [key for key in want if key.startswith("grads[")]
    if name not in names or name == names[0]:
        return ""
    return "; the gradients nearer the output, checked before it, are right"


def diagnose(function, spec, name, value, case):
    """The classic mistake whose wrong answer equals the student's ``name``, if any."""
    for hint, variant in MISTAKES.get(function, {}).items():
        try:
            with _quiet():
                guess = as_array(named(spec, spec.call(variant, _copy_case(case)))[name], name)
        except Exception:  # noqa: BLE001 -- a variant that does not apply to these inputs
            continue
        if guess.shape == value.shape and np.isfinite(value).all() and close(value, guess):
            return hint.split(":")[0]  # "adam_bias:m only" is a variant of "adam_bias"
    return None


# --- finite differences of the student's own forward ----------------------------------

def _forward_label(function, spec):
    """"your loss" for exercise 08 (its own first value), else "your <forward>"."""
    return "your loss" if spec.forward == function else f"your {spec.forward}"


def fd_check(function, spec, module, case, got):
    """Compare the student's backward outputs ``got`` with central differences of their own
    forward. Returns (verdict, detail): "agrees", "disagrees" (detail: the first output that
    does, in the backward pass's order) or "unknown" (detail: why)."""
    forward, label = getattr(module, spec.forward, None), _forward_label(function, spec)
    if forward is None:
        return "unknown", f"no {spec.forward} in your file to compare it with"
    f, arrays = spec.fd(forward, _copy_case(case))
    try:
        analytic = {name: as_array(got.get(name), name) for name in arrays}
        if any(analytic[name].shape != arrays[name].shape for name in arrays):
            return "unknown", ""
        with _quiet():
            errors = check_arrays(f, arrays, analytic, n_entries=3 if len(arrays) > 4 else None)
    except NotImplementedError:
        return "unknown", f"{spec.forward} is not done yet, so it cannot be compared"
    except Exception as err:  # noqa: BLE001 -- the student's forward failed
        return "unknown", f"central differences of {label} failed: {describe(err, module.__file__)}"
    if not all(np.isfinite(error) for error in errors.values()):
        return "unknown", f"{label} is not finite here"
    failing = [name for name, error in errors.items() if error >= FD_AGREES]
    if not failing:
        return "agrees", ""
    return "disagrees", f"{failing[0]}: relative error {errors[failing[0]]:.2g}"


def _backward_sentence(function, spec, verdict, detail):
    """What the finite differences of the student's forward add to a wrong backward."""
    label = _forward_label(function, spec)
    if verdict == "agrees":
        return (f" It agrees with central differences of {label}: so {label} is wrong too; "
                f"fix it first.")
    if verdict == "disagrees":
        return (f" It disagrees with central differences of {label} as well ({detail}): "
                f"the mistake is in the gradient.")
    return f" ({detail})" if detail else ""


# --- one function, one file ------------------------------------------------------------

def check_function(function, fn, module, path):
    """Grade the student's ``fn`` (named ``function``): a Result."""
    spec, reference = SPECS[function], getattr(answers, function)
    try:
        for case in spec.cases(np.random.default_rng(SEED)):
            with _quiet():
                want = named(spec, spec.call(reference, _copy_case(case)))
            got = named(spec, run_student(spec.call, fn, case, path), list(want))
            try:
                compare(function, spec, got, want, case)
            except Wrong as wrong:
                if spec.forward:
                    verdict, sentence = fd_check(function, spec, module, case, got)
                    sentence = _backward_sentence(function, spec, verdict, sentence)
                    wrong.text += "." + sentence if sentence else ""
                raise
        if spec.forward and spec.forward != function:
            verdict, sentence = fd_check(function, spec, module, case, got)
            if verdict == "disagrees":
                return Result(function, PASSED, f"but central differences of your "
                              f"{spec.forward} disagree with it ({sentence}): fix {spec.forward}")
        return Result(function, PASSED, "")
    except NotDone as err:
        where = str(err)  # the student's function that raised NotImplementedError
        helper = where not in ("", function)
        return Result(function, NOT_DONE, f"it calls {where}" if helper else "")
    except StudentError as err:
        return Result(function, WRONG, str(err))
    except Wrong as wrong:
        hint = f" Hint: {HINTS[wrong.hint]}." if wrong.hint else ""
        text = wrong.text if wrong.text.endswith(".") else wrong.text + "."
        return Result(function, WRONG, text + hint)


def known_functions():
    """Every function the grader checks, in the exercises' order."""
    return [function for exercise in EXERCISES for function in exercise.functions]


def check_file(path):
    """Grade every exercise function that the file at ``path`` defines: a list of Results
    (one for the file itself if it cannot be imported or defines none)."""
    path = Path(path)
    try:
        module = load_student(path)
    except StudentError as err:
        return [Result(path.name, WRONG, f"could not be imported: {err}")]
    found = [name for name in known_functions() if callable(getattr(module, name, None))]
    if not found:
        return [Result(path.name, WRONG, "defines none of the exercise functions "
                       "(see numvae exercise list)")]
    return [check_function(name, getattr(module, name), module, path) for name in found]


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
