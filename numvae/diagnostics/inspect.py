"""Follow one training step, forward then backward, one named quantity at a time
(``numvae.VAE``, and the two-layer ``TwoLayerVAE``: its rows at the end of this file).

``trace_step(model, x)`` runs ``model.loss_and_grad`` once and collects every quantity it
computed: each layer's output, mean, log_var, eps, z, the reconstruction, the loss terms,
then, in reverse order, the gradient arriving at each layer's output, each parameter
gradient, the reparameterisation's and the KL's contributions to dL/dmean and dL/dlog_var.
Each row carries its formula in the notation of docs/derivations.md (equation labels in
brackets) and summary statistics; with ``check=True`` each parameter gradient, and each
intermediate gradient (d z, d mean and d log_var with each of their paths, the gradient
arriving at each layer's output, d logits), also gets its central-difference relative
error in float64 (the intermediate ones from ``numvae.diagnostics.inspect_check``; for the
two-layer model, the parameter gradients only).
"""
from dataclasses import dataclass, field

import numpy as np

from numvae.diagnostics.gradcheck import check_model
from numvae.diagnostics.inspect_check import check_rows
from numvae.model.labels import one_hot
from numvae.nn.conv import Conv2d, ConvTranspose2d, Flatten, Reshape
from numvae.nn.layers import Dense, ReLU, Sigmoid, Tanh

# formulas by layer class (a subclass, such as the fast FastConv2d, uses its parent's)
_FORWARD_FORMULA = {Dense: "{out} = {inp} W + b  (D1)", ReLU: "{out} = max({inp}, 0)  (D3)",
                    Sigmoid: "{out} = sigmoid({inp})  (D4)", Tanh: "{out} = tanh({inp})  (D5)",
                    Conv2d: "{out} = im2col({inp}) W^T + b, per position  (CV1, CV2)",
                    ConvTranspose2d: "{out} = col2im({inp} W) + b  (CV7)",
                    Reshape: "{out} = {inp} as (batch, C, H, W)",
                    Flatten: "{out} = {inp} as (batch, C H W)"}
# the gradient arriving at a layer's output, from the backward of the layer after it
_BACKWARD_FORMULA = {ReLU: "d {inp} = d {out} * 1[{inp} > 0]  (D3)",
                     Sigmoid: "d {inp} = d {out} * {out} (1 - {out})  (D4)",
                     Tanh: "d {inp} = d {out} * (1 - {out}^2)  (D5)",
                     Dense: "d {inp} = d {out} W^T  (D2)",
                     Conv2d: "d {inp} = col2im(d {out} W)  (CV6)",
                     ConvTranspose2d: "d {inp} = im2col(d {out}) W^T  (CV7)",
                     Reshape: "d {inp} = d {out} reshaped back", Flatten: "d {inp} = d {out} "
                     "reshaped back"}
# each parameter gradient of a layer with parameters
_PARAMETER_FORMULA = {Dense: {"W": "dW = {inp}^T d {out}  (D2)",
                              "b": "db = sum_batch d {out}  (D2)"},
                      Conv2d: {"W": "dW = d {out}^T im2col({inp})  (CV4)",
                               "b": "db = sum over batch and positions of d {out}  (CV5)"},
                      ConvTranspose2d: {"W": "dW = {inp}^T im2col(d {out})  (CV7)",
                                        "b": "db = sum over batch and positions of d {out}  (CV5)"}}


def _formula(table, layer):
    """The entry of ``table`` for the layer's class or the nearest parent class in it."""
    return next(table[cls] for cls in type(layer).__mro__ if cls in table)


@dataclass
class Row:
    """One quantity of the step: its phase ("forward" or "backward"), name, formula and value."""
    phase: str
    name: str
    formula: str
    value: np.ndarray
    fd_error: float = None  # finite-difference relative error (gradients, check=True)
    stats: dict = field(init=False)

    def __post_init__(self):
        # a copy: the model's arrays (gradients in particular) are overwritten by the next step
        self.value = np.array(self.value, copy=True)
        v = self.value.astype(np.float64)
        self.stats = dict(mean=float(v.mean()), std=float(v.std()), min=float(v.min()),
                          max=float(v.max()))

    @property
    def shape(self):
        return self.value.shape


class Trace:
    """The rows of one step, forward rows first, then backward rows in reverse layer order."""

    def __init__(self, rows, model):
        self.rows, self.model = rows, model

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, name):
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no quantity named {name!r}; names: {', '.join(r.name for r in self.rows)}")

    def names(self):
        return [row.name for row in self.rows]

    def table(self):
        """The trace as a fixed-width text table."""
        checked = any(row.fd_error is not None for row in self.rows)
        header = (f"{'#':>3} {'phase':<8} {'name':<34} {'shape':<14} {'mean':>10} {'std':>10} "
                  f"{'min':>10} {'max':>10}" + (f" {'fd error':>9}" if checked else "") + "  formula")
        lines = [header, "-" * len(header)]
        for number, row in enumerate(self.rows, 1):
            s = row.stats
            line = (f"{number:>3} {row.phase:<8} {row.name:<34} {str(row.shape):<14} "
                    f"{s['mean']:>10.3g} {s['std']:>10.3g} {s['min']:>10.3g} {s['max']:>10.3g}")
            if checked:
                line += f" {row.fd_error:>9.1e}" if row.fd_error is not None else " " * 10
            lines.append(line + "  " + row.formula)
        return "\n".join(lines)


def _sequence_forward_rows(sequence, cache, prefix, input_name):
    """Rows for each layer's output in a Sequential, read from its forward cache."""
    rows, previous = [], input_name
    for index, (layer, output) in enumerate(zip(sequence.layers, cache["outputs"])):
        name = f"{prefix}.{index}"
        rows.append(Row("forward", name, _formula(_FORWARD_FORMULA, layer).format(
            out=name, inp=previous), output))
        previous = name
    return rows


def _sequence_backward_rows(sequence, steps, prefix, input_name):
    """Rows for the gradient arriving at each layer's output and each parameter gradient.
    ``steps``: from ``Sequential.backward_steps``. The gradient arriving at the last
    layer's output comes from outside: the caller adds it."""
    rows = []
    for index in range(len(sequence.layers) - 1, -1, -1):
        layer, name = sequence.layers[index], f"{prefix}.{index}"
        previous = f"{prefix}.{index - 1}" if index > 0 else input_name
        if index + 1 < len(sequence.layers) and steps[index + 1] is not None:
            following = sequence.layers[index + 1]
            formula = _formula(_BACKWARD_FORMULA, following).format(
                inp=name, out=f"{prefix}.{index + 1}")
            rows.append(Row("backward", f"d {name}", formula, steps[index + 1]))
        for key, formula in (_formula(_PARAMETER_FORMULA, layer).items() if layer.params else ()):
            rows.append(Row("backward", f"{name}.{key} (grad)",
                            formula.format(inp=previous, out=name), layer.grads[key]))
    return rows


def _forward_rows(model, cache):
    """The forward pass: encoder, posterior draw, decoder, loss terms."""
    enc, dec = model.encoder, model.decoder
    shared = f"encoder.compressor.{len(enc.compressor) - 1}"
    caches = cache["caches"]
    rows = [Row("forward", "x", "the data batch", cache["x"])]
    # a conditional model's encoder reads [x, onehot(y)] and its decoder [z, onehot(y)]
    x_in, z_in = ("x", "z") if cache["y"] is None else ("[x, onehot(y)]", "[z, onehot(y)]")
    if cache["y"] is not None:
        rows.append(Row("forward", "onehot(y)", "the labels, one-hot  (CD1)",
                        one_hot(cache["y"], model.n_classes, model.dtype)))
    rows += _sequence_forward_rows(enc.compressor, caches["encoder"]["compressor"],
                                   "encoder.compressor", x_in)
    rows += [Row("forward", head, f"{head} = {shared} W_{head} + b_{head}  (D1)", cache[head])
             for head in model.posterior.heads]
    rows += [Row("forward", name, formula, cache[name])
             for name, formula in model.posterior.formulas.items()]
    rows += _sequence_forward_rows(dec.decompressor, _with_sigmoid(caches["decoder"], cache),
                                   "decoder.decompressor", z_in)
    kl_part = caches["objective"]["kl_part"]
    return rows + [Row("forward", "reconstruction", model.likelihood.nll_formula
                       + ", mean over S samples", cache["reconstruction"]),
                   Row("forward", "kl", kl_part.formula, cache["kl"]),
                   Row("forward", "loss", model.objective.formula, np.array(cache["loss"]))]


def _with_sigmoid(decoder_cache, cache):
    """The decoder's cache with the Sigmoid's output appended (the Sigmoid is applied
    outside ``to_logits``)."""
    return dict(outputs=[*decoder_cache["outputs"], cache["output"]])


def _backward_rows(model, grads):
    """The backward pass, in the order ``model.backward`` computes it."""
    enc, dec = model.encoder, model.decoder
    shared = f"encoder.compressor.{len(enc.compressor) - 1}"
    rows = []
    for (name, formula), value in zip(model.likelihood.backward_formulas(),
                                      [*grads["likelihood"].values(), grads["dlogits"]]):
        rows.append(Row("backward", name, formula, value))
    x_in, z_in = ("[x, onehot(y)]", "[z, onehot(y)]") if model.n_classes else ("x", "z")
    rows += _sequence_backward_rows(dec.to_logits, grads["decoder_steps"], "decoder.decompressor",
                                    z_in)
    rows.append(Row("backward", "d z", "d z = d decoder.decompressor.0 W^T  (D2)" + (
        ", its first latent_dim columns  (CD1)" if model.n_classes else ""), grads["dz"]))
    kl_formulas = getattr(grads["kl_part"], "backward_formulas", {})
    for head in model.posterior.heads:
        rows += [Row("backward", f"d {head} (from z)", model.posterior.backward_formulas[head],
                     grads["dheads_from_z"][head]),
                 Row("backward", f"d {head} (from KL)", kl_formulas.get(head, "(K4, V4)"),
                     grads["dheads_from_kl"][head])]
    rows += [Row("backward", f"d {head}", f"d {head} (from z) + d {head} (from KL)  (V5)",
                 grads["dheads"][head]) for head in model.posterior.heads]
    for head, layer in enc.heads.items():
        rows.append(Row("backward", f"encoder.{head}.W (grad)",
                        f"dW = {shared}^T d {head}  (D2)", layer.grads["W"]))
        rows.append(Row("backward", f"encoder.{head}.b (grad)", f"db = sum_batch d {head}  (D2)",
                        layer.grads["b"]))
    rows.append(Row("backward", f"d {shared}", "sum over heads of d head W_head^T: the heads "
                    "add  (D2, V6)", grads["encoder_steps"]["shared"]))
    rows += _sequence_backward_rows(enc.compressor, grads["encoder_steps"]["compressor"],
                                    "encoder.compressor", x_in)
    return rows


def trace_step(model, x, eps=None, *, y=None, check=False, n_entries=None):
    """Run one training step (``model.forward`` then ``model.backward``) on ``x``
    (batch, input_dim), with the labels ``y`` (batch,) of a conditional model, and return
    its ``Trace``.

    With ``check=True`` the step is traced on a float64 copy of the model, and each
    gradient row gets its finite-difference relative error (``n_entries`` random entries
    per array, all if None): a parameter's by perturbing the parameter, an intermediate
    quantity's by perturbing that quantity and re-running the rest of the step (not for a
    TwoLayerVAE: its parameters only). ``eps`` defaults to a draw from ``model.rng``.
    """
    if check:
        model = model.copy(np.float64)
    x = np.asarray(x)
    if eps is None:
        eps = model.draw_eps(len(x))
    cache = model.forward(x, eps, y=y)
    grads = model.backward(cache)
    two_layers = not hasattr(model, "encoder")  # TwoLayerVAE: four networks (eq. H1)
    if two_layers:
        rows = two_layer_forward_rows(model, cache) + two_layer_backward_rows(model, grads)
    else:
        grads["kl_part"] = cache["caches"]["objective"]["kl_part"]
        rows = _forward_rows(model, cache) + _backward_rows(model, grads)
    if check:
        errors = check_model(model, cache["x"], cache["eps"], n_entries=n_entries, y=cache["y"])
        for row in rows:
            if row.name.endswith(" (grad)"):
                row.fd_error = errors[row.name[: -len(" (grad)")]]
        if not two_layers:  # the intermediate quantities' checks re-run numvae.VAE's step
            check_rows(model, cache, rows, n_entries)
    return Trace(rows, model)


# --- the two-layer model (numvae.model.two_layer, eqs. H1-H7; zeta = z1, xi = z2) -------

# each Gaussian network: its input, its heads' names in the cache, the draw it feeds
_TWO_LAYER_NETS = (("q_z1", "x", ("z1_mean", "z1_log_var"),
                    ("z1", "z1 = zeta = mu_1 + sigma_1 * eps  (R1, H1)")),
                   ("q_z2", "z1", ("mean", "log_var"),
                    ("z2", "z2 = xi = mu_2 + sigma_2 * eps'  (R1, H1)")),
                   ("p_z1", "z2", ("prior_z1_mean", "prior_z1_log_var"), None))
_LOG_DENSITIES = {"nll": "-log p(x|zeta): R  (B3 or G1)",
                  "log_q_z1": "log q(zeta|x) = log N(zeta; mu_1, sigma_1^2)  (I1)",
                  "log_q_z2": "log q(xi|zeta) = log N(xi; mu_2, sigma_2^2)  (I1)",
                  "log_p_z1": "log p(zeta|xi) = log N(zeta; mu~, sigma~^2)  (I1, H4)",
                  "log_p_z2": "log p(xi) = log N(xi; 0, I)  (I1)"}


def two_layer_forward_rows(model, cache):
    """The forward pass of a TwoLayerVAE: q_z1, the draw of zeta, q_z2, the draw of xi,
    p_z1, the decoder p_x, the five log-densities of eq. H1 (S, batch), the loss terms."""
    c = cache["caches"]
    rows = [Row("forward", "x", "the data batch", cache["x"]),
            Row("forward", "eps", "[eps, eps'] ~ N(0, I), (S, batch, M1 + M2)  (H1)",
                cache["eps"])]
    for net, source, heads, draw in _TWO_LAYER_NETS:
        body = getattr(model, net).body
        rows += _sequence_forward_rows(body, c[net]["body"], f"{net}.body", source)
        last = f"{net}.body.{len(body) - 1}"
        rows += [Row("forward", f"{net}.{head}", f"{net}.{head} = {last} W + b  (D1)",
                     cache[key]) for head, key in zip(("mean", "log_var"), heads)]
        if draw:
            rows.append(Row("forward", draw[0], draw[1], cache[draw[0]]))
    rows += _sequence_forward_rows(model.decoder.decompressor, _with_sigmoid(c["p_x"], cache),
                                   "p_x.decompressor", "z1")
    rows += [Row("forward", name, formula, cache["log_densities"][name])
             for name, formula in _LOG_DENSITIES.items()]
    bound = "H2: the ELBO" if model.objective.name == "elbo" else "H3: the IWAE bound"
    return rows + [Row("forward", "reconstruction", "R, mean over the draws",
                       cache["reconstruction"]),
                   Row("forward", "kl", "KL of zeta (K3) + KL of xi (K1), mean over the draws",
                       cache["kl"]),
                   Row("forward", "loss", f"the loss  ({bound})", np.array(cache["loss"]))]


def _two_layer_net_rows(model, grads, net, source, heads_gradient):
    """A Gaussian network's backward rows: its heads' gradients (``heads_gradient``: the
    key in ``grads`` and the formula), their parameters' and its body's parameters'."""
    key, formula = heads_gradient
    last = f"{net}.body.{len(getattr(model, net).body) - 1}"
    rows = []
    for head, layer in getattr(model, net).heads.items():
        rows += [Row("backward", f"d {net}.{head}", formula, grads[key][head]),
                 Row("backward", f"{net}.{head}.W (grad)", f"dW = {last}^T d {net}.{head}  (D2)",
                     layer.grads["W"]),
                 Row("backward", f"{net}.{head}.b (grad)", f"db = sum_batch d {net}.{head}  (D2)",
                     layer.grads["b"])]
    body = getattr(model, net).body
    return rows + _sequence_backward_rows(body, [None] * len(body.layers), f"{net}.body", source)


def two_layer_backward_rows(model, grads):
    """The backward pass of a TwoLayerVAE in the order ``TwoLayerVAE.backward`` takes it:
    the logits and p_x; zeta's prior and p_z1; xi (H6) and q_z2; zeta's other paths, their
    sum (H5) and q_z1 (H7). Each network's heads' gradients and every parameter gradient;
    ``TwoLayerVAE.backward`` does not return the gradient arriving at each hidden layer:
    no rows for it."""
    def row(key, name, formula):
        return Row("backward", name, formula, grads[key])
    decoder = model.decoder.to_logits
    return [row("dlogits", "d logits", "d logits: the likelihood's gradient  (B4 or G2)"),
            *_sequence_backward_rows(decoder, [None] * len(decoder.layers), "p_x.decompressor",
                                     "z1"),
            row("dz1_from_x", "d z1 (from x)", "d logits sent back through p_x  (H5, D2)"),
            row("dz1_from_prior", "d z1 (from p(zeta|xi))",
                "log p(zeta|xi)'s weight * (-e / sigma~)  (H4)"),
            *_two_layer_net_rows(model, grads, "p_z1", "z2", (
                "dheads_p_z1", "log p(zeta|xi)'s weight * its partials in mu~, lambda~  (H4)")),
            row("dz2", "d z2", "from p(zeta|xi) through p_z1, log p(xi), log q(xi|zeta)  (H6)"),
            *_two_layer_net_rows(model, grads, "q_z2", "z1", (
                "dheads_z2", "d z2 through xi's draw (V3) + the KL's (K2) or log q's (K4)  (H6)")),
            row("dz1_from_q_z2", "d z1 (from q(xi|zeta))",
                "d q_z2.mean, d q_z2.log_var sent back through q_z2  (H5)"),
            row("dz1_from_log_q", "d z1 (from log q(zeta|x))",
                "log q(zeta|x)'s weight * (-eps / sigma_1)  (H5, K4)"),
            row("dz1", "d z1", "the four paths add  (H5)"),
            *_two_layer_net_rows(model, grads, "q_z1", "x", (
                "dheads_z1", "d z1 through zeta's draw (V3) + log q(zeta|x)'s (K4)  (H7)"))]
