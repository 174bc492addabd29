import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import run_cli
from numvae.training.checkpoint import load_checkpoint

TOY = ["--dataset", "toy", "--latent-dim", "2", "--shared-dim", "16", "--no-plots",
       "--batch-size", "64"]


run = run_cli


def test_train_evaluate_sample(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(["train", *TOY, "--epochs", "2", "--out", str(out)], capsys)
    assert code == 0, stdout
    for name in ("checkpoint.npz", "history.json", "history.csv", "metrics.json"):
        assert (out / name).exists(), name
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2]
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,train_loss")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "toy" and metrics["test_negative_elbo"] > 0

    code, stdout, _ = run(["evaluate", str(out / "checkpoint.npz"), "--iwae-k", "20"], capsys)
    assert code == 0 and "-ELBO" in stdout and "K=20" in stdout

    code, _, _ = run(["sample", str(out / "checkpoint.npz"), "--n", "5",
                      "--out", str(tmp_path / "s.npy")], capsys)
    samples = np.load(tmp_path / "s.npy")
    assert code == 0 and samples.shape == (5, 64) and 0 <= samples.min() <= samples.max() <= 1


def test_resume_continues_exactly(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(["train", *TOY, "--epochs", "3", "--out", str(straight)], capsys)[0] == 0
    assert run(["train", *TOY, "--epochs", "1", "--out", str(split)], capsys)[0] == 0
    assert run(["train", "--resume", str(split / "checkpoint.npz"), "--epochs", "3"],
               capsys)[0] == 0
    a = load_checkpoint(straight / "checkpoint.npz").model.params
    b = load_checkpoint(split / "checkpoint.npz").model.params
    for name in a:
        assert np.array_equal(a[name], b[name]), name


@pytest.mark.parametrize("argv, message", [
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--epochs", "0"], "--epochs: expected an integer from 1 to 100,000, got '0'"),
    (["train", "--lr", "nan"], "--lr: expected a finite number in (0, 10], got 'nan'"),
    (["train", "--epochs", "99999999999999999999999"], "--epochs: expected an integer from 1 to"),
    (["train", "--sigma", "1e300"], "--sigma: expected a finite number in [0.001, 1000]"),
    (["sample", "c.npz", "--n", "100000000000"], "--n: expected an integer from 1 to 10,000"),
    (["evaluate", "c.npz", "--iwae-k", "-1"], "--iwae-k: expected an integer from 0 to 100,000"),
    (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["evaluate"], "the following arguments are required: checkpoint"),
])
def test_bad_arguments_get_one_line_and_exit_2(argv, message, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_checkpoint_and_unwritable_folder(tmp_path, capsys):
    code, _, err = run(["evaluate", str(tmp_path / "nope.npz")], capsys)
    assert code == 1 and "does not exist" in err and len(err.strip().splitlines()) == 1
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run(["train", *TOY, "--epochs", "1", "--out", str(blocker / "sub")], capsys)
    assert code == 1 and "cannot write into output folder" in err


def test_explicit_data_dir_that_cannot_be_read_is_an_error(tmp_path, capsys):
    code, _, err = run(["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and str(tmp_path) in err and len(err.strip().splitlines()) == 1


def test_python_dash_m_help():
    result = subprocess.run([sys.executable, "-m", "numvae", "train", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--latent-dim" in result.stdout


FIGURES = {"latent_space.png", "latent_grid.png", "reconstructions.png", "prior_samples.png",
           "training_curves.png", "kl_per_dimension.png", "gradient_flow.png"}


def test_train_writes_figures_and_plot_remakes_them(tmp_path, capsys):
    out = tmp_path / "run"
    options = [arg for arg in TOY if arg != "--no-plots"]
    code, _, err = run(["train", *options, "--epochs", "2", "--out", str(out)], capsys)
    assert code == 0, err
    assert FIGURES <= {p.name for p in out.iterdir()}
    again = tmp_path / "again"
    code, _, err = run(["plot", str(out / "checkpoint.npz"), "--out", str(again)], capsys)
    assert code == 0, err
    assert {p.name for p in again.iterdir()} == FIGURES
    code, _, _ = run(["sample", str(out / "checkpoint.npz"), "--n", "9"], capsys)
    assert code == 0 and (out / "samples.png").stat().st_size > 1000


def test_diverged_checkpoint_and_bad_sizes_get_one_line(tmp_path, capsys):
    import numvae
    from numvae.training.checkpoint import save_checkpoint
    model = numvae.VAE(64, 16, 2, seed=0)
    model.params["encoder.log_var.b"][:] = 300.0  # exp(300) does not fit in float32
    path = save_checkpoint(tmp_path / "bad.npz", model)
    code, _, err = run(["evaluate", str(path), "--dataset", "toy"], capsys)
    assert code == 1 and "exp(0.5 * log_var) is not finite" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(["train", *TOY, "--val-size", "2000", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--val-size 2000 leaves no training images" in err
    code, _, err = run(["train", "--seed", "-1"], capsys)
    assert code == 2 and "--seed" in err


def test_resume_says_which_options_it_ignores(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", *TOY, "--epochs", "1", "--out", str(out)], capsys)[0] == 0
    code, _, err = run(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "2",
                        "--lr", "0.5", "--no-plots"], capsys)
    assert code == 0 and "ignoring --lr" in err
    assert load_checkpoint(out / "checkpoint.npz").optimizer.lr == 1e-3


def test_ranges_still_allow_a_paper_s_schedule_and_k_5000():
    from numvae.commands.cli import build_parser
    args = build_parser().parse_args(["train", "--epochs", "3280"])
    assert args.epochs == 3280
    assert build_parser().parse_args(["evaluate", "c.npz", "--iwae-k", "5000"]).iwae_k == 5000


def test_train_takes_the_posterior_and_the_flow_settings(tmp_path, capsys):
    out = tmp_path / "iaf"
    code, stdout, _ = run(["train", *TOY, "--epochs", "1", "--posterior", "iaf", "--flow-steps",
                           "2", "--flow-hidden", "12", "8", "--out", str(out)], capsys)
    assert code == 0, stdout
    model = load_checkpoint(out / "checkpoint.npz").model
    assert model.config["posterior"] == {"name": "iaf", "steps": 2, "hidden": (12, 8)}
    assert "posterior.steps.1.made.0.W" in model.params
    # resumed: the flow is the checkpoint's; an option typed against it is refused, named
    code, _, err = run(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "2",
                        "--flow-steps", "3"], capsys)
    assert code == 2 and "--flow-steps 3" in err and "flow_steps = 2" in err
    assert load_checkpoint(out / "checkpoint.npz").model.posterior.steps == 2


def test_train_refuses_a_point_mass_under_the_elbo_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "ae"
    code, _, err = run(["train", *TOY, "--epochs", "1", "--posterior", "point", "--out",
                        str(out)], capsys)
    assert code == 2 and "no density" in err and "reconstruction" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    code, _, err = run(["train", *TOY, "--epochs", "1", "--posterior", "point", "--objective",
                        "reconstruction", "--out", str(out)], capsys)
    assert code == 0 and load_checkpoint(out / "checkpoint.npz").model.posterior.name == "point"


@pytest.mark.parametrize("options,named", [
    (["--flow-steps", "3"], "--flow-steps"), (["--flow-hidden", "20"], "--flow-hidden"),
    (["--prior-components", "4"], "--prior-components"),
    (["--posterior", "iaf", "--prior-components", "4"], "--prior-components")])
def test_train_refuses_a_setting_of_a_part_the_model_does_not_have(tmp_path, capsys, options,
                                                                    named):
    out = tmp_path / "run"
    code, _, err = run(["train", *TOY, "--epochs", "1", *options, "--out", str(out)], capsys)
    assert code == 2 and named in err and "no part of this model" in err and not out.exists()


def test_a_validation_split_too_large_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(["train", *TOY, "--epochs", "1", "--val-size", "100000", "--out",
                        str(out)], capsys)
    assert code == 2 and "--val-size 100000 leaves no training images" in err
    assert not out.exists()
