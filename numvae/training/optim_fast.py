"""THE FAST PATH of Adam, for training. Read ``numvae.training.optim.Adam`` first: this class
does the same arithmetic (eq. O2), bit for bit with ``flush_every=0`` (a test says so),
and only changes how the work is laid out in memory:

* one sweep over the whole model: a model's ``params`` and ``grads`` can re-point the
  layers that own them (``numvae.nn.layers.Owned``), so FastAdam moves them into one flat
  buffer each (``share_one_buffer``: the parameters when it is built, the gradients at its
  first step; the layers then compute with views of the buffers, and an array taken from
  ``model.params`` before is no longer the model's). The moments tile buffers too, and a
  step is a dozen NumPy calls instead of a dozen per array;
* cache-sized slices: the dozen passes (moments, square root, division, update) run on
  ``chunk`` entries at a time, all passes on one slice before the next, so that the
  slice stays in the CPU's cache instead of streaming every array through memory twelve
  times;
* on threads: with more than one (``numvae.nn.threads``), the slices are shared out among
  them, the same arithmetic on every entry;
* the layout, tuned (``FastAdam.tune_slices``): during its first steps FastAdam updates by
  turns in ``chunk``-sized slices on the calling thread, the same slices shared out among
  the threads (if they are on), in one slice (the whole buffer, one call per operation)
  and in ranges shared out among the threads (two per thread, taken by whichever thread
  asks first), timing each, and keeps the fastest. All visit every entry with the same
  arithmetic, so the numbers are the same to the bit; which is fastest depends on the CPU
  and on whether the second core is free (issue 26, docs/performance.md: slices on the
  Intel Xeon, one slice on the AMD EPYC, where a call per slice and operation costs more
  than the smaller slices save; with the BLAS on two threads, its worker spinning after
  each product can make every threaded layout slower than one thread's slices);
* a denormal flush: every ``flush_every`` steps, moment entries below ``tiny`` in
  magnitude are set to 0. Where a gradient is exactly zero (a pixel that is always
  black), m decays geometrically into float32 denormal numbers, which CPUs handle very
  slowly; the flush changes the update by far less than float32 rounding does.
"""
import numbers
import statistics
import time

import numpy as np

from numvae.nn.layers import Owned
from numvae.nn.threads import split_rows, worth_splitting
from numvae.training.optim import Adam, check_grads
from numvae.validation import check_positive_float, check_positive_int


def share_one_buffer(arrays, empty=np.empty):
    """Move the arrays of ``arrays`` into one new 1-D buffer, in order and without gaps, each
    entry becoming a view of it, and return the buffer. Only a dict that re-points the
    arrays' owners when an entry is assigned (``numvae.nn.layers.Owned``: a model's
    ``params`` and ``grads``) can be moved, and only arrays of one dtype: else None, and
    the arrays stay where they are. ``empty(size, dtype)`` makes the buffer (shared
    memory: ``numvae.training.two_processes``)."""
    values = list(arrays.values())
    if not isinstance(arrays, Owned) or len({value.dtype for value in values}) != 1:
        return None
    buffer, offset = empty(sum(value.size for value in values), values[0].dtype), 0
    for name, value in list(arrays.items()):
        view = buffer[offset: offset + value.size].reshape(value.shape)
        view[...] = value
        arrays[name] = view  # the owner's entry too: the layer computes with the view
        offset += value.size
    return buffer


def flat_buffer(arrays):
    """The one 1-D array that the arrays of the dict ``arrays`` tile, in order and without
    gaps, or None. A model's ``params`` and ``grads`` are such views once FastAdam has
    moved them (``share_one_buffer``); arbitrary dicts of arrays generally are not."""
    values = list(arrays.values())
    base = values[0].base
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    address, offset = base.__array_interface__["data"][0], 0
    for value in values:
        if (value.base is not base or not value.flags.c_contiguous
                or value.__array_interface__["data"][0] != address + offset * base.itemsize):
            return None
        offset += value.size
    return base if offset == base.size else None


def _zeros_like_views(params, flat, empty=None):
    """A zero array shaped like ``flat`` and its views named like ``params`` (the array
    from ``empty(size, dtype)`` if given, filled with zeros)."""
    buffer = np.zeros_like(flat) if empty is None else empty(flat.size, flat.dtype)
    buffer[...] = 0
    views, offset = {}, 0
    for name, p in params.items():
        views[name] = buffer[offset: offset + p.size].reshape(p.shape)
        offset += p.size
    return buffer, views


class FastAdam(Adam):
    """Adam (eq. O2), laid out for speed (see the module docstring). ``chunk``: entries
    per slice; 32,768 float32 entries make five arrays of 128 KiB, which fit in the L2
    cache of current x86 CPUs."""

    # FAST PATH switch: time the LAYOUTS by turns, TUNING_STEPS steps each (after the
    # first step), then keep the fastest; False: always "slices on threads", as without
    # tuning
    tune_slices = True
    TUNING_STEPS = 8
    LAYOUTS = ("slices", "slices on threads", "whole", "whole on threads")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, *, flush_every=50,
                 tiny=1e-30, chunk=32768):
        super().__init__(params, lr, betas, eps)
        if not isinstance(flush_every, numbers.Integral) or isinstance(flush_every, bool) \
                or flush_every < 0:
            raise ValueError(f"flush_every must be an integer >= 0 (0: never); got {flush_every!r}")
        self.flush_every = int(flush_every)
        self.tiny = check_positive_float(tiny, "tiny")
        self.chunk = check_positive_int(chunk, "chunk")
        self._names = list(params)  # the order in which params tile the flat buffer
        self._flat_params = flat_buffer(params)
        if self._flat_params is None:
            self._flat_params = share_one_buffer(params)
        if self._flat_params is not None:
            self._flat_m, self.m = _zeros_like_views(params, self._flat_params)
            self._flat_v, self.v = _zeros_like_views(params, self._flat_params)
        largest = max(p.size for p in params.values()) if self._flat_params is None \
            else self._flat_params.size
        dtype = np.result_type(*params.values())
        self._scratch = np.empty(min(self.chunk, largest), dtype)
        self._largest = largest
        self._whole_scratch = None  # for one slice of ``largest`` entries, when tried
        self._tuning = {layout: [] for layout in self.LAYOUTS}  # step times, by layout
        self._layout = None  # the one chosen; None while tuning
        self._tuning_started = False  # the first step is not timed
        self._scratches = {}  # the other threads' (the faster path's), by first slice
        self._known_grads, self._known_flat_grads = (), None

    @property
    def layout(self):
        """The layout the tuning chose (one of LAYOUTS), or None while it is tuning."""
        return self._layout

    def use_layout(self, layout):
        """Update in ``layout`` (one of LAYOUTS) from now on, with no (further) tuning: for
        a benchmark that compares the layouts. Every layout gives the same numbers."""
        if layout not in self.LAYOUTS:
            raise ValueError(f"use_layout: layout must be one of {self.LAYOUTS}; got {layout!r}")
        self._layout = layout

    def settings(self):
        return dict(super().settings(), flush_every=self.flush_every, tiny=self.tiny,
                    chunk=self.chunk)

    @property
    def flat_grads(self):
        """The one buffer the gradients of the last step tiled, or None (the training loop
        checks them all in one pass)."""
        return self._known_flat_grads

    def _flat_grads(self, grads):
        """Check ``grads`` against the parameters; return the flat buffer it tiles, or None.

        A VAE hands over the very same gradient arrays at every step: then the check of
        their shapes and the lookup of their buffer are not repeated.
        """
        if (isinstance(grads, dict) and self._known_grads and list(grads) == self._names
                and all(a is b for a, b in zip(grads.values(), self._known_grads))):
            return self._known_flat_grads
        check_grads(self.params, grads)
        # one sweep only if every gradient sits where its parameter sits in the flat buffer:
        # the same names in the same order (same shapes, checked above), tiling one buffer
        same_order = list(grads) == self._names
        flat = None if self._flat_params is None or not same_order else flat_buffer(grads)
        if flat is None and self._flat_params is not None and same_order:
            flat = share_one_buffer(grads)
        # remembered only for the flat case (the arrays are held, so their ids stay unique)
        self._known_grads = tuple(grads.values()) if flat is not None else ()
        self._known_flat_grads = flat
        return flat

    def step(self, grads):
        flat_grads = self._flat_grads(grads)
        step_size, eps_hat, flush = self.next_step()
        if flat_grads is not None:
            pieces = [(self._flat_params, flat_grads, self._flat_m, self._flat_v)]
        else:
            pieces = [(param, grads[name], self.m[name], self.v[name])
                      for name, param in self.params.items()]
        layout = self._layout_now()
        start = time.perf_counter()
        for param, g, m, v in pieces:
            self._update(param, np.asarray(g), m, v, step_size, eps_hat, flush, layout)
        if self._layout is None and self.tune_slices:
            self._record(layout, time.perf_counter() - start)

    def next_step(self):
        """Count a step (t <- t + 1); return its (step_size, eps_hat) (eq. O2) and whether
        the moments are flushed at it."""
        self.t += 1
        step_size, eps_hat = self.corrected_step()
        return step_size, eps_hat, bool(self.flush_every) and self.t % self.flush_every == 0

    # FAST PATH for two processes (numvae.training.two_processes): the state in shared
    # memory, and each process updating its own range of the entries

    def move_buffers(self, empty, grads):
        """Move the flat parameters (the model's too: they are views of them), the moments
        and ``grads`` (the model's gradients, named as its parameters) into new buffers made
        by ``empty(size, dtype)``, keeping their values. Returns the gradients' buffer, or
        None where they cannot all move (then nothing moves)."""
        if (self._flat_params is None or not isinstance(self.params, Owned)
                or not isinstance(grads, Owned) or list(grads) != self._names
                or any(g.dtype != self._flat_params.dtype for g in grads.values())):
            return None
        for name in ("m", "v"):
            old = getattr(self, f"_flat_{name}")
            flat, views = _zeros_like_views(self.params, old, empty)
            flat[...] = old
            setattr(self, f"_flat_{name}", flat)
            setattr(self, name, views)
        self._flat_params = share_one_buffer(self.params, empty)
        self._known_grads, self._known_flat_grads = (), None  # looked up again at the next step
        return share_one_buffer(grads, empty)

    def update_entries(self, flat_grads, start, stop, step_size, eps_hat, flush):
        """Adam's update (eq. O2) of the entries start..stop of the flat buffers alone, on
        this thread, slice by slice: with ``next_step``'s numbers, the same arithmetic
        as ``step`` on those entries."""
        span = slice(start, stop)
        self._update(self._flat_params[span], flat_grads[span], self._flat_m[span],
                     self._flat_v[span], step_size, eps_hat, flush, "slices")

    def _layout_now(self):
        """This step's layout: the tuned one, or while tuning the first with the fewest
        timed steps (so the LAYOUTS take turns); "slices on threads" with the tuning off."""
        if not self.tune_slices:
            return "slices on threads"
        if self._layout is not None:
            return self._layout
        return min(self.LAYOUTS, key=lambda layout: len(self._tuning[layout]))

    def _record(self, layout, seconds):
        """Keep a tuning step's time (the first step's, with its allocations, is dropped);
        once every layout has TUNING_STEPS, choose the one with the smallest median."""
        if not self._tuning_started:
            self._tuning_started = True
            return
        self._tuning[layout].append(seconds)
        if min(len(times) for times in self._tuning.values()) >= self.TUNING_STEPS:
            self._layout = min(self.LAYOUTS,
                               key=lambda name: statistics.median(self._tuning[name]))

    def _update(self, param, g, m, v, step_size, eps_hat, flush, layout="slices on threads"):
        """One Adam update of ``param`` in place, slice by slice (all arrays of one shape);
        another ``layout`` (the tuned FAST PATH, the same numbers): ``_update_whole``."""
        if not all(a.flags.c_contiguous for a in (param, g, m, v)):
            param, g, m, v = param[None], g[None], m[None], v[None]  # no flat views: one slice
            return self._update_slice(param, g, m, v, step_size, eps_hat, flush,
                                      np.empty_like(param))
        param, g, m, v = (a.reshape(-1) for a in (param, g, m, v))  # views: contiguous
        if layout.startswith("whole"):
            return self._update_whole(param, g, m, v, step_size, eps_hat, flush,
                                      layout == "whole on threads")
        if layout == "slices on threads" and worth_splitting(param.size):
            # the faster path (below): the same slices, on threads
            return self._update_on_threads(param, g, m, v, step_size, eps_hat, flush)
        for start in range(0, param.size, self.chunk):
            span = slice(start, start + self.chunk)
            scratch = self._scratch[: len(param[span])]
            self._update_slice(param[span], g[span], m[span], v[span], step_size, eps_hat,
                               flush, scratch)

    def _update_whole(self, param, g, m, v, step_size, eps_hat, flush, on_threads):
        """``_update`` with the whole array as one slice: one call per operation, or
        ``on_threads`` (if the pool is on, ``numvae.nn.threads``) one per range of entries."""
        if self._whole_scratch is None:
            self._whole_scratch = np.empty(self._largest, self._scratch.dtype)
        scratch = self._whole_scratch[: param.size]

        def entries(start, stop):
            span = slice(start, stop)
            self._update_slice(param[span], g[span], m[span], v[span], step_size, eps_hat,
                               flush, scratch[span])
        if on_threads:
            split_rows(entries, param.size, param.size)
        else:
            entries(0, param.size)

    def _update_on_threads(self, param, g, m, v, step_size, eps_hat, flush):
        """The loop of ``_update`` over the slices, its slices shared out among the threads
        (``numvae.nn.threads``), each thread with a scratch of its own: every entry gets
        the same arithmetic, so the update is bit for bit the same."""
        n_slices = -(-param.size // self.chunk)

        def slices(first, last):  # slices first..last-1
            scratch = self._scratch if first == 0 else self._thread_scratch(first)
            for start in range(first * self.chunk, min(last * self.chunk, param.size),
                               self.chunk):
                span = slice(start, start + self.chunk)
                self._update_slice(param[span], g[span], m[span], v[span], step_size,
                                   eps_hat, flush, scratch[: len(param[span])])
        split_rows(slices, n_slices, param.size)

    def _thread_scratch(self, first):
        """The scratch of the thread that starts at slice ``first`` (one per thread)."""
        scratch = self._scratches.get(first)
        if scratch is None:
            scratch = self._scratches[first] = np.empty_like(self._scratch)
        return scratch

    def _update_slice(self, param, g, m, v, step_size, eps_hat, flush, scratch):
        """Adam.step's four lines on one slice, in place, with ``scratch`` for temporaries."""
        m *= self.beta1                                   # m <- beta1 m + (1 - beta1) g
        np.multiply(g, 1.0 - self.beta1, out=scratch)
        m += scratch
        v *= self.beta2                                   # v <- beta2 v + (1 - beta2) g^2
        np.square(g, out=scratch)
        scratch *= 1.0 - self.beta2
        v += scratch
        if flush:
            m[np.abs(m) < self.tiny] = 0.0
            v[v < self.tiny] = 0.0
        np.sqrt(v, out=scratch)                           # scratch <- sqrt(v) + eps_hat
        scratch += eps_hat
        np.divide(m, scratch, out=scratch)                # scratch <- m / (...)
        scratch *= step_size
        param -= scratch
