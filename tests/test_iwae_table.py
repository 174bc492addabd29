"""experiments/iwae_table on a tiny MNIST (60 training and 30 test images written as IDX
files): the resume checkpoint holds no history and resumes exactly; a row whose results
say epoch E is never retrained from epoch 0 without --restart; malformed or non-finite
results are refused, naming the file and the field; the table and a final row's --final
read the results only."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.iwae_table import iwae_table
from experiments.iwae_table.table import table_row
from iwae_table_rows import copy_of, kept_final, options
from numvae.training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def without_seconds(stages):
    return [{k: v for k, v in stage.items() if k != "seconds"} for stage in stages]


def test_the_resume_checkpoint_holds_no_history_and_resumes_exactly(tiny_mnist, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    iwae_table.main(options(tiny_mnist, straight, "--stages", "2"))
    iwae_table.main(options(tiny_mnist, split, "--stages", "1"))
    first = load_checkpoint(split / "vae_k1" / "resume" / "checkpoint.npz")
    assert first.history == {} and first.train_state["epoch"] == 1
    iwae_table.main(options(tiny_mnist, split, "--stages", "2"))
    a, b = (json.loads((d / "vae_k1" / "results.json").read_text()) for d in (straight, split))
    assert len(a["train_loss"]) == len(a["epoch_seconds"]) == 4
    assert a["train_loss"] == b["train_loss"]  # the resumed run's epochs 2-4 added to epoch 1
    assert without_seconds(a["stages"]) == without_seconds(b["stages"])
    ends = [load_checkpoint(d / "vae_k1" / "resume" / "checkpoint.npz") for d in (straight, split)]
    for name, value in ends[0].model.params.items():
        np.testing.assert_array_equal(value, ends[1].model.params[name])
    assert ends[0].train_state == ends[1].train_state
    assert not (straight / "vae_k1" / "checkpoint.npz").exists()  # the 0.2 place


def test_a_row_with_results_and_no_checkpoint_is_refused_not_retrained(trained, tiny_mnist,
                                                                      tmp_path, capsys):
    rows, row = copy_of(trained, tmp_path)
    (row / "resume" / "checkpoint.npz").unlink()
    before = (row / "results.json").read_bytes()
    with pytest.raises(SystemExit) as refused:
        iwae_table.main(options(tiny_mnist, rows, "--stages", "2"))
    message = str(refused.value.code)
    assert f"{row / 'results.json'} says the row was trained to epoch 1, but " in message
    assert "--restart" in message and "\n" not in message
    assert (row / "results.json").read_bytes() == before  # nothing retrained, nothing lost
    # a checkpoint at 0.2's place: the line says where it goes (also beside a resume one)
    shutil.copy(trained / "vae_k1" / "resume" / "checkpoint.npz", row / "checkpoint.npz")
    with pytest.raises(SystemExit, match=r"at 0.2's place; .* move it there \(mv "):
        iwae_table.main(options(tiny_mnist, rows, "--stages", "2"))
    shutil.copy(trained / "vae_k1" / "resume" / "checkpoint.npz", row / "resume")
    for extra in ([], ["--final"]):
        with pytest.raises(SystemExit, match="at 0.2's place"):
            iwae_table.main(options(tiny_mnist, rows, "--stages", "2", *extra))
    (row / "resume" / "checkpoint.npz").unlink()
    # --restart: trained again from epoch 0, and it says what it replaced
    (row / "checkpoint.npz").unlink()
    (row / "final.json").write_text("{}")
    capsys.readouterr()
    iwae_table.main(options(tiny_mnist, rows, "--stages", "1", "--restart"))
    assert f"--restart: removed {row / 'results.json'}" in capsys.readouterr().out
    assert len(json.loads((row / "results.json").read_text())["train_loss"]) == 1
    assert not (row / "final.json").exists()


def test_a_checkpoint_of_another_run_is_refused(trained, tiny_mnist, tmp_path):
    rows, row = copy_of(trained, tmp_path)
    results = json.loads((row / "results.json").read_text())
    results["train_loss"] += [1.0, 2.0]  # results say epoch 3, the checkpoint epoch 1
    (row / "results.json").write_text(json.dumps(results))
    with pytest.raises(SystemExit, match=r"is at epoch 1, but .*results.json says epoch 3"):
        iwae_table.main(options(tiny_mnist, rows, "--stages", "2"))


def damage_nan_nll(row):
    results = json.loads((row / "results.json").read_text())
    results["stages"][0]["nll"] = float("nan")
    (row / "results.json").write_text(json.dumps(results))  # NaN, as json writes it


def damage_no_stage(row):
    results = json.loads((row / "results.json").read_text())
    results["stages"] = []
    (row / "results.json").write_text(json.dumps(results))


def damage_truncated(row):
    text = (row / "results.json").read_bytes()
    (row / "results.json").write_bytes(text[:len(text) // 2])


def damage_final_nan(row):
    (row / "final.json").write_text(json.dumps(dict(
        row="vae_k1", epoch=1, k=4, chunk=10, n_images=2, per_example_log_px=[-1.0, -2.0],
        nll=float("nan"), nll_se=0.5, negative_elbo=3.0, negative_elbo_se=0.1)))


def damage_kept_final_unfinished(row):
    unfinished = {key: value for key, value in kept_final(1, 4).items()
                  if key not in ("nll", "nll_se", "negative_elbo", "negative_elbo_se")}
    (row / "final_epoch1_k4.json").write_text(json.dumps(unfinished))


def damage_kept_final_renamed(row):
    (row / "final_epoch2_k4.json").write_text(json.dumps(kept_final(1, 4)))


def damage_short_per_example(row):
    results = json.loads((row / "results.json").read_text())
    del results["stages"][0]["per_example_log_px"][3:]
    (row / "results.json").write_text(json.dumps(results))


@pytest.mark.parametrize("damage, file, field", [
    (damage_nan_nll, "results.json", "stages[0].nll is nan; expected a finite number"),
    (damage_no_stage, "results.json", "stages is a list of 0; expected a non-empty list"),
    (damage_truncated, "results.json", "is not readable JSON"),
    (damage_final_nan, "final.json", "final.nll is nan; expected a finite number"),
    (damage_kept_final_unfinished, "final_epoch1_k4.json",
     "is an unfinished evaluation; expected the complete evaluation of epoch 1"),
    (damage_kept_final_renamed, "final_epoch2_k4.json",
     "final.epoch is 1; expected 2, as the file's name says"),
    (damage_short_per_example, "results.json",
     "stages[0].per_example_log_px is a list of 3; expected a list of 10 numbers"),
])
def test_malformed_results_are_refused_naming_the_file_and_field(trained, tmp_path, damage,
                                                                  file, field):
    rows, row = copy_of(trained, tmp_path)
    damage(row)
    table_before = (rows / "iwae_table.md").read_bytes()
    with pytest.raises(SystemExit) as refused:
        iwae_table.main(["--table", "--results-dir", str(rows)])
    line = str(refused.value.code)
    assert "\n" not in line and str(row / file) in line and field in line, line
    assert (rows / "iwae_table.md").read_bytes() == table_before  # no table without the row


def test_the_refusal_is_one_line_on_stderr_and_exit_status_1(trained, tmp_path):
    rows, row = copy_of(trained, tmp_path)
    damage_nan_nll(row)
    proc = subprocess.run([sys.executable, "-m", "experiments.iwae_table", "--table",
                           "--results-dir", str(rows)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (f"iwae_table: {row / 'results.json'}: stages[0].nll is nan; "
                           f"expected a finite number\n")


def test_a_final_row_needs_no_checkpoint_and_an_unfinished_one_is_refused(trained, tiny_mnist,
                                                                          tmp_path, capsys):
    from numvae.training.checkpoint import save_checkpoint
    rows, row = copy_of(trained, tmp_path)
    # a mean head that spreads the first 20 of the 50 units' means far apart: 20 active units
    resume = row / "resume" / "checkpoint.npz"
    saved = load_checkpoint(resume)
    saved.model.params["encoder.mean.W"][:, :20] *= 300.0
    save_checkpoint(resume, saved.model, saved.optimizer, None, saved.train_state,
                    saved.train_permutation)
    final = options(tiny_mnist, rows, "--final", "--final-chunk", "10")
    iwae_table.main(final)
    done = json.loads((row / "final.json").read_text())
    assert done["n_images"] == 30 and done["epoch"] == 1
    # the active units on all 30 test images: Cov_x of the encoder's mean, by hand
    _, test_images = iwae_table.load_data(iwae_table.parse_args(final))
    means = (np.tanh(np.tanh(test_images @ saved.model.params["encoder.compressor.0.W"]
                             + saved.model.params["encoder.compressor.0.b"])
                     @ saved.model.params["encoder.compressor.2.W"]
                     + saved.model.params["encoder.compressor.2.b"])
             @ saved.model.params["encoder.mean.W"] + saved.model.params["encoder.mean.b"])
    variance = means.astype(np.float64).var(axis=0)
    assert done["active_units"] == [int(np.sum(variance > 0.01))]
    assert done["active_units"] == [20], variance
    shutil.rmtree(row / "resume")  # the row is final: its checkpoint goes
    capsys.readouterr()
    iwae_table.main(final)
    assert "nothing to do" in capsys.readouterr().out
    assert json.loads((row / "final.json").read_text()) == done
    assert "On all the test images" in (rows / "iwae_table.md").read_text()
    # a stopped --final without its checkpoint cannot be finished: refused
    (row / "final.json").write_text(json.dumps(dict(
        row="vae_k1", epoch=1, k=4, chunk=10, per_example_log_px=done["per_example_log_px"][:10])))
    with pytest.raises(SystemExit, match="resume/checkpoint.npz is missing and .* is incomplete"):
        iwae_table.main(final)


def test_a_two_layer_row_resumes_exactly_and_shows_each_layers_active_units(tiny_mnist,
                                                                          tmp_path):
    """--layers 2 (numvae.model.two_layer): the row is named *_2layers, resumes bit for bit
    from its resume checkpoint, and the table puts it beside the paper's two-layer figures."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    more = ["--layers", "2", "--model", "iwae", "--k", "2"]
    iwae_table.main(options(tiny_mnist, straight, "--stages", "2", *more))
    iwae_table.main(options(tiny_mnist, split, "--stages", "1", *more))
    iwae_table.main(options(tiny_mnist, split, "--stages", "2", *more))
    a, b = (json.loads((d / "iwae_k2_2layers" / "results.json").read_text())
            for d in (straight, split))
    assert a["train_loss"] == b["train_loss"] and len(a["train_loss"]) == 4
    assert without_seconds(a["stages"]) == without_seconds(b["stages"])
    assert all(len(stage["active_units"]) == 2 for stage in a["stages"])
    ends = [load_checkpoint(d / "iwae_k2_2layers" / "resume" / "checkpoint.npz")
            for d in (straight, split)]
    assert type(ends[0].model).__name__ == "TwoLayerVAE"
    for name, value in ends[0].model.params.items():
        np.testing.assert_array_equal(value, ends[1].model.params[name])
    # a row of the paper's: IWAE k=5 with two layers is 83.89, its active units 21+5
    row = table_row("r", dict(a["stages"][-1], active_units=[3, 1]),
                               dict(a["args"], k=5))
    assert row.endswith("| 83.89 | " + f"{a['stages'][-1]['nll'] - 83.89:+.2f} | 3+1 | 21+5 |")


def test_a_two_layer_row_starts_as_burdas_code_and_refuses_an_older_model(tiny_mnist,
                                                                          tmp_path):
    """Issue 25: the two-layer rows have the widths of Burda et al.'s code (200-200 to z1,
    100-100 to z2), Glorot's weights, zero biases and the output at the training mean; a
    resume checkpoint of the earlier model (100-100 and 50-50, PyTorch's start) is refused."""
    from numvae.model.two_layer import TwoLayerVAE
    from numvae.training.checkpoint import save_checkpoint
    args = iwae_table.parse_args(["--layers", "2", "--model", "iwae", "--k", "5"])
    pixel_means = np.linspace(0.0, 1.0, 784)
    model = iwae_table.build_model(args, pixel_means)
    assert model.config["hidden"] == ((200, 200), (100, 100))
    assert model.config["init"] == "glorot" and model.dims == (100, 50)
    np.testing.assert_allclose(model.decode_z1(np.zeros((1, 100), np.float32))[0],
                               np.clip(pixel_means, 0.001, 0.999), rtol=1e-5)
    more = ["--layers", "2", "--model", "vae", "--k", "1"]
    iwae_table.main(options(tiny_mnist, tmp_path, "--stages", "1", *more))
    path = tmp_path / "vae_k1_2layers" / "resume" / "checkpoint.npz"
    saved = load_checkpoint(path)
    older = TwoLayerVAE(784, (100, 50), ((100, 100), (50, 50)), init="pytorch", seed=0)
    save_checkpoint(path, older, None, None, saved.train_state, saved.train_permutation)
    with pytest.raises(SystemExit, match=r"holds another two-layer model: hidden "
                                         r"\(\(100, 100\), \(50, 50\)\) .*--restart"):
        iwae_table.main(options(tiny_mnist, tmp_path, "--stages", "2", *more))


def test_the_papers_orderings_are_listed_with_their_verdicts():
    from experiments.iwae_table.orderings import ordering_lines

    def row(layers, model, k, log_px, epoch=4):
        stage = dict(epoch=epoch, n_images=len(log_px), k=5000, per_example_log_px=log_px)
        return dict(args=dict(layers=layers, model=model, k=k, posterior="diagonal_gaussian"),
                    stages=[stage])
    base = np.random.default_rng(0).normal(-90, 5, 100)
    noise = np.random.default_rng(1).normal(0, 0.1, 100)
    noise -= noise.mean()  # the paired differences are then exactly 1 and 0.5 nats
    rows = {"vae_k1": row(1, "vae", 1, list(base)),
            "vae_k1_2layers": row(2, "vae", 1, list(base + 1 + noise)),      # 1 nat better
            "iwae_k5_2layers": row(2, "iwae", 5, list(base + 0.5 + noise)),  # worse than the VAE
            "iwae_k5_iaf": dict(row(1, "iwae", 5, list(base)),
                                args=dict(model="iwae", k=5, posterior="iaf")),
            "late": row(1, "iwae", 5, list(base), epoch=13)}                 # no common epoch
    lines = [line for line in ordering_lines(rows) if line.startswith("- ")]
    assert len(lines) == 2, lines
    assert lines[0].startswith("- two layers ahead of one (vae k=1), epoch 4 (100 test images): "
                               "vae_k1_2layers - vae_k1 = -1.00 +- 0.01 nats (paper -1.43): holds")
    assert lines[1].startswith("- IWAE k=5 ahead of VAE k=1 (2 layers), epoch 4 (100 test "
                               "images): iwae_k5_2layers - vae_k1_2layers = +0.50")
    assert lines[1].endswith("(paper -1.44): reversed")
    # --final's evaluations on all the test images are compared too, at a common epoch only
    for name, shift, epoch in (("vae_k1", 0.0, 364), ("vae_k1_2layers", 0.015, 364),
                               ("iwae_k5_2layers", 0.5, 121)):
        log_px = np.random.default_rng(2).normal(-90, 5, 10_000) + shift
        if name == "vae_k1_2layers":
            log_px[::2] += 0.01  # a spread of the paired differences, so that SE > 0
        rows[name]["finals"] = [dict(epoch=epoch, n_images=10_000, k=5000, nll=90.0,
                                     per_example_log_px=list(log_px))]
    lines = [line for line in ordering_lines(rows) if line.startswith("- ")]
    assert len(lines) == 3, lines
    assert lines[1].startswith("- two layers ahead of one (vae k=1), epoch 364 (10,000 test "
                               "images): vae_k1_2layers - vae_k1 = -0.02 +- 0.00 nats")
    assert lines[1].endswith(": holds")


def test_a_signal_during_training_ends_in_one_line_and_the_shells_exit_code(tiny_mnist, tmp_path,
                                                                            monkeypatch, capsys):
    import signal

    from numvae.training.loop import TrainingInterrupted

    def stopped(args):
        raise TrainingInterrupted(signal.SIGTERM)

    monkeypatch.setattr(iwae_table, "run", stopped)
    code = iwae_table.main(options(tiny_mnist, tmp_path, "--stages", "2"))
    err = capsys.readouterr().err
    assert code == 128 + signal.SIGTERM
    assert len(err.strip().splitlines()) == 1
    assert "SIGTERM" in err and str(tmp_path / "vae_k1" / "resume" / "checkpoint.npz") in err


def test_numvae_evaluate_prepares_a_row_s_test_images_as_the_table(trained, tiny_mnist, capsys):
    """The row's checkpoint records the binarisation: numvae evaluate binarises the test
    images once with the table's seed, as the table does, without being told."""
    from numvae.commands.cli import main
    from numvae.diagnostics.evaluate import evaluate_elbo
    from numvae.io.datasets import binarize, load_mnist
    checkpoint = trained / "vae_k1" / "resume" / "checkpoint.npz"
    model = load_checkpoint(checkpoint).model
    test = load_mnist(tiny_mnist, download=False)[1].images[:10]
    expected = {"binarised": evaluate_elbo(model, binarize(test, np.random.default_rng(2016))),
                "grey": evaluate_elbo(model, test)}
    assert abs(expected["binarised"]["loss"] - expected["grey"]["loss"]) > 0.1
    for argv, which in (([], "binarised"), (["--test-images", "grey"], "grey")):
        assert main(["evaluate", str(checkpoint), "--n", "10", "--iwae-k", "0",
                     "--data-dir", str(tiny_mnist), *argv]) == 0
        out = capsys.readouterr().out
        assert f"-ELBO {expected[which]['loss']:.2f} +-" in out, (which, out)
        assert ("binarised once with seed 2016" in out) is (which == "binarised"), out


def test_a_missing_data_folder_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "no-mnist-here"
    code = iwae_table.main(["--model", "vae", "--k", "1", "--stages", "1", "--n-train", "20",
                            "--data-dir", str(missing), "--results-dir", str(tmp_path / "rows")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "data_dir" in err and str(missing) in err
    assert "Traceback" not in err
