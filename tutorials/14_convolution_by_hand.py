# %% [markdown]
# # 14. A convolution and its backward pass, step by step
#
# The slides' second "possible extension" is a better encoder and decoder. For images the
# better network is convolutional: one small kernel slides over the image, so that the same
# few weights look at every position (docs/derivations.md, section 12, CV1-CV7).
#
# On one 6 x 6 image and a 3 x 3 kernel we compute, three ways each, and compare:
#
# * the forward pass: four nested loops (CV1), im2col and one matrix product (CV2), and
#   `numvae.conv.Conv2d`;
# * the backward pass: dW (CV4), db (CV5) and dx (CV6) by loops, against the layer's,
#   and all of them against central differences (`numvae.gradcheck.check_layer`);
# * the transposed convolution (CV7) as the convolution's input gradient run forwards.
#
# Then the convolutional VAE of `numvae.VAE(..., architecture="conv")`, 1x28x28 ->
# 32x14x14 -> 64x7x7 -> latent and back, layer by layer, and a short training run.
#
# Run: `python tutorials/14_convolution_by_hand.py [--quick] [--out DIR]`.

# %%
import numpy as np
from matplotlib.figure import Figure

import numvae
from numvae.conv import Conv2d, ConvTranspose2d, im2col, output_size
from numvae.datasets import load_mnist_mini
from numvae.evaluate import evaluate_elbo
from numvae.gradcheck import check_layer
from numvae.train import fit

from _common import banner, figure_path, parse_args

# %% [markdown]
# ## The convolution by loops (CV1)
#
# y[n, k, h, w] = b[k] + sum over c, p, q of W[k, c, p, q] x_pad[n, c, s h + p, s w + q]:
# each output pixel is a weighted sum of one patch of the (zero-padded) input.

# %%
def conv_loops(x, W, b, stride, padding):
    """(batch, C_in, H, W) -> (batch, C_out, H_out, W_out), four loops over the output."""
    batch, _, height, width = x.shape
    c_out, _, k, _ = W.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out, w_out = output_size(height, k, stride, padding), output_size(width, k, stride, padding)
    y = np.zeros((batch, c_out, h_out, w_out))
    for n in range(batch):
        for o in range(c_out):
            for h in range(h_out):
                for w in range(w_out):
                    patch = x_pad[n, :, stride * h:stride * h + k, stride * w:stride * w + k]
                    y[n, o, h, w] = b[o] + np.sum(W[o] * patch)
    return y


def conv_backward_loops(x, W, dy, stride, padding):
    """dW, db, dx by the same loops: each output pixel sends dy back to its patch (CV4-CV6)."""
    _, _, k, _ = W.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dW, dx_pad = np.zeros_like(W), np.zeros_like(x_pad)
    batch, c_out, h_out, w_out = dy.shape
    for n in range(batch):
        for o in range(c_out):
            for h in range(h_out):
                for w in range(w_out):
                    rows = slice(stride * h, stride * h + k)
                    cols = slice(stride * w, stride * w + k)
                    dW[o] += dy[n, o, h, w] * x_pad[n, :, rows, cols]       # CV4
                    dx_pad[n, :, rows, cols] += dy[n, o, h, w] * W[o]       # CV6: patches overlap, add
    db = dy.sum(axis=(0, 2, 3))                                             # CV5
    dx = dx_pad[:, :, padding:padding + x.shape[2], padding:padding + x.shape[3]]
    return dW, db, dx

# %% [markdown]
# ## Figure

# %%
def plot_steps(x, W, y, dx, path):
    fig = Figure(figsize=(12, 3.2), layout="constrained")
    axes = fig.subplots(1, 4)
    panels = [(x[0, 0], "the image x (6 x 6)"), (W[0, 0], "kernel W[0, 0] (3 x 3)"),
              (y[0, 0], "y[0, 0] = conv(x), stride 1, padding 1"),
              (dx[0, 0], "dx for dL/dy = 1: how often\neach pixel is used, weighted")]
    for ax, (image, title) in zip(axes, panels):
        shown = ax.imshow(image, cmap="RdBu_r")
        ax.set_title(title, fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(shown, ax=ax, shrink=0.7)
    fig.savefig(path, dpi=110)
    return fig

# %% [markdown]
# ## The story

# %%
def main(argv=None):
    args = parse_args("14_convolution_by_hand", "A convolution and its backward pass by hand.",
                      argv)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 1, 6, 6))                     # float64: exact comparisons
    layer = Conv2d(1, 2, 3, stride=1, padding=1, rng=rng, dtype=np.float64)
    W, b = layer.params["W"], layer.params["b"]

    banner("Forward: loops (CV1), im2col (CV2), the layer")
    y_loops = conv_loops(x, W, b, 1, 1)
    cols = im2col(x, 3, 1, 1)                              # (2 * 6 * 6, 1 * 3 * 3)
    y_im2col = (cols @ W.reshape(2, -1).T + b).reshape(2, 6, 6, 2).transpose(0, 3, 1, 2)
    y_layer, cache = layer.forward(x)
    print(f"im2col matrix: {cols.shape} (one row per output pixel, one column per kernel entry)")
    print(f"max |loops - im2col| = {np.abs(y_loops - y_im2col).max():.1e}, "
          f"max |loops - Conv2d| = {np.abs(y_loops - y_layer).max():.1e}")
    print("You should see: both about 1e-16: the convolution is a Dense layer (D1) applied")
    print("to every patch, and the 72 x 9 matrix holds the 72 patches.")

    banner("Backward: loops (CV4-CV6) against the layer, and central differences")
    dy = rng.normal(size=y_layer.shape)
    dW, db, dx = conv_backward_loops(x, W, dy, 1, 1)
    dx_layer = layer.backward(dy, cache)
    print(f"max differences: dW {np.abs(dW - layer.grads['W']).max():.1e}, "
          f"db {np.abs(db - layer.grads['b']).max():.1e}, dx {np.abs(dx - dx_layer).max():.1e}")
    errors = check_layer(layer, x)
    print("central differences: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    print("You should see: differences about 1e-15 and relative errors near 1e-10: dx adds")
    print("the contributions of every patch a pixel belongs to (col2im, CV3).")

    banner("The transposed convolution is the backward pass run forwards (CV7)")
    up = ConvTranspose2d(2, 1, 3, stride=1, padding=1, rng=rng, dtype=np.float64)
    up.params["W"][...] = W                                # the same kernel, read the other way
    up.params["b"][...] = 0.0
    z = rng.normal(size=(2, 2, 6, 6))
    forward_up, _ = up.forward(z)
    backward_conv = layer.backward(z, cache)
    print(f"max |ConvTranspose2d(z) - Conv2d's dx for dy = z| = "
          f"{np.abs(forward_up - backward_conv).max():.1e}")
    print("You should see: about 1e-16: the decoder's transposed convolutions are the")
    print("encoder's backward step, which is why they upsample (stride 2 doubles the side).")
    plot_steps(x, W, y_layer, layer.backward(np.ones_like(y_layer), cache),
               figure_path(args.out, "convolution_steps.png"))

    banner("The convolutional VAE, layer by layer")
    model = numvae.VAE(784, 128, 2, architecture="conv", seed=0)
    train, test = load_mnist_mini()
    cache = model.forward(test.images[:4])
    for name, sequence, outputs in (
            ("encoder.compressor", model.encoder.compressor,
             cache["caches"]["encoder"]["compressor"]["outputs"]),
            ("decoder.decompressor", model.decoder.to_logits,
             cache["caches"]["decoder"]["outputs"])):
        for index, (layer_, output) in enumerate(zip(sequence.layers, outputs)):
            print(f"  {name}.{index:<2} {layer_!r:60.60} -> {output.shape}")
    print(f"{model.n_params():,} parameters (the slides' dense model: "
          f"{numvae.VAE(784, 128, 2).n_params():,})")
    print("You should see: 1x28x28 -> 32x14x14 -> 64x7x7 -> 128 -> (2, 2), and back up to")
    print("784 logits; most parameters sit in the two Dense layers next to the 64x7x7 maps.")

    n_train, epochs = (500, 1) if args.quick else (len(train.images), 3)
    banner(f"A short training run: {epochs} epoch(s) on {n_train:,} images")
    fit(model, numvae.FastAdam(model.params, lr=1e-3), train.images[:n_train], epochs=epochs,
        seed=0, progress=False, log=print)
    result = evaluate_elbo(model, test.images[:500])
    print(f"test -ELBO on 500 images: {result['loss']:.1f} nats")
    print("You should see (full run): the training -ELBO falling from about 284 to 191 nats")
    print("over 3 epochs, a test -ELBO near 184, and 10 to 40 s an epoch on one core (the")
    print("dense model: about 1 s). With --quick, one epoch on 500 images: about 430 nats.")
    print("After 10 epochs (README) the conv VAE is no better than the dense one at latent")
    print("size 2: there the 2-D bottleneck, not the encoder, limits the model.")


if __name__ == "__main__":
    main()
