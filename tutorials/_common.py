"""The tutorials' shared helpers now live in the package, ``numvae.plots.tutorial``, so that
a tutorial copied out of this folder still runs; this module keeps ``import _common`` working
for scripts written before."""
from numvae.plots.tutorial import banner, figure_path, parse_args, show

__all__ = ["banner", "figure_path", "parse_args", "show"]
