"""The decoder's distribution p_theta(x|z): one class per likelihood, one registry.

Every likelihood reads the decoder's last pre-activation ``logits`` a (rows, input_dim)
and its sigmoid ``output`` (the Bernoulli probabilities, or the Gaussian mean), and has

* ``nll(logits, x, output=None)``: -log p(x|z) per row, (rows,);
* ``nll_backward(dnll, logits, x, output)``: dL/dlogits (rows, input_dim) for a loss
  L with dL/dnll = ``dnll`` (rows,), and the named gradients it passed on the way
  (for ``numvae.inspect``);
* ``check_data(x, name)``: the values it can model; ``sample(output, rng)``;
* ``settings()``: what a checkpoint stores besides its name; ``from_config(config, rng,
  dtype)``, the constructor from the model's settings (the same for every kind of part).

A new likelihood is one class here plus one entry in ``LIKELIHOODS``: the model, the
evaluation, the inspector, the checkpoint reader and the command line all go through
this registry, and never test a likelihood's name.
"""
import numpy as np

from . import losses
from .layers import sigmoid


class Bernoulli:
    """p(x|z) = prod_i sigmoid(a_i)^x_i (1 - sigmoid(a_i))^(1 - x_i) (eqs. B1-B4).

    Grey levels in [0, 1] are allowed: the loss is then the cross-entropy.
    """
    name = "bernoulli"
    nll_formula = "-log p(x|z) = sum_i softplus(a_i) - x_i a_i  (B3)"

    def settings(self):
        return {}

    @classmethod
    def from_config(cls, config, rng, dtype):
        return cls()

    def check_data(self, x, name):
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"{name} has values in [{x.min():.4g}, {x.max():.4g}]; the Bernoulli "
                             f"likelihood needs values in [0, 1]")

    def nll(self, logits, x, output=None):
        """-log p(x|z) per row, fused with the sigmoid (eq. B3): (rows,). x broadcasts."""
        return losses.bernoulli_nll(logits, x)

    def nll_backward(self, dnll, logits, x, output):
        """dL/dlogits = dnll * (sigmoid(a) - x) (eq. B4), the Sigmoid's own backward fused in.

        dnll: (rows,) or a number. Returns (dlogits, {}): no other gradient on the way.
        """
        dlogits = losses.bernoulli_nll_backward(logits, x, probs=output)
        dlogits *= _as_column(dnll)  # in place: a new array from the line above
        return dlogits, {}

    def backward_formulas(self):
        """(name, formula) of the rows ``nll_backward`` produces, for the inspector."""
        return [("d logits", "dL/da = dnll * (sigmoid(a) - x)  (B4, V2)")]

    def sample(self, output, rng):
        """Binary images drawn from Bernoulli(output): (rows, input_dim)."""
        return (rng.random(output.shape) < output).astype(output.dtype)


class Gaussian:
    """p(x|z) = N(x; sigmoid(a), sigma^2 I) with a fixed sigma (eqs. G1, G2): the slides'
    squared error, in nats."""
    name = "gaussian"
    nll_formula = "-log p(x|z) = sum_i (x_i - out_i)^2 / (2 sigma^2) + N/2 log(2 pi sigma^2)  (G1)"

    def __init__(self, sigma=1.0):
        self.sigma = float(sigma)

    def settings(self):
        return {"sigma": self.sigma}

    @classmethod
    def from_config(cls, config, rng, dtype):
        return cls(config.get("sigma", 1.0))

    def check_data(self, x, name):
        """Any finite value (checked by the caller)."""

    def nll(self, logits, x, output=None):
        """-log N(x; output, sigma^2 I) per row (eq. G1): (rows,). x broadcasts."""
        output = sigmoid(logits) if output is None else output
        return losses.gaussian_nll(output, x, self.sigma)

    def nll_backward(self, dnll, logits, x, output):
        """dL/dout = dnll * (out - x) / sigma^2 (eq. G2), then through the sigmoid,
        dL/da = dL/dout * out (1 - out) (eq. D4). Returns (dlogits, {"doutput": dL/dout})."""
        doutput = losses.gaussian_nll_backward(output, x, self.sigma) * _as_column(dnll)
        dlogits = doutput * output * (1 - output)
        return dlogits, {"doutput": doutput}

    def backward_formulas(self):
        return [("d output", "dL/dout = dnll * (out - x) / sigma^2  (G2, V2)"),
                ("d logits", "dL/da = dL/dout * out (1 - out)  (D4)")]

    def sample(self, output, rng):
        """Draws x = output + sigma * noise: (rows, input_dim)."""
        return output + self.sigma * rng.standard_normal(output.shape).astype(output.dtype)


def _as_column(dnll):
    """dnll (rows,) as (rows, 1), to scale each row of a (rows, input_dim) array; a number
    stays a number."""
    return dnll[:, None] if np.ndim(dnll) == 1 else dnll


LIKELIHOODS = {part.name: part for part in (Bernoulli, Gaussian)}
