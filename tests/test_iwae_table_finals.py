"""iwae_table --final at two epochs of one row: the earlier complete evaluation is kept as
final_epoch<E>_k<K>.json (never beside an identical final.json, never for a change of chunk
size alone), the table compares the two, and the kept one meets other rows at its epoch."""
import json

import numpy as np
import pytest

from experiments.iwae_table import iwae_table
from experiments.iwae_table.table import final_lines
from iwae_table_rows import copy_of, kept_final, options


def test_a_later_final_keeps_the_earlier_one_and_the_table_compares_them(trained, tiny_mnist,
                                                                          tmp_path):
    """--final after the row trained on: the complete evaluation of the earlier epoch is kept
    as final_epoch<E>_k<K>.json (never overwritten by a different one), the table lists
    both, with their paired difference; --restart removes the kept one too."""
    rows, row = copy_of(trained, tmp_path)
    final = options(tiny_mnist, rows, "--final", "--final-chunk", "10")
    iwae_table.main(final)
    epoch_1 = json.loads((row / "final.json").read_text())
    iwae_table.main(options(tiny_mnist, rows, "--stages", "2"))  # on to epoch 4
    iwae_table.main(final)
    epoch_4 = json.loads((row / "final.json").read_text())
    assert (epoch_1["epoch"], epoch_4["epoch"]) == (1, 4)
    assert json.loads((row / "final_epoch1_k4.json").read_text()) == epoch_1
    table = (rows / "iwae_table.md").read_text().split("On all the test images")[1]
    assert f"| vae_k1 | 1 | {epoch_1['nll']:.2f} +- " in table
    assert f"| vae_k1 | 4 | {epoch_4['nll']:.2f} +- " in table
    gain = np.mean(np.subtract(epoch_4["per_example_log_px"], epoch_1["per_example_log_px"]))
    assert f"- vae_k1 (epoch 1) - vae_k1 (epoch 4) = {gain:+.2f} +- " in table
    # a different evaluation of epoch 1 already kept: refused, nothing moved or rewritten
    (row / "final_epoch1_k4.json").write_text(json.dumps(kept_final(1, 4)))
    (row / "final.json").write_text(json.dumps(epoch_1))
    with pytest.raises(SystemExit, match="holds a complete evaluation of epoch 1 and .*"
                                         "final_epoch1_k4.json a different one"):
        iwae_table.main(final)
    assert json.loads((row / "final.json").read_text()) == epoch_1
    assert json.loads((row / "final_epoch1_k4.json").read_text()) == kept_final(1, 4)
    # --restart removes the kept evaluations by their one name pattern, nothing else
    (row / "final_epoch1_k4_by_hand.json").write_text("{}")
    iwae_table.main(options(tiny_mnist, rows, "--stages", "1", "--restart"))
    assert sorted(p.name for p in row.glob("final*.json")) == ["final_epoch1_k4_by_hand.json"]


def test_kept_finals_meet_the_other_rows_at_their_epoch():
    """A row's kept --final (epoch 121) is compared with another row's --final at 121."""
    from experiments.iwae_table.orderings import ordering_lines
    log_px = np.random.default_rng(3).normal(-90, 5, 10_000)
    spread = np.where(np.arange(10_000) % 2, 0.01, -0.01)  # mean 0, so that SE > 0

    def final(epoch, shift):
        return dict(epoch=epoch, n_images=10_000, k=5000, nll=90.0,
                    per_example_log_px=list(log_px + shift))

    def row(layers, finals):
        stage = dict(epoch=1, n_images=10, k=5000, per_example_log_px=[-90.0] * 10)
        return dict(args=dict(layers=layers, model="iwae", k=50, posterior="diagonal_gaussian"),
                    stages=[stage], finals=finals)
    rows = {"iwae_k50": row(1, [final(121, 0.0), final(364, 1.0)]),
            "iwae_k50_2layers": row(2, [final(121, 2.0 + spread)])}
    lines = [line for line in ordering_lines(rows) if line.startswith("- ")]
    assert len(lines) == 2, lines  # the stages at epoch 1, and the finals at 121
    assert lines[1].startswith("- two layers ahead of one (iwae k=50), epoch 121 (10,000 test "
                               "images): iwae_k50_2layers - iwae_k50 = -2.00 +- 0.00 nats")


def test_a_final_stopped_after_keeping_leaves_no_twin_and_the_table_still_reads(
        trained, tiny_mnist, tmp_path, monkeypatch):
    """--final stopped during its first new chunk: final.json already holds the new epoch
    (its stage-end chunk), never a second copy of the kept evaluation, so the table reads."""
    from numvae.diagnostics import evaluate
    rows, row = copy_of(trained, tmp_path)
    final = options(tiny_mnist, rows, "--final", "--final-chunk", "10")
    iwae_table.main(final)
    epoch_1 = json.loads((row / "final.json").read_text())
    iwae_table.main(options(tiny_mnist, rows, "--stages", "2"))  # on to epoch 4

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(evaluate, "iwae_log_likelihood", stopped)
    with pytest.raises(KeyboardInterrupt):
        iwae_table.main(final)
    started = json.loads((row / "final.json").read_text())
    assert (started["epoch"], len(started["per_example_log_px"])) == (4, 10)
    assert "nll" not in started
    assert json.loads((row / "final_epoch1_k4.json").read_text()) == epoch_1
    iwae_table.main(options(tiny_mnist, rows, "--table"))
    table = (rows / "iwae_table.md").read_text().split("On all the test images")[1]
    assert f"| vae_k1 | 1 | {epoch_1['nll']:.2f} +- " in table and "| vae_k1 | 4 |" not in table


def test_another_chunk_size_alone_keeps_the_evaluation_as_it_is(trained, tiny_mnist, tmp_path):
    """--final again at the same epoch and K with another --final-chunk: every image is
    already evaluated, so nothing is kept aside, dropped or drawn again."""
    rows, row = copy_of(trained, tmp_path)
    iwae_table.main(options(tiny_mnist, rows, "--final", "--final-chunk", "10"))
    first = json.loads((row / "final.json").read_text())
    iwae_table.main(options(tiny_mnist, rows, "--final", "--final-chunk", "15"))
    again = json.loads((row / "final.json").read_text())
    assert list(row.glob("final_epoch*.json")) == []
    assert again["per_example_log_px"] == first["per_example_log_px"]
    assert (again["chunk"], again["nll"]) == (10, first["nll"])


def test_two_identical_evaluations_are_said_identical_not_divided_by_zero():
    """A row's final listed twice with the same per-example figures (a copy by hand): the
    paired difference is 0 with SE 0, written "(identical)"."""
    final = dict(epoch=4, k=4, n_images=2, nll=1.5, nll_se=0.5, negative_elbo=3.0,
                 per_example_log_px=[-1.0, -2.0])
    rows = {"vae_k1": dict(args=dict(layers=1, model="vae", k=1,
                                     posterior="diagonal_gaussian"),
                           finals=[dict(final), final])}
    lines = [line for line in final_lines(rows) if line.startswith("- ")]
    assert lines == ["- vae_k1 (epoch 4) - vae_k1 (epoch 4) = +0.00 +- 0.00 nats (identical)"]


def test_a_constant_difference_is_not_called_identical():
    from experiments.iwae_table.orderings import difference_text, paired
    assert difference_text(*paired([-1.0, -2.0], [-1.5, -2.5])) \
        == "-0.50 +- 0.00 nats (the same difference on every image)"
    assert difference_text(*paired([-1.0, -2.0], [-1.0, -2.0])) == "+0.00 +- 0.00 nats (identical)"


def test_rows_at_different_epochs_are_not_paired_on_all_images():
    """Two rows' finals at different epochs do not compare: no paired line; at the same
    epoch they do."""
    def final(epoch, shift):
        return dict(epoch=epoch, k=4, n_images=3, nll=1.5, nll_se=0.5, negative_elbo=3.0,
                    per_example_log_px=[-1.0 + shift, -2.0, -3.0 - shift])

    def row(model, k, finals):
        return dict(args=dict(layers=1, model=model, k=k, posterior="diagonal_gaussian"),
                    finals=finals)
    rows = {"vae_k1": row("vae", 1, [final(121, 0.0), final(364, 0.1)]),
            "iwae_k5": row("iwae", 5, [final(121, 0.3)])}
    lines = [line for line in final_lines(rows) if line.startswith("- ")]
    assert [line.split(" = ")[0] for line in lines] == [
        "- vae_k1 (epoch 121) - vae_k1 (epoch 364)",
        "- vae_k1 (epoch 121) - iwae_k5 (epoch 121)"]
