"""The parts' registries are the choices everywhere: the command line's, the model's. Each
part on its own: test_likelihoods.py, test_posteriors.py, test_priors.py, test_kl.py,
test_objectives.py."""
import pytest

import numvae
from numvae.model import likelihoods


def test_registries_are_the_choices_everywhere():
    from numvae.commands.cli import build_parser
    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    likelihood = next(a for a in train_parser._actions if a.dest == "likelihood")
    assert sorted(likelihood.choices) == sorted(likelihoods.LIKELIHOODS)
    with pytest.raises(ValueError,
                       match="posterior must be one of 'diagonal_gaussian'.*; got 'planar'"):
        numvae.VAE(4, 3, 2, posterior="planar")
