"""Smoke tests of the benchmark workers (benchmarks/speed/) and of the iwae_table experiment
(experiments/iwae_table/) on tiny data.

The benchmarks are run by hand (their figures are never asserted on time), so nothing else
would notice when a change to the package breaks one of them. Each worker runs here
in-process, at the test suite's one BLAS thread, on a few hundred random images.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speed():
    """The speed sections' workers, by the names the driver calls them."""
    from benchmarks.speed import adam, checks, profile, training
    return SimpleNamespace(worker_numvae=training.worker_numvae, GemmFloor=training.GemmFloor,
                           worker_adam=adam.worker_adam, worker_profile=profile.worker_profile,
                           instrument=profile.instrument, Timers=profile.Timers,
                           worker_gradcheck=checks.worker_gradcheck,
                           worker_iwae=checks.worker_iwae)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """train.npy / test.npy as the benchmark's own cache worker writes them (float32 in [0, 1])."""
    directory = tmp_path_factory.mktemp("bench_cache")
    rng = np.random.default_rng(0)
    np.save(directory / "train.npy", rng.random((300, 784), dtype=np.float32))
    np.save(directory / "test.npy", rng.random((40, 784), dtype=np.float32))
    return str(directory)


def test_training_worker_times_steps_and_the_gemm_floor(speed, cache):
    result = speed.worker_numvae(dict(cache=cache, arch="slides", dtype="float32", batch=64,
                                      seed=0, n_examples=300, epochs=1, floor_rounds=1,
                                      best_rounds=1))
    assert result["steps"] == 5  # ceil(300 / 64)
    assert result["examples"] == 300
    for key in ("examples_per_second", "step_ms", "floor_ms", "step_over_floor", "floor_gflops",
                "best_step_ms"):
        assert np.isfinite(result[key]) and result[key] > 0, key
    assert np.isfinite(result["final_loss"])
    assert result["optimizer"] == "fast"  # FastAdam, as `numvae train`


def test_training_worker_takes_the_textbook_adam(speed, cache):
    result = speed.worker_numvae(dict(cache=cache, arch="slides", dtype="float32", batch=100,
                                      seed=0, n_examples=300, epochs=1, floor_rounds=0,
                                      optimizer="adam"))
    assert result["steps"] == 3 and result["optimizer"] == "adam"
    assert np.isfinite(result["final_loss"])


@pytest.mark.parametrize("optimizer, chunk", [("adam", None), ("fast", 8192)])
def test_adam_worker_times_one_optimizer(speed, cache, optimizer, chunk):
    result = speed.worker_adam(dict(cache=cache, arch="slides", seed=0, batch=64,
                                    optimizer=optimizer, chunk=chunk, warm_steps=2, rounds=2,
                                    block=3))
    assert result["n_params"] == 444_404  # the slides' model
    assert result["ms"] > 0 and result["best_ms"] <= result["ms"]


def test_the_driver_runs_a_worker_in_a_fresh_interpreter(cache):
    """``python -m benchmarks.speed --worker``, as the driver starts every configuration."""
    from benchmarks.speed.common import run_worker
    result = run_worker(dict(kind="adam", cache=cache, arch="slides", seed=0, batch=16,
                             optimizer="fast", chunk=8192, warm_steps=1, rounds=1, block=2), 1)
    assert result["n_params"] == 444_404 and result["ms"] > 0


def test_the_driver_names_its_sections():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--help"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert ("--sections {matrix,headline,adam,iwae,gradcheck,tests,profile,conv-layers,"
            "conv-vae,iwae-training,explorer}") in proc.stdout


def test_a_section_with_its_own_command_line_runs_from_the_driver():
    """conv-layers, as ``--sections conv-layers`` runs it (here on a tiny batch): its report."""
    from benchmarks.speed.common import QUICK_OPTIONS, run_module_section
    assert set(QUICK_OPTIONS) == {"conv-layers", "conv-vae", "iwae-training", "explorer"}
    report = run_module_section("conv-layers", ["--batch", "2", "--steps", "1", "--repeats",
                                                "1", "--no-torch"])
    assert report.startswith("CONV-LAYERS (python -m benchmarks.speed.conv_layers --batch 2")
    assert "numvae fast" in report


def test_gemm_floor_counts_the_step_s_products(speed):
    import numvae
    model = numvae.VAE(784, shared_dim=128, latent_dim=2, seed=0)
    floor = speed.GemmFloor(model, batch=16)
    # slides' Dense layers: 784-256, 256-128, two heads 128-2, then 2-32, 32-256, 256-784;
    # three products each, but the first layer skips dy W^T
    assert len(floor.products) == 3 * 7 - 1
    macs = sum(a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in floor.products)
    assert floor.flops == 2 * macs


def test_profile_worker_runs_the_package_step_unchanged(speed, cache):
    result = speed.worker_profile(dict(cache=cache, arch="slides", dtype="float32", batch=32,
                                       seed=0, profile_epochs=0, profile_rounds=1,
                                       profile_block=2))
    assert result["identical"] is True
    assert result["optimizer"] == "FastAdam"  # what `numvae train` uses
    parts = result["profiles"][0]["parts"]
    # the timers wrap the package's own functions (no pasted copies)
    assert parts["optimizer step (FastAdam.step)"] > 0
    assert parts["Dense.forward (x @ W + b)"] > 0
    assert parts["Dense.backward (x^T dy, sum dy, dy W^T)"] > 0
    assert result["profiles"][0]["floor_ms"] > 0


def test_profile_unwraps_everything_it_wrapped(speed):
    import numvae
    from numvae.nn import layers
    from numvae.training import optim_fast
    model = numvae.VAE(784, shared_dim=128, latent_dim=2, seed=0)
    optimizer = optim_fast.FastAdam(model.params)
    before = (layers.Dense.forward, optim_fast.FastAdam.step, numvae.VAE.backward)
    undo = speed.instrument(speed.Timers(), optimizer)
    assert layers.Dense.forward.__wrapped__ is before[0]
    undo()
    assert (layers.Dense.forward, optim_fast.FastAdam.step, numvae.VAE.backward) == before


def test_iwae_profile_times_each_decoder_layer_and_unwraps_them(speed):
    from benchmarks.speed import iwae_profile
    from benchmarks.speed.iwae_training import make_numvae
    result = iwae_profile.run_profile(k=3, batch=2, rounds=1, block=1)
    parts = result["parts"]
    assert parts["decoder Dense(200, 784) backward (x^T dy, sum dy, dy W^T)"] > 0
    assert parts["softplus (abs, exp, log1p, max)"] > 0 and result["floor_ms"] > 0
    assert "Dense.forward (x @ W + b)" not in parts  # every Dense timed as itself
    model, optimizer = make_numvae(3)
    layer = model.decoder.decompressor.layers[-2]
    undo = speed.instrument(speed.Timers(), optimizer, iwae_profile.iwae_targets(model, optimizer))
    assert "forward" in vars(layer)  # this one layer's, not the class's
    undo()
    assert "forward" not in vars(layer) and "backward" not in vars(layer)
    table = iwae_profile.table(result, 1)
    assert "| plain step / GEMM floor |" in table


def test_gradcheck_and_iwae_workers(speed, cache):
    check = speed.worker_gradcheck(dict(cache=cache, arch="slides", batch=4, seed=0, n_entries=2,
                                        n_directions=2))
    assert check["arrays"] == 14 and check["entries"] == 14 * 2
    assert check["max_error"] < 1e-5 and check["direction_max_error"] < 1e-4
    iwae = speed.worker_iwae(dict(cache=cache, arch="slides", dtype="float32", seed=0,
                                  n_images=5, k=20))
    assert np.isfinite(iwae["log_px"]) and iwae["rows"] == 100


def load_iwae_table():
    """experiments/iwae_table/iwae_table.py, the module ``python -m experiments.iwae_table`` runs."""
    from experiments.iwae_table import iwae_table
    return iwae_table


def small_row(mnist_dir, out, *options):
    """iwae_table's options for a row trained on 100 images, written into ``out``."""
    return [*options, "--n-train", "100", "--data-dir", str(mnist_dir), "--out", str(out)]


def test_iwae_table_runs_stops_and_resumes(mnist_dir, tmp_path):
    """experiments/iwae_table on 100 training images: two stages, then a third resumed
    from the checkpoint; the results and the table are written."""
    import json
    table = load_iwae_table()
    out = tmp_path / "iwae_k2"
    common = small_row(mnist_dir, out, "--model", "iwae", "--k", "2", "--eval-k", "4",
                       "--eval-images", "10")
    table.main(common + ["--stages", "2"])
    first = json.loads((out / "results.json").read_text())
    assert [stage["epoch"] for stage in first["stages"]] == [1, 4]
    table.main(common + ["--stages", "3"])
    results = json.loads((out / "results.json").read_text())
    assert [stage["epoch"] for stage in results["stages"]] == [1, 4, 13]
    assert results["stages"][:2] == first["stages"] and len(results["train_loss"]) == 13
    assert "iwae_k2 | 13 |" in (tmp_path / "iwae_table.md").read_text()


def test_iwae_table_final_covers_every_test_image_and_resumes(mnist_dir, tmp_path, capsys):
    """--final: the last checkpoint on all 10,000 test images, chunk by chunk, in final.json;
    chunk 0 is taken from the stage-end evaluation (same images, same seed), and a stopped
    evaluation resumes at its next chunk (sentinel values show what was reused)."""
    import json
    table = load_iwae_table()
    out = tmp_path / "vae_k1"
    common = small_row(mnist_dir, out, "--model", "vae", "--k", "1", "--eval-k", "2",
                       "--eval-images", "2500")
    table.main(common + ["--stages", "1"])
    results = json.loads((out / "results.json").read_text())
    stage = results["stages"][0]
    # chunk 0 as a fresh evaluation gives it: the stage-end evaluation (seed = epoch = 1)
    from numvae.diagnostics import evaluate
    from numvae.training.checkpoint import load_checkpoint
    model = load_checkpoint(out / "resume" / "checkpoint.npz").model
    _, test_images = table.load_data(table.parse_args(common))
    fresh = evaluate.iwae_log_likelihood(model, test_images[:2500], k=2, seed=1)
    np.testing.assert_array_equal(fresh["per_example"], stage["per_example_log_px"])
    # sentinels in the stage's figures: --final must take chunk 0 from there
    stage["per_example_log_px"] = [-1000.0] * 2500
    (out / "results.json").write_text(json.dumps(results))
    table.main(common + ["--final", "--final-chunk", "2500"])
    final = json.loads((out / "final.json").read_text())
    assert final["n_images"] == 10_000 and final["epoch"] == 1
    assert final["per_example_log_px"][:2500] == [-1000.0] * 2500
    assert -1000.0 not in final["per_example_log_px"][2500:]
    assert np.isclose(final["nll"], -np.mean(final["per_example_log_px"]))
    text = (tmp_path / "iwae_table.md").read_text().split("On all the test images")[1]
    assert "| vae_k1 | 1 |" in text and "(2, 10000)" in text
    # stopped after two chunks (sentinels in them): the rerun keeps them, adds two chunks
    stopped = dict(final, per_example_log_px=[-2000.0] * 5000)
    del stopped["nll"]
    (out / "final.json").write_text(json.dumps(stopped))
    table.main(common + ["--final", "--final-chunk", "2500"])
    again = json.loads((out / "final.json").read_text())
    assert again["per_example_log_px"][:5000] == [-2000.0] * 5000
    assert again["per_example_log_px"][5000:] == final["per_example_log_px"][5000:]
    # another chunk size for the same epoch and K (only the seeds would change): a complete
    # evaluation is kept as it is, a stopped one continued in its own chunks; it says so
    capsys.readouterr()
    table.main(common + ["--final", "--final-chunk", "5000"])
    assert "kept, and continued in chunks of 2500, not 5000" in capsys.readouterr().out
    assert json.loads((out / "final.json").read_text())["per_example_log_px"] \
        == again["per_example_log_px"]
    (out / "final.json").write_text(json.dumps(stopped))
    table.main(common + ["--final", "--final-chunk", "5000"])
    assert "5000 test images of epoch 1" in capsys.readouterr().out
    resumed = json.loads((out / "final.json").read_text())
    assert resumed["per_example_log_px"] == again["per_example_log_px"]  # the same chunks
    assert resumed["chunk"] == 2500 and not list(out.glob("final_epoch*.json"))


def test_iwae_table_final_refuses_a_row_never_trained_and_a_bad_chunk(tmp_path, capsys):
    table = load_iwae_table()
    with pytest.raises(SystemExit, match="train the row through a stage first"):
        table.main(["--final", "--out", str(tmp_path / "none")])
    with pytest.raises(SystemExit):
        table.main(["--final", "--final-chunk", "0", "--out", str(tmp_path / "none")])
    assert "--final-chunk: expected an integer from 1 to 10,000, got '0'" in capsys.readouterr().err


def test_the_pytorch_sides_run_the_package_mirror(cache):
    """The benchmarks' PyTorch models are ``numvae.interop.to_torch``'s (no copy of the model)."""
    pytest.importorskip("torch")
    from benchmarks.speed import conv_vae, iwae_training, torch_side
    result = torch_side.worker_torch(dict(cache=cache, arch="slides", seed=0, batch=100,
                                          n_examples=300, epochs=1, threads=1))
    assert result["steps"] == 3 and np.isfinite(result["final_loss"])
    run = iwae_training.torch_runner(k=2, batch=4, threads=1)
    assert np.isfinite(run((np.random.default_rng(0).random((4, 784)) < 0.3).astype(np.float32)))
    assert conv_vae.worker_torch(steps=1, batch=2) > 0


def test_tutorial_times_compares_a_tutorial_with_an_older_checkout(tmp_path, capsys):
    """benchmarks.speed.tutorial_times: a baseline without numvae is one line; with one (here
    this checkout's own numvae and one tutorial copied), the ratio is reported and written."""
    from benchmarks.speed import tutorial_times
    with pytest.raises(SystemExit, match=r"--baseline .*: expected a folder holding "
                                         r"numvae/__init__.py, found none"):
        tutorial_times.main(["--baseline", str(tmp_path)])
    shutil.copytree(REPO / "numvae", tmp_path / "numvae")
    with pytest.raises(SystemExit, match=r"--only 3: expected tutorial numbers .* matched none"):
        tutorial_times.main(["--baseline", str(tmp_path), "--only", "3"])
    (tmp_path / "tutorials").mkdir()
    for name in ("03_elbo.py", "_common.py"):
        shutil.copy(REPO / "tutorials" / name, tmp_path / "tutorials" / name)
    out = tmp_path / "times.json"
    tutorial_times.main(["--baseline", str(tmp_path), "--only", "03", "--rounds", "1",
                         "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert list(rows) == ["03_elbo.py"]
    assert rows["03_elbo.py"]["cpu_now"] > 0 and rows["03_elbo.py"]["cpu_before"] > 0
    assert "| 03_elbo.py |" in capsys.readouterr().out


def test_adam_layouts_times_splits_layouts_and_steps(tmp_path):
    """benchmarks.speed.adam_layouts: every size, every FastAdam layout, both models; and it
    leaves the package's settings (thread count, min_entries) as it found them."""
    from benchmarks.speed import adam_layouts
    from numvae.nn import threads
    from numvae.training.optim_fast import FastAdam
    path = tmp_path / "layouts.json"
    before = (threads.thread_count(), threads._settings["min_entries"])
    adam_layouts.main(["--rounds", "1", "--calls", "1", "--rows", "4", "--batch", "8",
                       "--json", str(path)])
    result = json.loads(path.read_text())
    assert [row["entries"] for row in result["split"]] == [4 * 784]
    assert list(result["layouts"]) == list(FastAdam.LAYOUTS)
    assert [(row["arch"], row["batch"]) for row in result["steps"]] == [("slides", 8),
                                                                       ("examples", 8)]
    assert all(row["layout"] in FastAdam.LAYOUTS for row in result["steps"])
    assert (threads.thread_count(), threads._settings["min_entries"]) == before


def test_bernoulli_blocks_alternates_on_and_off_and_restores_the_settings(tmp_path):
    from benchmarks.speed import bernoulli_blocks
    from numvae.model import likelihoods
    before = (likelihoods.BLOCK_ENTRIES, likelihoods.BLOCKED_MIN_ENTRIES)
    result = bernoulli_blocks.main(["--rounds", "2", "--steps", "2", "--k", "2", "--batch", "4",
                                    "--json", str(tmp_path / "b.json")])
    assert [len(result["ms_per_step"][mode]) for mode in ("on", "off")] == [2, 2]
    assert result["cpu"]  # every figure names its CPU
    assert all(t > 0 for t in result["ms_per_step"]["on"] + result["ms_per_step"]["off"])
    assert json.loads((tmp_path / "b.json").read_text())["off_over_on"] == result["off_over_on"]
    assert (likelihoods.BLOCK_ENTRIES, likelihoods.BLOCKED_MIN_ENTRIES) == before


def test_handoff_times_each_way_in_an_interpreter_of_its_own(tmp_path):
    from benchmarks.speed import handoff
    result = handoff.main(["--rounds", "1", "--calls", "3", "--batch", "8",
                           "--json", str(tmp_path / "h.json")])
    assert list(result["median_us"]) == list(handoff.WAYS) and result["cpu"]
    assert all(0 < us < 1e6 for us in result["median_us"].values())
    assert json.loads((tmp_path / "h.json").read_text())["rounds"] == result["rounds"]


def test_the_iwae_benchmark_s_step_on_two_processes_is_the_step_on_one(monkeypatch):
    from benchmarks.speed import iwae_training
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # two processes ask for it
    x = (np.random.default_rng(0).random((4, 784)) < 0.3).astype(np.float32)
    one, two = iwae_training.numvae_runner(2, 4), iwae_training.numvae_runner(2, 4, split=True)
    try:
        for _ in range(2):
            assert two(x) == pytest.approx(one(x), rel=1e-5)
    finally:
        two.close()


def test_two_processes_benchmark_takes_both_steps_apart(tmp_path, monkeypatch):
    from benchmarks.speed import two_processes
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # two processes ask for it
    result = two_processes.main(["--arch", "slides", "--batch", "8", "--steps", "2",
                                 "--rounds", "2", "--json", str(tmp_path / "t.json")])
    (row,) = result["rows"]
    assert (row["arch"], row["batch"]) == ("slides", 8) and result["cpu"]
    ms = row["ms"]
    assert ms["one: step"] == pytest.approx(ms["one: forward + backward"] + ms["one: Adam"])
    assert ms["two: step"] == pytest.approx(ms["two: gradient"] + ms["two: update"])
    assert all(len(times) == 2 and min(times) > 0 for times in row["rounds"].values())
    assert json.loads((tmp_path / "t.json").read_text())["rows"][0]["one_over_two"] == \
        row["one_over_two"]
