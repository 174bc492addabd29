"""Section ``profile`` of python -m benchmarks.speed: where the time of one training step goes.

Timers are put around the package's own functions (``Dense.forward``, ``Dense.backward``,
``VAE.forward``, ``VAE.backward``, ``FastAdam.step`` ...): each is wrapped, never
re-implemented, so the profiled step runs exactly the package's code. The timers are
exclusive: a wrapped function's time excludes the wrapped functions it calls, so that
"Python and small ops in VAE.forward" is what VAE.forward does besides its parts. The
GEMMs inside Dense.forward/backward are not timed apart (they are ``@`` operators); the
GEMM floor, the same products alone, is timed alternately with the step instead.
"""
import statistics
import time

from benchmarks.speed.common import (
    DEFAULT_CHUNK,
    load_cached,
    make_model,
    make_optimizer,
    optimizer_label,
    rss_mib,
)
from benchmarks.speed.training import GemmFloor, step_function

DENSE_FORWARD = "Dense.forward (x @ W + b)"
DENSE_BACKWARD = "Dense.backward (x^T dy, sum dy, dy W^T)"
OPTIMIZER_STEP = "optimizer step"


class Timers:
    """Exclusive (self) time per category; nested timers subtract from their parent."""

    def __init__(self):
        self.seconds, self.calls, self.stack = {}, {}, []

    def add(self, name, elapsed, child):
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - child
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.stack:
            self.stack[-1] += elapsed

    def wrap(self, name, fn):
        timers = self

        def wrapper(*args, **kwargs):
            timers.stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                timers.add(name, elapsed, timers.stack.pop())
        wrapper.__wrapped__ = fn
        return wrapper

    def reset(self):
        self.seconds, self.calls = {}, {}


def targets(optimizer):
    """(owner, attribute, label) of every function the profile wraps."""
    from numvae.model import kl, likelihoods, objectives, posteriors, vae
    from numvae.nn import layers
    from numvae.training import loop
    other = "Python and small ops in "
    return [
        (layers.Dense, "forward", DENSE_FORWARD), (layers.Dense, "backward", DENSE_BACKWARD),
        (layers.ReLU, "forward", "ReLU forward (np.maximum)"),
        (layers.ReLU, "backward", "ReLU backward (dy * (y > 0))"),
        (layers.Sigmoid, "forward", "sigmoid forward (decoder output)"),
        (likelihoods, "bernoulli_nll", "softplus loss (bernoulli_nll)"),
        (likelihoods, "bernoulli_nll_backward", "sigmoid(a) - x (bernoulli_nll_backward)"),
        (likelihoods.Bernoulli, "nll_backward", "dnll * dlogits (Bernoulli.nll_backward)"),
        (kl, "safe_exp", "exp + isfinite (safe_exp)"),
        (posteriors, "safe_exp", "exp + isfinite (safe_exp)"),
        (kl, "kl_divergence", "KL and its gradient"),
        (kl, "kl_divergence_backward", "KL and its gradient"),
        (posteriors.DiagonalGaussian, "rsample", "reparameterisation (rsample + backward)"),
        (posteriors.DiagonalGaussian, "rsample_backward",
         "reparameterisation (rsample + backward)"),
        (objectives.ELBO, "forward", other + "ELBO.forward/backward"),
        (objectives.ELBO, "backward", other + "ELBO.forward/backward"),
        (vae, "check_data", "input checks (check_data, check_eps)"),
        (vae, "check_eps", "input checks (check_data, check_eps)"),
        (vae.VAE, "draw_eps", "draw eps (standard_normal)"),
        (vae.Encoder, "forward", other + "Encoder/Decoder/Sequential"),
        (vae.Encoder, "backward", other + "Encoder/Decoder/Sequential"),
        (vae.Decoder, "forward", other + "Encoder/Decoder/Sequential"),
        (vae.Decoder, "backward_from_logits", other + "Encoder/Decoder/Sequential"),
        (layers.Sequential, "forward", other + "Encoder/Decoder/Sequential"),
        (layers.Sequential, "backward_steps", other + "Encoder/Decoder/Sequential"),
        (vae.VAE, "forward", other + "VAE.forward"),
        (vae.VAE, "backward", other + "VAE.backward"),
        (loop, "_check_finite", "_check_finite (one vdot over flat_grads)"),
        (loop, "train_step", other + "train_step"),
        (type(optimizer), "step", f"{OPTIMIZER_STEP} ({type(optimizer).__name__}.step)")]


def instrument(timers, optimizer, chosen=None):
    """Wrap the parts of the training step with timers (monkeypatching, this process only):
    ``chosen`` (owner, attribute, label) entries, by default ``targets(optimizer)``; an
    owner may be a class, a module or one object (a layer). Returns a function that undoes
    everything."""
    saved = []
    for owner, name, label in targets(optimizer) if chosen is None else chosen:
        own = vars(owner).get(name)
        saved.append((owner, name, own))  # None: inherited (a class's, for a layer), deleted on undo
        setattr(owner, name, timers.wrap(label, getattr(owner, name)))

    def undo():
        for owner, name, value in reversed(saved):
            if value is None:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
    return undo


def _denormal_count(arrays):
    import numpy as np
    count = total = 0
    for a in arrays:
        tiny = np.finfo(a.dtype).tiny
        count += int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))
        total += a.size
    return count, total


def _optimizer_alone_ms(model, optimizer, n_steps):
    """The optimiser's step by itself on the current state (the state copied back after)."""
    saved = {k: (optimizer.m[k].copy(), optimizer.v[k].copy(), model.params[k].copy())
             for k in model.params}
    t_saved = optimizer.t
    t0 = time.perf_counter()
    for _ in range(n_steps):
        optimizer.step(model.grads)
    seconds = time.perf_counter() - t0
    for k, (m, v, p) in saved.items():
        optimizer.m[k][...], optimizer.v[k][...], model.params[k][...] = m, v, p
    optimizer.t = t_saved
    return 1e3 * seconds / n_steps


def profile(label, cfg, model, optimizer, step, floor, chosen=None):
    """Alternate plain blocks (the true step time, and so the timers' own overhead),
    instrumented blocks (the breakdown) and the GEMM floor, ``profile_rounds`` times.
    ``chosen``: the functions to time (``instrument``'s)."""
    timers = Timers()
    plain, instrumented, floors = [], [], []
    block = cfg["profile_block"]
    for _ in range(cfg["profile_rounds"]):
        for record, fn in ((plain, step), (floors, floor)):
            t0 = time.perf_counter()
            for _ in range(block):
                fn()
            record.append((time.perf_counter() - t0) / block)
        undo = instrument(timers, optimizer, chosen)
        try:
            t0 = time.perf_counter()
            for _ in range(block):
                step()
            instrumented.append((time.perf_counter() - t0) / block)
        finally:
            undo()
    n_steps = block * cfg["profile_rounds"]
    parts = {name: 1e3 * s / n_steps for name, s in timers.seconds.items()}
    return dict(label=label, step_ms=1e3 * statistics.median(plain),
                instrumented_step_ms=1e3 * statistics.mean(instrumented), parts=parts,
                floor_ms=1e3 * statistics.median(floors),
                adam_alone_ms=_optimizer_alone_ms(model, optimizer, block),
                denormals_m=_denormal_count(optimizer.m.values()),
                denormals_v=_denormal_count(optimizer.v.values()),
                denormals_grads=_denormal_count(model.grads.values()), adam_t=optimizer.t)


def _instrumented_is_identical(model, optimizer, x):
    """The wrapped functions compute exactly what the package does (same gradients)."""
    import numpy as np
    eps = model.draw_eps(len(x))
    reference = model.copy()
    reference.loss_and_grad(x, eps)
    undo = instrument(Timers(), optimizer)
    try:
        model.loss_and_grad(x, eps)
    finally:
        undo()
    return all(np.array_equal(model.grads[k], reference.grads[k]) for k in model.grads)


def worker_profile(cfg):
    """Break one training step (the body of fit's loop) into timed parts, early and late."""
    from numvae.training import loop
    images = load_cached(cfg["cache"], "train")
    batch, seed = cfg["batch"], cfg["seed"]
    model = make_model(cfg)
    optimizer = make_optimizer(cfg.get("optimizer", "fast"), model.params,
                               cfg.get("chunk", DEFAULT_CHUNK))
    identical = _instrumented_is_identical(model, optimizer, images[:batch])
    step = step_function(model, optimizer, images, batch, seed)
    floor = GemmFloor(model, batch, seed)
    for _ in range(3):  # warm-up
        step()
    n_profiled = 2 * cfg["profile_rounds"] * cfg["profile_block"]
    results = [profile(f"early (steps 4-{3 + n_profiled})", cfg, model, optimizer, step, floor)]
    epoch_rates = []
    if cfg["profile_epochs"]:
        history = loop.fit(model, optimizer, images, epochs=cfg["profile_epochs"],
                            batch_size=batch, seed=seed, progress=False, log=None)
        results.append(profile(f"after {cfg['profile_epochs']} more epochs", cfg, model,
                               optimizer, step, floor))
        epoch_rates = history["examples_per_second"]
    from numvae.nn.threads import thread_count
    return dict(identical=identical, profiles=results, epoch_examples_per_second=epoch_rates,
                optimizer=type(optimizer).__name__, peak_mib=rss_mib(),
                pool_threads=thread_count())


def _cells(profiles, value, unit=" ms"):
    return "".join(f"{value(p):>13.3f}{unit}{'':>11}" for p in profiles)


def profile_table(result, cfg):
    kind = cfg.get("optimizer", "fast")
    pool = result.get("pool_threads")
    pool = "" if pool is None else f"elementwise passes on {pool} thread(s) (numvae.nn.threads), "
    lines = [f"PROFILE {cfg['arch']} batch {cfg['batch']} {cfg['dtype']} {cfg['threads']} "
             f"thread(s), {pool}{optimizer_label(kind, cfg.get('chunk', DEFAULT_CHUNK))} "
             f"(instrumented code gives identical gradients: {result['identical']})"]
    profiles = result["profiles"]
    names = sorted({n for p in profiles for n in p["parts"]},
                   key=lambda n: -profiles[0]["parts"].get(n, 0.0))
    header = f"{'part of the step':<52}" + "".join(f"{p['label']:>26}" for p in profiles)
    lines += [header, "-" * len(header)]
    for name in names:
        cells = ""
        for p in profiles:
            ms = p["parts"].get(name, 0.0)
            cells += f"{ms:>13.3f} ms {100 * ms / p['instrumented_step_ms']:>6.1f} %  "
        lines.append(f"{name:<52}{cells}")
    lines.append(f"{'unaccounted (loop, gather, timer overhead)':<52}" + "".join(
        f"{p['instrumented_step_ms'] - sum(p['parts'].values()):>13.3f} ms "
        f"{100 * (1 - sum(p['parts'].values()) / p['instrumented_step_ms']):>6.1f} %  "
        for p in profiles))
    for key, label in [("instrumented_step_ms", "instrumented step (timers on)"),
                       ("step_ms", "plain step (no timers), alternated"),
                       ("floor_ms", "GEMM floor (the same products alone)"),
                       ("adam_alone_ms", "optimizer step alone on the current state")]:
        lines.append(f"{label:<52}" + _cells(profiles, lambda p: p[key]))  # noqa: B023 (called now)
    lines.append(f"{'plain step / GEMM floor':<52}"
                 + _cells(profiles, lambda p: p["step_ms"] / p["floor_ms"], unit="   "))
    for key, label in [("denormals_m", "denormal entries in Adam m"),
                       ("denormals_v", "denormal entries in Adam v"),
                       ("denormals_grads", "denormal entries in the gradients")]:
        lines.append(f"{label:<52}" + "".join(f"{p[key][0]:>13} / {p[key][1]:<10}"
                                              for p in profiles))
    if result["epoch_examples_per_second"]:
        lines.append("fit examples/s per epoch in between: "
                     + ", ".join(f"{v:.0f}" for v in result["epoch_examples_per_second"]))
    return "\n".join(lines)
