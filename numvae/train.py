"""The training loop. It knows nothing of the VAE's insides: it calls
``model.loss_and_grad(x)`` and ``optimizer.step(model.grads)`` and keeps a history.

Randomness: ``fit`` owns one generator, seeded by ``seed``, for the example order and the
dynamic binarisation; eps is drawn from ``model.rng``. Both states, the epoch's example
order and the position in it go into ``TrainState`` so that a resumed run continues
bit for bit as if it had not stopped.
"""
import contextlib
import numbers
import signal
import sys
import threading
import time

import numpy as np

from . import datasets
from .evaluate import evaluate_elbo
from .losses import NumericalError
from .optim import flat_buffer
from .validation import check_data, check_positive_int


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

    def __init__(self, epoch, epochs, n_steps, enabled, stream=sys.stderr):
        self.epoch, self.epochs, self.n_steps = epoch, epochs, n_steps
        self.enabled, self.stream = enabled, stream
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
    images = data.images if isinstance(data, datasets.Dataset) else data
    return check_data(images, model.input_dim, model.likelihood, model.dtype, name=name)


def _grad_norms(grads):
    """{name: L2 norm of that gradient}; NaN or inf propagate into the norm."""
    return {name: float(np.sqrt(np.vdot(grad, grad))) for name, grad in grads.items()}


def _check_finite(loss, grads, flat_grads, epoch, step):
    """Stop at once on a NaN/infinite loss or gradient, naming the culprit.

    ``flat_grads``: the one buffer the gradients tile (a VAE's do), or None. Then a single
    pass over it checks them all, and the per-array pass runs only to name a bad one.
    """
    if not np.isfinite(loss):
        raise TrainingDivergedError(f"epoch {epoch}, step {step}: the loss is {loss}")
    if flat_grads is not None and np.isfinite(np.vdot(flat_grads, flat_grads)):
        return
    for name, norm in _grad_norms(grads).items():
        if not np.isfinite(norm):
            raise TrainingDivergedError(f"epoch {epoch}, step {step}: the gradient of "
                                        f"{name} is not finite")


@contextlib.contextmanager
def _deferred_interrupt():
    """Turn Ctrl-C into a request that the loop honours between two steps.

    An interrupt in the middle of ``optimizer.step`` would leave half the parameters
    updated; deferring it to a step boundary keeps every saved state consistent.
    Yields a dict whose "requested" entry becomes True on Ctrl-C.
    """
    flag = {"requested": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        flag["requested"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def fit(model, optimizer, train_data, *, epochs, batch_size=128, val_data=None,
        kl_warmup_epochs=0, seed=None, callbacks=(), binarize=False, progress=True,
        log=print, history=None, train_state=None, train_permutation=None,
        grad_norm_every=10):
    """Train ``model`` with ``optimizer`` for ``epochs`` epochs (counted from the start).

    train_data, val_data: a ``numvae.datasets.Dataset`` or an array (n, input_dim).
    kl_warmup_epochs: the KL weight rises linearly from 0 to ``model.config["kl_weight"]``
        over this many epochs (step by step), then stays there.
    binarize: a fresh Bernoulli draw of every pixel each time it is used (Burda et al.).
    callbacks: callables ``callback(state)`` run after each epoch, and when training is
        interrupted by Ctrl-C (``state["interrupted"]`` is then True); ``state`` holds
        ``model, optimizer, history, train_state, train_permutation``.
    history, train_state, train_permutation: from a checkpoint, to resume a run.
    Returns the history (see ``new_history``).
    """
    images = _as_images(train_data, model, "train_data")
    val_images = None if val_data is None else _as_images(val_data, model, "val_data")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    n = len(images)
    steps_per_epoch = -(-n // batch_size)
    history = new_history() if not history else history
    rng = np.random.default_rng(seed)
    if not isinstance(kl_warmup_epochs, numbers.Integral) or kl_warmup_epochs < 0:
        raise ValueError(f"kl_warmup_epochs must be an integer >= 0; got {kl_warmup_epochs!r}")
    grad_norm_every = check_positive_int(grad_norm_every, "grad_norm_every")
    # running sums of the epoch so far, and its seconds (kept across an interrupted epoch)
    state = dict(epoch=0, step=0, train_reconstruction_sum=0.0, train_kl_sum=0.0, seen=0,
                 seconds=0.0)
    permutation = None
    if train_state:
        state.update(train_state)
        rng.bit_generator.state = train_state["rng"]
        permutation = train_permutation
    base_kl_weight = model.config["kl_weight"]
    flat_grads = flat_buffer(model.grads)  # None for gradients that are separate arrays
    warmup_steps = kl_warmup_epochs * steps_per_epoch

    def callback_state(interrupted=False):
        return dict(model=model, optimizer=optimizer, history=history, interrupted=interrupted,
                    train_state={**state, "rng": rng.bit_generator.state},
                    train_permutation=permutation)

    with _deferred_interrupt() as interrupt:
        try:
            while state["epoch"] < epochs:
                epoch = state["epoch"] + 1
                if permutation is None:  # a new epoch (a resumed one brings its own order)
                    permutation = rng.permutation(n)
                bar = Progress(epoch, epochs, steps_per_epoch, progress)
                start, seconds_before = time.perf_counter(), state["seconds"]
                while state["step"] < steps_per_epoch:
                    if interrupt["requested"]:
                        raise KeyboardInterrupt
                    step = state["step"] + 1
                    rows = permutation[(step - 1) * batch_size: step * batch_size]
                    x = images[rows]
                    if binarize:
                        x = datasets.binarize(x, rng)
                    global_step = (epoch - 1) * steps_per_epoch + step
                    model.kl_weight = (base_kl_weight if warmup_steps == 0
                                       else base_kl_weight * min(1.0, global_step / warmup_steps))
                    try:
                        loss = model.loss_and_grad(x)
                    except NumericalError as err:
                        raise TrainingDivergedError(f"epoch {epoch}, step {step}: {err}") from None
                    _check_finite(loss, model.grads, flat_grads, epoch, step)
                    if global_step % grad_norm_every == 0:
                        history["grad_norm_step"].append(global_step)
                        for name, norm in _grad_norms(model.grads).items():
                            history["grad_norm"].setdefault(name, []).append(norm)
                    optimizer.step(model.grads)
                    terms = model.terms
                    state["train_reconstruction_sum"] += float(terms["reconstruction"].sum())
                    state["train_kl_sum"] += float(terms["kl"].sum())
                    state["seen"] += len(x)
                    state["step"] = step
                    state["seconds"] = seconds_before + time.perf_counter() - start
                    bar.update(step, state["seen"], loss)
                bar.close()
                _record_epoch(history, state, epoch, model, val_images, state["seconds"], n)
                state.update(epoch=epoch, step=0, train_reconstruction_sum=0.0, train_kl_sum=0.0,
                             seen=0, seconds=0.0)
                permutation = None
                if log is not None:
                    log(_summary(history, epochs))
                for callback in callbacks:
                    callback(callback_state())
        except KeyboardInterrupt:
            # reached only between two steps (see _deferred_interrupt): the state is whole
            for callback in callbacks:
                callback(callback_state(interrupted=True))
            raise
        finally:
            model.kl_weight = base_kl_weight
    return history


def _record_epoch(history, state, epoch, model, val_images, seconds, n):
    seen = state["seen"]
    history["epoch"].append(epoch)
    history["train_reconstruction"].append(state["train_reconstruction_sum"] / seen)
    history["train_kl"].append(state["train_kl_sum"] / seen)
    # the negative ELBO (KL weight 1), comparable across epochs whatever the warm-up
    history["train_loss"].append(history["train_reconstruction"][-1] + history["train_kl"][-1])
    history["kl_weight"].append(model.kl_weight)
    history["seconds"].append(seconds)
    history["examples_per_second"].append(n / seconds if seconds > 0 else float("inf"))
    if val_images is not None:
        result = evaluate_elbo(model, val_images, seed=0)
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
