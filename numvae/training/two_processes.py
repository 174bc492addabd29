"""THE FASTER PATH for two cores: each training step shared by two processes, one half of the
batch each (data parallelism). ``fit(..., processes=2)`` uses it; nothing here is needed to
understand the VAE. Read ``numvae.training.loop.train_step`` first: this is the same step.

The loss is a mean over the batch (eq. V1), so its gradient is a weighted mean of the
gradients of the two halves' losses (eq. DP1, derivations.md): with rows [0, h) here and
rows [h, B) in the second process,

    grad L = (h / B) grad L_[0, h) + ((B - h) / B) grad L_[h, B).

Both processes hold the model. Its parameters, Adam's moments, the batch and the two
gradients sit in memory both can see (an anonymous shared mapping, inherited when the
second process is forked). One step, with S the step's number:

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
that has waited SPIN_SECONDS without news sleeps until it is woken, so an idle second
process takes no CPU.

The numbers are those of one process up to rounding, because the matrix products sum the
batch in two halves (tests check the two against each other in float64); from run to run,
and across a resume, they are the same to the bit. Each process must run the BLAS on one
thread, else the two fight for the cores: start Python with OPENBLAS_NUM_THREADS=1.
"""
import contextlib
import mmap
import multiprocessing
import os
import signal
import time
import warnings

import numpy as np

from numvae.model.vae import VAE
from numvae.nn.threads import BLAS_VARIABLES
from numvae.training.optim_fast import FastAdam, share_one_buffer
from numvae.validation import NumericalError

# Poll for this long, then sleep until woken: long enough to span a step's other half,
# short enough that a pause in training (an evaluation between epochs) frees the core.
SPIN_SECONDS = 0.02
# the control words in shared memory: the step's number, its halves, the orders to stop
# and whether the gradients were added already, what failed there
GO, HALF, BATCH, STOP, ADDED, FAILED = range(6)
# the numbers: the second half's loss and squared gradient norm, the KL weight, Adam's step
LOSS, SQUARES, KL_WEIGHT, STEP_SIZE, EPS_HAT, FLUSH = range(6)


def shared_empty(size, dtype):
    """An array of ``size`` entries in memory shared with the processes forked later."""
    dtype = np.dtype(dtype)
    return np.frombuffer(mmap.mmap(-1, max(1, size * dtype.itemsize)), dtype, count=size)


@contextlib.contextmanager
def sharing(processes, model, optimizer, batch_size):
    """``fit``'s: None for ``processes`` = 1; for 2, the ``TwoProcesses`` that shares the
    steps of a run, its second process ended when the run ends, however it ends."""
    if processes not in (1, 2) or isinstance(processes, bool):
        raise ValueError(f"processes must be 1 or 2; got {processes!r}")
    if processes == 1:
        yield None
        return
    split = TwoProcesses(model, optimizer, batch_size)
    try:
        yield split
    finally:
        split.close()


def check_can_split(model, optimizer):
    """A ValueError, in one line, where the step cannot be shared by two processes."""
    if not hasattr(os, "fork"):
        raise ValueError("processes=2 needs os.fork (Linux or macOS)")
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


class TwoProcesses:
    """The second process and the shared memory of a run of ``fit(..., processes=2)``.
    ``loss_and_gradient`` then ``update`` make one step; ``close`` ends the second process."""

    def __init__(self, model, optimizer, batch_size):
        check_can_split(model, optimizer)
        self.model, self.optimizer = model, optimizer
        if not optimizer.move_buffers(shared_empty):
            raise ValueError("processes=2: the model's parameters must tile one buffer (one dtype)")
        self.grads = share_one_buffer(model.grads, shared_empty)     # this half's, then the sum
        self.other_grads = shared_empty(self.grads.size, self.grads.dtype)
        self.x = shared_empty(batch_size * model.input_dim, model.dtype).reshape(batch_size, -1)
        self.y = shared_empty(batch_size, np.int64)
        self.eps = shared_empty(model.n_samples * batch_size * model.latent_dim,
                                model.dtype).reshape(model.n_samples, batch_size, -1)
        self.terms = shared_empty(2 * batch_size, np.float64).reshape(2, batch_size)  # its half's
        self.numbers = shared_empty(6, np.float64)
        self.control = shared_empty(6, np.int64)
        self.message = shared_empty(1000, np.uint8)  # the second process's error, in UTF-8
        # one semaphore per message: go, its gradient is ready, apply Adam, applied
        context = multiprocessing.get_context("fork")
        self.go, self.its_gradient, self.apply, self.applied = (
            context.Semaphore(0) for _ in range(4))
        self.cut = self.grads.size // 2  # the entries [0, cut) are added and updated here
        with warnings.catch_warnings():
            # Python 3.12 warns on fork in a process with threads (numvae's pool, the BLAS's):
            # the second process only runs ``serve``, which takes none of their locks
            warnings.simplefilter("ignore", DeprecationWarning)
            self.pid = os.fork()
        if self.pid == 0:
            code = 0
            try:
                self.serve(os.getppid())
            except BaseException:
                code = 1
            os._exit(code)  # never back into the caller's code (a test runner's, say)

    # --- this process --------------------------------------------------------------------

    def loss_and_gradient(self, x, y, kl_weight):
        """Both halves' forward and backward passes. Returns the loss terms as
        ``train_step`` uses them, and whether both gradients are finite."""
        model, batch = self.model, len(x)
        half = (batch + 1) // 2
        eps = model.draw_eps(batch)  # all of it here: the generator's draws as in one process
        self.x[:batch] = x
        self.eps[:, :batch] = eps
        if y is not None:
            self.y[:batch] = y
        self.numbers[KL_WEIGHT] = np.nan if kl_weight is None else kl_weight
        self.control[[HALF, BATCH, FAILED]] = half, batch, 0
        self.control[GO] += 1
        self.go.release()
        cache = model.forward(x[:half], eps[:, :half], y=None if y is None else y[:half],
                              kl_weight=kl_weight)
        model.backward(cache)
        squares = np.vdot(self.grads, self.grads)
        self.wait(self.its_gradient)
        if self.control[FAILED]:
            text = bytes(self.message).rstrip(b"\0").decode("utf-8", "replace")
            if self.control[FAILED] == 1:
                raise NumericalError(text)
            raise RuntimeError(f"numvae's second process: {text}")
        share = (batch - half) / batch
        terms = dict(loss=(1.0 - share) * cache["loss"] + share * self.numbers[LOSS],
                     reconstruction=np.concatenate([cache["reconstruction"],
                                                    self.terms[0, half:batch]]),
                     kl=np.concatenate([cache["kl"], self.terms[1, half:batch]]))
        return terms, bool(np.isfinite(squares) and np.isfinite(self.numbers[SQUARES]))

    def add_here(self):
        """The whole gradient (eq. DP1) into ``model.grads``, here: to name a bad one."""
        self.add_halves(0, self.grads.size, *self.control[[HALF, BATCH]])

    def update(self, added=False):
        """Adam (eq. O2) at the next step: the entries [0, cut) here, the others there,
        each slice after its gradients are added (``added``: ``add_here`` did it)."""
        self.numbers[[STEP_SIZE, EPS_HAT, FLUSH]] = self.optimizer.next_step()
        self.control[ADDED] = added
        self.apply.release()
        self.add_and_apply(0, self.cut)
        self.wait(self.applied)

    def add_and_apply(self, start, stop):
        """For each slice of the entries start..stop: eq. DP1 into ``grads``, then Adam."""
        half, batch, added = self.control[[HALF, BATCH, ADDED]]
        step_size, eps_hat, flush = self.numbers[[STEP_SIZE, EPS_HAT, FLUSH]]
        for first in range(start, stop, self.optimizer.chunk):
            last = min(first + self.optimizer.chunk, stop)
            if not added:
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
        """Poll ``semaphore`` until the second process releases it; an error if it ended."""
        polls = 0
        while not semaphore.acquire(False):
            polls += 1
            if polls % 4096 == 0:
                ended, status = os.waitpid(self.pid, os.WNOHANG)
                if ended:
                    self.pid = None
                    raise RuntimeError(f"numvae's second process ended (wait status {status})")

    def close(self):
        """End the second process (it may wait at any of its steps) and reap it."""
        if self.pid is None:
            return
        self.control[STOP] = 1
        for semaphore in (self.go, self.apply):
            semaphore.release()
        deadline = time.monotonic() + 10.0
        while os.waitpid(self.pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.001)
        self.pid = None

    # --- the second process -------------------------------------------------------------

    def serve(self, parent):
        """The second process's loop: one step's half each time it is told to go."""
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)  # the first process saves and stops it
        share_one_buffer(self.model.grads, lambda size, dtype: self.other_grads)
        while self.sleep_until(self.go, parent):
            half, batch = int(self.control[HALF]), int(self.control[BATCH])
            self.numbers[SQUARES] = 0.0
            if half < batch and not self.its_half(half, batch):
                continue
            self.its_gradient.release()
            if not self.sleep_until(self.apply, parent):
                return
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
            text = f"{error}" if isinstance(error, NumericalError) else \
                f"{type(error).__name__}: {error}"
            encoded = text.encode("utf-8")[: self.message.size]
            self.message[:] = 0
            self.message[: len(encoded)] = np.frombuffer(encoded, np.uint8)
            self.control[FAILED] = 1 if isinstance(error, NumericalError) else 2
            self.its_gradient.release()
            return False
        self.terms[0, half:batch] = cache["reconstruction"]
        self.terms[1, half:batch] = cache["kl"]
        self.numbers[[LOSS, SQUARES]] = cache["loss"], np.vdot(self.other_grads, self.other_grads)
        return True

    def sleep_until(self, semaphore, parent):
        """Poll ``semaphore``, then sleep on it, until it is released: True, or False when
        told to stop or when the first process is gone."""
        start = time.monotonic()
        while not semaphore.acquire(False):
            if time.monotonic() - start > SPIN_SECONDS:
                while not semaphore.acquire(timeout=0.5):
                    if os.getppid() != parent:
                        return False
                break
        return not self.control[STOP] and os.getppid() == parent
