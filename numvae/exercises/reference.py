"""Reference answers to the exercises, built from numvae's own public parts.

Every function has the signature of its exercise, so this file itself passes
``numvae exercise check`` (the tests do that). Where numvae has the quantity as a public
function (the losses, the VAE), the reference calls it; where numvae keeps it inside
a layer, ``_layer_forward_backward`` is the one adapter to the layers' interface; the few
lines written out here (sigmoid backward, Adam's step, log-sum-exp) are
tested against numvae in tests/test_exercises.py.
"""
import numpy as np

from numvae.model import kl, likelihoods, objectives, posteriors
from numvae.model.vae import VAE
from numvae.nn.layers import Dense, ReLU
from numvae.training.optim import Adam


def _layer_forward_backward(layer, x, dy):
    """(y, dx, parameter gradients) of one numvae layer: ``y, cache = forward(x)``, then
    ``dx = backward(dy, cache)``, the parameter gradients left in ``layer.grads``."""
    y, cache = layer.forward(x)
    dx = layer.backward(dy, cache)
    return y, dx, {name: grad.copy() for name, grad in layer.grads.items()}


def _dense(x, W, b, dy):
    """y, dx, dW, db of numvae's Dense with the given W, b (eqs. D1, D2)."""
    layer = Dense(*W.shape, rng=np.random.default_rng(0), dtype=np.float64)  # W, b set below
    layer.params["W"][...] = W
    layer.params["b"][...] = b
    y, dx, grads = _layer_forward_backward(layer, x, dy)
    return y, dx, grads["W"], grads["b"]


# --- 01 -------------------------------------------------------------------------------

def dense_forward(x, W, b):
    """y = x @ W + b (eq. D1): (batch, in), (in, out), (out,) -> (batch, out)."""
    return _dense(x, W, b, np.zeros((x.shape[0], W.shape[1])))[0]


def dense_backward(dy, x, W):
    """(dx, dW, db) = (dy W^T, x^T dy, sum_batch dy) (eq. D2)."""
    _, dx, dW, db = _dense(x, W, np.zeros(W.shape[1]), dy)
    return dx, dW, db


def relu_backward(dy, x):
    """dx = dy * 1[x > 0] (eq. D3), x the ReLU's input."""
    return _layer_forward_backward(ReLU(), x, dy)[1]


def sigmoid_backward(dy, y):
    """dx = dy * y * (1 - y) (eq. D4), y the sigmoid's output. Written out: numvae's
    Sigmoid layer starts from the input, which this signature does not give (the tests
    compare the two)."""
    return dy * y * (1.0 - y)


# --- 02, 06, 08: the VAE with given parameters -----------------------------------------

def _model(params):
    """A float64 numvae VAE whose parameters are copies of ``params`` (numvae's names);
    its sizes are read from the arrays' shapes."""
    def width(name, axis):
        return params[name].shape[axis]
    model = VAE(width("encoder.compressor.0.W", 0), width("encoder.compressor.2.W", 1),
                width("encoder.mean.W", 1),
                encoder_hidden=(width("encoder.compressor.0.W", 1),),
                decoder_hidden=(width("decoder.decompressor.0.W", 1),
                                width("decoder.decompressor.2.W", 1)),
                dtype=np.float64, seed=0)
    for name, value in model.params.items():
        value[...] = params[name]  # in place: the parameters are views into one buffer
    return model


def encoder_forward(x, params):
    """(mean, log_var) of the slides' encoder: x (batch, input_dim) -> 2 x (batch, latent_dim)."""
    out = vae_forward(x, params, np.zeros((x.shape[0], params["encoder.mean.W"].shape[1])))
    return out["mean"], out["log_var"]


def vae_forward(x, params, eps):
    """The slides' vae_gen: a dict of mean, log_var, z (batch, latent_dim) and output
    (batch, input_dim)."""
    out = _model(params).forward(x, eps)
    return {name: out[name].reshape(-1, out[name].shape[-1]).copy()
            for name in ("mean", "log_var", "z", "output")}


def vae_loss_and_grad(x, params, eps):
    """Mean negative ELBO (eq. V1) and its gradient (eqs. V2-V6), by numvae's VAE."""
    model = _model(params)
    loss = model.loss_and_grad(x, eps)
    return loss, {name: grad.copy() for name, grad in model.grads.items()}


# --- 03 -------------------------------------------------------------------------------

def reparameterise(mean, log_var, eps):
    """z = mean + exp(0.5 log_var) * eps (eq. R1), all (batch, latent_dim)."""
    return posteriors.reparameterise(mean, log_var, eps)[0]


def reparameterise_backward(dz, mean, log_var, eps):
    """dmean = dz, dlog_var = dz * 0.5 exp(0.5 log_var) eps (eq. V3)."""
    _, std = posteriors.reparameterise(mean, log_var, eps)
    return dz.copy(), dz * 0.5 * std * eps


# --- 04, 05, 07, 11: numvae.model's kl, likelihoods and objectives as they are ---------------

def kl_divergence(mean, log_var):
    """eq. K1, per example: (batch,)."""
    return kl.kl_divergence(mean, log_var)


def kl_divergence_backward(mean, log_var):
    """eq. K2, for the sum over the batch."""
    return kl.kl_divergence_backward(mean, log_var)


def bernoulli_nll(logits, x):
    """eq. B3, per example: (batch,)."""
    return likelihoods.bernoulli_nll(logits, x)


def bernoulli_nll_backward(logits, x):
    """eq. B4, for the sum over the batch."""
    return likelihoods.bernoulli_nll_backward(logits, x)


def loss_fn(prediction, target, mean, log_var, kl_weight=1.0):
    """The slides' loss_fn (eq. S1), a float."""
    return objectives.seed_loss(prediction, target, mean, log_var, kl_weight)


def gaussian_nll(prediction, x, sigma=1.0):
    """eq. G1, per example: (batch,)."""
    return likelihoods.gaussian_nll(prediction, x, sigma)


def gaussian_nll_backward(prediction, x, sigma=1.0):
    """eq. G2, for the sum over the batch."""
    return likelihoods.gaussian_nll_backward(prediction, x, sigma)


# --- 09 -------------------------------------------------------------------------------

def adam_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """One step of Adam, Kingma & Ba's Algorithm 1 (eq. O2), updating param, m, v in place.

    Written out (numvae.Adam keeps its state inside, for a whole dict of parameters); the
    tests check it against numvae.Adam over several steps.
    """
    m *= beta1
    m += (1 - beta1) * grad                      # m <- beta1 m + (1 - beta1) g
    v *= beta2
    v += (1 - beta2) * grad * grad               # v <- beta2 v + (1 - beta2) g^2
    m_hat = m / (1 - beta1**t)                   # bias corrections
    v_hat = v / (1 - beta2**t)
    param -= lr * m_hat / (np.sqrt(v_hat) + eps)


# --- 10 -------------------------------------------------------------------------------

def iwae_bound(log_weights):
    """log (1/K) sum_k exp(log_weights[:, k]) (eq. I2), (batch, K) -> (batch,).

    Log-sum-exp: subtract each row's max so that exp neither overflows nor underflows to 0.
    """
    top = log_weights.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.mean(np.exp(log_weights - top), axis=1))


# --- 12, the capstone ----------------------------------------------------------------------

def train_my_vae(x, params, order, eps, lr=1e-3):
    """numvae's own training of the slides' VAE on the same inputs: for each step t, the
    batch x[order[t]] and eps[t], the mean negative ELBO and its gradient (V1-V6), then one
    Adam step (O2). Updates ``params`` in place; returns the losses, one per step."""
    model = _model(params)
    optimiser = Adam(model.params, lr=lr)
    losses = []
    for batch, step_eps in zip(order, eps):
        losses.append(model.loss_and_grad(x[batch], step_eps))
        optimiser.step(model.grads)
    for name, value in model.params.items():
        params[name][...] = value
    return losses
