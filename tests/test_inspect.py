import numpy as np
import pytest

from helpers import tiny_model
from numvae.commands.cli import main
from numvae.diagnostics.inspect import trace_step


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_trace_gradients_are_the_models(likelihood):
    model = tiny_model(seed=2, likelihood=likelihood, n_samples=2)
    x = np.random.default_rng(0).uniform(size=(3, 10))
    twin = model.copy()  # the same step on an independent copy: no shared memory
    trace = trace_step(model, x)
    twin.loss_and_grad(x, trace["eps"].value)
    model.loss_and_grad(np.random.default_rng(9).uniform(size=(3, 10)))  # overwrites model.grads
    for name, grad in twin.grads.items():
        assert np.array_equal(trace[f"{name} (grad)"].value, grad), name  # the trace kept copies
    assert trace["loss"].value == pytest.approx(twin.loss(x, trace["eps"].value))
    # the fork: total gradient at mean = reparameterisation path + KL path
    np.testing.assert_allclose(trace["d mean"].value,
                               trace["d mean (from z)"].value + trace["d mean (from KL)"].value)


def test_rows_are_forward_then_backward_in_layer_order():
    model = tiny_model(seed=1)
    trace = trace_step(model, np.random.default_rng(0).uniform(size=(2, 10)))
    phases = [row.phase for row in trace]
    first_backward = phases.index("backward")
    assert set(phases[:first_backward]) == {"forward"} and set(phases[first_backward:]) == {"backward"}
    names = trace.names()
    forward_order = ["x", "encoder.compressor.0", "encoder.compressor.3", "mean", "log_var",
                     "z", "decoder.decompressor.0", "decoder.decompressor.5", "reconstruction",
                     "kl", "loss"]
    assert [names.index(n) for n in forward_order] == sorted(names.index(n) for n in forward_order)
    backward_order = ["d logits", "decoder.decompressor.4.W (grad)",
                      "decoder.decompressor.0.W (grad)",
                      "d z", "d mean (from z)", "d mean", "encoder.mean.W (grad)",
                      "d encoder.compressor.3", "encoder.compressor.0.W (grad)"]
    assert [names.index(n) for n in backward_order] == sorted(names.index(n) for n in backward_order)
    assert all(row.formula for row in trace)
    relu_out = trace["encoder.compressor.1"]
    assert relu_out.stats["min"] >= 0 and relu_out.shape == (2, 7)


def test_check_column_agrees_with_finite_differences():
    trace = trace_step(tiny_model(seed=3), np.random.default_rng(1).uniform(size=(4, 10)),
                       check=True)
    errors = [row.fd_error for row in trace if row.name.endswith("(grad)")]
    assert len(errors) == 14 and max(errors) < 1e-6
    assert all(row.fd_error is None for row in trace if row.phase == "forward")
    assert "fd error" in trace.table()


def test_cli_table_and_show(capsys):
    assert main(["inspect", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "d log_var (from KL)" in out and "(K2, V4)" in out
    assert main(["inspect", "--batch-size", "2", "--show", "eps"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("eps  (1, 2, 2)")
    assert main(["inspect", "--show", "nonsense"]) == 1
    assert "no quantity named 'nonsense'" in capsys.readouterr().err
