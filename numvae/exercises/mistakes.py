"""The classic mistakes the grader recognises: a hint for each, and the wrong answer it gives.

When a student's result differs from the reference, the grader computes each wrong
variant listed for that function on the same inputs; if the student's result equals one
of them, the message names the mistake. Each variant has the signature of the function it
imitates and is built from the reference answers in ``reference``.
"""
import numpy as np

from numvae.exercises import broken_vae
from numvae.exercises import reference as ref

HINTS = {
    "sign": "a sign is flipped",
    "mean_vs_sum": "a mean where a sum is meant, or a sum where a mean is meant",
    "dW_transposed": "dW is transposed: dW = x.T @ dy has the shape (in, out) of W (eq. D2)",
    "db_not_summed": "db is not summed over the batch: db = dy.sum(axis=0), shape (out,) (eq. D2)",
    "relu_mask": "the ReLU's mask comes from its input x (x > 0), not from dy (eq. D3)",
    "sigmoid_of_output": "y is already the sigmoid's output: dx = dy * y * (1 - y), no second "
                         "sigmoid (eq. D4)",
    "relu_on_heads": "the mean and log_var heads are linear: no ReLU after them",
    "std_vs_var": "exp(log_var) is the variance sigma^2; the standard deviation is "
                  "exp(0.5 * log_var) (std vs variance, eq. R1)",
    "half": "a factor 1/2 is missing (or doubled)",
    "kl_minus_one": "the -1 of the KL is missing: 0.5 * sum(mean^2 + exp(log_var) - 1 - log_var) "
                    "(eq. K1)",
    "softplus": "not finite for logits of +-1000: write softplus(a) = max(a, 0) + "
                "log1p(exp(-|a|)), whose exp never overflows (eq. B3)",
    "logits_not_probs": "output is the decoder's sigmoid(logits), not the logits",
    "slides_kl": "that is the exact KL; the slides' loss_fn has no -1 and no 1/2 in its KL "
                 "(eq. S1)",
    "kl_weight": "kl_weight multiplies the KL part, and only that part",
    "adam_bias": "a bias correction is missing: m_hat = m / (1 - beta1**t) and "
                 "v_hat = v / (1 - beta2**t) (eq. O2)",
    "in_place": "param, m and v must be updated in place (param -= ..., m[...] = ...): "
                "assigning to the name inside the function leaves the caller's array unchanged",
    "lse_overflow": "exp overflowed or underflowed: subtract each row's max before exp and add "
                    "it back after the log (log-sum-exp, eq. I2)",
    "sigma_squared": "sigma is the standard deviation; the Gaussian divides by the variance "
                     "sigma^2 (std vs variance, eq. G1)",
    "gaussian_constant": "the constant (input_dim / 2) log(2 pi sigma^2) is missing (eq. G1)",
    "not_finite": "your result has NaN or infinite values where numvae's is finite",
    "compressor_relu": "a ReLU of the compressor is missing: shared = ReLU(ReLU(x W0 + b0) W2 + b2), "
                       "two ReLUs (eqs. D1, D3)",
    "heads_swapped": "the heads are swapped: mean comes from encoder.mean.W and .b, log_var from "
                     "encoder.log_var.W and .b",
    "decoder_relu": "a ReLU of the decoder is missing: output = sigmoid(ReLU(ReLU(z W0 + b0) W2 + b2) "
                    "W4 + b4) (eqs. D1, D3, D4)",
    "kl_grad_sign": "the KL's gradient has the wrong sign: the loss adds the KL, so dmean gains "
                    "+ mean / batch and dlog_var + 0.5 (exp(log_var) - 1) / batch (eq. K2)",
    "fork_assign": "at the fork mean and log_var get gradient from two paths, through z and from "
                   "the KL: add the two (dmean = dz + mean / batch), never assign one over the "
                   "other (eq. V5)",
    "head_dropped": "both heads read the shared layer, so its gradient is the sum of what comes "
                    "back through the mean head and through the log_var head (eq. V6)",
    "adam_t_plus_one": "the bias corrections use this step's t (t = 1 at the first step): "
                       "1 - beta1**t, not 1 - beta1**(t + 1) (eq. O2)",
    "adam_alias": "m_hat = m makes m_hat a second name for the same array, so dividing m_hat in "
                  "place divides m (or v) too: write m_hat = m / (1 - beta1**t), a new array",
    "eps_in_sqrt": "eps is added after the square root: sqrt(v_hat) + eps, not sqrt(v_hat + eps) "
                   "(eq. O2)",
    "lse_global_max": "the maximum is taken over the whole batch: a row far below it underflows "
                      "to log(0) = -inf; subtract each row's own maximum "
                      "(max(axis=1, keepdims=True)) (eq. I2)",
    "lse_not_added_back": "the maximum subtracted before exp is not added back after the log: "
                          "L = max + log mean exp(log_weights - max) (eq. I2)",
    "gaussian_log_sigma": "the constant is (N / 2) log(2 pi sigma^2): the variance sigma^2 inside "
                          "the log, not sigma (eq. G1)",
    "gaussian_grad_variance": "the gradient is (prediction - x) / sigma^2: the 1/sigma^2 is "
                              "missing (eq. G2)",
}


def _std(log_var):
    return np.exp(0.5 * log_var)


def _vae_with_eps_scaled(x, params, eps):
    """The forward pass with exp(log_var) as the standard deviation: the same as numvae's
    with eps multiplied by exp(0.5 log_var), since exp(log_var) = exp(0.5 log_var)^2."""
    log_var = ref.encoder_forward(x, params)[1]
    return eps * _std(log_var)


def _vae_loss_variants(x, params, eps):
    """{hint: loss} for the losses of exercise 08's mistakes (no gradients)."""
    model = ref._model(params)
    terms = model.forward(x, eps)
    recon, kl, latent_dim = terms["reconstruction"], terms["kl"], eps.shape[-1]
    scaled = model.loss(x, _vae_with_eps_scaled(x, params, eps))
    return {"mean_vs_sum": float(np.sum(recon + kl)),
            "std_vs_var": scaled,
            "kl_minus_one": float(np.mean(recon + kl + 0.5 * latent_dim)),
            "half": float(np.mean(recon + 2 * kl)),
            "sign": float(np.mean(recon - kl))}


def _adam(param, grad, m, v, t, lr, beta1, beta2, eps, correct_m=True, correct_v=True,
          sign=1.0, t_shift=0, alias=(), eps_inside=False):
    """Algorithm 1 written out, with one mistake switched on: a bias correction off, the
    sign, t + 1 in the corrections, m_hat (v_hat) an alias of m (v) divided in place, eps
    inside the square root."""
    m[...] = beta1 * m + (1 - beta1) * grad
    v[...] = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1 ** (t + t_shift)) if correct_m else m
    v_hat = v / (1 - beta2 ** (t + t_shift)) if correct_v else v
    if "m" in alias:  # m_hat = m; m_hat /= (1 - beta1**t)
        m /= 1 - beta1**t
        m_hat = m
    if "v" in alias:
        v /= 1 - beta2**t
        v_hat = v
    denominator = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
    param -= sign * lr * m_hat / denominator


def _adam_variant(**switches):
    """adam_step with some of ``_adam``'s switches changed (correct_m, correct_v, sign)."""
    def step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        options = dict(correct_m=True, correct_v=True)
        options.update(switches)
        _adam(param, grad, m, v, t, lr, beta1, beta2, eps, **options)
    return step


def _with_output(name, value_of):
    """A variant of a function returning a dict, with output[name] replaced."""
    def variant(x, params, eps):
        out = ref.vae_forward(x, params, eps)
        out[name] = value_of(x, params, eps, out)
        return out
    return variant


def _scaled_eps_forward(x, params, eps):
    """vae_forward with exp(log_var) as the standard deviation."""
    return ref.vae_forward(x, params, _vae_with_eps_scaled(x, params, eps))


def _kl_variant(inside):
    """A KL summed over the latent dimensions from a wrong ``inside(mean, log_var)``."""
    return lambda mean, log_var: np.sum(inside(mean, log_var), axis=1)


def _relu_heads(x, params):
    mean, log_var = ref.encoder_forward(x, params)
    return np.maximum(mean, 0), np.maximum(log_var, 0)


def _broken_encoder(mistake):
    """encoder_forward with one of broken_vae.forward's mistakes."""
    def variant(x, params):
        out = broken_vae.forward(x, params, np.zeros((len(x), params["encoder.mean.W"].shape[1])),
                                 mistake)
        return out["mean"], out["log_var"]
    return variant


def _broken_forward(mistake):
    """vae_forward with one of broken_vae.forward's mistakes."""
    def variant(x, params, eps):
        out = broken_vae.forward(x, params, eps, mistake)
        return {name: out[name] for name in ("mean", "log_var", "z", "output")}
    return variant


def _loss_fn_variant(kind):
    """The slides' loss_fn with one mistake (``kind``: a hint, ":" and which variant)."""
    def variant(prediction, target, mean, log_var, kl_weight=1.0):
        squared = (prediction - target) ** 2
        var = np.exp(0.5 * log_var) if kind == "std_vs_var" else np.exp(log_var)
        kl = mean**2 + var - log_var
        if kind == "slides_kl":
            kl = 0.5 * (mean**2 + var - 1 - log_var)
        reconstruction, kl = np.sum(squared), np.sum(kl)
        if kind == "mean_vs_sum":  # nnf_mse_loss's default reduction is "mean"
            reconstruction = np.mean(squared)
        if kind == "mean_vs_sum:both":
            reconstruction, kl = np.mean(squared), np.mean(mean**2 + var - log_var)
        weights = {"kl_weight": (1.0, 1.0), "kl_weight:swapped": (kl_weight, 1.0),
                   "kl_weight:both": (kl_weight, kl_weight)}.get(kind, (1.0, kl_weight))
        return float(weights[0] * reconstruction + weights[1] * kl)
    return variant


def _gaussian_variant(kind):
    """(G1) with one mistake: "gaussian_constant", "sigma_squared", "half" or "mean_vs_sum"."""
    def variant(prediction, x, sigma=1.0):
        squared, n_pixels = (x - prediction) ** 2, x.shape[1]
        var = sigma if kind == "sigma_squared" else sigma**2
        scale = 1.0 if kind == "half" else 0.5
        constant = 0.0 if kind == "gaussian_constant" else 0.5 * n_pixels * np.log(2 * np.pi * var)
        if kind == "gaussian_log_sigma":  # log(2 pi sigma) in the constant only
            constant = 0.5 * n_pixels * np.log(2 * np.pi * sigma)
        total = (np.mean if kind == "mean_vs_sum" else np.sum)(squared, axis=1)
        return scale * total / var + constant
    return variant


MISTAKES = {
    "dense_backward": {
        "sign": lambda dy, x, W: tuple(-g for g in ref.dense_backward(dy, x, W)),
        "mean_vs_sum": lambda dy, x, W: ref.dense_backward(dy / len(dy), x, W)},
    "relu_backward": {"relu_mask": lambda dy, x: dy * (dy > 0)},
    "sigmoid_backward": {
        "sigmoid_of_output": lambda dy, y: ref.sigmoid_backward(dy, 1 / (1 + np.exp(-y)))},
    "encoder_forward": {"relu_on_heads": _relu_heads,
                        **{kind: _broken_encoder(kind) for kind in (
                            "compressor_relu:inner", "compressor_relu:outer", "heads_swapped")}},
    "reparameterise": {"std_vs_var": lambda mean, log_var, eps: mean + np.exp(log_var) * eps},
    "reparameterise_backward": {
        "half": lambda dz, mean, log_var, eps: (dz, dz * _std(log_var) * eps),
        "std_vs_var": lambda dz, mean, log_var, eps: (dz, dz * np.exp(log_var) * eps),
        "std_vs_var:with its 1/2": lambda dz, mean, log_var, eps: (dz, 0.5 * dz * np.exp(log_var) * eps)},
    "kl_divergence": {
        "kl_minus_one": _kl_variant(lambda m, lv: 0.5 * (m**2 + np.exp(lv) - lv)),
        "half": _kl_variant(lambda m, lv: m**2 + np.exp(lv) - 1 - lv),
        "std_vs_var": _kl_variant(lambda m, lv: 0.5 * (m**2 + _std(lv) - 1 - lv)),
        "sign": _kl_variant(lambda m, lv: 0.5 * (m**2 + np.exp(lv) - 1 + lv)),
        "mean_vs_sum": lambda m, lv: np.mean(0.5 * (m**2 + np.exp(lv) - 1 - lv), axis=1)},
    "kl_divergence_backward": {
        "kl_minus_one": lambda m, lv: (m, 0.5 * np.exp(lv)),
        "half": lambda m, lv: (2 * m, np.exp(lv) - 1),
        "std_vs_var": lambda m, lv: (m, 0.5 * (0.5 * _std(lv) - 1)),
        "sign": lambda m, lv: (-m, -0.5 * (np.exp(lv) - 1)),
        "mean_vs_sum": lambda m, lv: (m / len(m), 0.5 * (np.exp(lv) - 1) / len(m))},
    "bernoulli_nll": {
        "sign": lambda a, x: -ref.bernoulli_nll(a, x),
        "mean_vs_sum": lambda a, x: ref.bernoulli_nll(a, x) / a.shape[1]},
    "bernoulli_nll_backward": {
        "sign": lambda a, x: -ref.bernoulli_nll_backward(a, x),
        "mean_vs_sum": lambda a, x: ref.bernoulli_nll_backward(a, x) / len(a)},
    "vae_forward": {
        "std_vs_var": _scaled_eps_forward,
        "decoder_relu:first": _broken_forward("decoder_relu:first"),
        "decoder_relu:second": _broken_forward("decoder_relu:second"),
        "logits_not_probs": _with_output(
            "output", lambda x, params, eps, out: np.log(out["output"] / (1 - out["output"])))},
    "loss_fn": {kind: _loss_fn_variant(kind)
                for kind in ("slides_kl", "std_vs_var", "mean_vs_sum", "mean_vs_sum:both",
                             "kl_weight", "kl_weight:swapped", "kl_weight:both")},
    "adam_step": {"adam_bias": _adam_variant(correct_m=False, correct_v=False),
                  "adam_bias:m only": _adam_variant(correct_m=False),
                  "adam_bias:v only": _adam_variant(correct_v=False),
                  "sign": _adam_variant(sign=-1.0),
                  "adam_t_plus_one": _adam_variant(t_shift=1),
                  "adam_alias": _adam_variant(alias=("m", "v")),
                  "adam_alias:m only": _adam_variant(alias=("m",)),
                  "adam_alias:v only": _adam_variant(alias=("v",)),
                  "eps_in_sqrt": _adam_variant(eps_inside=True)},
    "iwae_bound": {
        "mean_vs_sum": lambda lw: ref.iwae_bound(lw) + np.log(lw.shape[1]),
        "lse_global_max": lambda lw: np.max(lw) + np.log(np.mean(np.exp(lw - np.max(lw)), axis=1)),
        "lse_not_added_back": lambda lw: np.log(np.mean(np.exp(lw - lw.max(axis=1, keepdims=True)),
                                                        axis=1))},
    "gaussian_nll": {kind: _gaussian_variant(kind) for kind in
                     ("gaussian_constant", "gaussian_log_sigma", "sigma_squared", "half",
                      "mean_vs_sum")},
    "gaussian_nll_backward": {
        "sigma_squared": lambda p, x, sigma=1.0: (p - x) / sigma,
        "half": lambda p, x, sigma=1.0: 0.5 * (p - x) / sigma**2,
        "sign": lambda p, x, sigma=1.0: (x - p) / sigma**2,
        "mean_vs_sum": lambda p, x, sigma=1.0: (p - x) / sigma**2 / len(x),
        "gaussian_grad_variance": lambda p, x, sigma=1.0: p - x},
}


def _vae_loss_variant(kind):
    """A wrong vae_loss_and_grad: the loss of mistake ``kind``; gradients scaled where the
    mistake is a scale (batch sum, sign), NaN (matching nothing) where it is not."""
    def variant(x, params, eps):
        loss = _vae_loss_variants(x, params, eps)[kind]
        grads = ref.vae_loss_and_grad(x, params, eps)[1]
        scale = {"mean_vs_sum": len(x), "sign": -1.0}.get(kind, np.nan)
        return loss, {name: scale * grad for name, grad in grads.items()}
    return variant


MISTAKES["vae_loss_and_grad"] = {
    **{kind: _vae_loss_variant(kind) for kind in
       ("mean_vs_sum", "std_vs_var", "kl_minus_one", "half", "sign")},
    # backward mistakes: the loss right, a gradient wrong ("half": the reparameterisation's)
    **{kind if kind != "half" else "half:reparameterisation":
       (lambda x, params, eps, kind=kind: broken_vae.loss_and_grad(x, params, eps, kind))
       for kind in ("kl_grad_sign", "fork_assign", "head_dropped:mean", "head_dropped:log_var",
                    "half", "relu_mask")}}


def _adam_efficient(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """Kingma & Ba's "efficient" ordering (the end of their section 2): the bias corrections
    folded into the step size, lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t), and eps added
    to sqrt(v), not to sqrt(v_hat). It differs from Algorithm 1 by eps only."""
    m[...] = beta1 * m + (1 - beta1) * grad
    v[...] = beta2 * v + (1 - beta2) * grad * grad
    lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    param -= lr_t * m / (np.sqrt(v) + eps)


# Answers that differ from numvae's and are right all the same: {function: {name: (the
# variant, the note the grader adds to "passed")}}.
ACCEPTED = {
    "adam_step": {"efficient": (
        _adam_efficient,
        ("accepted as Kingma & Ba's efficient form, lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) "
         "and eps added to sqrt(v): it equals Algorithm 1 (numvae's, eq. O2) with eps replaced "
         "by eps sqrt(1 - beta2^t), so the steps differ by a relative 1e-6 at most here"))},
}
