"""What a model and its gradients are checked and measured with: ``gradcheck`` (central
finite differences in float64), ``inspect`` (one training step traced, row by row, with
``inspect_check`` for the intermediate gradients), ``evaluate`` (the ELBO, KL per
dimension, active units, the importance-weighted log p(x)) and ``matching`` (clusters to
classes by the Hungarian algorithm)."""
