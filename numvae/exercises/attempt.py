"""The student's side of the grader: run their functions, record what came back, judge nothing.

This is the only module of the grader that calls student code. ``numvae exercise check``
runs it in a child process of its own for each file (``numvae.exercises.child``); a
notebook's check cell may run it in its own process. For each exercise function it calls
the student's function on every case of its spec (copies of the inputs) and records an
``outcome`` per case: the outputs as float64 arrays, or what was raised; for a backward,
also the central differences of the student's own forward (``fd``). The outcomes are plain
data (``encode``/``decode``: JSON, never pickle); ``grader.judge`` compares them with the
reference values, computed where no student code runs.
"""
import contextlib
import copy
import importlib.util
import itertools
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np

from numvae.diagnostics.gradcheck import check_arrays
from numvae.exercises import EXERCISES
from numvae.exercises.specs import SPECS, Wrong
from numvae.io.files import open_regular

SEED = 20231  # the same inputs at every run: a grade never depends on luck
FD_AGREES = 1e-5  # relative error of a correct float64 gradient: ~1e-9; a lost 1/2: 0.5
MAX_VALUES = 1_000_000  # a returned array larger than this comes back as its shape only
MAX_SOURCE_BYTES = 10_000_000  # of a student's file, searched for the functions' names
_module_numbers = itertools.count()


class StudentError(Exception):
    """The student's code raised an exception; the text names their file and line."""


def known_functions():
    """Every function the grader checks, in the exercises' order."""
    return [function for exercise in EXERCISES for function in exercise.functions]


def all_cases(functions=None):
    """{function: its list of Cases} for ``functions`` (default: every one): the same
    inputs in every process (a fixed seed). The child draws them before it imports the
    student's file, so that a file that patches NumPy changes its own answers only."""
    return {function: SPECS[function].cases(np.random.default_rng(SEED))
            for function in (known_functions() if functions is None else functions)}


def mentioned(path):
    """The exercise functions whose names appear in the text of the file at ``path`` (a
    regular file): those whose inputs are worth drawing before it is imported (the
    capstone's load mnist-mini). A function defined under another name is drawn for later."""
    try:
        with open_regular(path) as file:  # never waits on a named pipe
            text = file.read(MAX_SOURCE_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return known_functions()
    return [function for function in known_functions() if function in text]


# --- loading and calling ------------------------------------------------------------------

def load_student(path, caught=(Exception, SystemExit)):
    """Import the file at ``path`` as a fresh module (a new name each time, so an edited file
    is read again). Raises StudentError with the student's line if the import raises one
    of ``caught`` (the child process catches every BaseException)."""
    path = Path(path).resolve()
    name = f"_numvae_student_{next(_module_numbers)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # the student's own helper modules next to the file
    try:
        with quiet():
            spec.loader.exec_module(module)
    except SyntaxError as err:
        raise StudentError(f"SyntaxError: {err.msg} ({path.name}, line {err.lineno})") from None
    except caught as err:  # any error in the file is theirs
        raise StudentError(describe(err, path)) from None
    finally:
        with contextlib.suppress(ValueError):  # the file may have emptied sys.path itself
            sys.path.remove(str(path.parent))
    return module


@contextlib.contextmanager
def quiet():
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


def copy_case(case):
    """The student gets copies: a function that writes into its inputs spoils nothing."""
    return case._replace(args=copy.deepcopy(case.args), extra=copy.deepcopy(case.extra))


def named(spec, out, keys=None):
    """The outputs as {name: value}: ``spec.outputs`` names a tuple's items; a dict keeps
    its own names (``keys``: the ones expected)."""
    if spec.outputs == "dict":
        if not isinstance(out, dict):
            raise Wrong(f"should return a dict; got {type(out).__name__}")
        return {str(key): out.get(key) for key in (keys or out)}
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


def _as_output(value, name):
    """An output as an array, or the text of why it is not one (judged by the parent)."""
    try:
        return as_array(value, name)
    except Wrong as wrong:
        return wrong.text


# --- one function ----------------------------------------------------------------------------

def outcome(function, fn, module, case, path, caught):
    """What the student's ``fn`` did on ``case``: {"outputs": {name: array or text}, "fd":
    (verdict, detail) or None} or {"raised": "not_done" | "error" | "wrong", ...}."""
    spec = SPECS[function]
    with quiet():
        try:
            got = named(spec, spec.call(fn, copy_case(case)))
        except Wrong as wrong:
            return {"raised": "wrong", "text": wrong.text, "hint": wrong.hint}
        except NotImplementedError as err:
            frame = _student_frame(err, path)
            return {"raised": "not_done", "where": frame.name if frame else ""}
        except caught as err:  # the student's, shown as theirs
            return {"raised": "error", "text": f"your code raised {describe(err, path)}"}
        outputs = {name: _as_output(value, name) for name, value in got.items()}
        fd = fd_check(function, spec, module, case, outputs, caught) if spec.forward else None
    return {"outputs": outputs, "fd": fd}


def attempt(function, fn, module, cases, path, caught=(Exception, SystemExit)):
    """The outcomes of ``fn`` on ``cases``, up to the first one that raised."""
    outcomes = []
    for case in cases:
        outcomes.append(outcome(function, fn, module, case, path, caught))
        if "raised" in outcomes[-1]:
            break
    return outcomes


def forward_label(function, spec):
    """"your loss" for exercise 08 (its own first value), else "your <forward>"."""
    return "your loss" if spec.forward == function else f"your {spec.forward}"


def fd_check(function, spec, module, case, outputs, caught):
    """Compare the student's backward ``outputs`` with central differences of their own
    forward. Returns (verdict, detail): "agrees", "disagrees" (detail: the first output that
    does, in the backward pass's order) or "unknown" (detail: why)."""
    forward, label = getattr(module, spec.forward, None), forward_label(function, spec)
    if forward is None:
        return "unknown", f"no {spec.forward} in your file to compare it with"
    f, arrays = spec.fd(forward, copy_case(case))
    analytic = {name: outputs.get(name) for name in arrays}
    if any(not isinstance(value, np.ndarray) or value.shape != arrays[name].shape
           for name, value in analytic.items()):
        return "unknown", ""
    try:
        errors = check_arrays(f, arrays, analytic, n_entries=3 if len(arrays) > 4 else None)
    except NotImplementedError:
        return "unknown", f"{spec.forward} is not done yet, so it cannot be compared"
    except caught as err:  # the student's forward failed
        return "unknown", f"central differences of {label} failed: {describe(err, module.__file__)}"
    if not all(np.isfinite(error) for error in errors.values()):
        return "unknown", f"{label} is not finite here"
    failing = [name for name, error in errors.items() if error >= FD_AGREES]
    if not failing:
        return "agrees", ""
    return "disagrees", f"{failing[0]}: relative error {errors[failing[0]]:.2g}"


# --- outcomes as JSON --------------------------------------------------------------------

def encode(outcomes):
    """Outcomes as JSON-ready data: an array becomes {"shape", "values"} (values None when
    it has more than MAX_VALUES entries); NaN and infinities stay (Python's json writes them)."""
    def array(value):
        if not isinstance(value, np.ndarray):
            return {"text": str(value)}
        values = value.ravel().tolist() if value.size <= MAX_VALUES else None
        return {"shape": list(value.shape), "values": values}
    encoded = []
    for item in outcomes:
        item = dict(item)
        if "outputs" in item:
            item["outputs"] = {name: array(value) for name, value in item["outputs"].items()}
        encoded.append(item)
    return encoded


def decode(encoded):
    """The outcomes ``encode`` made, arrays back (float64, exactly: json keeps every digit)."""
    def array(data):
        if "text" in data:
            return str(data["text"])
        shape = tuple(int(n) for n in data["shape"])
        if data["values"] is None:
            return TooLarge(shape)
        return np.asarray(data["values"], dtype=np.float64).reshape(shape)
    decoded = []
    for item in encoded:
        item = dict(item)
        if "outputs" in item:
            item["outputs"] = {name: array(value) for name, value in item["outputs"].items()}
        if item.get("fd") is not None:
            item["fd"] = tuple(item["fd"])
        decoded.append(item)
    return decoded


class TooLarge:
    """A returned array too large to send back: only its shape."""

    def __init__(self, shape):
        self.shape = shape
