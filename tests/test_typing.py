"""The public API that carries type hints (PEP 484; ``numvae/py.typed`` tells type checkers
to read them): every parameter and every return annotated, and the annotations resolve."""
import inspect
import sys
import typing

import pytest

from numvae.io import datasets, digits, files, idx
from numvae.plots import prior
from numvae.training import optim

TYPED = [datasets.mnist_cache_dir, datasets.load_mnist, datasets.load_fashion_mnist,
         datasets.load_mnist_mini, datasets.load_digits, datasets.load_dataset,
         datasets.make_toy, datasets.binarize, datasets.train_val_split, digits.read_digits,
         files.as_path, files.atomic_write, files.remove_stale_temporaries,
         files.open_regular, files.atomic_write_bytes, idx.read_idx, idx.write_idx,
         prior.gaussian_grid, prior.prior_name, prior.prior_grid, prior.prior_centre,
         optim.check_grads, optim.SGD.__init__, optim.SGD.step, optim.Adam.__init__,
         optim.Adam.step, optim.Adam.state_dict, optim.Adam.load_state_dict]


@pytest.mark.parametrize("function", TYPED, ids=lambda f: f.__qualname__)
def test_the_public_api_is_annotated(function):
    signature = inspect.signature(function)
    missing = [name for name, p in signature.parameters.items()
               if name != "self" and p.annotation is inspect.Parameter.empty]
    assert not missing, f"{function.__qualname__}: no annotation for {missing}"
    assert signature.return_annotation is not inspect.Signature.empty, function.__qualname__
    if sys.version_info < (3, 10):
        return  # "str | os.PathLike" is evaluated only from Python 3.10 (PEP 604)
    # the annotations name things that exist (a typo would only show in a type checker)
    hints = typing.get_type_hints(function, localns={"VAE": object})
    assert "return" in hints
