"""numvae.diagnostics.inspect_check: each intermediate gradient of a traced step checked by
re-running the rest of the step with finite differences; a wrong one is caught; the paths
of a Monte Carlo KL are not checked apart. The trace itself: test_inspect.py."""
import numpy as np
import pytest

from helpers import tiny_model
from numvae.diagnostics.inspect import trace_step
from numvae.diagnostics.inspect_check import check_rows
from numvae.model import priors


@pytest.mark.parametrize("options", [dict(), dict(likelihood="gaussian", sigma=0.7,
                                                   n_samples=2, kl_weight=0.6)])
def test_every_intermediate_gradient_is_checked_by_re_running_the_rest_of_the_step(options):
    x = np.random.default_rng(1).uniform(size=(4, 10))
    trace = trace_step(tiny_model(seed=3, **options), x, check=True)
    intermediate = [row for row in trace if row.phase == "backward"
                    and not row.name.endswith("(grad)")]
    # d logits (and d output), four decoder rows, d z, three rows per head and their two
    # sums, four compressor rows
    assert len(intermediate) == (17 if "sigma" in options else 16)
    assert all(row.fd_error is not None and row.fd_error < 1e-6 for row in intermediate), \
        [(row.name, row.fd_error) for row in intermediate]


def test_a_wrong_intermediate_gradient_is_caught():
    model = tiny_model(seed=3).copy(np.float64)
    x = np.random.default_rng(1).uniform(size=(4, 10))
    trace = trace_step(model, x, check=True)
    cache = model.forward(x, trace["eps"].value)
    rows = [trace[name] for name in ("d mean (from z)", "d mean", "d z")]
    from_z, from_kl = rows[0].value.copy(), trace["d mean (from KL)"].value
    rows[0].value = from_z + from_kl                                  # the KL path counted twice
    rows[1].value = from_z                                            # the fork's sum lost a path
    rows[2].value = 2 * rows[2].value                                 # a factor 2
    check_rows(model, cache, rows)
    assert all(row.fd_error > 0.1 for row in rows), [row.fd_error for row in rows]


class PlainNormal(priors.StandardNormal):
    """N(0, I) without the analytic KL: the Monte Carlo one (K3) is used."""
    name = "plain_normal_inspect"


def test_with_a_monte_carlo_kl_the_paths_are_not_checked_apart(monkeypatch):
    monkeypatch.setitem(priors.PRIORS, PlainNormal.name, PlainNormal)
    model = tiny_model(seed=3, prior=PlainNormal.name)
    trace = trace_step(model, np.random.default_rng(1).uniform(size=(4, 10)), check=True)
    assert trace["d z"].fd_error is None and trace["d mean (from KL)"].fd_error is None
    assert trace["d mean"].fd_error < 1e-6 and trace["d log_var"].fd_error < 1e-6
