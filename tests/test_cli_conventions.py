"""What every ``numvae`` command does alike: --version, "did you mean", help and defaults for
every option, train's option groups, one list syntax, --out for every output, one error
style, the output folder refused before any data is read, a progress bar only on a terminal."""
import argparse
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import numvae
from helpers import run_cli
from numvae.commands import cli
from numvae.io import datasets
from numvae.training import loop

TOY = ["--dataset", "toy", "--latent-dim", "2", "--shared-dim", "8", "--no-plots",
       "--batch-size", "64", "--val-size", "0"]


def subparsers():
    parser = cli.build_parser()
    (choices,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return choices.choices


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"numvae {numvae.__version__}"


@pytest.mark.parametrize("typo, meant", [("trian", "train"), ("evalute", "evaluate"),
                                         ("sampel", "sample"), ("inport", "import")])
def test_a_mistyped_command_gets_the_nearest_one(typo, meant, capsys):
    code, _, err = run_cli([typo, "--epochs", "3"], capsys)
    assert code == 2
    assert err.strip() == (f"numvae: error: unknown command '{typo}'; did you mean '{meant}'? "
                           f"(see numvae --help)")


def test_a_command_like_no_other_lists_them_all(capsys):
    code, _, err = run_cli(["xyzzy"], capsys)
    assert code == 2 and "the commands are train, evaluate, sample" in err


@pytest.mark.parametrize("command", ["train", "evaluate", "sample", "plot", "inspect", "export",
                                     "import"])
def test_every_option_has_help_and_shows_its_default(command):
    parser = subparsers()[command]
    assert parser.description, f"numvae {command} has no description"
    text = parser.format_help().split("\n\n", 1)[1]  # without the usage lines
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help, f"numvae {command} {name} has no help"
        if action.option_strings and action.default not in (None, False):
            # the help line of this option names its default, in its words or argparse's
            block = re.search(rf"\n  {name} .*?(?=\n  -|\n\n|$)", text, re.S).group()
            assert "default" in block, (command, name, block)


def test_train_help_groups_its_options_and_names_every_objective():
    parser = subparsers()["train"]
    titles = [group.title for group in parser._action_groups]
    groups = ["data", "model", "objective", "optimisation", "output"]
    assert [title for title in titles if title in groups] == groups
    ungrouped = [a.dest for a in parser._optionals._group_actions if a.dest != "help"]
    assert ungrouped == []
    objective = next(a for a in parser._actions if a.dest == "objective")
    assert all(name in objective.help for name in objective.choices), objective.help
    assert "reconstruction" in objective.choices
    text = parser.format_help()
    assert "--latent-dim LATENT_DIM\n                        dimensions of the code z " \
           "(default: 2)" in text


@pytest.mark.parametrize("spelling", [["200,100"], ["200", "100"]])
def test_one_list_syntax_and_the_old_one_still_works(spelling):
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--flow-hidden", *spelling])
    assert args.flow_hidden == (200, 100)
    args = parser.parse_args(["import", "f.safetensors", "--out", "c.npz",
                              "--decoder-hidden", *spelling, "--encoder-hidden", ""])
    assert args.decoder_hidden == (200, 100) and args.encoder_hidden == ()
    assert parser.parse_args(["train"]).flow_hidden == (50,)


def test_a_bad_list_is_one_line_naming_the_option(capsys):
    code, _, err = run_cli(["train", "--flow-hidden", "200,x"], capsys)
    assert code == 2 and err.startswith("numvae train: error: argument --flow-hidden: expected "
                                        "comma-separated positive integers")


def test_export_writes_to_out_and_keeps_the_positional(tmp_path, capsys):
    pytest.importorskip("safetensors")
    run = tmp_path / "run"
    assert run_cli(["train", *TOY, "--epochs", "1", "--out", run], capsys)[0] == 0
    checkpoint = run / "checkpoint.npz"
    assert run_cli(["export", checkpoint, "--out", tmp_path / "a.safetensors"], capsys)[0] == 0
    assert run_cli(["export", checkpoint, tmp_path / "b.safetensors"], capsys)[0] == 0
    from safetensors.numpy import load_file
    a, b = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    code, _, err = run_cli(["export", checkpoint, tmp_path / "c.safetensors", "--out",
                            tmp_path / "d.safetensors"], capsys)
    assert code == 2 and "give the output once" in err
    code, _, err = run_cli(["export", checkpoint], capsys)
    assert code == 2 and "required: --out" in err


@pytest.mark.parametrize("argv, start", [
    (["train", "--lr", "0"], "numvae train: error: argument --lr: "),
    (["evaluate", "nope.npz"], "numvae evaluate: error: checkpoint nope.npz does not exist"),
    (["sample", "nope.npz"], "numvae sample: error: checkpoint nope.npz does not exist"),
    (["plot", "nope.npz"], "numvae plot: error: checkpoint nope.npz does not exist"),
    (["export", "nope.npz", "--out", "x.safetensors"], "numvae export: error: checkpoint nope"),
    (["inspect", "--batch-size", "0"], "numvae inspect: error: argument --batch-size: "),
    (["train", "--bogus"], "numvae train: error: unrecognized arguments: --bogus"),
    (["--bogus"], "numvae: error: the following arguments are required: COMMAND"),
])
def test_one_error_style(argv, start, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(argv, capsys)
    assert code in (1, 2) and err.startswith(start), err
    assert len(err.strip().splitlines()) == 1 and "error: error" not in err


def test_an_existing_output_folder_is_refused_before_any_data_is_read(tmp_path, capsys,
                                                                       monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"an earlier run")
    loaded = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: loaded.append(a))
    code, _, err = run_cli(["train", "--dataset", "mnist", "--out", out], capsys)
    assert code == 1 and "output folder" in err and "is not empty" in err
    assert loaded == [] and (out / "checkpoint.npz").read_bytes() == b"an earlier run"


def test_the_start_up_header_is_a_few_short_lines(tmp_path, capsys):
    code, out, _ = run_cli(["train", *TOY, "--epochs", "1", "--out", tmp_path / "r"], capsys)
    header = out[:out.index("epoch ")].strip().splitlines()
    assert code == 0 and 3 <= len(header) <= 8 and max(map(len, header)) <= 100, header
    assert header[0].startswith("numvae train: a 64-2 VAE") and "grey levels" in out


class Stream(io.StringIO):
    def __init__(self, terminal):
        super().__init__()
        self.terminal = terminal

    def isatty(self):
        return self.terminal


@pytest.mark.parametrize("terminal", [False, True])
def test_the_progress_bar_is_drawn_only_on_a_terminal(terminal):
    stream = Stream(terminal)
    bar = loop.Progress(1, 1, 2, None, stream=stream)
    bar.update(2, 10, 1.5)
    bar.close()
    assert ("\r" in stream.getvalue()) is terminal
    forced = Stream(False)
    loop.Progress(1, 1, 2, True, stream=forced).update(2, 10, 1.5)
    assert "\r" in forced.getvalue()


def test_fit_in_a_script_writes_no_carriage_return(tmp_path):
    code = ("import numpy as np, numvae\n"
            "from numvae.training.loop import fit\n"
            "x = np.random.default_rng(0).uniform(size=(64, 6))\n"
            "model = numvae.VAE(6, 4, 2, encoder_hidden=(5,), decoder_hidden=(5,), seed=0)\n"
            "fit(model, numvae.Adam(model.params), x, epochs=2, batch_size=8, seed=0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout + done.stderr
    assert done.stdout.count("epoch") == 2  # the epoch lines are still printed (log=print)


def test_evaluate_plot_and_inspect_prepare_the_test_images_as_training_did(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli(["train", *TOY, "--epochs", "1", "--binarize", "--out", run], capsys)[0] == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_images"] == "binarised once with seed 2016"
    checkpoint = run / "checkpoint.npz"
    said = "test images: binarised once with seed 2016, as the checkpoint records"
    for argv in (["evaluate", checkpoint, "--iwae-k", "0"], ["inspect", checkpoint],
                 ["plot", checkpoint, "--out", tmp_path / "figures"]):
        code, out, _ = run_cli(argv, capsys)
        assert code == 0 and said in out, (argv, out)
    code, out, _ = run_cli(["evaluate", checkpoint, "--iwae-k", "0", "--test-images", "grey"],
                           capsys)
    assert code == 0 and "test images: grey levels, as asked" in out
    code, out, _ = run_cli(["evaluate", checkpoint, "--iwae-k", "0", "--binarize-seed", "7"],
                           capsys)
    assert code == 0 and "binarised once with seed 7" in out
