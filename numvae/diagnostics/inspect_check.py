"""Finite-difference checks of the intermediate gradients of one training step, for
``numvae.diagnostics.inspect.trace_step(..., check=True)``.

For a row ``d u`` of the trace (d z, d mean and its two paths, the gradient arriving at a
layer's output, d logits), the quantity u is perturbed in a float64 copy and the rest of
the step is re-run from there to the loss: (L(u + h e_i) - L(u - h e_i)) / 2h against the
row's value, entry by entry (eq. C1). The two paths into a head are checked separately:
"from z" perturbs the head where the sampler reads it, "from KL" where the KL term
reads it, and the sum (V5) perturbs it in both places.
"""
import numpy as np

from numvae.diagnostics.gradcheck import check_arrays
from numvae.model.kl import GaussianKL, NoKL


def _heads_and_posterior(model, cache, point, value):
    """The heads as the sampler and as the KL see them, from ``point`` on: returns
    (z, posterior cache) for the rest of the step, or those of ``cache`` if ``point`` lies
    after the sampler."""
    kind, eps = point[0], cache["eps"]
    heads = {name: cache[name] for name in model.posterior.heads}
    if kind == "encoder":
        h = value  # the compressor's layer outputs come after the labels were joined to x
        for layer in model.encoder.compressor.layers[point[1] + 1:]:
            h = layer.forward(h)[0]
        heads = {name: head.forward(h)[0] for name, head in model.encoder.heads.items()}
        heads_z = heads_kl = heads
    elif kind == "head":
        _, path, name = point
        perturbed = dict(heads, **{name: value})
        heads_z = perturbed if path in ("z", "both") else heads
        heads_kl = perturbed if path in ("kl", "both") else heads
    else:
        z = value if kind == "z" else cache["z"]
        return z, cache["caches"]["posterior"]
    z, _ = model.posterior.rsample(heads_z, eps)
    return z, model.posterior.rsample(heads_kl, eps)[1]


def rest_of_step(model, cache, point, value):
    """The loss of the step in ``cache`` with the quantity at ``point`` replaced by
    ``value`` and every later computation re-run.

    point: ("encoder", k) the output of compressor layer k; ("head", path, name) a head,
    path "z", "kl" or "both"; ("z",); ("decoder", k) the output of decoder layer k;
    ("logits",); ("output",).
    """
    kind = point[0]
    z, posterior_cache = _heads_and_posterior(model, cache, point, value)
    if kind in ("logits", "output"):
        logits = value if kind == "logits" else cache["logits"]
    else:
        # a conditional model's decoder reads [z, onehot(y)] (eq. CD1)
        start, h = ((point[1] + 1, value) if kind == "decoder"
                    else (0, model.condition(z, cache["y"])))
        for layer in model.decoder.to_logits.layers[start:]:
            h = layer.forward(h)[0]
        logits = h
    output = value if kind == "output" else model.decoder.sigmoid.forward(logits)[0]
    n_samples = cache["eps"].shape[0]
    nll = model.likelihood.nll(logits, cache["x_rows"], output).reshape(n_samples, -1)
    objective_cache = cache["caches"]["objective"]
    terms, _ = model.objective.forward(nll, z, posterior_cache, model.posterior, model.prior,
                                       objective_cache["kl_weight"])
    return terms["loss"]


def row_points(model, cache):
    """{row name: (point, forward quantity)} for the intermediate rows that can be checked.

    With a Monte Carlo KL, log q is computed from eps rather than from z, so perturbing z
    (or one path into a head) alone does not re-run it: those rows are not checked.
    """
    compressor = cache["caches"]["encoder"]["compressor"]["outputs"]
    decoder = cache["caches"]["decoder"]["outputs"]
    points = {f"d encoder.compressor.{k}": (("encoder", k), compressor[k])
              for k in range(len(compressor))}
    points.update({f"d decoder.decompressor.{k}": (("decoder", k), decoder[k])
                   for k in range(len(decoder) - 1)})
    points.update({"d logits": (("logits",), cache["logits"]),
                   "d output": (("output",), cache["output"])})
    # only a closed-form KL (or none) reads z and the heads where the rows say; a Monte
    # Carlo KL and the IWAE bound read log q through eps
    monte_carlo = not isinstance(cache["caches"]["objective"]["kl_part"], (GaussianKL, NoKL))
    if not monte_carlo:
        points["d z"] = (("z",), cache["z"])
    for name in model.posterior.heads:
        points[f"d {name}"] = (("head", "both", name), cache[name])
        if not monte_carlo:
            points[f"d {name} (from z)"] = (("head", "z", name), cache[name])
            points[f"d {name} (from KL)"] = (("head", "kl", name), cache[name])
    return points


def check_rows(model, cache, rows, n_entries=None, seed=0):
    """Set ``fd_error`` on each row of ``rows`` (a float64 model's trace) whose quantity
    ``row_points`` knows: the relative error of the row's value against the central
    differences of ``rest_of_step``, over ``n_entries`` entries (None: all)."""
    points = row_points(model, cache)
    for row in rows:
        if row.name not in points:
            continue
        point, quantity = points[row.name]
        u = np.array(quantity, dtype=np.float64)        # the copy that is perturbed
        # the lambda is called within this iteration only: the loop variables are current
        errors = check_arrays(lambda: rest_of_step(model, cache, point, u), {"u": u},  # noqa: B023
                              {"u": row.value}, n_entries=n_entries, seed=seed)
        row.fd_error = errors["u"]
