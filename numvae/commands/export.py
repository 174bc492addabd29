"""``numvae export``: a checkpoint's model as a safetensors file with PyTorch's names and
layouts (``encoder.compressor.0.weight`` of shape (out, in), ...), for ``load_state_dict``."""
from numvae.commands.common import UsageError, open_checkpoint, output_file


def add_parser(commands):
    p = commands.add_parser("export", help="write a checkpoint's model as a safetensors file "
                            "that PyTorch loads",
                            description="Write the model of CHECKPOINT to OUT (.safetensors) "
                            "with PyTorch's names and layouts: nn.Linear's weight (out, in) "
                            "and bias; the configuration goes into the file's metadata.")
    p.add_argument("checkpoint")
    p.add_argument("out", metavar="OUT.safetensors")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return p


def run(args):
    out = output_file(args.out, ".safetensors", args.overwrite)
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
