"""How much memory a model and a training step need, from the settings alone.

Every entry point (``numvae.VAE(...)``, a checkpoint's configuration, a safetensors file's
metadata, the command line) reaches ``check_model`` before the first array is allocated,
and a step's rows (batch x samples) reach ``check_step``: a setting of 10**9 is one line
naming it, the size it implies and the limit, never minutes of swapping and a MemoryError.

    parameters   the sum over the layers of in * out + out (Dense), out * in * k^2 + out
                 (convolutions), plus the parts' own (a flow's MADEs, a mixture's K x M)
    model bytes  MODEL_COPIES copies (parameters, gradients, Adam's two moments)
    step bytes   rows x (the widths every row passes through) x ROW_COPIES, with the
                 encoder's rows = batch and the decoder's rows = batch x samples

The figures are estimates from above (a test compares them with the memory a step really
takes); the limit (``default_limit``) is min(4 GiB, half the machine's memory, half an
address-space limit if the process has one), raised by ``max_memory`` (``--max-memory``).
"""
import math
import os
import re

from numvae.validation import check_positive_int, check_widths

GIB = 2**30
DEFAULT_CAP = 4 * GIB
MODEL_COPIES = 4     # parameters, gradients, Adam's m and v
ROW_COPIES = 2       # each activation and its gradient (caches hold references, not copies)
UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class SizeError(ValueError):
    """Settings that imply more memory than the limit: the message names the setting."""


def human(n_bytes):
    """2.5 GiB, 300.0 MiB, ... (binary units)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}"
    return f"{n_bytes:,} bytes"


def default_limit():
    """min(4 GiB, half the machine's memory, half the address space the process may use)."""
    limit = DEFAULT_CAP
    try:
        limit = min(limit, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): the cap alone
        pass
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft // 2)
    except (ImportError, ValueError, OSError):
        pass
    return limit


def parse_bytes(text):
    """'8G', '512M', '3GiB', '1000000' -> bytes; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"expected a size such as 8G, 512M or a number of bytes; got "
                         f"{str(text)[:40]!r}")
    value = float(match.group(1)) * UNITS[match.group(2).lower()]
    if not 1 <= value <= 2**60:
        raise ValueError(f"expected a size from 1 byte to 1 EiB; got {str(text)[:40]!r}")
    return int(value)


def memory_limit(max_memory=None):
    """The limit in bytes: ``default_limit()``, or ``max_memory`` (bytes, or a text such as
    '8G'), checked."""
    if max_memory is None:
        return default_limit()
    if isinstance(max_memory, bool) or not isinstance(max_memory, (int, str)):
        raise TypeError(f"max_memory must be a number of bytes or a size such as '8G'; got "
                        f"{max_memory!r}")
    return parse_bytes(max_memory)


def _dense(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def conv_side(input_dim):
    """The side of the conv architecture's square images (checked there, with its message)."""
    side = math.isqrt(input_dim)
    return side if side * side == input_dim else None


def network_layers(s):
    """[(label, parameters, (encoder widths per example, decoder widths per row))] of the
    encoder, its heads and the decoder of settings ``s`` (``numvae.VAE``'s arguments)."""
    extra = s.get("n_classes") or 0
    layers = []
    if s["architecture"] == "conv":
        side = conv_side(s["input_dim"]) or 4
        flat = 64 * (side // 4) ** 2
        # each convolution: its weights, and per image its im2col matrix and its output
        layers += [("conv 1 -> 32", 32 * 16 + 32, (side * side * (16 + 8), 0)),
                   ("conv 32 -> 64", 64 * 32 * 16 + 64, (flat * (8 + 1), 0)),
                   (f"input_dim={s['input_dim']} (conv) x shared_dim={s['shared_dim']}",
                    _dense(flat, s["shared_dim"]), (s["shared_dim"], 0)),
                   (f"latent_dim={s['latent_dim']} x input_dim={s['input_dim']} (conv)",
                    _dense(s["latent_dim"], flat), (0, flat)),
                   ("transposed conv 64 -> 32", 64 * 32 * 16 + 32, (0, flat * (8 + 1))),
                   ("transposed conv 32 -> 1", 32 * 16 + 1, (0, side * side * (16 + 8)))]
    else:
        for side, names in (("encoder", ["input_dim", *[f"encoder_hidden[{i}]" for i in
                                                         range(len(s["encoder_hidden"]))],
                                         "shared_dim"]),
                            ("decoder", ["latent_dim", *[f"decoder_hidden[{i}]" for i in
                                                         range(len(s["decoder_hidden"]))],
                                         "input_dim"])):
            widths = ([s["input_dim"], *s["encoder_hidden"], s["shared_dim"]] if side == "encoder"
                      else [s["latent_dim"], *s["decoder_hidden"], s["input_dim"]])
            for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
                label = f"{side} layer {names[i]}={n_in} x {names[i + 1]}={n_out}"
                rows = (n_out, 0) if side == "encoder" else (0, n_out)
                layers.append((label, _dense(n_in + extra * (i == 0), n_out), rows))
    heads = 2 if s["posterior"] != "point" else 1
    layers.append((f"posterior heads shared_dim={s['shared_dim']} x latent_dim="
                   f"{s['latent_dim']}", heads * _dense(s["shared_dim"], s["latent_dim"]),
                   (heads * s["latent_dim"], 6 * s["latent_dim"] + 3 * s["input_dim"])))
    return layers


def part_layers(s):
    """The same for the parts with parameters: a flow posterior, a mixture prior."""
    layers, m = [], s["latent_dim"]
    if s["posterior"] == "iaf":
        steps, hidden = s["flow_steps"], list(s["flow_hidden"])
        context = _dense(s["shared_dim"], hidden[0])
        made = (_dense(m, hidden[0], bias=False) + _dense(hidden[0], hidden[0])
                + sum(_dense(a, b) for a, b in zip(hidden, [*hidden[1:], 2 * m])))
        layers.append((f"posterior context head shared_dim={s['shared_dim']} x "
                       f"flow_hidden[0]={hidden[0]}", context, (hidden[0], 0)))
        layers.append((f"flow_steps={steps} x flow_hidden={hidden}", steps * made,
                       (0, steps * (sum(hidden) * 2 + 8 * m))))
    if s["prior"] == "mixture":
        k = s["prior_components"]
        layers.append((f"prior_components={k} x latent_dim={m}", k + 2 * k * m,
                       (0, 3 * k * m + 3 * k)))
    return layers


def model_layers(s):
    """[(label, parameters, (widths per example, widths per decoded row))] of the whole
    ``numvae.VAE(**s)``: its network and its parts."""
    return network_layers(s) + part_layers(s)


def parameter_count(s):
    """The number of parameters of ``numvae.VAE(**s)``, from the settings alone."""
    return sum(count for _, count, _ in model_layers(s))


def _refuse(what, needed, limit):
    raise SizeError(f"{what} would need about {human(needed)}, above the limit of "
                    f"{human(limit)} (raise it with --max-memory, or max_memory= in Python)")


def checked_settings(s):
    """``s`` with the settings of the chosen parts checked (as the parts check them, with
    their messages), so that the arithmetic reads only valid numbers."""
    s = dict(s)
    if s.get("n_classes") is not None:
        s["n_classes"] = check_positive_int(s["n_classes"], "n_classes")
    if s["posterior"] == "iaf":
        s["flow_steps"] = check_positive_int(s["flow_steps"], "flow_steps")
        s["flow_hidden"] = check_widths(s["flow_hidden"], "flow_hidden")
        if not s["flow_hidden"]:
            raise ValueError("flow_hidden must have at least one width; got ()")
    if s["prior"] == "mixture":
        s["prior_components"] = check_positive_int(s["prior_components"], "prior_components")
    return s


class Budget:
    """A model's memory budget: the limit in bytes and the values each example and each
    decoded row holds in a step, so that a step's size is checked with two products."""

    def __init__(self, widths, itemsize, limit):
        self.limit, self.itemsize = limit, itemsize
        self.per_example, self.per_row = widths  # values per example, per decoded row

    def step_bytes(self, batch, n_samples):
        """The working memory of a step of ``batch`` examples x ``n_samples`` samples of z
        (an estimate from above)."""
        return ROW_COPIES * self.itemsize * batch * (self.per_example + n_samples * self.per_row)

    def check_step(self, batch, n_samples, what="a step"):
        """Refuse a step of ``batch`` examples x ``n_samples`` samples above the limit."""
        needed = self.step_bytes(batch, n_samples)
        if needed > self.limit:
            _refuse(f"{what} of batch {batch:,} x n_samples {n_samples:,} (rows of "
                    f"{self.per_example:,} + {n_samples:,} x {self.per_row:,} values)",
                    needed, self.limit)


def check_model(s, itemsize, max_memory=None):
    """Refuse settings ``s`` (``numvae.VAE``'s arguments, the part names and the network
    checked already) whose parameters (with gradients and Adam's moments), or whose step
    of a single example, exceed the limit. Returns the model's ``Budget``."""
    s = checked_settings(s)
    return check_layers(model_layers(s), (s["input_dim"], 0), s.get("n_samples", 1),
                        itemsize, max_memory)


def two_layer_layers(input_dim, latent_dims, hidden):
    """``model_layers`` of ``numvae.model.two_layer.TwoLayerVAE``: its four networks
    (widths checked already), every one but q(zeta|x)'s run on the S drawn rows."""
    (m1, m2), layers = latent_dims, []
    for name, n_in, widths, n_out, per_row in [
            ("q(zeta|x)", input_dim, hidden[0], m1, False),
            ("q(xi|zeta)", m1, hidden[1], m2, True),
            ("p(zeta|xi)", m2, hidden[1][::-1], m1, True)]:
        sizes = [n_in, *widths]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers.append((f"{name} layer {a} x {b}", _dense(a, b), (0, b) if per_row else (b, 0)))
        layers.append((f"{name} heads {sizes[-1]} x {n_out}", 2 * _dense(sizes[-1], n_out),
                       (0, 6 * n_out) if per_row else (2 * n_out, 6 * n_out)))
    sizes = [m1, *hidden[0][::-1], input_dim]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append((f"p(x|zeta) layer {a} x {b}", _dense(a, b), (0, b)))
    layers.append(("p(x|zeta) output and likelihood", 0, (0, 3 * input_dim)))
    return layers


def check_layers(layers, extra_widths, n_samples, itemsize, max_memory):
    """``check_model`` for a list of layers (label, parameters, widths) and the widths
    ``extra_widths`` no layer holds (the input)."""
    limit = memory_limit(max_memory)
    total = sum(count for _, count, _ in layers)
    if MODEL_COPIES * itemsize * total > limit:
        label, count, _ = max(layers, key=lambda layer: layer[1])
        _refuse(f"{label}: {count:,} parameters ({total:,} in all, with their gradients and "
                f"Adam's moments)", MODEL_COPIES * itemsize * total, limit)
    widths = (extra_widths[0] + sum(w[0] for _, _, w in layers),
              extra_widths[1] + sum(w[1] for _, _, w in layers))
    budget = Budget(widths, itemsize, limit)
    budget.check_step(1, n_samples, "n_samples: a step")
    return budget
