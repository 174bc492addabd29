"""numvae.plots.history: the training curves and the gradient flow, and what they refuse
(a history that is not a dict, lists of different lengths, nothing to plot)."""
import numpy as np
import pytest

from helpers import assert_png, fake_history, tick_texts
from numvae import plots
from numvae.plots.history import gradient_flow, training_curves


def short_history(**changes):
    history = dict(epoch=[1, 2], train_reconstruction=[90.0, 85.0], train_kl=[4.0, 5.0],
                   train_loss=[94.0, 90.0], grad_norm_step=[10, 20],
                   grad_norm={"encoder.mean.W": [1.0, 0.5]})
    history.update(changes)
    return history


def test_the_curves_plot_none_entries_as_gaps():
    """An epoch without a validation figure (None) is skipped, not drawn at zero."""
    history = short_history(epoch=[1, 2, 3], train_reconstruction=[90.0, 85.0, 84.0],
                            train_kl=[4.0, 5.0, 5.0], train_loss=[94.0, 90.0, 89.0],
                            val_reconstruction=[91.0, None, 86.0],
                            val_kl=[4.0, None, 5.0])
    fig = training_curves(history)
    x, y = fig.axes[1].get_lines()[1].get_data()        # the validation reconstruction
    np.testing.assert_array_equal(x, [1, 3])
    np.testing.assert_array_equal(y, [91.0, 86.0])


@pytest.mark.parametrize("history, error, message", [
    ([1, 2], TypeError, "history must be a dict of lists; got list"),
    (dict(short_history(), train_kl=[4.0]), ValueError,
     r"history\['train_kl'\] has 1 entries; history\['epoch'\] has 2"),
    (dict(short_history(), epoch=[], train_reconstruction=[], train_kl=[], train_loss=[]),
     ValueError, "history\\['epoch'\\] is empty: there is nothing to plot"),
    ({"epoch": [1], "train_reconstruction": [None], "train_kl": [1.0]}, ValueError,
     "history has no 'train_reconstruction' values"),
])
def test_the_curves_refuse_what_they_cannot_draw(history, error, message):
    with pytest.raises(error, match=message):
        training_curves(history)


@pytest.mark.parametrize("changes, message", [
    (dict(grad_norm={"encoder.mean.W": [1.0]}),
     r"history\['grad_norm'\]\['encoder.mean.W'\] has 1 entries"),
    (dict(grad_norm={}), "must be a non-empty dict"),
])
def test_the_gradient_flow_refuses_norms_that_do_not_fit_the_steps(changes, message):
    with pytest.raises(ValueError, match=message):
        gradient_flow(short_history(**changes))


def test_the_gradient_flow_needs_recorded_norms():
    history = short_history()
    del history["grad_norm"]
    with pytest.raises(ValueError, match="history has no 'grad_norm' entry"):
        gradient_flow(history)


# --- the figures: panels, labels, values, the PNG -------------------------------------------

@pytest.mark.parametrize("validation", [True, False])
def test_training_curves(validation, tmp_path):
    history = fake_history(validation=validation)
    fig = plots.training_curves(history, path=tmp_path / "curves.png")
    assert len(fig.axes) == 3
    assert "ELBO" in fig.axes[0].get_title()
    assert "reconstruction" in fig.axes[1].get_title()
    assert "KL" in fig.axes[2].get_title()
    for ax in fig.axes:
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "nats per example")
        names = tick_texts(ax.get_legend().get_texts())
        assert names == (["train", "validation"] if validation else ["train"])
    # the negative ELBO panel is reconstruction + KL
    _, y = fig.axes[0].get_lines()[0].get_data()
    np.testing.assert_allclose(y, np.add(history["train_reconstruction"], history["train_kl"]))
    assert_png(tmp_path / "curves.png")


def test_gradient_flow(tmp_path):
    params = ("encoder.mean.W", "encoder.mean.b", "decoder.decompressor.0.W")
    fig = plots.gradient_flow(fake_history(params=params), path=tmp_path / "flow.png")
    [ax] = fig.axes
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "training step"
    assert len(ax.get_lines()) == len(params)
    assert tick_texts(ax.get_legend().get_texts()) == list(params)
    assert_png(tmp_path / "flow.png")


def test_gradient_flow_zero_norms_do_not_warn():
    history = fake_history()
    history["grad_norm"]["encoder.mean.b"][0] = 0.0  # drawn as a gap on the log scale
    plots.gradient_flow(history)
