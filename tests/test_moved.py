"""numvae 0.2's module paths keep importing in 0.3, with a DeprecationWarning that names
the new home (numvae.moved), and no file is left at the old place."""
import importlib
import sys
import warnings
from pathlib import Path

import pytest

import numvae
from numvae.moved import MOVED, SPLIT

PACKAGE = Path(numvae.__file__).parent


def forget(name):
    """Drop ``name`` from sys.modules (and the package's attribute) so it is imported anew."""
    sys.modules.pop(name, None)
    leaf = name.rpartition(".")[2]
    numvae.__dict__.pop(leaf, None)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_imports_the_new_module_with_a_warning(old):
    forget(f"numvae.{old}")
    with pytest.warns(DeprecationWarning, match=rf"numvae\.{old} is now {MOVED[old]}"):
        module = importlib.import_module(f"numvae.{old}")
    assert module is importlib.import_module(MOVED[old])
    assert not (PACKAGE / f"{old}.py").exists()


def test_the_old_losses_module_holds_each_formula_from_its_new_home():
    forget("numvae.losses")
    with pytest.warns(DeprecationWarning, match="numvae.model.kl"):
        from numvae.losses import NumericalError, kl_divergence, seed_loss  # noqa: F401
    from numvae import validation
    from numvae.model import kl, objectives
    assert kl_divergence is kl.kl_divergence
    assert seed_loss is objectives.seed_loss
    assert NumericalError is validation.NumericalError
    assert set(SPLIT["losses"]) == {name for name in vars(sys.modules["numvae.losses"])
                                    if not name.startswith("__")}


def test_the_attribute_spelling_works_too_and_new_paths_do_not_warn():
    forget("numvae.gradcheck")
    with pytest.warns(DeprecationWarning):
        assert numvae.gradcheck.check_model is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.import_module("numvae.diagnostics.gradcheck")
        importlib.import_module("numvae.model.kl")


def test_the_warning_points_at_the_importing_line():
    forget("numvae.layers")
    with pytest.warns(DeprecationWarning) as record:
        importlib.import_module("numvae.layers")
    assert "importlib" not in record[0].filename


def test_an_unknown_name_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("numvae.no_such_module")
