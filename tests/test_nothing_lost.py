"""Issue 16's classes of failure, each with a test that would have caught it: no silent
overwrite, no record of what did not happen, no non-finite figure reported as a result,
no silent mistake in the Python API, every damaged checkpoint field a CheckpointError."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import numvae
from helpers import run_cli
from numvae.diagnostics import evaluate
from numvae.training import loop
from numvae.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from numvae.validation import NumericalError

TOY = ["--dataset", "toy", "--latent-dim", "2", "--shared-dim", "16", "--no-plots",
       "--batch-size", "64", "--no-progress"]


run = run_cli


# --- nothing lost ---------------------------------------------------------------------

def test_train_refuses_a_folder_that_holds_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", *TOY, "--epochs", "1", "--out", str(out)], capsys)[0] == 0
    before = (out / "checkpoint.npz").read_bytes()
    code, _, err = run(["train", *TOY, "--epochs", "1", "--seed", "5", "--out", str(out)], capsys)
    assert code == 1 and "--overwrite" in err and "--resume" in err and len(err.splitlines()) == 1
    assert (out / "checkpoint.npz").read_bytes() == before
    code, _, _ = run(["train", *TOY, "--epochs", "1", "--seed", "5", "--out", str(out),
                      "--overwrite"], capsys)
    assert code == 0 and (out / "checkpoint.npz").read_bytes() != before


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("time.strftime", lambda fmt, *a: "20261130-120000")
    for _ in range(3):
        assert run(["train", *TOY, "--epochs", "1"], capsys)[0] == 0
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert folders == ["20261130-120000", "20261130-120000-2", "20261130-120000-3"]
    assert all((tmp_path / "runs" / name / "checkpoint.npz").exists() for name in folders)


def test_sample_refuses_to_replace_a_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", *TOY, "--epochs", "1", "--out", str(out)], capsys)[0] == 0
    target = tmp_path / "mine.npy"
    target.write_bytes(b"precious")
    code, _, err = run(["sample", str(out / "checkpoint.npz"), "--out", str(target)], capsys)
    assert code == 1 and "--overwrite" in err and target.read_bytes() == b"precious"
    assert run(["sample", str(out / "checkpoint.npz"), "--out", str(target), "--overwrite"],
               capsys)[0] == 0
    assert np.load(target).shape == (64, 64)


def test_resume_with_fewer_epochs_trains_nothing_and_records_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", *TOY, "--epochs", "3", "--out", str(out)], capsys)[0] == 0
    metrics = (out / "metrics.json").read_bytes()
    checkpoint = (out / "checkpoint.npz").read_bytes()
    code, stdout, _ = run(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "2"],
                          capsys)
    assert code == 0 and "trained for 3 epochs already" in stdout and "nothing to do" in stdout
    assert (out / "metrics.json").read_bytes() == metrics
    assert (out / "checkpoint.npz").read_bytes() == checkpoint
    assert run(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "4"], capsys)[0] == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 4


# --- no non-finite figure reported as a result -------------------------------------------

def test_a_damaged_model_gets_numerical_errors_not_nan(tmp_path, capsys):
    model = numvae.VAE(64, 16, 2, encoder_hidden=(32,), decoder_hidden=(32,), seed=0)
    model.params["encoder.mean.W"][:] = 3e38  # finite in float32; mean**2 is not
    x = numvae.io.datasets.make_toy(40, seed=1).images
    for quantity, call in [("loss", lambda: evaluate.evaluate_elbo(model, x)),
                           ("importance-weighted",
                            lambda: evaluate.iwae_log_likelihood(model, x, k=5)),
                           ("KL per latent dimension",
                            lambda: evaluate.kl_per_dimension(model, x))]:
        with pytest.raises(NumericalError, match=quantity):
            call()
    path = save_checkpoint(tmp_path / "c.npz", model)
    code, stdout, err = run(["evaluate", str(path), "--dataset", "toy", "--iwae-k", "5"], capsys)
    assert code == 1 and "nan" not in stdout.lower() and len(err.splitlines()) == 1


# --- silent mistakes in the Python API ------------------------------------------------------

def small_model(seed=0):
    return numvae.VAE(64, 16, 2, encoder_hidden=(32,), decoder_hidden=(32,), seed=seed)


@pytest.mark.parametrize("options, error, message", [
    (dict(binarize="no"), TypeError, "binarize must be True or False"),
    (dict(seed=-1), ValueError, "seed must be an integer >= 0; got -1"),
])
def test_fit_names_bad_options(options, error, message):
    model = small_model()
    with pytest.raises(error, match=message):
        loop.fit(model, numvae.Adam(model.params), np.zeros((10, 64)), epochs=1, log=None,
                  progress=False, **options)


def test_fit_refuses_an_optimiser_of_another_model():
    model, other = small_model(), small_model(1)
    with pytest.raises(ValueError, match="optimizer must hold the model's own parameter arrays"):
        loop.fit(model, numvae.Adam(other.params), np.zeros((10, 64)), epochs=1, log=None,
                  progress=False)


def test_model_arguments_that_used_to_pass_silently():
    with pytest.raises(TypeError, match="dtype must be float32 or float64; got None"):
        numvae.VAE(16, 4, 2, dtype=None)
    model = numvae.VAE(16, 4, 2)
    with pytest.raises(TypeError, match="x is a masked array"):
        model.loss(np.ma.masked_array(np.zeros((2, 16)), mask=np.eye(2, 16)))
    with pytest.raises(ValueError, match="n must be a positive integer; got -1"):
        model.sample(-1)


# --- a damaged checkpoint is always a CheckpointError ----------------------------------------

FIELDS = ["config", "optimizer", "model_rng", "history", "train_state"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = small_model()
    optimizer = numvae.FastAdam(model.params)
    data = numvae.io.datasets.make_toy(100, seed=0).images
    states = []
    loop.fit(model, optimizer, data, epochs=1, batch_size=32, seed=0, log=None, progress=False,
              callbacks=[states.append])
    path = tmp_path_factory.mktemp("ck") / "c.npz"
    state = states[-1]
    save_checkpoint(path, model, optimizer, state["history"], state["train_state"],
                    state["train_permutation"])
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def rewrite(tmp_path, arrays, **changes):
    path = tmp_path / f"damaged-{os.getpid()}.npz"
    np.savez(path, **{**arrays, **changes})
    return path


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(FIELDS), json_values)
def test_fuzzed_json_fields_are_checkpoint_errors(tmp_path, saved, field, value):
    path = rewrite(tmp_path, saved, **{field: np.array(json.dumps(value))})
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as err:
        assert str(path) in str(err)
        return
    # what loads either resumes, or fit names the field it cannot resume from
    try:
        loop.fit(checkpoint.model, checkpoint.optimizer, np.zeros((100, 64)), epochs=2,
                  batch_size=32, log=None, progress=False, history=checkpoint.history,
                  train_state=checkpoint.train_state,
                  train_permutation=checkpoint.train_permutation)
    except ValueError as err:
        assert any(name in str(err) for name in ("train_state", "history", "train_permutation"))


@pytest.mark.parametrize("changes, message", [
    (dict(format_version=np.array(2.5)), "format_version"),
    (dict(format_version=np.array("2")), "format_version"),
    (dict(train_permutation=np.array([[1, 2]])), "train_permutation"),
    (dict(config=np.arange(3)), "config"),
])
def test_damaged_members_are_checkpoint_errors(tmp_path, saved, changes, message):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(rewrite(tmp_path, saved, **changes))


def test_a_permutation_out_of_range_or_a_step_beyond_the_epoch_is_refused_on_resume(
        tmp_path, saved):
    state = json.loads(str(saved["train_state"]))
    for bad_state, permutation in [({**state, "step": 1}, np.arange(100) + 5),
                                   ({**state, "step": 99}, np.arange(100))]:
        checkpoint = load_checkpoint(rewrite(tmp_path, saved, train_state=np.array(
            json.dumps(bad_state)), train_permutation=permutation))
        with pytest.raises(ValueError, match="train_permutation|beyond"):
            loop.fit(checkpoint.model, checkpoint.optimizer, np.zeros((100, 64)), epochs=2,
                      batch_size=32, log=None, progress=False, history=checkpoint.history,
                      train_state=checkpoint.train_state,
                      train_permutation=checkpoint.train_permutation)


# --- third pass (issue 21): signals, resumes that name the file and the field ----------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_between_steps_say_so_and_exit_128_plus_n(tmp_path, signum):
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-m", "numvae", "train", *TOY, "--epochs",
                              "100000", "--out", "run"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = "start"  # the start-up lines, then epoch 1's: training is under way ("": ended)
    while line and not line.startswith("epoch"):
        line = child.stdout.readline()
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    checkpoint = tmp_path / "run" / "checkpoint.npz"
    assert child.returncode == 128 + signum
    assert f"interrupted ({signal.Signals(signum).name}): checkpoint saved to" in err
    assert "Traceback" not in err
    state = load_checkpoint(checkpoint).train_state
    assert state["epoch"] >= 1  # a whole state, which resumes
    code, _, err = run_cli(["train", "--resume", str(checkpoint), "--epochs",
                            str(state["epoch"] + 1), "--no-progress"], CapturedNothing())
    assert code == 0


class CapturedNothing:
    """run_cli's capsys, for a test that reads only the exit code."""

    def readouterr(self):
        return "", ""


@pytest.fixture
def cli_checkpoint(tmp_path, capsys):
    """A checkpoint of ``numvae train`` (latent_dim 3), and its arrays."""
    out = tmp_path / "run"
    assert run(["train", *TOY, "--latent-dim", "3", "--epochs", "1", "--out", str(out)],
               capsys)[0] == 0
    path = out / "checkpoint.npz"
    with np.load(path) as npz:
        return path, {key: npz[key] for key in npz.files}


def test_typed_options_are_compared_with_the_checkpoint_not_the_defaults(cli_checkpoint, capsys):
    path, _ = cli_checkpoint
    # --latent-dim 2 is the default, and still not the checkpoint's 3
    code, _, err = run(["train", "--resume", str(path), "--latent-dim", "2", "--epochs", "2"],
                       capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "--latent-dim 2" in err and str(path) in err and "latent_dim = 3" in err
    code, _, err = run(["train", "--resume", str(path), "--latent-dim", "3", "--shared-dim",
                        "16", "--epochs", "2", "--no-progress"], capsys)
    assert code == 0 and "ignoring" not in err  # typed as saved: nothing to say


@pytest.mark.parametrize("field, edit, named", [
    ("train_permutation", lambda a, s: dict(train_permutation=np.arange(1800) + 7),
     "train_permutation"),
    ("train_state", lambda a, s: dict(train_state=np.array(json.dumps({**s, "epoch": 10**20}))),
     "train_state['epoch']"),
    ("train_state", lambda a, s: dict(train_state=np.array(json.dumps(
        {k: v for k, v in s.items() if k != "rng"}))), "'rng'"),
    ("optimizer", lambda a, s: {"optimizer/v.encoder.mean.W": -np.ones_like(
        a["optimizer/v.encoder.mean.W"])}, "v.encoder.mean.W"),
    ("history", lambda a, s: dict(history=np.array(json.dumps({"epoch": [1]}))), "history"),
])
def test_a_damaged_resume_field_is_one_line_naming_the_file_and_field(cli_checkpoint, capsys,
                                                                       field, edit, named):
    path, arrays = cli_checkpoint
    state = json.loads(str(arrays["train_state"]))
    np.savez(path, **{**arrays, **edit(arrays, state)})
    code, _, err = run(["train", "--resume", str(path), "--epochs", "3"], capsys)
    assert code == 1 and len(err.splitlines()) == 1, err
    assert str(path) in err and named in err


def test_resume_of_a_conv_run_with_architecture_mlp_is_refused(tmp_path, capsys):
    out = tmp_path / "conv"
    assert run(["train", *TOY, "--architecture", "conv", "--epochs", "1", "--val-size", "1700",
                "--out", str(out)], capsys)[0] == 0
    path = out / "checkpoint.npz"
    code, _, err = run(["train", "--resume", str(path), "--architecture", "mlp", "--epochs",
                        "2"], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert f"--architecture 'mlp' differs from checkpoint {path}" in err
    assert "architecture = 'conv'" in err


def test_a_huge_meta_value_is_cut_in_the_line_naming_it(cli_checkpoint, capsys):
    path, arrays = cli_checkpoint
    state = json.loads(str(arrays["train_state"]))
    state["meta"]["data_dir"] = list(range(200_000))
    np.savez(path, **{**arrays, "train_state": np.array(json.dumps(state))})
    code, _, err = run(["train", "--resume", str(path), "--epochs", "3"], capsys)
    assert code == 1 and len(err.splitlines()) == 1 and len(err) < 400, err[:400]
    assert str(path) in err and "train_state['meta']['data_dir']" in err
