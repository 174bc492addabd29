"""A solution of all eleven exercises in plain NumPy, written the way a student would, without
numvae: the grader must pass it. tests/test_exercises.py also breaks it on purpose, one
classic mistake at a time (by replacing one line), and expects the grader to name it."""
import numpy as np


def dense_forward(x, W, b):
    return x @ W + b


def dense_backward(dy, x, W):
    dx = dy @ W.T
    dW = x.T @ dy
    db = dy.sum(axis=0)
    return dx, dW, db


def relu_backward(dy, x):
    return dy * (x > 0)


def sigmoid_backward(dy, y):
    return dy * y * (1 - y)


def sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))  # = 1 / (1 + exp(-a)), without overflow


def relu(a):
    return np.maximum(a, 0)


def encoder_forward(x, params):
    p = params
    h = relu(x @ p["encoder.compressor.0.W"] + p["encoder.compressor.0.b"])
    shared = relu(h @ p["encoder.compressor.2.W"] + p["encoder.compressor.2.b"])
    mean = shared @ p["encoder.mean.W"] + p["encoder.mean.b"]
    log_var = shared @ p["encoder.log_var.W"] + p["encoder.log_var.b"]
    return mean, log_var


def reparameterise(mean, log_var, eps):
    std = np.exp(0.5 * log_var)
    return mean + std * eps


def reparameterise_backward(dz, mean, log_var, eps):
    dmean = dz
    dlog_var = dz * 0.5 * np.exp(0.5 * log_var) * eps
    return dmean, dlog_var


def kl_divergence(mean, log_var):
    return 0.5 * np.sum(mean**2 + np.exp(log_var) - 1 - log_var, axis=1)


def kl_divergence_backward(mean, log_var):
    dmean = mean
    dlog_var = 0.5 * (np.exp(log_var) - 1)
    return dmean, dlog_var


def softplus(a):
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def bernoulli_nll(logits, x):
    return np.sum(softplus(logits) - x * logits, axis=1)


def bernoulli_nll_backward(logits, x):
    return sigmoid(logits) - x


def decoder_logits(z, p):
    h1 = relu(z @ p["decoder.decompressor.0.W"] + p["decoder.decompressor.0.b"])
    h2 = relu(h1 @ p["decoder.decompressor.2.W"] + p["decoder.decompressor.2.b"])
    return h1, h2, h2 @ p["decoder.decompressor.4.W"] + p["decoder.decompressor.4.b"]


def vae_forward(x, params, eps):
    mean, log_var = encoder_forward(x, params)
    z = reparameterise(mean, log_var, eps)
    logits = decoder_logits(z, params)[2]
    return {"mean": mean, "log_var": log_var, "z": z, "output": sigmoid(logits)}


def loss_fn(prediction, target, mean, log_var, kl_weight=1.0):
    reconstruction = np.sum((prediction - target) ** 2)
    kl_div = mean**2 + np.exp(log_var) - log_var
    return float(reconstruction + kl_weight * np.sum(kl_div))


def vae_loss_and_grad(x, params, eps):
    p, g, batch = params, {}, x.shape[0]
    h = relu(x @ p["encoder.compressor.0.W"] + p["encoder.compressor.0.b"])
    shared = relu(h @ p["encoder.compressor.2.W"] + p["encoder.compressor.2.b"])
    mean = shared @ p["encoder.mean.W"] + p["encoder.mean.b"]
    log_var = shared @ p["encoder.log_var.W"] + p["encoder.log_var.b"]
    std = np.exp(0.5 * log_var)
    z = mean + std * eps
    h1, h2, logits = decoder_logits(z, p)
    loss = np.mean(bernoulli_nll(logits, x) + kl_divergence(mean, log_var))

    dlogits = (sigmoid(logits) - x) / batch
    g["decoder.decompressor.4.W"], g["decoder.decompressor.4.b"] = h2.T @ dlogits, dlogits.sum(0)
    dh2 = (dlogits @ p["decoder.decompressor.4.W"].T) * (h2 > 0)
    g["decoder.decompressor.2.W"], g["decoder.decompressor.2.b"] = h1.T @ dh2, dh2.sum(0)
    dh1 = (dh2 @ p["decoder.decompressor.2.W"].T) * (h1 > 0)
    g["decoder.decompressor.0.W"], g["decoder.decompressor.0.b"] = z.T @ dh1, dh1.sum(0)
    dz = dh1 @ p["decoder.decompressor.0.W"].T
    dmean = dz + mean / batch                                       # z path + KL path
    dlog_var = dz * 0.5 * std * eps + 0.5 * (np.exp(log_var) - 1) / batch
    g["encoder.mean.W"], g["encoder.mean.b"] = shared.T @ dmean, dmean.sum(0)
    g["encoder.log_var.W"], g["encoder.log_var.b"] = shared.T @ dlog_var, dlog_var.sum(0)
    dshared = dmean @ p["encoder.mean.W"].T + dlog_var @ p["encoder.log_var.W"].T
    dshared = dshared * (shared > 0)
    g["encoder.compressor.2.W"], g["encoder.compressor.2.b"] = h.T @ dshared, dshared.sum(0)
    dh = (dshared @ p["encoder.compressor.2.W"].T) * (h > 0)
    g["encoder.compressor.0.W"], g["encoder.compressor.0.b"] = x.T @ dh, dh.sum(0)
    return float(loss), g


def adam_step(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    param -= lr * m_hat / (np.sqrt(v_hat) + eps)


def iwae_bound(log_weights):
    top = log_weights.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.mean(np.exp(log_weights - top), axis=1))


def gaussian_nll(prediction, x, sigma=1.0):
    n_pixels = x.shape[1]
    squared = np.sum((x - prediction) ** 2, axis=1)
    return squared / (2 * sigma**2) + 0.5 * n_pixels * np.log(2 * np.pi * sigma**2)


def gaussian_nll_backward(prediction, x, sigma=1.0):
    return (prediction - x) / sigma**2
