"""Grading student files in child processes of their own, so that no file can fool or hang it.

Each file is graded by a fresh ``python -m numvae.exercises.child`` (the same Python as the
grader), in a session of its own, with a limited address space and CPU time, one BLAS
thread, its working folder a scratch folder, its stdout and stdin closed to it. It writes
its events to a results file this process named (``child.py``); this process reads them,
times each function from its "start" event, and judges the outcomes (``grader.judge``)
against numvae's answers, computed here, where no student code runs. A child that ends
without finishing a function makes that function "crashed"; one that outlives a function's
time limit is killed (its whole session) and the function is "timed out"; either way a new
child grades the functions that are left. Several children run at once (``jobs``).

In scope: mistakes and naive tampering (a file that exits, patches NumPy or the grader,
loops, closes stdout, raises anything, allocates without end). Out of scope: a deliberate
attack on the teacher's machine (a child runs as the teacher, with the teacher's files).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

import numvae
from numvae.exercises import EXERCISES, grader
from numvae.exercises.attempt import mentioned

DEFAULT_TIMEOUT = 10.0       # seconds per function (the capstone: CAPSTONE_FACTOR times more)
CAPSTONE_FACTOR = 30         # the capstone trains a model: 300 s at the default
MEMORY_BYTES = 2 * 1024**3   # a child's address space
# Python, NumPy and numvae starting in a child, before the student's code
STARTUP_SECONDS = 60.0
MAX_RESULTS_BYTES = 64 * 1024**2
IMPORT = "(import)"          # the Result "function" of a file that cannot be imported
POLL = 0.02

Limits = namedtuple("Limits", "timeout memory_bytes jobs",
                    defaults=(DEFAULT_TIMEOUT, MEMORY_BYTES, 2))
LONG = {function for exercise in EXERCISES if exercise.name.startswith("12_")
        for function in exercise.functions}


def time_limit(function, timeout):
    """The seconds ``function`` may take: ``timeout``, the capstone 30 times that."""
    return timeout * CAPSTONE_FACTOR if function in LONG else timeout


def child_environment():
    """The child's environment: this numvae first on its path, one thread per BLAS, no
    figure window, no bytecode written into the students' folders."""
    env = dict(os.environ)
    package_root = str(Path(numvae.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    return env


class Job:
    """One student file: its children (one at a time), their events, its Results."""

    def __init__(self, path, limits, scratch, number):
        self.path, self.limits, self.scratch, self.number = Path(path), limits, scratch, number
        self.results = {}          # function -> Result, in the order they come
        self.found = None          # the functions the file defines (known after the import)
        self.process = None
        self.children = 0
        self.finished = False

    # --- starting and stopping a child ------------------------------------------------

    def start(self, functions=()):
        self.children += 1
        self.events_path = self.scratch / f"job{self.number}-{self.children}.jsonl"
        self.events_path.write_bytes(b"")
        self.offset, self.buffer, self.current, self.loading = 0, b"", None, None
        self.started = time.monotonic()
        all_limits = sum(time_limit(f, self.limits.timeout) for f in grader.known_functions())
        command = [sys.executable, "-m", "numvae.exercises.child", str(self.events_path),
                   str(self.path.resolve()), *functions,
                   "--memory-bytes", str(self.limits.memory_bytes),
                   "--cpu-seconds", str(int(STARTUP_SECONDS + 2 * all_limits))]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        cwd=self.scratch, env=child_environment(),
                                        start_new_session=True)

    def kill(self):
        """End the child and everything it started (its session), and wait for it."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    # --- reading its events -------------------------------------------------------------

    def read_events(self):
        """The complete lines the child appended since the last call, parsed."""
        size = self.events_path.stat().st_size
        if size > MAX_RESULTS_BYTES:
            raise OverflowError("it sent back more than 64 MB")
        with open(self.events_path, "rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        self.offset += len(chunk)
        lines = (self.buffer + chunk).split(b"\n")
        self.buffer = lines.pop()
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # not one of the child's lines
        return events

    def handle(self, event):
        kind = event.get("event")
        self.last_event = time.monotonic()
        if kind == "loading":
            self.loading = time.monotonic()
        elif kind == "import_failed":
            self.results[IMPORT] = grader.Result(IMPORT, grader.WRONG,
                                                 f"could not be imported: {event.get('text')}")
        elif kind == "found" and self.found is None:
            self.found = [f for f in event.get("functions", []) if f in grader.known_functions()]
        elif kind == "start":
            self.current, self.current_started = event.get("function"), time.monotonic()
        elif kind == "done" and event.get("function") == self.current:
            self.results[self.current] = grader.judge_encoded(self.current, event.get("outcomes"))
            self.current = None
        elif kind == "end":
            self.finished = True

    # --- one look at the child ----------------------------------------------------------

    def poll(self):
        """Read what the child wrote, then deal with its end or its lateness. Returns True
        when the file is fully graded."""
        exit_code = self.process.poll()
        try:
            for event in self.read_events():
                self.handle(event)
        except OverflowError as err:
            self.kill()
            return self._lost(grader.CRASHED, str(err))
        if self.finished:
            self.kill()  # a thread or an exit handler of the student's may still run
            return True
        if exit_code is not None:
            return self._lost(grader.CRASHED, _ended(exit_code))
        return self._check_time()

    def _check_time(self):
        now = time.monotonic()
        if self.current is not None:
            limit = time_limit(self.current, self.limits.timeout)
            if now - self.current_started > limit:
                self.kill()
                return self._lost(grader.TIMED_OUT, f"still running after {limit:g} s")
        elif self.loading is not None:  # importing the file, or between two functions
            if now - self.last_event > self.limits.timeout:
                self.kill()
                where = "importing it" if self.found is None else "its code between two functions"
                return self._lost(grader.TIMED_OUT, f"{where} took over {self.limits.timeout:g} s")
        elif now - self.started > STARTUP_SECONDS + self.limits.timeout:
            self.kill()
            return self._lost(grader.CRASHED, "the grader's child process did not start")
        return False

    def _lost(self, status, why):
        """The child is gone: the function it was running (or the import) gets ``status``;
        a new child grades what is left. Returns True when nothing is left."""
        if self.found is None:  # lost while importing the file
            self.results[IMPORT] = grader.Result(IMPORT, status,
                                                 f"{why} (while importing the file)")
            return True
        if self.current is not None:
            self.results[self.current] = grader.Result(self.current, status, why)
        left = [f for f in self.found if f not in self.results]
        if left and self.children > len(self.found) + 1:  # each child should grade one more
            for function in left:
                self.results[function] = grader.Result(function, status, why)
            return True
        if not left:
            return True
        self.start(left)
        return False

    def ordered_results(self):
        """The Results in the exercises' order (the import's first)."""
        order = [IMPORT] + grader.known_functions()
        return [self.results[name] for name in order if name in self.results]


def _ended(exit_code):
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"its process was ended by {name}"
    return f"its process ended (exit code {exit_code}) before the grader had its result"


def grade_files(paths, limits=None, progress=None):
    """Grade each file of ``paths`` in a child process of its own, ``limits.jobs`` at a
    time. Returns {path: [Result, ...]}, each file's Results in the exercises' order; a file
    that defines no exercise function gets an empty list. ``progress(path, results)`` is
    called as each file is done. ``limits``: a Limits (default: its defaults)."""
    limits = limits or Limits()
    needed = sorted({f for p in paths for f in mentioned(p)}, key=grader.known_functions().index)
    grader.prepare_references(needed)  # numvae's answers, before any child runs
    pending = list(enumerate(Path(p) for p in paths))
    running, done = [], {}
    with tempfile.TemporaryDirectory(prefix="numvae-grading-") as scratch:
        try:
            while pending or running:
                while pending and len(running) < max(1, limits.jobs):
                    number, path = pending.pop(0)
                    job = Job(path, limits, Path(scratch), number)
                    job.start()
                    running.append(job)
                for job in [job for job in running if job.poll()]:
                    running.remove(job)
                    done[job.path] = job.ordered_results()
                    if progress:
                        progress(job.path, done[job.path])
                time.sleep(POLL)
        finally:
            for job in running:
                job.kill()
    return {Path(p): done[Path(p)] for p in paths}
