"""The training loop. It knows nothing of the VAE's insides: each step is
``train_step`` (loss and gradient, check, update), and ``fit`` keeps a history.

Randomness: ``fit`` owns one generator, seeded by ``seed``, for the example order and the
dynamic binarisation; eps is drawn from ``model.rng``. Both states, the epoch's example
order and the position in it go into ``TrainState`` so that a resumed run continues
bit for bit as if it had not stopped.
"""
import contextlib
import signal
import sys
import threading
import time

import numpy as np

from numvae.diagnostics.evaluate import evaluate_elbo
from numvae.io import datasets
from numvae.training import two_processes
from numvae.training.checkpoint_fields import (
    check_history,
    check_resume_position,
    check_train_state,
)
from numvae.training.schedules import SCHEDULES, learning_rate
from numvae.validation import NumericalError, check_nonnegative_int, check_positive_int


class TrainingDivergedError(FloatingPointError):
    """A loss or gradient became NaN or infinite; the message says where."""


def new_history():
    """The history of a run: per-epoch lists, and gradient norms every few steps."""
    keys = ["epoch", "train_loss", "train_reconstruction", "train_kl", "val_loss",
            "val_reconstruction", "val_kl", "kl_weight", "seconds", "examples_per_second"]
    history = {key: [] for key in keys}
    history.update(grad_norm_step=[], grad_norm={})
    return history


class Progress:
    """A one-line progress bar on stderr, redrawn at most every 0.2 s."""

    def __init__(self, epoch, epochs, n_steps, enabled, stream=None):
        stream = sys.stderr if stream is None else stream
        self.epoch, self.epochs, self.n_steps = epoch, epochs, n_steps
        # None: a bar only on a terminal; a log file gets no carriage returns
        self.enabled = stream.isatty() if enabled is None else bool(enabled)
        self.stream = stream
        self.start = self.last = time.perf_counter()

    def update(self, step, examples, loss):
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and step < self.n_steps):
            return
        self.last = now
        done = int(30 * step / self.n_steps)
        rate = examples / max(now - self.start, 1e-9)
        self.stream.write(f"\repoch {self.epoch}/{self.epochs} [{'#' * done}{'.' * (30 - done)}] "
                          f"{step}/{self.n_steps}  {rate:,.0f} examples/s  loss {loss:.2f}")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def _as_images(data, model, name):
    """(images, labels) of a Dataset (labels checked if the model is conditional, else
    None) or of an array of images (no labels)."""
    images = data.images if isinstance(data, datasets.Dataset) else data
    images = model.check_data(images, name)
    labels = data.labels if isinstance(data, datasets.Dataset) else None
    return images, model.check_labels(labels, len(images))


def _grad_norms(grads):
    """{name: L2 norm of that gradient}; NaN or inf propagate into the norm."""
    return {name: float(np.sqrt(np.vdot(grad, grad))) for name, grad in grads.items()}


def _check_finite(loss, grads, flat_grads, epoch, step):
    """Stop at once on a NaN/infinite loss or gradient, naming the culprit.

    ``flat_grads``: the one buffer the gradients tile (``FastAdam.flat_grads``), or None.
    Then a single pass over it checks them all, and the per-array pass runs only to name
    a bad one.
    """
    if not np.isfinite(loss):
        raise TrainingDivergedError(f"epoch {epoch}, step {step}: the loss is {loss}")
    if flat_grads is not None and np.isfinite(np.vdot(flat_grads, flat_grads)):
        return
    for name, norm in _grad_norms(grads).items():
        if not np.isfinite(norm):
            raise TrainingDivergedError(f"epoch {epoch}, step {step}: the gradient of "
                                        f"{name} is not finite")


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped between two steps on a signal: ``signum`` says which (SIGINT for
    Ctrl-C, SIGTERM from ``kill`` or a job scheduler, SIGHUP from a closed terminal)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# the signals that stop training the way Ctrl-C does: a save between two steps, then exit
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


@contextlib.contextmanager
def _deferred_interrupt():
    """Turn Ctrl-C, SIGTERM and SIGHUP into a request that the loop honours between two
    steps.

    An interrupt in the middle of ``optimizer.step`` would leave half the parameters
    updated; deferring it to a step boundary keeps every saved state consistent.
    Yields a dict whose "requested" entry becomes the signal's number when one comes.
    A signal that was ignored (``nohup`` ignores SIGHUP) stays ignored.
    """
    flag = {"requested": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        flag["requested"] = signum

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum, before in previous.items():
        if before is not signal.SIG_IGN:
            signal.signal(signum, handler)
    try:
        yield flag
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def train_step(model, optimizer, x, kl_weight, where, y=None, split=None):
    """One step: the loss and its gradient, a check that both are finite, the update.
    ``where`` = (epoch, step), to name the step in an error; ``y``: a conditional model's labels;
    ``split``: fit's ``TwoProcesses`` (processes=2). Returns the cache (or its loss terms)."""
    try:
        if split is None:
            cache = model.forward(x, y=y, kl_weight=kl_weight)   # loss
            model.backward(cache)                            # and gradient, into model.grads
        else:  # the same, half of the batch here and half in the second process
            cache, finite = split.loss_and_gradient(x, y, kl_weight)
    except NumericalError as err:
        raise TrainingDivergedError(f"epoch {where[0]}, step {where[1]}: {err}") from None
    if split is None:
        _check_finite(cache["loss"], model.grads, getattr(optimizer, "flat_grads", None), *where)
        optimizer.step(model.grads)
    else:  # each process checked its half's gradient; the check names a bad one
        split.update(finite, lambda: _check_finite(cache["loss"], model.grads, None, *where))
    return cache


def kl_weight_at(global_step, base_kl_weight, warmup_steps):
    """KL warm-up: the weight rises linearly from 0 to ``base_kl_weight`` over
    ``warmup_steps`` steps (none: always the base weight)."""
    if warmup_steps == 0:
        return base_kl_weight
    return base_kl_weight * min(1.0, global_step / warmup_steps)


def _check_optimizer_holds(model, optimizer):
    """The optimiser must update the model's own arrays: one built on another model's
    (or on copies) would train nothing, silently."""
    held = getattr(optimizer, "params", None)
    if not isinstance(held, dict) or held.keys() != model.params.keys() or not all(
            held[name] is array for name, array in model.params.items()):
        raise ValueError("optimizer must hold the model's own parameter arrays: build it as "
                         "Adam(model.params) with this model")


def _check_fit_options(epochs, batch_size, kl_warmup_epochs, grad_norm_every, binarize, seed,
                       model):
    check_nonnegative_int(kl_warmup_epochs, "kl_warmup_epochs")
    if not isinstance(binarize, (bool, np.bool_)):
        raise TypeError(f"binarize must be True or False; got {binarize!r}")
    if seed is not None:
        check_nonnegative_int(seed, "seed")
    if kl_warmup_epochs and not getattr(model.objective, "supports_kl_weight", True):
        raise ValueError(f"kl_warmup_epochs={kl_warmup_epochs} has no meaning for "
                         f"objective={model.objective.name!r}: it has no KL term to weigh")
    batch_size = check_positive_int(batch_size, "batch_size")
    model.budget.check_step(batch_size, model.n_samples, "training: a step")  # before memory
    return (check_positive_int(epochs, "epochs"), batch_size,
            check_positive_int(grad_norm_every, "grad_norm_every"))


def _check_kl_schedule(kl_schedule, kl_warmup_epochs, model):
    """A KL schedule is one warm-up: refuse two, and any for an objective with no KL weight."""
    if kl_schedule is None:
        return None
    if not callable(getattr(kl_schedule, "factor", None)):
        raise TypeError(f"kl_schedule must have a factor(step, steps_per_epoch) method "
                        f"(numvae.training.kl_schedules); got {type(kl_schedule).__name__}")
    if kl_warmup_epochs:
        raise ValueError("give kl_warmup_epochs or kl_schedule, not both (a warm-up is the "
                         "schedule kl_schedules.LinearWarmup)")
    if not getattr(model.objective, "supports_kl_weight", True):
        raise ValueError(f"kl_schedule has no meaning for objective={model.objective.name!r}: "
                         f"it has no KL term to weigh")
    return kl_schedule


def fit(model, optimizer, train_data, *, epochs, batch_size=128, val_data=None,
        kl_warmup_epochs=0, seed=None, callbacks=(), binarize=False, progress=None,
        log=print, history=None, train_state=None, train_permutation=None,
        grad_norm_every=10, schedule=None, kl_schedule=None, processes=1):
    """Train ``model`` with ``optimizer`` for ``epochs`` epochs (counted from the start).

    train_data, val_data: a ``numvae.io.datasets.Dataset`` or an array (n, input_dim); a
        conditional model needs a Dataset (its ``labels`` go with every batch).
    kl_warmup_epochs: the KL weight rises linearly from 0 to ``model.objective.kl_weight``
        over this many epochs (step by step), then stays there.
    binarize: a fresh Bernoulli draw of every pixel each time it is used (Burda et al.).
    callbacks: callables ``callback(state)`` run after each epoch, and when training is
        interrupted by Ctrl-C, SIGTERM or SIGHUP (``state["interrupted"]`` is then True,
        ``state["signal"]`` the signal's number), before ``TrainingInterrupted``
        propagates; ``state`` holds
        ``model, optimizer, history, train_state, train_permutation``.
    progress: None (default) draws a one-line bar on stderr only when stderr is a terminal;
        True always, False never. ``log`` prints one line per epoch (``log=None``: silent).
    history, train_state, train_permutation: from a checkpoint, to resume a run.
    schedule: None (the optimiser's rate throughout, or the resumed run's schedule) or a
        name in ``numvae.training.schedules.SCHEDULES`` ("burda"): ``optimizer.lr`` is set at the
        start of each epoch, relative to the rate it had when the run started; name and
        base rate go into the training state, so a resumed run follows them.
    kl_schedule: None (the warm-up above) or a schedule of the KL weight
        (``numvae.training.kl_schedules``, e.g. ``Cyclical(10)``): the weight at step t is
        ``model.objective.kl_weight * kl_schedule.factor(t, steps per epoch)``.
    processes: 2 shares each step between two processes, half of the batch each (the numbers
        of one process up to rounding; ``numvae.training.two_processes``).
    Returns the history (see ``new_history``).
    """
    images, labels = _as_images(train_data, model, "train_data")
    val = None if val_data is None else _as_images(val_data, model, "val_data")  # (images, labels)
    _check_optimizer_holds(model, optimizer)
    epochs, batch_size, grad_norm_every = _check_fit_options(
        epochs, batch_size, kl_warmup_epochs, grad_norm_every, binarize, seed, model)
    run = _Run(model, optimizer, images, batch_size, seed, history, train_state, train_permutation)
    run.labels = labels
    run.set_schedule(schedule)
    run.warmup_steps = kl_warmup_epochs * run.steps_per_epoch
    run.kl_schedule = _check_kl_schedule(kl_schedule, kl_warmup_epochs, model)
    run.binarize, run.grad_norm_every = binarize, grad_norm_every
    with _deferred_interrupt() as interrupt, \
            two_processes.sharing(processes, model, optimizer, batch_size, interrupt) as run.split:
        try:
            while run.state["epoch"] < epochs:
                run.train_epoch(epochs, progress, interrupt)
                _record_epoch(run.history, run.state, run.epoch_kl_weight, model, val,
                              len(images))
                run.next_epoch()
                if log is not None:
                    log(_summary(run.history, epochs))
                for callback in callbacks:
                    callback(run.callback_state())
        except KeyboardInterrupt as stop:
            # reached only between two steps (see _deferred_interrupt): the state is whole
            for callback in callbacks:
                callback(run.callback_state(interrupted=True,
                                            signum=getattr(stop, "signum", signal.SIGINT)))
            raise
    return run.history


class _Run:
    """Where a run of ``fit`` stands: the epoch and step, the running sums of the epoch
    so far (kept across an interrupted epoch), the example order and the generator."""

    def __init__(self, model, optimizer, images, batch_size, seed, history, train_state,
                 permutation):
        self.model, self.optimizer, self.images = model, optimizer, images
        self.batch_size = batch_size
        self.steps_per_epoch = -(-len(images) // batch_size)
        if history:
            check_history(history, complete=True)
        if train_state:
            check_train_state(train_state, complete=True)
            check_resume_position(train_state, permutation, len(images), batch_size)
        self.history = new_history() if not history else history
        self.rng = np.random.default_rng(seed)
        self.state = dict(epoch=0, step=0, train_reconstruction_sum=0.0, train_kl_sum=0.0,
                          seen=0, seconds=0.0)
        self.permutation = None
        if train_state:
            self.state.update(train_state)
            self.rng.bit_generator.state = train_state["rng"]
            self.permutation = permutation
        self.base_kl_weight = model.objective.kl_weight  # 1 for the IWAE's bound
        self.epoch_kl_weight = self.base_kl_weight

    def set_schedule(self, name):
        """Follow the learning-rate schedule ``name`` (None: the resumed run's, if any)."""
        saved = self.state.get("schedule")
        name = saved["name"] if name is None and saved else name
        if name is None:
            return
        if name not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(repr(k) for k in SCHEDULES)}; "
                             f"got {name!r}")
        if saved and saved["name"] != name:
            raise ValueError(f"schedule={name!r}, but the resumed run follows {saved['name']!r}")
        base_lr = saved["base_lr"] if saved else self.optimizer.lr
        self.state["schedule"] = dict(name=name, base_lr=base_lr)

    def callback_state(self, interrupted=False, signum=None):
        return dict(model=self.model, optimizer=self.optimizer, history=self.history,
                    interrupted=interrupted, signal=signum,
                    train_state={**self.state, "rng": self.rng.bit_generator.state},
                    train_permutation=self.permutation)

    def train_epoch(self, epochs, progress, interrupt):
        """The remaining steps of the current epoch."""
        state, epoch = self.state, self.state["epoch"] + 1
        if self.permutation is None:  # a new epoch (a resumed one brings its own order)
            self.permutation = self.rng.permutation(len(self.images))
        bar = Progress(epoch, epochs, self.steps_per_epoch, progress)
        if "schedule" in state:
            self.optimizer.lr = learning_rate(state["schedule"]["name"],
                                              state["schedule"]["base_lr"], epoch - 1)
        start, seconds_before = time.perf_counter(), state["seconds"]
        while state["step"] < self.steps_per_epoch:
            if interrupt["requested"]:
                raise TrainingInterrupted(interrupt["requested"])
            step = state["step"] + 1
            rows = self.permutation[(step - 1) * self.batch_size: step * self.batch_size]
            x, y = self.images[rows], None if self.labels is None else self.labels[rows]
            if self.binarize:
                x = datasets.binarize(x, self.rng)
            global_step = (epoch - 1) * self.steps_per_epoch + step
            self.epoch_kl_weight = (
                kl_weight_at(global_step, self.base_kl_weight, self.warmup_steps)
                if self.kl_schedule is None
                else self.base_kl_weight * self.kl_schedule.factor(global_step, self.steps_per_epoch))
            cache = train_step(self.model, self.optimizer, x, self.epoch_kl_weight, (epoch, step),
                               y, self.split)
            if global_step % self.grad_norm_every == 0:
                self._record_grad_norms(global_step)
            state["train_reconstruction_sum"] += float(cache["reconstruction"].sum())
            state["train_kl_sum"] += float(cache["kl"].sum())
            state["seen"] += len(x)
            state["step"] = step
            state["seconds"] = seconds_before + time.perf_counter() - start
            bar.update(step, state["seen"], cache["loss"])
        bar.close()

    def _record_grad_norms(self, global_step):
        """The norm of each gradient (as the optimiser used it) every few steps."""
        self.history["grad_norm_step"].append(global_step)
        for name, norm in _grad_norms(self.model.grads).items():
            self.history["grad_norm"].setdefault(name, []).append(norm)

    def next_epoch(self):
        self.state.update(epoch=self.state["epoch"] + 1, step=0, train_reconstruction_sum=0.0,
                          train_kl_sum=0.0, seen=0, seconds=0.0)
        self.permutation = None


def _record_epoch(history, state, kl_weight, model, val, n):
    seen, seconds, epoch = state["seen"], state["seconds"], state["epoch"] + 1
    history["epoch"].append(epoch)
    history["train_reconstruction"].append(state["train_reconstruction_sum"] / seen)
    history["train_kl"].append(state["train_kl_sum"] / seen)
    # the negative ELBO (KL weight 1), comparable across epochs whatever the warm-up
    history["train_loss"].append(history["train_reconstruction"][-1] + history["train_kl"][-1])
    history["kl_weight"].append(kl_weight)
    history["seconds"].append(seconds)
    history["examples_per_second"].append(n / seconds if seconds > 0 else float("inf"))
    if val is not None:
        result = evaluate_elbo(model, val[0], labels=val[1], seed=0)
        history["val_loss"].append(result["loss"])
        history["val_reconstruction"].append(result["reconstruction"])
        history["val_kl"].append(result["kl"])
    else:
        for key in ("val_loss", "val_reconstruction", "val_kl"):
            history[key].append(None)


def _summary(history, epochs):
    line = (f"epoch {history['epoch'][-1]:>3}/{epochs}  train -ELBO {history['train_loss'][-1]:8.2f} "
            f"(rec {history['train_reconstruction'][-1]:7.2f}, KL {history['train_kl'][-1]:6.2f})")
    if history["val_loss"][-1] is not None:
        line += (f"  val -ELBO {history['val_loss'][-1]:8.2f} (rec {history['val_reconstruction'][-1]:7.2f}"
                 f", KL {history['val_kl'][-1]:6.2f})")
    return line + f"  {history['seconds'][-1]:6.1f} s"
