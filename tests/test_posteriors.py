"""numvae.model.posteriors: the diagonal Gaussian's rsample and log q against the density
written out here, their gradients against central differences in float64. The flow:
test_flows.py."""
import math

import numpy as np

from numvae.diagnostics.gradcheck import check_arrays
from numvae.model import posteriors, priors

TOL = 1e-7
RNG = np.random.default_rng(0)


def test_diagonal_gaussian_rsample_and_its_backward():
    q = posteriors.DiagonalGaussian()
    mean, log_var = RNG.normal(size=(4, 3)), RNG.normal(scale=0.5, size=(4, 3))
    eps = RNG.standard_normal((2, 4, 3))
    z, cache = q.rsample({"mean": mean, "log_var": log_var}, eps)
    np.testing.assert_allclose(z, (mean + np.exp(log_var / 2) * eps).reshape(8, 3), rtol=1e-12)
    g = RNG.normal(size=z.shape)

    def backward():
        _, c = q.rsample({"mean": mean, "log_var": log_var}, eps)
        return q.rsample_backward(g, c)
    errors = check_arrays(lambda: float(np.sum(g * q.rsample({"mean": mean, "log_var": log_var},
                                                               eps)[0])),
                          {"mean": mean, "log_var": log_var}, backward())
    assert max(errors.values()) < TOL


def gaussian_log_density(z, mean, log_var):
    """log N(z; mean, diag(exp(log_var))), written out: (S, batch)."""
    return np.sum(-0.5 * (z - mean) ** 2 / np.exp(log_var) - 0.5 * log_var
                  - 0.5 * math.log(2 * math.pi), axis=-1)


def test_log_q_and_log_p_and_their_explicit_partials():
    q, p = posteriors.DiagonalGaussian(), priors.StandardNormal().build(3)
    mean, log_var = RNG.normal(size=(4, 3)), RNG.normal(scale=0.5, size=(4, 3))
    eps = RNG.standard_normal((2, 4, 3))
    z, cache = q.rsample({"mean": mean, "log_var": log_var}, eps)
    z3 = z.reshape(2, 4, 3).copy()
    np.testing.assert_allclose(q.log_prob(cache), gaussian_log_density(z3, mean, log_var),
                               rtol=1e-12)
    np.testing.assert_allclose(p.log_prob(z), gaussian_log_density(z, 0.0, 0.0), rtol=1e-12)
    weights = RNG.uniform(0.5, 2.0, size=(2, 4))
    dz, dheads = q.log_prob_backward(weights, cache)
    errors = check_arrays(lambda: float(np.sum(weights * gaussian_log_density(z3, mean, log_var))),
                          {"z": z3, "mean": mean, "log_var": log_var},
                          {"z": dz.reshape(2, 4, 3), **dheads})
    assert max(errors.values()) < TOL, errors
    flat_weights = weights.reshape(-1)
    errors = check_arrays(lambda: float(np.sum(flat_weights * p.log_prob(z))), {"z": z},
                          {"z": p.log_prob_backward(flat_weights, z)})
    assert errors["z"] < TOL
