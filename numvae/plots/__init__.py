"""Every figure. Each function builds a ``matplotlib.figure.Figure`` (without pyplot, so it
works headless), returns it, and saves a PNG only when given ``path=``:

* ``latent``: the latent space, the decoded grid, reconstructions, prior samples, KL per
  dimension, and ``save_all`` (a run's figures);
* ``history``: the training curves and the gradient norms, from a run's history;
* ``structure``: a mixture prior's components, a conditional model's digits;
* ``prior``: how titles name p(z), and the quantiles a latent grid spans;
* ``save``: one PNG writer (atomic) at one resolution.
"""
from numvae.plots.history import check_history, gradient_flow, training_curves
from numvae.plots.latent import (
                                 ENCODE_BATCH,
                                 FILE_NAMES,
                                 KL_THRESHOLD,
                                 default_image_shape,
                                 encoder_means,
                                 kl_per_dimension,
                                 label_colours,
                                 latent_grid,
                                 latent_space,
                                 prior_samples,
                                 reconstructions,
                                 save_all,
                                 tile,
)
from numvae.plots.prior import gaussian_grid, prior_grid, prior_name
from numvae.plots.structure import (
                                 component_samples,
                                 conditional_grid,
                                 draw_components,
                                 latent_space_with_components,
                                 mixture_clusters,
)

__all__ = ["check_history", "gradient_flow", "training_curves", "ENCODE_BATCH", "FILE_NAMES",
           "KL_THRESHOLD", "default_image_shape", "encoder_means", "gaussian_grid",
           "kl_per_dimension", "label_colours", "latent_grid", "latent_space", "prior_samples",
           "reconstructions", "save_all", "tile", "component_samples", "conditional_grid",
           "draw_components", "latent_space_with_components", "mixture_clusters", "prior_grid",
           "prior_name"]
