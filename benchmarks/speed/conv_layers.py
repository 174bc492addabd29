"""Speed of numvae's convolution layers against PyTorch's, on the conv VAE's image stack.

    python -m benchmarks.speed.conv_layers                    # batch 128, float32, 1 thread
    python -m benchmarks.speed.conv_layers --threads 2 --repeats 7

The stack is the convolutional part of the MNIST conv VAE of issue 14, without the
activations and the Dense layers to and from the latent space:

    encoder  Conv2d(1, 32, 4, stride=2, padding=1)   1x28x28 -> 32x14x14
             Conv2d(32, 64, 4, stride=2, padding=1)  32x14x14 -> 64x7x7
    decoder  ConvTranspose2d(64, 32, 4, stride=2, padding=1)  64x7x7 -> 32x14x14
             ConvTranspose2d(32, 1, 4, stride=2, padding=1)   32x14x14 -> 1x28x28

One step is the forward pass of the four layers and the backward pass (dL/dy = 1), as in
training. It is timed for numvae's textbook layers (Conv2d, ConvTranspose2d), its fast
channels-last layers (FastConv2d, FastConvTranspose2d) and, if it is installed, PyTorch
(torch.nn.Conv2d, ConvTranspose2d, oneDNN kernels), all in this one process, alternating
the three in each repeat; the figures are medians over repeats. The fast path's time is
then split into im2col, col2im, the matrix products (timed alone on arrays of the same
shapes: the "GEMM floor") and the rest (layout copies, bias, sums, Python), each stage
timed alone on arrays of the step's shapes and layouts, alternated with the steps.

The BLAS thread count (and PyTorch's) is set before NumPy is imported. On a shared
machine, compare the ratios, measured side by side, rather than absolute times.

Measured on 2026-11-30 with the default options (1 thread, batch 128), on an "Intel(R)
Xeon(R) Processor" (lscpu names no model; 2 cores shared with other jobs, load 1.3 to 2.8),
numpy 2.4.6 with OpenBLAS 0.3.31, torch 2.13.0+cpu, three runs:

    numvae textbook   94-125 ms/step   0.39-0.41 x PyTorch's throughput
    numvae fast       52-66 ms/step    0.66-0.78 x PyTorch's throughput
    PyTorch           37-52 ms/step

The fast step: matrix products about 60 % (2.62 GFLOP at 60-85 GFLOP/s), col2im 23-30 %,
im2col about 7 %, the rest (layout copies, bias, sums) under 5 %. In the textbook step,
im2col and col2im take about two thirds: they write single numbers k^2 entries apart.
With --threads 2 on that loaded machine, both numvae and PyTorch slowed down four-fold
(oversubscribed cores): no figure worth keeping.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# (in_channels, out_channels, transposed); every layer has kernel 4, stride 2, padding 1
STACK = [(1, 32, False), (32, 64, False), (64, 32, True), (32, 1, True)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per implementation")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if present")
    return parser.parse_args(argv)


def cpu_name():
    """'Model name' from lscpu, else what platform knows."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def numvae_stack(fast, seed=0):
    """The four numvae layers (float32), textbook or fast."""
    import numpy as np

    from numvae.nn import conv
    rng = np.random.default_rng(seed)
    layers = []
    for c_in, c_out, transposed in STACK:
        if transposed:
            layer_class = conv.FastConvTranspose2d if fast else conv.ConvTranspose2d
        else:
            layer_class = conv.FastConv2d if fast else conv.Conv2d
        layers.append(layer_class(c_in, c_out, 4, stride=2, padding=1, rng=rng))
    return layers


def numvae_step(layers, x):
    """Forward through the stack, then backward with dL/dy = 1."""
    import numpy as np
    caches = []
    for layer in layers:
        x, cache = layer.forward(x)
        caches.append(cache)
    dy = np.ones_like(x)
    for layer, cache in zip(reversed(layers), reversed(caches)):
        dy = layer.backward(dy, cache)
    return dy


def torch_step_function(batch, seed=0):
    """A closure running one PyTorch step of the same stack, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    layers = [(torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d)(
        c_in, c_out, 4, stride=2, padding=1) for c_in, c_out, transposed in STACK]
    model = torch.nn.Sequential(*layers)
    x = torch.rand(batch, 1, 28, 28, requires_grad=True)  # numvae returns dx too

    def step():
        model.zero_grad(set_to_none=False)
        y = model(x)
        y.backward(torch.ones_like(y))
    return step


def median_ms(step, steps):
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1e3


def stage_jobs(layers, x):
    """The fast step's im2col, col2im and matrix-product calls, as closures on arrays of
    the same shapes and memory layouts, to be timed alone.

    Conv2d: im2col(x) forward, col2im(dcols) backward; ConvTranspose2d: col2im(cols)
    forward, im2col(dy) backward. The products: Conv2d, with a = the patch matrix
    (rows of y, C_in k^2), b = dY (rows of y, C_out), w = W as (C_out, C_in k^2): a w^T,
    b^T a, b w; ConvTranspose2d, with b = the input's rows (rows of x, C_in), a = the
    patch matrix (rows of x, C_out k^2), w = W as (C_in, C_out k^2): b w, b^T a, a w^T.
    Returns ({stage: closure}, GFLOP of the products).
    """
    import numpy as np

    from numvae.nn.conv import ConvTranspose2d, col2im_channels_last, im2col_channels_last
    rng = np.random.default_rng(0)
    inputs, caches = [], []
    for layer in layers:
        inputs.append(x)
        x, cache = layer.forward(x)
        caches.append(cache)
    output_grads, dy = [None] * len(layers), np.ones_like(x)
    for index in range(len(layers) - 1, -1, -1):
        output_grads[index] = dy
        dy = layers[index].backward(dy, caches[index])
    to_im2col, to_col2im, products = [], [], []
    for layer, x, dy in zip(layers, inputs, output_grads):
        k2 = layer.kernel_size ** 2
        transposed = isinstance(layer, ConvTranspose2d)
        image, other = (dy, x) if transposed else (x, dy)  # im2col's input, the other side
        rows = other.shape[0] * other.shape[2] * other.shape[3]
        wide = k2 * image.shape[1]
        narrow = other.shape[1]
        to_im2col.append(image)
        to_col2im.append((rng.random((rows, wide), dtype=np.float32), image.shape))
        a, b = rng.random((rows, wide), dtype=np.float32), rng.random((rows, narrow), np.float32)
        w = rng.random((narrow, wide), dtype=np.float32)
        products += [(a, w.T), (b.T, a), (b, w)]
    args = (4, 2, 1)  # kernel_size, stride, padding

    def run_im2col():
        for image in to_im2col:
            im2col_channels_last(image, *args)

    def run_col2im():
        for cols, shape in to_col2im:
            col2im_channels_last(cols, shape, *args)

    def run_products():
        for left, right in products:
            left @ right
    flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in products)
    return dict(im2col=run_im2col, col2im=run_col2im, GEMM=run_products), flops / 1e9


def measure(batch=128, steps=10, repeats=5, use_torch=True):
    """{name: median ms per step} for the implementations and the fast path's stages
    timed alone, and the GFLOP per step of the matrix products."""
    import numpy as np
    x = np.random.default_rng(1).random((batch, 1, 28, 28), dtype=np.float32)
    stacks = {"numvae textbook": numvae_stack(False), "numvae fast": numvae_stack(True)}
    runners = {name: (lambda layers=layers: numvae_step(layers, x))
               for name, layers in stacks.items()}
    torch_step = torch_step_function(batch) if use_torch else None
    if torch_step is not None:
        runners["PyTorch"] = torch_step
    stages, gflop = stage_jobs(stacks["numvae fast"], x)
    runners.update(stages)
    times = {name: [] for name in runners}
    for run in runners.values():  # warm-up: allocations, oneDNN's kernel choice
        run()
    for _ in range(repeats):  # alternated, so that a busy moment hits them all alike
        for name, run in runners.items():
            times[name].append(median_ms(run, steps))
    return dict(ms={name: statistics.median(values) for name, values in times.items()},
                gflop=gflop)


def report(result, args):
    ms = result["ms"]
    print(f"CPU: {cpu_name()}; threads: {args.threads}; batch {args.batch}, float32; "
          f"median of {args.repeats} x {args.steps} steps")
    print(f"numpy {__import__('numpy').__version__}, Python {platform.python_version()}"
          + (f", torch {__import__('torch').__version__}" if "PyTorch" in ms else ""))
    for name in ("numvae textbook", "numvae fast", "PyTorch"):
        if name not in ms:
            continue
        line = f"  {name:16s} {ms[name]:8.1f} ms/step  {args.batch / ms[name] * 1e3:8.0f} images/s"
        if "PyTorch" in ms:
            line += f"  throughput {ms['PyTorch'] / ms[name]:5.2f} x PyTorch's"
        print(line)
    fast = ms["numvae fast"]
    other = fast - ms["im2col"] - ms["col2im"] - ms["GEMM"]
    print(f"numvae fast, where the time goes ({fast:.1f} ms; each stage timed alone):")
    for name, value in [("im2col", ms["im2col"]), ("col2im", ms["col2im"]),
                        ("GEMM", ms["GEMM"]), ("the rest", other)]:
        print(f"  {name:10s} {value:6.1f} ms  {100 * value / fast:4.0f} %")
    print(f"  the GEMMs: {result['gflop']:.2f} GFLOP per step, "
          f"{result['gflop'] / ms['GEMM'] * 1e3:.0f} GFLOP/s")


def main(argv=None):
    args = parse_args(argv)
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(args.threads)
    if "numpy" in sys.modules:
        print("warning: numpy was imported before the thread count was set", file=sys.stderr)
    sys.path.insert(0, str(REPO))
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            use_torch = False
    report(measure(args.batch, args.steps, args.repeats, use_torch), args)


if __name__ == "__main__":
    main()
