"""THE FASTER PATH for two cores: each training step shared by two processes, one half of the
batch each (data parallelism). ``fit(..., processes=2)`` uses it; nothing here is needed to
understand the VAE. Read ``numvae.training.loop.train_step`` first: this is the same step.

The loss is a mean over the batch (eq. V1), so its gradient is a weighted mean of the
gradients of the two halves' losses (eq. DP1, derivations.md): with rows [0, h) here and
rows [h, B) in the second process,

    grad L = (h / B) grad L_[0, h) + ((B - h) / B) grad L_[h, B).

Both processes hold the model. Its parameters, Adam's moments, the batch and the two
gradients sit in memory both can see (an anonymous shared mapping, inherited when the
second process is forked; back in this process's own memory when the run ends). One step:

1. this process writes the batch and its noise eps (drawn here, from the model's
   generator, as one process draws it) where the second reads them, and says "go";
2. each runs the forward and backward pass of its half (eqs. V1-V6), and checks that its
   gradient is finite (``fit`` stops at a bad one, as with one process);
3. each process takes half of the parameter entries and, slice by slice while the slice
   is in the cache, adds the two gradients, weighted (DP1), then applies Adam (eq. O2).

Why processes and not threads: a Python thread needs the GIL between two NumPy calls, and
on a virtual machine handing it over costs tens of microseconds, as waking a sleeping
thread does (docs/performance.md, "Two processes"). Two processes have a GIL each, and
each waits for the other by polling a shared semaphore, which takes microseconds; one
that has waited SPIN_SECONDS without news sleeps until it is woken, so an idle process
takes no CPU.

The numbers are those of one process up to rounding, because the matrix products sum the
batch in two halves (tests check the two against each other in float64); from run to run,
and across a resume, they are the same to the bit. Each process must run the BLAS on one
thread, else the two fight for the cores: start Python with OPENBLAS_NUM_THREADS=1 (the
check reads the first of OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS that is
set, as OpenBLAS does; an MKL build of NumPy reads MKL_NUM_THREADS first). Linux only
(``os.fork``; macOS's Accelerate is not safe to use after a fork).
"""
import contextlib
import mmap
import multiprocessing
import os
import signal
import sys
import time
import warnings
import weakref

import numpy as np

from numvae.model.vae import VAE
from numvae.nn.threads import BLAS_VARIABLES, thread_count
from numvae.training.optim_fast import FastAdam, share_one_buffer
from numvae.validation import NumericalError

# Poll for this long, then sleep until woken: long enough to span a step's other half,
# short enough that a pause in training (an evaluation between epochs) frees the core.
SPIN_SECONDS = 0.02
# A stop asked for (Ctrl-C) while the second process does not answer: give up after this.
STOP_GRACE_SECONDS = 2.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# the control words in shared memory: the step's halves, the order to stop, how the update
# goes (ADD_AND_APPLY; APPLY: the gradients were added here; SKIP: no update), what failed
HALF, BATCH, STOP, UPDATE, FAILED = range(5)
ADD_AND_APPLY, APPLY, SKIP = range(3)
# the numbers: the second half's loss and squared gradient norm, the KL weight, Adam's step
LOSS, SQUARES, KL_WEIGHT, STEP_SIZE, EPS_HAT, FLUSH = range(6)


class SecondProcessError(RuntimeError):
    """The second process ended, failed or stopped answering; the message says how."""


def shared_empty(size, dtype):
    """An array of ``size`` entries in memory shared with the processes forked later."""
    dtype = np.dtype(dtype)
    return np.frombuffer(mmap.mmap(-1, max(1, size * dtype.itemsize)), dtype, count=size)


@contextlib.contextmanager
def sharing(processes, model, optimizer, batch_size, interrupt=None):
    """``fit``'s: None for ``processes`` = 1; for 2, the ``TwoProcesses`` that shares the
    steps of a run, closed when the run ends, however it ends. ``interrupt``: fit's dict
    whose "requested" entry a stop signal sets (a wait for a silent process then ends)."""
    if processes not in (1, 2) or isinstance(processes, bool):
        raise ValueError(f"processes must be 1 or 2; got {processes!r}")
    if processes == 1:
        yield None
        return
    split = TwoProcesses(model, optimizer, batch_size, interrupt)
    try:
        yield split
    finally:
        split.close()


def check_can_split(model, optimizer):
    """A ValueError, in one line, where the step cannot be shared by two processes."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        raise ValueError(f"processes=2 runs on Linux only (it forks the process); this is "
                         f"{sys.platform}")
    if not isinstance(model, VAE):
        raise ValueError(f"processes=2 trains a numvae.VAE; got {type(model).__name__}")
    if getattr(model.objective, "couples_the_batch", False):
        raise ValueError(f"processes=2: the objective {type(model.objective).__name__} is not a "
                         f"mean over the examples, so the batch cannot be split")
    if not isinstance(optimizer, FastAdam):
        raise ValueError(f"processes=2 needs numvae.training.optim_fast.FastAdam (what numvae "
                         f"train uses); got {type(optimizer).__name__}")
    variable = next((v for v in BLAS_VARIABLES if os.environ.get(v, "").strip()), None)
    if variable is None or os.environ[variable].strip() != "1":
        got = "none of them set" if variable is None else f"{variable}={os.environ[variable]}"
        raise ValueError(f"processes=2: each process must run the BLAS on one thread; start "
                         f"Python with OPENBLAS_NUM_THREADS=1 (got {got})")
    if thread_count() > 1:
        raise ValueError(f"processes=2: numvae's own threads must be off in each process "
                         f"(NUMVAE_THREADS=1); got {thread_count()} threads")


def end_second_process(pid, reaped, control, semaphores):
    """Tell the second process to stop, then reap it (SIGKILL after 10 s). Run by
    ``TwoProcesses.close``, or when a TwoProcesses is forgotten, or at exit."""
    control[STOP] = 1
    for semaphore in semaphores:  # it waits on one of them, or is about to
        semaphore.release()
    deadline = time.monotonic() + 10.0
    while not ended(pid, reaped):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # reaped by the system (SIGCHLD ignored)
                reaped[0] = True
        time.sleep(0.001)


def acquire(semaphore, still_waiting, sleep_seconds):
    """Poll ``semaphore`` for SPIN_SECONDS, then sleep on it ``sleep_seconds`` at a time,
    asking ``still_waiting(start)`` after each sleep (it may raise). True once acquired;
    False if ``still_waiting`` says to give up."""
    start = time.monotonic()
    while time.monotonic() - start <= SPIN_SECONDS:
        if semaphore.acquire(False):
            return True
    while not semaphore.acquire(timeout=sleep_seconds):
        if not still_waiting(start):
            return False
    return True


def ended(pid, reaped):
    """True once the child ``pid`` has ended. ``reaped``, a one-item list, remembers it: the
    pid, free again, is never waited for or killed a second time."""
    if not reaped[0]:
        try:
            reaped[0] = os.waitpid(pid, os.WNOHANG)[0] != 0
        except ChildProcessError:  # reaped already (SIGCHLD ignored, say)
            reaped[0] = True
    return reaped[0]


class TwoProcesses:
    """The second process and the shared memory of a run of ``fit(..., processes=2)``.
    ``loss_and_gradient`` then ``update`` make one step; ``close`` ends the second process
    and moves the model and optimiser back into this process's own memory."""

    def __init__(self, model, optimizer, batch_size, interrupt=None):
        check_can_split(model, optimizer)
        self.model, self.optimizer = model, optimizer
        self.interrupt = interrupt if interrupt is not None else {"requested": None}
        self.grads = optimizer.move_buffers(shared_empty, model.grads)  # here: mine, then the sum
        if self.grads is None:
            raise ValueError("processes=2: the model's parameters and gradients must each tile "
                             "one buffer of one dtype; got parameters of several")
        try:
            self.share(batch_size)
            self.fork()
        except BaseException:  # no half-started run: the model back in private memory
            if "end" in vars(self):
                self.end()
            optimizer.move_buffers(np.empty, model.grads)
            raise

    def share(self, batch_size):
        """The rest of the shared memory: the other half's gradient, the batch, its noise and
        terms, the numbers and control words, and the semaphores."""
        model = self.model
        self.other_grads = shared_empty(self.grads.size, self.grads.dtype)
        self.x = shared_empty(batch_size * model.input_dim, model.dtype).reshape(batch_size, -1)
        self.y = shared_empty(batch_size, np.int64)
        self.eps = shared_empty(model.n_samples * batch_size * model.latent_dim,
                                model.dtype).reshape(model.n_samples, batch_size, -1)
        self.terms = shared_empty(2 * batch_size, np.float64).reshape(2, batch_size)  # its half's
        self.numbers = shared_empty(6, np.float64)
        self.control = shared_empty(5, np.int64)
        self.message = shared_empty(1000, np.uint8)  # the second process's error, in UTF-8
        # one semaphore per message: go, its gradient is ready, update, updated
        context = multiprocessing.get_context("fork")
        self.go, self.its_gradient, self.apply, self.applied = (
            context.Semaphore(0) for _ in range(4))
        self.cut = self.grads.size // 2  # the entries [0, cut) are added and updated here

    def fork(self):
        """Start the second process (``pid``; ``end`` ends it, also when this object is
        collected, or at exit); it runs ``serve`` and never returns from here. The stop
        signals wait (blocked) until it ignores them, and until ``end`` exists here."""
        parent = os.getpid()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            with warnings.catch_warnings():
                # Python 3.12 warns on fork in a process with threads (numvae's pool, the
                # BLAS's): the second process only runs ``serve``, which takes none of their locks
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                self.run_second_process(parent, blocked)
            self.pid, self.reaped = pid, [False]
            self.end = weakref.finalize(self, end_second_process, pid, self.reaped,
                                        self.control, (self.go, self.apply))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def run_second_process(self, parent, blocked):
        code = 1
        try:
            for number in STOP_SIGNALS:
                signal.signal(number, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            self.serve(parent)
            code = 0
        except BaseException as error:  # told to the first process, which raises it
            self.tell_error(error)
        finally:
            os._exit(code)  # never back into the caller's code (a test runner's, say)

    # --- this process --------------------------------------------------------------------

    def loss_and_gradient(self, x, y, kl_weight):
        """Both halves' forward and backward passes (eqs. V1-V6), this one here. Returns the
        loss terms as ``train_step`` uses them, and whether both gradients are finite."""
        model, batch = self.model, len(x)
        half = (batch + 1) // 2
        eps = model.draw_eps(batch)  # all of it here: the generator's draws as in one process
        self.x[:batch] = x
        self.eps[:, :batch] = eps
        if y is not None:
            self.y[:batch] = y
        self.numbers[KL_WEIGHT] = np.nan if kl_weight is None else kl_weight
        self.control[[HALF, BATCH, FAILED]] = half, batch, 0
        self.go.release()
        try:
            cache = model.forward(x[:half], eps[:, :half], y=None if y is None else y[:half],
                                  kl_weight=kl_weight)
            model.backward(cache)
        except BaseException:
            self.wait(self.its_gradient)  # the second half's answer: the next step pairs
            if not self.control[FAILED]:  # with its own
                self.update_there(SKIP)
            raise
        squares = np.vdot(self.grads, self.grads)
        self.wait(self.its_gradient)
        if self.control[FAILED]:
            text = self.error_text()
            raise NumericalError(text) if self.control[FAILED] == 1 else SecondProcessError(text)
        share = (batch - half) / batch
        terms = dict(loss=(1.0 - share) * cache["loss"] + share * self.numbers[LOSS],
                     reconstruction=np.concatenate([cache["reconstruction"],
                                                    self.terms[0, half:batch]]),
                     kl=np.concatenate([cache["kl"], self.terms[1, half:batch]]))
        return terms, bool(np.isfinite(squares) and np.isfinite(self.numbers[SQUARES]))

    def update(self, finite, check):
        """Adam (eq. O2) at the next step: the entries [0, cut) here, the others there,
        each slice after its gradients are added (DP1). If a half's gradient is not
        ``finite``, the halves are added up here first and ``check()`` names it (raises):
        then no process updates."""
        if not finite:
            self.add_halves(0, self.grads.size, *self.control[[HALF, BATCH]])
            try:
                check()
            except BaseException:
                self.update_there(SKIP)
                raise
        self.numbers[[STEP_SIZE, EPS_HAT, FLUSH]] = self.optimizer.next_step()
        self.control[UPDATE] = ADD_AND_APPLY if finite else APPLY
        self.apply.release()
        self.add_and_apply(0, self.cut)
        self.wait(self.applied)

    def update_there(self, how):
        """Tell the second process how its part of the update goes, and wait until done."""
        self.control[UPDATE] = how
        self.apply.release()
        self.wait(self.applied)

    def add_and_apply(self, start, stop):
        """For each slice of the entries start..stop: eq. DP1 into ``grads``, then Adam."""
        half, batch, how = self.control[[HALF, BATCH, UPDATE]]
        step_size, eps_hat, flush = self.numbers[[STEP_SIZE, EPS_HAT, FLUSH]]
        for first in range(start, stop, self.optimizer.chunk):
            last = min(first + self.optimizer.chunk, stop)
            if how == ADD_AND_APPLY:
                self.add_halves(first, last, half, batch)
            self.optimizer.update_entries(self.grads, first, last, float(step_size),
                                          float(eps_hat), bool(flush))

    def add_halves(self, start, stop, half, batch):
        """grads <- (half / batch) grads + ((batch - half) / batch) other_grads (eq. DP1),
        over the entries start..stop."""
        if half == batch:  # one row: the second process had none
            return
        mine, other = self.grads[start:stop], self.other_grads[start:stop]
        if 2 * half == batch:  # (a + b) / 2, the same number as a / 2 + b / 2
            mine += other
            mine *= 0.5
            return
        mine *= half / batch
        other *= (batch - half) / batch
        mine += other

    def wait(self, semaphore):
        """Until the second process releases ``semaphore``. An error if that process ended,
        or if a stop was asked for and it has not answered for STOP_GRACE_SECONDS."""
        def still_waiting(start):
            if ended(self.pid, self.reaped):
                raise SecondProcessError(f"numvae's second process ended: "
                                         f"{self.error_text() or 'killed'}")
            if self.interrupt["requested"] and time.monotonic() - start > STOP_GRACE_SECONDS:
                raise SecondProcessError(f"numvae's second process has not answered for "
                                         f"{time.monotonic() - start:.0f} s; stopped")
            return True
        acquire(semaphore, still_waiting, 0.05)

    def error_text(self):
        """The second process's error, as ``tell_error`` wrote it ("" if none)."""
        return bytes(self.message).rstrip(b"\0").decode("utf-8", "replace")

    def close(self):
        """End the second process, then put the model's parameters, Adam's moments and the
        gradients back into this process's own memory (a later fork shares nothing)."""
        try:
            self.end()
        finally:
            self.optimizer.move_buffers(np.empty, self.model.grads)

    # --- the second process -------------------------------------------------------------

    def serve(self, parent):
        """The second process's loop: one step's half each time it is told to go."""
        share_one_buffer(self.model.grads, lambda size, dtype: self.other_grads)
        while self.sleep_until(self.go, parent):
            half, batch = int(self.control[HALF]), int(self.control[BATCH])
            self.numbers[SQUARES] = 0.0
            if half < batch and not self.its_half(half, batch):
                continue
            self.its_gradient.release()
            if not self.sleep_until(self.apply, parent):
                return
            if self.control[UPDATE] != SKIP:
                self.add_and_apply(self.cut, self.grads.size)
            self.applied.release()

    def its_half(self, half, batch):
        """The rows [half, batch): forward and backward, their terms into shared memory;
        False (the error told) if they failed."""
        kl_weight = None if np.isnan(self.numbers[KL_WEIGHT]) else float(self.numbers[KL_WEIGHT])
        y = self.y[half:batch] if self.model.n_classes else None
        try:
            cache = self.model.forward(self.x[half:batch], self.eps[:, half:batch], y=y,
                                       kl_weight=kl_weight)
            self.model.backward(cache)
        except Exception as error:
            self.tell_error(error)
            self.its_gradient.release()
            return False
        self.terms[0, half:batch] = cache["reconstruction"]
        self.terms[1, half:batch] = cache["kl"]
        self.numbers[[LOSS, SQUARES]] = cache["loss"], np.vdot(self.other_grads, self.other_grads)
        return True

    def tell_error(self, error):
        """The error, in one line, where the first process reads it."""
        numerical = isinstance(error, NumericalError)
        text = f"{error}" if numerical else f"{type(error).__name__}: {error}"
        encoded = text.encode("utf-8")[: self.message.size]
        self.message[:] = 0
        self.message[: len(encoded)] = np.frombuffer(encoded, np.uint8)
        self.control[FAILED] = 1 if numerical else 2

    def sleep_until(self, semaphore, parent):
        """Until ``semaphore`` is released: True, or False when told to stop or when the
        first process is gone."""
        released = acquire(semaphore, lambda start: os.getppid() == parent, 0.5)
        return released and not self.control[STOP] and os.getppid() == parent
