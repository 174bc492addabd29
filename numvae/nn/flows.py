"""The pieces of an inverse autoregressive flow (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling,
2016) on top of the diagonal Gaussian; the posterior itself is ``numvae.model.posteriors.IAF``.

    z_0 = mean + exp(0.5 log_var) * eps                                     (R1)
    [m_t, s_t] = MADE_t(z_{t-1}, h),  sigma_t = sigmoid(s_t)                 (IF2)
    z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t,   t = 1..T                (IF3)
    log q(z_T|x) = log N(z_0; mean, diag(exp(log_var))) - sum_t sum_i log sigma_t,i   (IF4)

h is the encoder's ``context`` head. m_t,i and s_t,i depend only on the entries of
z_{t-1} that come before i in step t's order (a MADE, Germain, Gregor, Murray & Larochelle
2015: ``MaskedDense`` layers), so each step's Jacobian is triangular in that order, with
sigma_t on its diagonal: its log-determinant is sum_i log sigma_t,i. As in the paper, the
order is reversed from one step to the next, and the bias of s_t starts positive, so that
sigma_t starts near 1 and each step near the identity.
"""
import numpy as np

from numvae.nn.layers import Dense, Layer, Tanh, check_generator, sigmoid

S_BIAS = 2.0  # initial bias of s_t: sigma_t = sigmoid(2) = 0.88 at the start


class MaskedDense(Layer):
    """y = x @ (W * M) + b, a Dense layer with some connections cut (eq. IF1).

    M (in_features, out_features) holds 0s and 1s and is fixed. The cut weights never act,
    so their gradient is 0: dW = (x^T dy) * M, db = sum over the batch of dy,
    dx = dy (W * M)^T. W starts as Dense's, times M. ``bias=False``: no b.
    """
    skips_input_grad = True

    def __init__(self, mask, *, bias=True, rng=None, dtype=np.float32):
        super().__init__()
        rng = check_generator(rng, "MaskedDense")
        self.mask = np.asarray(mask, dtype)
        n_in, n_out = self.mask.shape
        bound = 1.0 / np.sqrt(n_in)
        self.params["W"] = rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype) * self.mask
        if bias:
            self.params["b"] = rng.uniform(-bound, bound, n_out).astype(dtype)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x):
        """x: (rows, in_features) -> y: (rows, out_features); the cache is x."""
        y = x @ (self.params["W"] * self.mask)
        if "b" in self.params:
            y += self.params["b"]
        return y, x

    def backward(self, dy, cache, need_input_grad=True):
        """dy: (rows, out_features) -> dx (rows, in_features) (eq. IF1)."""
        x = cache
        np.multiply(x.T @ dy, self.mask, out=self.grads["W"])    # the mask cuts the gradient too
        if "b" in self.params:
            np.sum(dy, axis=0, out=self.grads["b"])
        return dy @ (self.params["W"] * self.mask).T if need_input_grad else None

    def __repr__(self):
        return f"MaskedDense{self.mask.shape}"


def made_masks(order, hidden):
    """The masks of a MADE (Germain et al. 2015) whose inputs come in ``order`` (eq. IF2).

    order: (D,) the position of each input in the autoregressive order (1..D); hidden:
    widths. Hidden unit k of each layer gets degree 1 + (k mod (D - 1)); a unit sees the
    inputs (or units) of degree <= its own; output i (of each half [m, s]) sees the last
    hidden units of degree < order[i]. Returns the list of masks, one per layer.
    """
    order = np.asarray(order)
    latent_dim = len(order)
    degrees = [order]
    for width in hidden:
        degrees.append(1 + np.arange(width) % max(latent_dim - 1, 1))
    masks = [(d_out[None, :] >= d_in[:, None]).astype(float)
             for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    output = np.concatenate([order, order])                      # [m, s]: two halves
    masks.append((output[None, :] > degrees[-1][:, None]).astype(float))
    return masks


class IAFStep:
    """One step z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t (eqs. IF2, IF3).

    Its layers, named like a PyTorch ``nn.Sequential`` (activations at odd indices):
    ``made.0`` (MaskedDense, no bias), ``context`` (Dense, h -> first hidden layer),
    ``made.2``, ..., and the last ``made.<2n>`` giving [m, s] (2 * latent_dim).
    """

    def __init__(self, latent_dim, context_dim, hidden, reverse, rng, dtype):
        order = np.arange(1, latent_dim + 1)
        self.order = order[::-1].copy() if reverse else order
        masks = made_masks(self.order, hidden)
        self.layers = {"made.0": MaskedDense(masks[0], bias=False, rng=rng, dtype=dtype),
                       "context": Dense(context_dim, hidden[0], rng=rng, dtype=dtype)}
        for index, mask in enumerate(masks[1:], start=1):
            self.layers[f"made.{2 * index}"] = MaskedDense(mask, rng=rng, dtype=dtype)
        self.made = [layer for name, layer in self.layers.items() if name != "context"]
        self.made[-1].params["b"][latent_dim:] = S_BIAS          # sigma_t near 1 at the start
        self.activation = Tanh()

    def forward(self, z, h):
        """z_{t-1} (rows, D), h (rows, context_dim) -> z_t (rows, D) and the cache."""
        a, made_cache = self.made[0].forward(z)
        a += self.layers["context"].forward(h)[0]
        caches = [(made_cache, None)]
        for layer in self.made[1:]:
            y, tanh_cache = self.activation.forward(a)
            a, made_cache = layer.forward(y)
            caches.append((made_cache, tanh_cache))
        latent_dim = z.shape[1]
        m, s = a[:, :latent_dim], a[:, latent_dim:]
        sigma = sigmoid(s)
        z_new = sigma * z + (1 - sigma) * m                                   # IF3
        # log sigmoid(s), stable
        log_sigma = np.minimum(s, 0) - np.log1p(np.exp(-np.abs(s)))
        return z_new, dict(z=z, h=h, m=m, sigma=sigma, log_sigma=log_sigma, caches=caches)

    def backward(self, dz_new, dlog_det, cache):
        """dL/dz_t (rows, D) and dL/d(sum_i log sigma_t,i) (rows,) or None -> dL/dz_{t-1},
        dL/dh; the layers' parameter gradients go into their ``grads`` (eq. IF5)."""
        z, m, sigma = cache["z"], cache["m"], cache["sigma"]
        dm = dz_new * (1 - sigma)
        ds = dz_new * (z - m) * sigma * (1 - sigma)       # through sigma into s
        if dlog_det is not None:
            ds += dlog_det[:, None] * (1 - sigma)         # d log sigmoid(s) / ds = 1 - sigma
        da = np.concatenate([dm, ds], axis=1)
        for layer, (made_cache, tanh_cache) in zip(self.made[:0:-1], cache["caches"][:0:-1]):
            da = self.activation.backward(layer.backward(da, made_cache), tanh_cache)
        dh = self.layers["context"].backward(da, cache["h"])
        dz_made = self.made[0].backward(da, cache["caches"][0][0])
        return dz_new * sigma + dz_made, dh               # the two paths to z_{t-1} add
