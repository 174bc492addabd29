"""The bridge to PyTorch: a model as a safetensors file with PyTorch's names and layouts
(``safetensors_io``), and as the equivalent ``torch.nn.Module`` (``to_torch``, in
``torch_mirror``; it imports torch when it is called, and numvae never imports it otherwise).

    >>> from numvae.interop import save_safetensors, load_safetensors, to_torch   # doctest: +SKIP
"""
from numvae.interop.safetensors_io import (
                                           CONFIG_KEY,
                                           DTYPES,
                                           RULES,
                                           InteropError,
                                           infer_config,
                                           load_safetensors,
                                           save_safetensors,
                                           to_state_dict,
                                           torch_name,
)
from numvae.interop.torch_mirror import to_torch

__all__ = ["CONFIG_KEY", "DTYPES", "RULES", "InteropError", "infer_config", "load_safetensors",
           "save_safetensors", "to_state_dict", "to_torch", "torch_name"]
