"""Make numvae/data/explorer-slides-mnist.npz, the model ``numvae explore`` shows by default
(a maintainers' tool, not part of the package; see numvae/data/README.md).

    python scripts/make_explorer_model.py ../shared/mnist numvae/data/explorer-slides-mnist.npz

Trains the slides' VAE (latent 2, shared 128, the default parts) on full MNIST for 10
epochs with seed 0 (``numvae train``; about 2 minutes on one core), then keeps the
parameters only (``numvae.explorer.shipped.parameters_only``).
"""
import sys
import tempfile
from pathlib import Path

from numvae.commands.cli import main
from numvae.explorer.shipped import parameters_only


def make(mnist_dir, out):
    with tempfile.TemporaryDirectory() as folder:
        code = main(["train", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--epochs", "10",
                     "--latent-dim", "2", "--shared-dim", "128", "--seed", "0", "--out", folder,
                     "--overwrite", "--no-progress", "--no-plots"])
        if code:
            sys.exit(code)
        parameters_only(Path(folder) / "checkpoint.npz", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    make(sys.argv[1], sys.argv[2])
