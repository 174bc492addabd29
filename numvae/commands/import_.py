"""``numvae import``: a safetensors file (written by ``numvae export`` or by PyTorch) as a
numvae checkpoint, which ``numvae inspect``, ``evaluate``, ``sample`` and ``plot`` read."""
import sys

from numvae.commands.common import (
    UsageError,
    add_widths_option,
    nonnegative_float,
    output_file,
    positive_float,
    positive_int,
)
from numvae.model.likelihoods import LIKELIHOODS
from numvae.training.checkpoint import save_checkpoint

# the architecture options, in the order of numvae.VAE's arguments
ARCHITECTURE = ("input_dim", "shared_dim", "latent_dim", "encoder_hidden", "decoder_hidden",
                "likelihood", "sigma", "kl_weight", "n_samples")


def add_parser(commands):
    p = commands.add_parser("import", help="read a safetensors file (from PyTorch) into a "
                            "numvae checkpoint",
                            description="Read FILE (.safetensors, PyTorch's names and layouts) "
                            "into a checkpoint. The architecture comes from the file's numvae "
                            "metadata or is inferred from the tensor shapes; the options below "
                            "override it. What the shapes cannot tell (likelihood, sigma, ...) "
                            "takes its default and is named as assumed.")
    p.add_argument("file", metavar="FILE.safetensors", help="the file to read")
    p.add_argument("--out", required=True, metavar="CHECKPOINT.npz",
                   help="the checkpoint to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    shape = p.add_argument_group("the architecture (default: from the file)")
    shape.add_argument("--input-dim", type=positive_int, help="values per image")
    shape.add_argument("--shared-dim", type=positive_int, help="the encoder's shared width")
    shape.add_argument("--latent-dim", type=positive_int, help="dimensions of the code z")
    add_widths_option(shape, "--encoder-hidden", None,
                      "the encoder's hidden widths, with commas: 256 (the slides'), '' for none")
    add_widths_option(shape, "--decoder-hidden", None,
                      "the decoder's hidden widths, with commas: 32,256 (the slides')")
    assumed = p.add_argument_group("what the shapes cannot tell (default: numvae.VAE's)")
    assumed.add_argument("--likelihood", choices=sorted(LIKELIHOODS), help="p(x|z)")
    assumed.add_argument("--sigma", type=positive_float,
                         help="standard deviation of the Gaussian likelihood")
    assumed.add_argument("--kl-weight", type=nonnegative_float, help="the KL term's weight")
    assumed.add_argument("--n-samples", type=positive_int, help="samples of z per example")
    return p


def run(args):
    out = output_file(args.out, ".npz", args.overwrite)
    config = {key: getattr(args, key) for key in ARCHITECTURE if getattr(args, key) is not None}
    try:
        from numvae.interop import load_safetensors
        model = load_safetensors(args.file, config=config or None, announce=_announce,
                                 max_memory=args.max_memory)
    except ImportError as err:
        raise UsageError(f"numvae: error: {err}") from None
    save_checkpoint(out, model)
    print(f"wrote {out}: {model!r}")
    print(f"next: numvae inspect {out} --check; numvae evaluate {out}")
    return 0


def _announce(line):
    print(f"numvae: {line} (options --likelihood, --sigma, --kl-weight, --n-samples set them)",
          file=sys.stderr)
