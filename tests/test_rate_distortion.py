"""experiments/rate_distortion: the runs it plans (without training them) and its report on
a run of one epoch on 200 images."""
import json

import numpy as np

from experiments.rate_distortion import rate_distortion as rd
from experiments.rate_distortion import report


def test_the_sweep_spans_beta_0_1_to_10_for_both_latents():
    recipes = rd.sweep_recipes()
    for latent in (2, 32):
        betas = sorted(r["beta"] for r in recipes if r["latent"] == latent)
        assert len(betas) >= 9 and betas[0] == 0.1 and betas[-1] == 10.0
    assert all(r["epochs"] >= 30 for r in recipes)
    assert len({r["name"] for r in rd.all_recipes()}) == len(rd.all_recipes())


def test_the_collapse_runs_end_at_full_beta_with_their_cure():
    plain, free_bits, cyclical = rd.collapse_recipes()
    assert rd.make_model(plain).objective.name == "elbo"
    assert rd.make_model(free_bits).objective.free_bits == 0.5
    schedule = rd.fit_options(cyclical)["kl_schedule"]
    steps_per_epoch = -(-10_000 // 128)
    last_step = cyclical["epochs"] * steps_per_epoch
    assert schedule.factor(last_step, steps_per_epoch) == 1.0   # the last epochs at beta 5
    assert schedule.factor(1, steps_per_epoch) == 0.0


def test_a_run_is_saved_skipped_on_restart_and_reported(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = (rng.random((200, 784)) > 0.7).astype(np.float32)
    monkeypatch.setattr(rd, "RUNS", tmp_path / "each_run")
    monkeypatch.setattr(rd, "load_data", lambda: (images, images[:100]))
    recipe = dict(name="sweep_z2_beta1", latent=2, beta=1.0, epochs=1)
    lines = []
    rd.run_stage([recipe], log=lines.append)
    saved = json.loads((tmp_path / "each_run" / "sweep_z2_beta1.json").read_text())
    assert saved["final_1000"]["n_images"] == 100 and len(saved["history"]["rate"]) == 1
    rd.run_stage([recipe], log=lines.append)
    assert lines[-1] == "sweep_z2_beta1: done already (sweep_z2_beta1.json)"
    report.write_report(tmp_path / "each_run", tmp_path)
    table = (tmp_path / "results.md").read_text()
    assert "| sweep_z2_beta1 | 2 | 1 |" in table
    assert (tmp_path / "rate_distortion.png").stat().st_size > 1000
