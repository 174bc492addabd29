"""Where the modules of numvae 0.2 live since 0.3, and the finder that keeps the old paths
importing (with a DeprecationWarning) until 0.4.

numvae 0.2 had 34 modules side by side; 0.3 groups them in subpackages named after what
they hold (``nn``, ``model``, ``training``, ``diagnostics``, ``io``, ``interop``,
``plots``, ``commands``, ``exercises``). A student's notebook that still says
``from numvae.losses import kl_divergence`` or ``import numvae.gradcheck`` keeps working:
``OldPaths`` answers for the old names, warns once per name, and hands over the module at
its new home. No file is left at the old place.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {  # numvae 0.2 module -> its module in 0.3
    "layers": "numvae.nn.layers", "conv": "numvae.nn.conv", "flows": "numvae.nn.flows",
    "vae": "numvae.model.vae", "likelihoods": "numvae.model.likelihoods",
    "posteriors": "numvae.model.posteriors", "priors": "numvae.model.priors",
    "objectives": "numvae.model.objectives", "architectures": "numvae.model.architectures",
    "labels": "numvae.model.labels",
    "train": "numvae.training.loop", "optim": "numvae.training.optim",
    "optim_fast": "numvae.training.optim_fast", "schedules": "numvae.training.schedules",
    "checkpoint": "numvae.training.checkpoint",
    "checkpoint_fields": "numvae.training.checkpoint_fields",
    "gradcheck": "numvae.diagnostics.gradcheck", "inspect": "numvae.diagnostics.inspect",
    "inspect_check": "numvae.diagnostics.inspect_check",
    "evaluate": "numvae.diagnostics.evaluate", "matching": "numvae.diagnostics.matching",
    "datasets": "numvae.io.datasets", "idx": "numvae.io.idx", "npz": "numvae.io.npz",
    "_io": "numvae.io.files",
    "plot_history": "numvae.plots.history", "plot_latent": "numvae.plots.structure",
    "plot_save": "numvae.plots.save",
    "cli": "numvae.commands.cli", "_entry": "numvae.commands.entry",
}
# numvae.losses held the terms of the ELBO; 0.3 puts each formula with its part.
SPLIT = {"losses": {
    "NumericalError": "numvae.validation", "safe_exp": "numvae.validation",
    "kl_divergence": "numvae.model.kl", "kl_divergence_per_dim": "numvae.model.kl",
    "kl_divergence_backward": "numvae.model.kl",
    "softplus": "numvae.model.likelihoods", "bernoulli_nll": "numvae.model.likelihoods",
    "bernoulli_nll_backward": "numvae.model.likelihoods",
    "bernoulli_nll_from_probs": "numvae.model.likelihoods",
    "bernoulli_nll_from_probs_backward": "numvae.model.likelihoods",
    "gaussian_nll": "numvae.model.likelihoods",
    "gaussian_nll_backward": "numvae.model.likelihoods",
    "seed_loss": "numvae.model.objectives", "seed_loss_backward": "numvae.model.objectives",
}}


def new_home(old):
    """The 0.3 home of 0.2's ``numvae.<old>``, in words (for the warning and the docs)."""
    if old in SPLIT:
        return ", ".join(sorted(set(SPLIT[old].values())))
    return MOVED[old]


def _caller_stacklevel():
    """The stacklevel that points the warning at the line that imported the old path:
    the first frame outside importlib's machinery and this file. Python shows a
    DeprecationWarning by default only when it is attributed to ``__main__``."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and ("importlib" in frame.f_code.co_filename
                                 or frame.f_code.co_filename in (__file__, _INIT_FILE)):
        frame, level = frame.f_back, level + 1
    return level


_INIT_FILE = __file__.replace("moved.py", "__init__.py")


class OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A meta-path finder for the module names of numvae 0.2 (``MOVED`` and ``SPLIT``)."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, old = fullname.partition(".")
        if prefix == "numvae" and (old in MOVED or old in SPLIT):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None  # a plain module; exec_module fills it or replaces it

    def exec_module(self, module):
        old = module.__name__.partition(".")[2]
        warnings.warn(f"numvae.{old} is now {new_home(old)} (numvae 0.3); the old path "
                      f"goes in 0.4", DeprecationWarning, stacklevel=_caller_stacklevel())
        if old in MOVED:
            # the import system returns what sys.modules holds after exec_module: the
            # module at its new home, so both names share one module object
            sys.modules[module.__name__] = importlib.import_module(MOVED[old])
            return
        for name, home in SPLIT[old].items():
            setattr(module, name, getattr(importlib.import_module(home), name))


def install():
    """Put ``OldPaths`` on ``sys.meta_path`` once (``import numvae`` does it)."""
    if not any(isinstance(finder, OldPaths) for finder in sys.meta_path):
        sys.meta_path.append(OldPaths())


__all__ = ["MOVED", "SPLIT", "OldPaths", "install", "new_home"]
