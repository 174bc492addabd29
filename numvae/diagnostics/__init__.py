"""What a model and its gradients are checked and measured with: ``gradcheck`` (central
finite differences in float64), ``inspect`` (one training step traced, row by row, with
``inspect_check`` for the intermediate gradients), ``evaluate`` (the ELBO, KL per
dimension, active units, the importance-weighted log p(x)), ``matching`` (clusters to
classes by the Hungarian algorithm), ``latent_info`` (rate, distortion, mutual information,
marginal KL), ``properties`` (checks that catch modelling bugs) and ``gallery`` (bugs that
real VAE code shipped, as parts)."""
