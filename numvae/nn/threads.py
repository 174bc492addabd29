"""THE FASTER PATH's helper: a small pool of threads that splits big elementwise passes by rows.

Nothing here is needed to understand the VAE. The textbook code (``numvae.nn.layers``,
``numvae.model.likelihoods``, ...) computes each pass on the whole array; where a pass is
large, its faster path beside it hands ``split_rows`` a function of a row range, and the
pool runs the ranges at once, one per thread. NumPy releases the GIL inside its loops
over large arrays, so the threads compute in parallel. Each row of the result is computed
by the very same NumPy calls on the very same numbers, so a row split of an elementwise
pass is bit for bit the whole pass (the tests check it, with the pool on and off).

How many threads: ``NUMVAE_THREADS`` if it is set, else as many as the BLAS is told to use
(``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, the first one set),
else one per CPU this process may run on. One thread is off: every pass runs on the
calling thread, exactly as the textbook code. ``set_threads(n)`` changes it while running
(``set_threads(None)``: back to the environment's).

Small arrays stay on the calling thread: waking a worker costs some tens of microseconds,
more than a pass over fewer than ``MIN_ENTRIES`` entries takes (measured in
``docs/performance.md``, "Both cores").
"""
import contextvars
import itertools
import os
import queue
import threading

# Below this many entries a pass stays on the calling thread. A worker starts its range
# some tens of microseconds after it is handed out, and with the BLAS on two threads its
# core is not free: OpenBLAS's workers spin, waiting for the next product, for about 0.1 s
# after each one. Measured on 2 cores of an AMD EPYC (docs/performance.md, "Session 3"),
# the sigmoid and the Bernoulli loss right after a product, whole time / split time (below
# 1: the split is slower): 0.68 (100k entries), 0.93 (400k), 1.03 (1.6M) with the BLAS on
# two threads; 0.76, 1.37, 1.24 with it on one.
# 256k entries: the dense models' passes at batch 128 (100k) stay whole, the IWAE's
# (K * batch, 784) logits at K = 50 (784k) and FastAdam's buffer (444k, 653k) are split
# (FastAdam times its split against its unsplit update and keeps the faster).
MIN_ENTRIES = 262144
# Each split hands out this many row ranges per thread, so that a thread that starts
# late (the machine busy) finds the others have taken its share instead of waiting for it.
RANGES_PER_THREAD = 2
ENVIRONMENT = "NUMVAE_THREADS"
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# threads None: not read from the environment yet
_settings = {"threads": None, "min_entries": MIN_ENTRIES, "from_environment": None}
_pool = None
_pool_lock = threading.Lock()


def _count_from(variable):
    """The positive integer in the environment variable ``variable``, None if it is unset or
    empty, a ValueError naming it otherwise."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"the environment variable {variable} must be a whole number >= 1 "
                         f"(1: no threads of numvae's own); got {text!r}")
    return int(text)


def default_threads():
    """The thread count the environment asks for (see the module docstring)."""
    for variable in (ENVIRONMENT, *BLAS_VARIABLES):
        count = _count_from(variable) if variable == ENVIRONMENT else _blas_count(variable)
        if count is not None:
            return count
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _blas_count(variable):
    """A BLAS variable's thread count, or None where it is unset or not a number (the BLAS
    itself decides what such a value means; numvae does not refuse it)."""
    text = os.environ.get(variable, "").strip()
    return int(text) if text.isdigit() and int(text) >= 1 else None


def set_threads(n, *, min_entries=None):
    """Use ``n`` threads for the big elementwise passes from now on (1: off, every pass on
    the calling thread; None: the environment's count, ``default_threads()``).
    ``min_entries``: the size below which a pass stays on the calling thread (None: keep
    it). Returns the previous settings as a dict, to hand back to ``restore``."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"set_threads: n must be a whole number >= 1 (1: off) or None; got {n!r}")
    if min_entries is not None and (isinstance(min_entries, bool)
                                    or not isinstance(min_entries, int) or min_entries < 1):
        raise ValueError(f"set_threads: min_entries must be a whole number >= 1; got "
                         f"{min_entries!r}")
    previous = dict(_settings)
    _settings["threads"] = n  # None: read the environment again at the next use
    if min_entries is not None:
        _settings["min_entries"] = min_entries
    return previous


def restore(previous):
    """Put back the settings ``set_threads`` returned (a count that came from the
    environment is read again from it)."""
    _settings.update(previous)
    if previous["threads"] is not None and previous["threads"] == previous["from_environment"]:
        _settings["threads"] = None


def thread_count():
    """How many threads a big pass is split over now (1: the pool is off). The environment
    is read once, at the first call after ``set_threads(None)`` (or after starting)."""
    if _settings["threads"] is None:
        _settings["threads"] = _settings["from_environment"] = default_threads()
    return _settings["threads"]


def worth_splitting(n_entries):
    """True if a pass over ``n_entries`` entries would be split now (the pool is on and the
    pass is large enough): the faster paths take their split route only then."""
    return n_entries >= _settings["min_entries"] and thread_count() > 1


class Job:
    """One split: its row ranges, handed out one at a time to whichever thread asks first
    (the caller included), so that a worker the operating system wakes late, on a busy
    machine, leaves its ranges to the others instead of holding them up."""

    def __init__(self, task, bounds):
        self.task, self.bounds, self.errors = task, bounds, []
        self.next_range = itertools.count()   # next() on a count is atomic under the GIL
        self.finished = itertools.count(1)
        self.all_done = threading.Lock()
        self.all_done.acquire()  # released by whichever thread finishes the last range

    def take_ranges(self):
        n_ranges = len(self.bounds)
        while True:
            index = next(self.next_range)
            if index >= n_ranges:
                return
            try:
                self.task(*self.bounds[index])
            except BaseException as error:  # handed to the caller, which raises it
                self.errors.append(error)
            if next(self.finished) == n_ranges:
                self.all_done.release()


class RowPool:
    """``n_workers`` daemon threads, each waiting on its own queue for a ``Job``; the caller
    takes ranges of the job too, then waits until every range has finished."""

    def __init__(self, n_workers):
        self.inboxes = [queue.SimpleQueue() for _ in range(n_workers)]
        self.busy = threading.Lock()  # one split at a time; a second caller runs alone
        for inbox in self.inboxes:
            threading.Thread(target=self.work, args=(inbox,), daemon=True,
                             name="numvae-rows").start()

    @staticmethod
    def work(inbox):
        while True:
            context, job = inbox.get()
            context.run(job.take_ranges)  # the caller's context: np.errstate is one in NumPy 2

    def run(self, task, bounds):
        """task(start, stop) for each (start, stop) in ``bounds``, on the caller and the
        workers at once; raises the first error any range raised, once every range has
        finished (they write into shared arrays: none may still run when the caller goes on)."""
        if not self.busy.acquire(blocking=False):  # another split is under way (or nested)
            task(bounds[0][0], bounds[-1][1])
            return
        try:
            job = Job(task, bounds)
            for inbox in self.inboxes[: len(bounds) - 1]:
                inbox.put((contextvars.copy_context(), job))
            job.take_ranges()
            wait_for(job.all_done)
            if job.errors:
                raise job.errors[0]
        finally:
            self.busy.release()


def wait_for(lock):
    """Acquire ``lock``, even through a Ctrl-C: the ranges under way write into arrays the
    caller owns (FastAdam's parameters), so none may still run when the interrupt goes up."""
    interrupted = None
    while True:
        try:
            lock.acquire()
            break
        except BaseException as error:  # KeyboardInterrupt, or a signal handler's exception
            interrupted = error
    if interrupted is not None:
        raise interrupted


def row_bounds(n_rows, n_parts):
    """(start, stop) of ``n_parts`` consecutive row ranges of sizes differing by at most one
    (fewer ranges if there are fewer rows)."""
    n_parts = max(1, min(n_parts, n_rows))
    edges = [n_rows * i // n_parts for i in range(n_parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n_parts)]


def _get_pool(n_threads):
    global _pool
    with _pool_lock:
        if _pool is None or len(_pool.inboxes) < n_threads - 1:
            _pool = RowPool(n_threads - 1)  # an older, smaller pool's threads just wait
        return _pool


def split_rows(task, n_rows, n_entries):
    """Run ``task(start, stop)`` over the rows [0, n_rows): split over the threads when
    ``worth_splitting(n_entries)``, else once on the calling thread, task(0, n_rows).

    ``task`` must write rows start..stop of its outputs only, from rows start..stop of its
    inputs (so that the ranges never touch each other's entries).
    """
    if n_rows < 2 or n_entries < _settings["min_entries"]:
        task(0, n_rows)
        return
    n_threads = thread_count()
    if n_threads < 2:
        task(0, n_rows)
        return
    _get_pool(n_threads).run(task, row_bounds(n_rows, RANGES_PER_THREAD * n_threads))


def _forget_pool_after_fork():
    """A forked child has none of its parent's threads: it starts a pool of its own."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)
