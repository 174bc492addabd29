"""The bridge to PyTorch: a model as a safetensors file with PyTorch's names and layouts
(``safetensors_io``). numvae itself never imports torch.

    >>> from numvae.interop import save_safetensors, load_safetensors   # doctest: +SKIP
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

__all__ = ["CONFIG_KEY", "DTYPES", "RULES", "InteropError", "infer_config", "load_safetensors",
           "save_safetensors", "to_state_dict", "torch_name"]
