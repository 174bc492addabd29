"""numvae's model as the equivalent ``torch.nn.Module``, written once for the tests, the
benchmarks and tutorial 21:

    >>> module = numvae.interop.to_torch(model)             # doctest: +SKIP
    >>> loss = module(torch.from_numpy(x), torch.from_numpy(eps))   # numvae's loss for x, eps

Each numvae layer becomes its PyTorch twin (Dense -> nn.Linear, Conv2d -> nn.Conv2d,
Reshape -> nn.Unflatten, ...) at the same place in the same ``nn.Sequential``, so that the
module's names and layouts are those of ``numvae export`` (``encoder.compressor.0.weight``
of shape (out, in), ...), and the model's parameters are loaded into it with
``load_state_dict(..., strict=True)``: a name or shape that does not match is an error, not
a silent skip. The loss is written in torch's operations (``torch_modules``), so autograd
gives gradients that owe nothing to numvae's backward passes.

torch is imported only when ``to_torch`` is called: numvae never depends on it.
"""
import numpy as np

from numvae.interop.safetensors_io import to_state_dict
from numvae.model.vae import VAE
from numvae.nn.conv import Conv2d, ConvTranspose2d, Flatten, Reshape
from numvae.nn.layers import Dense, ReLU, Sigmoid, Tanh


def _torch():
    """torch and the module classes, or an ImportError that says how to get torch."""
    try:
        import torch

        import numvae.interop.torch_modules as torch_modules
    except ImportError:
        raise ImportError("numvae.interop.to_torch needs PyTorch: pip install torch") from None
    return torch, torch_modules


def torch_layer(layer):
    """The PyTorch twin of one numvae layer (its parameters are loaded later, by name)."""
    from torch import nn
    if isinstance(layer, Dense):
        return nn.Linear(*layer.params["W"].shape)                # W (in, out): Linear(in, out)
    if isinstance(layer, ConvTranspose2d):
        return nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                  stride=layer.stride, padding=layer.padding,
                                  output_padding=layer.output_padding)
    if isinstance(layer, Conv2d):
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                         stride=layer.stride, padding=layer.padding)
    if isinstance(layer, Reshape):
        return nn.Unflatten(1, layer.shape)
    simple = {Flatten: nn.Flatten, ReLU: nn.ReLU, Tanh: nn.Tanh, Sigmoid: nn.Sigmoid}
    for kind, twin in simple.items():
        if isinstance(layer, kind):
            return twin()
    raise TypeError(f"to_torch: no PyTorch twin is known for numvae's {type(layer).__name__}")


def _sequential(layers):
    from torch import nn
    return nn.Sequential(*(torch_layer(layer) for layer in layers))


def _flow_steps(posterior, torch, modules):
    """The flow's steps: each MADE layer a MaskedLinear with numvae's mask, in torch's
    (out, in) layout, and the step's context Dense."""
    steps = []
    for step in posterior.flow:
        made = []
        for index, layer in enumerate(step.made):
            if index:
                made.append(torch.nn.Tanh())
            mask = torch.from_numpy(np.ascontiguousarray(layer.mask.T))
            made.append(modules.MaskedLinear(mask, bias="b" in layer.params))
        steps.append(modules.IAFStep(made, torch_layer(step.layers["context"])))
    return steps


def _settings(model):
    """What the loss needs to know besides the layers, from the model's parts."""
    objective = model.objective.settings()
    return dict(likelihood=model.likelihood.name,
                sigma=model.likelihood.settings().get("sigma", 1.0),
                objective=model.objective.name, kl_weight=objective.get("kl_weight", 1.0),
                n_classes=model.n_classes,
                analytic_kl=(model.posterior.name, model.prior.name)
                == ("diagonal_gaussian", "standard_normal"))


def to_torch(model):
    """The ``torch.nn.Module`` equivalent to ``model`` (a ``numvae.VAE``), holding copies of
    its parameters, in its dtype (float32 or float64). Calling the module with x (batch,
    input_dim), eps ((S,) batch, latent_dim) and, for a conditional model, the labels y
    gives numvae's training loss for the same x, eps and y."""
    if not isinstance(model, VAE):
        raise TypeError(f"to_torch takes a numvae.VAE; got {type(model).__name__}")
    torch, modules = _torch()
    from torch import nn
    encoder = nn.Module()
    encoder.compressor = _sequential(model.encoder.compressor.layers)
    for name, head in model.encoder.heads.items():
        setattr(encoder, name, torch_layer(head))
    decoder = nn.Module()
    decoder.decompressor = _sequential(model.decoder.decompressor.layers)
    if model.prior.name == "mixture":
        prior = modules.GaussianMixturePrior(*model.prior.params["means"].shape)
    else:
        prior = modules.StandardNormalPrior()
    steps = _flow_steps(model.posterior, torch, modules) if hasattr(model.posterior, "flow") \
        else None
    module = modules.VAE(encoder, decoder, prior, _settings(model), steps)
    module.to(torch.float64 if model.dtype == np.float64 else torch.float32)
    state = {name: torch.from_numpy(array) for name, array in to_state_dict(model).items()}
    module.load_state_dict(state, strict=True)
    return module
