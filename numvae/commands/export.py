"""``numvae export``: a checkpoint's model as a safetensors file with PyTorch's names and
layouts (``encoder.compressor.0.weight`` of shape (out, in), ...), for ``load_state_dict``."""
import argparse

from numvae.commands.common import UsageError, open_checkpoint, output_file


def add_parser(commands):
    p = commands.add_parser("export", help="write a checkpoint's model as a safetensors file "
                            "that PyTorch loads",
                            description="Write the model of CHECKPOINT to --out (.safetensors) "
                            "with PyTorch's names and layouts: nn.Linear's weight (out, in) "
                            "and bias; the configuration goes into the file's metadata.")
    p.add_argument("checkpoint", help="a checkpoint written by numvae train or import")
    # --out as in every other command; numvae 0.2's positional OUT still works
    p.add_argument("--out", dest="out_option", metavar="OUT.safetensors",
                   help="the file to write")
    p.add_argument("out", nargs="?", metavar="OUT.safetensors", help=argparse.SUPPRESS)
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


def output_name(args):
    """--out, or the positional OUT of numvae 0.2; one of them, not both."""
    if args.out and args.out_option:
        raise UsageError("give the output once, as --out OUT.safetensors", code=2)
    if not (args.out or args.out_option):
        raise UsageError("the following arguments are required: --out (see numvae export "
                         "--help)", code=2)
    return args.out or args.out_option


def run(args):
    out = output_file(output_name(args), ".safetensors", args.overwrite)
    model = open_checkpoint(args.checkpoint, args.max_memory).model
    try:
        from numvae.interop import save_safetensors, to_state_dict
        save_safetensors(model, out)
    except ImportError as err:
        raise UsageError(f"numvae: error: {err}") from None
    names = list(to_state_dict(model))
    print(f"wrote {len(names)} tensors ({model.n_params():,} parameters, {model.dtype}) to {out}: "
          f"{', '.join(names[:3])}, ...")
    print(f"in PyTorch: module.load_state_dict(safetensors.torch.load_file({str(out)!r}), "
          f"strict=True)")
    return 0
