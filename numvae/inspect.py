"""Follow one training step, forward then backward, one named quantity at a time.

``trace_step(model, x)`` runs ``model.loss_and_grad`` once and collects every quantity it
computed: each layer's output, mean, log_var, eps, z, the reconstruction, the loss terms,
then, in reverse order, the gradient arriving at each layer's output, each parameter
gradient, the reparameterisation's and the KL's contributions to dL/dmean and dL/dlog_var.
Each row carries its formula in the notation of docs/derivations.md (equation labels in
brackets) and summary statistics; with ``check=True`` each parameter gradient also gets
its central-difference relative error (float64).
"""
from dataclasses import dataclass, field

import numpy as np

from .gradcheck import check_model
from .layers import Dense, ReLU, Sigmoid, Tanh

_FORWARD_FORMULA = {Dense: "{out} = {inp} W + b  (D1)", ReLU: "{out} = max({inp}, 0)  (D3)",
                    Sigmoid: "{out} = sigmoid({inp})  (D4)", Tanh: "{out} = tanh({inp})  (D5)"}
# the gradient arriving at a layer's output, from the backward of the layer after it
_BACKWARD_FORMULA = {ReLU: "d {inp} = d {out} * 1[{inp} > 0]  (D3)",
                     Sigmoid: "d {inp} = d {out} * {out} (1 - {out})  (D4)",
                     Tanh: "d {inp} = d {out} * (1 - {out}^2)  (D5)",
                     Dense: "d {inp} = d {out} W^T  (D2)"}


@dataclass
class Row:
    """One quantity of the step: its phase ("forward" or "backward"), name, formula and value."""
    phase: str
    name: str
    formula: str
    value: np.ndarray
    fd_error: float = None  # finite-difference relative error (parameter gradients, check=True)
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


def _sequence_forward_rows(sequence, prefix, input_name):
    """Rows for each layer's output in a Sequential, read from what forward stored."""
    rows, previous = [], input_name
    for index, layer in enumerate(sequence.layers):
        name = f"{prefix}.{index}"
        if isinstance(layer, Dense):
            # the activation after it kept only its own output: recompute the affine map
            value = layer.x @ layer.params["W"] + layer.params["b"]
        else:
            value = layer.y
        rows.append(Row("forward", name, _FORWARD_FORMULA[type(layer)].format(
            out=name, inp=previous), value))
        previous = name
    return rows


def _sequence_backward_rows(sequence, prefix, input_name):
    """Rows for the gradient arriving at each layer's output and each parameter gradient.
    The gradient arriving at the last layer's output comes from outside: the caller adds it."""
    rows = []
    for index in range(len(sequence.layers) - 1, -1, -1):
        layer, name = sequence.layers[index], f"{prefix}.{index}"
        previous = f"{prefix}.{index - 1}" if index > 0 else input_name
        if index + 1 < len(sequence.layers):
            following = sequence.layers[index + 1]
            formula = _BACKWARD_FORMULA[type(following)].format(inp=name, out=f"{prefix}.{index + 1}")
            rows.append(Row("backward", f"d {name}", formula, sequence.output_grads[index]))
        if isinstance(layer, Dense):
            rows.append(Row("backward", f"{name}.W (grad)", f"dW = {previous}^T d {name}  (D2)",
                            layer.grads["W"]))
            rows.append(Row("backward", f"{name}.b (grad)", f"db = sum_batch d {name}  (D2)",
                            layer.grads["b"]))
    return rows


def trace_step(model, x, eps=None, *, check=False, n_entries=None):
    """Run one ``loss_and_grad`` step on ``x`` (batch, input_dim) and return its ``Trace``.

    With ``check=True`` the step is traced on a float64 copy of the model, and each
    parameter gradient gets its finite-difference relative error (``n_entries`` random
    entries per parameter, all if None). ``eps`` defaults to a draw from ``model.rng``.
    """
    if check:
        model = model.copy(np.float64)
    x = np.asarray(x)
    if eps is None:
        eps = model.draw_eps(len(x))
    loss = model.loss_and_grad(x, eps)
    c, b, terms = model.cache, model.backward_cache, model.terms
    enc, dec = model.encoder, model.decoder
    # mean, log_var heads come after the compressor; the decoder's logits row is its last Dense
    rows = [Row("forward", "x", "the data batch", c["x"])]
    rows += _sequence_forward_rows(enc.compressor, "encoder.compressor", "x")
    shared = f"encoder.compressor.{len(enc.compressor) - 1}"
    rows += [Row("forward", "mean", f"mean = {shared} W_mean + b_mean  (D1)", c["mean"]),
             Row("forward", "log_var", f"log_var = {shared} W_log_var + b_log_var  (D1)",
                 c["log_var"]),
             Row("forward", "std", "std = exp(0.5 log_var)  (R1)", c["std"]),
             Row("forward", "eps", "eps ~ N(0, I), shape (S, batch, latent_dim)", c["eps"]),
             Row("forward", "z", "z = mean + std * eps  (R1)", c["z"])]
    rows += _sequence_forward_rows(dec.decompressor, "decoder.decompressor", "z")
    likelihood = ("-log p(x|z) = sum_i softplus(a_i) - x_i a_i  (B3)"
                  if model.likelihood == "bernoulli" else
                  "-log p(x|z) = sum_i (x_i - out_i)^2 / (2 sigma^2) + N/2 log(2 pi sigma^2)  (G1)")
    rows += [Row("forward", "reconstruction", likelihood + ", mean over S samples",
                 terms["reconstruction"]),
             Row("forward", "kl", "KL = 0.5 sum_j (mean^2 + exp(log_var) - 1 - log_var)  (K1)",
                 terms["kl"]),
             Row("forward", "loss", "L = mean_batch(reconstruction + kl_weight * kl)  (V1)",
                 np.array(loss))]

    # backward, in the order loss_and_grad computes it
    last = len(dec.decompressor) - 1
    if model.likelihood == "bernoulli":
        rows.append(Row("backward", "d logits", "dL/da = (sigmoid(a) - x) / (S B)  (B4, V2)",
                        b["dlogits"]))
    else:
        rows.append(Row("backward", f"d decoder.decompressor.{last}",
                        "dL/dout = (out - x) / (sigma^2 S B)  (G2, V2)", b["doutput"]))
        rows.append(Row("backward", "d logits", "dL/da = dL/dout * out (1 - out)  (D4)",
                        b["dlogits"]))
    rows += _sequence_backward_rows(dec.to_logits, "decoder.decompressor", "z")
    rows += [Row("backward", "d z", "d z = d decoder.decompressor.0 W^T  (D2)", b["dz"]),
             Row("backward", "d mean (from z)", "sum_s dL/dz * 1  (V3)", b["dmean_from_z"]),
             Row("backward", "d log_var (from z)", "sum_s dL/dz * 0.5 exp(0.5 log_var) eps  (V3)",
                 b["dlog_var_from_z"]),
             Row("backward", "d mean (from KL)", "kl_weight / B * mean  (K2, V4)", b["dmean_kl"]),
             Row("backward", "d log_var (from KL)",
                 "kl_weight / B * 0.5 (exp(log_var) - 1)  (K2, V4)", b["dlog_var_kl"]),
             Row("backward", "d mean", "d mean (from z) + d mean (from KL)  (V5)", b["dmean"]),
             Row("backward", "d log_var", "d log_var (from z) + d log_var (from KL)  (V5)",
                 b["dlog_var"])]
    for head in ("mean", "log_var"):
        layer = getattr(enc, head)
        rows.append(Row("backward", f"encoder.{head}.W (grad)",
                        f"dW = {shared}^T d {head}  (D2)", layer.grads["W"]))
        rows.append(Row("backward", f"encoder.{head}.b (grad)", f"db = sum_batch d {head}  (D2)",
                        layer.grads["b"]))
    rows.append(Row("backward", f"d {shared}",
                    "d mean W_mean^T + d log_var W_log_var^T: the two heads add  (D2, V6)",
                    enc.dshared))
    rows += _sequence_backward_rows(enc.compressor, "encoder.compressor", "x")
    if check:
        errors = check_model(model, c["x"], c["eps"], n_entries=n_entries)
        for row in rows:
            if row.name.endswith(" (grad)"):
                row.fd_error = errors[row.name[: -len(" (grad)")]]
    return Trace(rows, model)
