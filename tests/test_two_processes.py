"""fit(..., processes=2): each step shared by two processes, half of the batch each
(numvae.training.two_processes, eq. DP1). Its numbers are one process's up to rounding
(float64 here, so that a wrong weight of a half shows), to the bit from run to run and
across a resume; the second process never outlives the run, whatever ends it."""
import gc
import mmap
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import numvae
from helpers import run_cli
from numvae.io.datasets import Dataset
from numvae.model.free_bits import FreeBitsELBO
from numvae.model.objectives import IWAE
from numvae.nn import threads
from numvae.training import two_processes
from numvae.training.checkpoint import load_checkpoint
from numvae.training.loop import TrainingDivergedError, fit, train_step
from numvae.training.optim import Adam
from numvae.training.optim_fast import FastAdam
from numvae.training.two_processes import TwoProcesses

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="two processes need os.fork")


@pytest.fixture(autouse=True)
def blas_on_one_thread(monkeypatch):
    """processes=2 asks for it (each process's BLAS on one thread, numvae's pool off); the
    variable is read by the check, the BLAS of this test process keeps the count it
    started with."""
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    previous = threads.set_threads(1)
    yield
    threads.restore(previous)


def children():
    """The process ids of this process's living (or unreaped) children (Linux)."""
    tasks = Path(f"/proc/{os.getpid()}/task")
    if not tasks.exists():
        pytest.skip("needs /proc (Linux)")
    return [pid for task in tasks.iterdir() for pid in (task / "children").read_text().split()]


def images(n, seed=0):
    return (np.random.default_rng(seed).random((n, 784)) < 0.3).astype(np.float64)


def train(processes, data, dtype=np.float64, epochs=2, **model_options):
    model = numvae.VAE(784, 32, 2, encoder_hidden=(24,), decoder_hidden=(24,), dtype=dtype,
                       seed=0, **model_options)
    optimizer = FastAdam(model.params, lr=3e-3)
    history = fit(model, optimizer, data, epochs=epochs, batch_size=64, seed=1, log=None,
                  processes=processes)
    return model, optimizer, history


@pytest.mark.parametrize("options", [{}, dict(objective=IWAE(k=3))], ids=["elbo", "iwae"])
def test_two_processes_follow_one_process_to_rounding(options):
    # 301 images in batches of 64: the last batch (45 rows) has halves of 23 and 22
    before = children()
    one = train(1, images(301), **options)
    two = train(2, images(301), **options)
    for name, value in one[0].params.items():
        np.testing.assert_allclose(two[0].params[name], value, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(two[1].m[name], one[1].m[name], rtol=0, atol=1e-12)
    assert two[1].t == one[1].t == 10
    np.testing.assert_allclose(two[2]["train_loss"], one[2]["train_loss"], rtol=1e-12)
    np.testing.assert_allclose(two[2]["train_kl"], one[2]["train_kl"], rtol=1e-12)
    assert children() == before  # the second process is gone with the run


def test_a_conditional_model_gets_each_half_s_labels():
    data = images(130)
    labels = np.random.default_rng(2).integers(0, 10, 130)
    one = train(1, Dataset(data, labels), epochs=1, n_classes=10)
    two = train(2, Dataset(data, labels), epochs=1, n_classes=10)
    for name, value in one[0].params.items():
        np.testing.assert_allclose(two[0].params[name], value, rtol=0, atol=1e-12, err_msg=name)


def test_two_processes_repeat_to_the_bit_and_resume_exactly():
    data = images(200).astype(np.float32)
    whole = train(2, data, dtype=np.float32, epochs=2)
    again = train(2, data, dtype=np.float32, epochs=2)
    model = numvae.VAE(784, 32, 2, encoder_hidden=(24,), decoder_hidden=(24,),
                       dtype=np.float32, seed=0)
    optimizer, states = FastAdam(model.params, lr=3e-3), []
    history = fit(model, optimizer, data, epochs=1, batch_size=64, seed=1, log=None,
                  processes=2, callbacks=[states.append])
    fit(model, optimizer, data, epochs=2, batch_size=64, log=None, processes=2,
        history=history, train_state=states[-1]["train_state"],
        train_permutation=states[-1]["train_permutation"])
    for name, value in whole[0].params.items():
        assert np.array_equal(again[0].params[name], value), name
        assert np.array_equal(model.params[name], value), name


def test_the_update_by_ranges_is_fast_adams_step_to_the_bit():
    whole_model, ranges_model = (numvae.VAE(784, 16, 2, dtype=np.float32, seed=0) for _ in "ab")
    whole, ranges = FastAdam(whole_model.params, chunk=1000), FastAdam(ranges_model.params, chunk=1000)
    rng = np.random.default_rng(3)
    for _ in range(3):
        grads = {name: rng.standard_normal(p.shape).astype(np.float32)
                 for name, p in whole.params.items()}
        whole.step(grads)
        flat = np.concatenate([g.ravel() for g in grads.values()])
        numbers = ranges.next_step()
        for start, stop in ((0, 23_456), (23_456, flat.size)):  # a cut inside a slice
            ranges.update_entries(flat, start, stop, *numbers)
    for name, value in whole.params.items():
        assert np.array_equal(ranges.params[name], value), name
    assert ranges.t == whole.t == 3


def test_move_buffers_keeps_the_values_and_the_model_computes_with_them():
    model = numvae.VAE(784, 8, 2, dtype=np.float32, seed=0)
    optimizer = FastAdam(model.params)
    before = {name: p.copy() for name, p in model.params.items()}
    made = []
    grads = optimizer.move_buffers(lambda size, dtype: made.append(np.empty(size, dtype))
                                   or made[-1], model.grads)
    first = model.encoder.compressor.layers[0]
    assert len(made) == 4 and grads is made[3]  # m, v, the parameters, the gradients
    assert first.params["W"].base is made[2] and first.grads["W"].base is made[3]
    for name, value in before.items():
        assert np.array_equal(model.params[name], value)


@pytest.mark.parametrize("case, message", [
    ("three", "processes must be 1 or 2; got 3"),
    ("blas", "OPENBLAS_NUM_THREADS=1 (got none of them set)"),
    ("adam", "needs numvae.training.optim_fast.FastAdam (what numvae train uses); got Adam"),
    ("free bits", "the objective FreeBitsELBO is not a mean over the examples"),
])
def test_what_two_processes_cannot_share_is_refused_in_one_line(case, message, monkeypatch):
    model = numvae.VAE(784, 8, 2, dtype=np.float32, seed=0,
                       objective=FreeBitsELBO(free_bits=0.1) if case == "free bits" else "elbo")
    optimizer = Adam(model.params) if case == "adam" else FastAdam(model.params)
    if case == "blas":
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ValueError, match="processes") as caught:
        fit(model, optimizer, images(10).astype(np.float32), epochs=1, batch_size=4, log=None,
            processes=3 if case == "three" else 2)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_diverging_run_stops_before_its_update_and_ends_the_second_process():
    before = children()
    model = numvae.VAE(784, 32, 2, dtype=np.float32, seed=0)
    optimizer = FastAdam(model.params, lr=1e6)
    with pytest.raises(TrainingDivergedError, match="epoch 1, step"):
        fit(model, optimizer, images(640).astype(np.float32), epochs=1, batch_size=64, log=None,
            processes=2)
    assert all(np.isfinite(p).all() for p in model.params.values())
    assert children() == before


def test_the_second_process_ignores_the_stop_signals_and_ends_at_close():
    """Ctrl-C, SIGTERM and SIGHUP are the first process's to handle (it saves between two
    steps, then ends the second): the second ignores them."""
    model = numvae.VAE(784, 8, 2, dtype=np.float32, seed=0)
    optimizer = FastAdam(model.params)
    split = TwoProcesses(model, optimizer, 16)
    try:
        train_step(model, optimizer, images(16).astype(np.float32), None, (1, 1), split=split)
        status = Path(f"/proc/{split.pid}/status").read_text()
        ignored = int(next(line for line in status.splitlines()
                           if line.startswith("SigIgn:")).split()[1], 16)
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            assert ignored >> (number - 1) & 1, signal.Signals(number).name
    finally:
        split.close()
    assert str(split.pid) not in children() and not split.end.alive


def test_a_forgotten_second_process_ends_when_collected():
    model = numvae.VAE(784, 8, 2, dtype=np.float32, seed=0)
    split = TwoProcesses(model, FastAdam(model.params), 8)
    pid = str(split.pid)
    assert pid in children()
    del split
    gc.collect()
    assert pid not in children()


def shared(array):
    """True if ``array`` lies in a memory mapping (the shared memory of two processes)."""
    while array is not None:
        if isinstance(array, mmap.mmap):
            return True
        array = getattr(array, "base", None) if isinstance(array, np.ndarray) else getattr(
            array, "obj", None)
    return False


def test_a_start_that_fails_leaves_the_model_in_private_memory(monkeypatch):
    def no_fork():
        raise OSError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(two_processes.os, "fork", no_fork)
    model = numvae.VAE(784, 8, 2, dtype=np.float32, seed=0)
    optimizer = FastAdam(model.params)
    with pytest.raises(OSError, match="Resource temporarily unavailable"):
        fit(model, optimizer, images(32).astype(np.float32), epochs=1, batch_size=16,
            log=None, processes=2)
    arrays = [*model.params.values(), *model.grads.values(), *optimizer.m.values(),
              *optimizer.v.values()]
    assert not any(shared(a) for a in arrays)


def test_after_the_run_the_model_is_private_again_and_one_process_checks_its_gradient():
    model = numvae.VAE(784, 8, 2, dtype=np.float32, seed=0)
    optimizer = FastAdam(model.params)
    data = images(64).astype(np.float32)
    fit(model, optimizer, data, epochs=1, batch_size=32, log=None, processes=2)
    arrays = [*model.params.values(), *model.grads.values(), *optimizer.m.values(),
              *optimizer.v.values()]
    assert not any(shared(a) for a in arrays)
    backward = model.backward

    def spoiled(cache):  # a NaN in one gradient: caught before the update, as always
        steps = backward(cache)
        model.grads["decoder.decompressor.0.b"][1] = np.nan
        return steps
    model.backward = spoiled
    before = {name: p.copy() for name, p in model.params.items()}
    with pytest.raises(TrainingDivergedError, match="decoder.decompressor.0.b is not finite"):
        train_step(model, optimizer, data[:32], None, (2, 1))
    for name, value in before.items():
        assert np.array_equal(model.params[name], value), name


@pytest.mark.parametrize("rows, where", [(4, "this process"), (3, "the second process")])
def test_a_gradient_that_is_not_finite_in_either_half_is_named_and_not_applied(rows, where):
    """Batches of 7: the halves have 4 rows here and 3 there; the half with ``rows`` rows
    gets a NaN in one bias gradient (the loss stays finite)."""
    model = numvae.VAE(784, 8, 2, dtype=np.float32, seed=0)
    backward = model.backward

    def spoiled(cache):
        steps = backward(cache)
        if len(cache["x"]) == rows:
            model.grads["decoder.decompressor.0.b"][1] = np.nan
        return steps
    model.backward = spoiled  # before the fork: the second process has it too
    optimizer = FastAdam(model.params)
    before = {name: p.copy() for name, p in model.params.items()}
    with pytest.raises(TrainingDivergedError, match="epoch 1, step 1: the gradient of "
                                                    "decoder.decompressor.0.b is not finite"):
        fit(model, optimizer, images(14).astype(np.float32), epochs=1, batch_size=7, log=None,
            processes=2)
    for name, value in before.items():
        assert np.array_equal(model.params[name], value), (where, name)
    assert optimizer.t == 0


def test_after_a_failed_half_the_next_steps_pair_the_right_halves():
    """The first process's half raises (its 4 rows of 7); the step is given up on both
    sides, and the next steps are one process's again (float64, to 1e-12)."""
    one, two = (numvae.VAE(784, 8, 2, dtype=np.float64, seed=0) for _ in "ab")
    forward, calls = two.forward, []

    def failing_once(x, *args, **kwargs):
        if len(x) == 4 and not calls:
            calls.append(1)
            raise RuntimeError("a failure in this process's half")
        return forward(x, *args, **kwargs)
    two.forward = failing_once
    optimizers = FastAdam(one.params), FastAdam(two.params)
    data = images(21)
    split = TwoProcesses(two, optimizers[1], 7)
    try:
        with pytest.raises(RuntimeError, match="a failure in this process's half"):
            train_step(two, optimizers[1], data[:7], None, (1, 1), split=split)
        one.draw_eps(7)  # the failed step drew its noise: one process draws it too
        for step in (1, 2):
            batch = data[7 * step: 7 * step + 7]
            train_step(one, optimizers[0], batch, None, (1, step))
            train_step(two, optimizers[1], batch, None, (1, step), split=split)
    finally:
        split.close()
    for name, value in one.params.items():
        np.testing.assert_allclose(two.params[name], value, rtol=0, atol=1e-12, err_msg=name)


def test_a_run_ends_cleanly_where_children_are_reaped_by_the_system():
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps them
    try:
        train(2, images(130), epochs=1)
    finally:
        signal.signal(signal.SIGCHLD, previous)


def test_a_stop_asked_for_ends_a_wait_for_a_second_process_that_does_not_answer(monkeypatch):
    monkeypatch.setattr(two_processes, "STOP_GRACE_SECONDS", 0.2)
    model = numvae.VAE(784, 8, 2, dtype=np.float32, seed=0)
    optimizer, interrupt = FastAdam(model.params), {"requested": None}
    split = TwoProcesses(model, optimizer, 16, interrupt)
    x = images(16).astype(np.float32)
    try:
        train_step(model, optimizer, x, None, (1, 1), split=split)
        os.kill(split.pid, signal.SIGSTOP)
        interrupt["requested"] = signal.SIGINT
        with pytest.raises(two_processes.SecondProcessError, match="has not answered for"):
            train_step(model, optimizer, x, None, (1, 2), split=split)
    finally:
        os.kill(split.pid, signal.SIGCONT)
        split.close()
    assert str(split.pid) not in children()


TOY = ["train", "--dataset", "toy", "--latent-dim", "2", "--shared-dim", "16", "--no-plots",
       "--batch-size", "64"]


def test_numvae_train_processes_2_resumes_exactly_and_asks_for_one_blas_thread(
        tmp_path, capsys, monkeypatch):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_cli([*TOY, "--epochs", "2", "--processes", "2", "--out", str(straight)],
                   capsys)[0] == 0
    assert run_cli([*TOY, "--epochs", "1", "--processes", "2", "--out", str(split)],
                   capsys)[0] == 0
    assert run_cli(["train", "--resume", str(split / "checkpoint.npz"), "--epochs", "2",
                    "--processes", "2"], capsys)[0] == 0
    a = load_checkpoint(straight / "checkpoint.npz").model.params
    b = load_checkpoint(split / "checkpoint.npz").model.params
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(variable, raising=False)
    code, _, err = run_cli([*TOY, "--epochs", "1", "--processes", "2",
                            "--out", str(tmp_path / "refused")], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert "start Python with OPENBLAS_NUM_THREADS=1 (got none of them set)" in err


SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import numvae
    from numvae.training.loop import fit
    from numvae.training.optim_fast import FastAdam
    data = (np.random.default_rng(0).random((4000, 784)) < 0.3).astype(np.float32)
    model = numvae.VAE(784, 64, 2, dtype=np.float32, seed=0)
    optimizer = FastAdam(model.params)
    def started(state):
        print("epoch done", flush=True)
    try:
        fit(model, optimizer, data, epochs=1000, batch_size=32, log=None, processes=2,
            callbacks=[started])
    except KeyboardInterrupt as stop:
        print("stopped between steps, signal", stop.signum, flush=True)
""")


def test_ctrl_c_to_the_process_group_stops_the_run_and_both_processes():
    """A terminal's Ctrl-C reaches every process of the group: the second ignores it, the
    first stops at a step boundary (as with one process) and ends the second."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    run = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert run.stdout.readline().strip() == "epoch done"
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 0, err
    assert f"stopped between steps, signal {int(signal.SIGINT)}" in out
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the group is empty: the second process ended too
        try:
            os.killpg(run.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a process of the run outlived it")
