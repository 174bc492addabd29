"""numvae.interop.torch_mirror where torch may be missing: importing numvae (and
numvae.interop) never imports torch; ``to_torch`` without torch says how to get it; a layer
with no PyTorch twin is refused by name. (The mirror's losses and gradients against numvae's
are in test_interop_torch.py, which needs torch.)"""
import subprocess
import sys

import pytest

import numvae
from numvae.interop import to_torch


def test_importing_numvae_and_its_interop_does_not_import_torch():
    code = "import sys, numvae, numvae.interop; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_to_torch_without_torch_says_how_to_get_it(monkeypatch):
    # None in sys.modules makes the import fail, as on a machine without torch
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "numvae.interop.torch_modules", None)
    with pytest.raises(ImportError, match="to_torch needs PyTorch: pip install torch"):
        to_torch(numvae.VAE(6, 4, 2, encoder_hidden=(5,), decoder_hidden=(5,), seed=0))


def test_a_layer_without_a_twin_is_refused_by_name():
    pytest.importorskip("torch")
    from numvae.interop.torch_mirror import torch_layer

    class Softplus:
        pass
    with pytest.raises(TypeError, match="no PyTorch twin is known for numvae's Softplus"):
        torch_layer(Softplus())


def test_only_a_vae_is_mirrored():
    with pytest.raises(TypeError, match="to_torch takes a numvae.VAE; got dict"):
        to_torch({"encoder.mean.W": None})
