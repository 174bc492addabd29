"""The report of experiments/rate_distortion: from results/each_run/*.json, the summary
(results.json), the tables (results.md) and the figures (rate_distortion.png,
collapse.png), in results/. Works on whatever runs have finished.

    python -m experiments.rate_distortion --stage report
"""
import json
import math
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from numvae.io.files import atomic_write_bytes  # noqa: E402
from numvae.plots.save import save  # noqa: E402

CPU = 'Intel(R) Xeon(R) Processor, 2 cores shared with other jobs (load 10-14), 1 thread'


def load_runs(folder):
    return {path.stem: json.loads(path.read_text()) for path in sorted(Path(folder).glob("*.json"))}


def summary_row(run):
    final, recipe = run["final_1000"], run["recipe"]
    return dict(name=recipe["name"], latent=recipe["latent"], beta=recipe["beta"],
                epochs=recipe["epochs"], free_bits=recipe.get("free_bits", 0.0),
                kl_schedule=recipe.get("kl_schedule"),
                rate=final["rate"], distortion=final["distortion"],
                negative_elbo=final["negative_elbo"], mutual_info=final["mutual_info"],
                mutual_info_se=final["mutual_info_se"], mutual_info_cap=final["mutual_info_cap"],
                marginal_kl=final["marginal_kl"], active_units=final["active_units"],
                test_negative_elbo_all=run["test_all"]["negative_elbo"],
                test_n_all=run["test_all"]["n"], train_seconds=run["train_seconds"],
                wall_seconds=run["wall_seconds"])


def sweep_rows(runs, latent):
    rows = [summary_row(r) for r in runs.values()
            if r["recipe"]["name"].startswith(f"sweep_z{latent}_")]
    return sorted(rows, key=lambda row: row["beta"])


def _plane(ax, rows, latent):
    """One latent width's points in the (R, D) plane, the -ELBO line through beta = 1 and
    each point's slope-beta tangent (the beta-weighted loss D + beta R is constant along it)."""
    rates = np.array([r["rate"] for r in rows])
    dists = np.array([r["distortion"] for r in rows])
    betas = np.array([r["beta"] for r in rows])
    colours = plt.cm.viridis(np.linspace(0, 1, len(rows)))
    span = max(rates.max(), 1.0) * 0.08
    for row, colour in zip(rows, colours):
        r, d, b = row["rate"], row["distortion"], row["beta"]
        ax.plot([r - span, r + span], [d + b * span, d - b * span], color=colour, lw=1)
        ax.scatter([r], [d], color=colour, s=30, zorder=3,
                   label=f"beta {b:g}: AU {row['active_units']}, I_q {row['mutual_info']:.2f}")
    one = [r for r in rows if r["beta"] == 1.0]
    if one:
        total = one[0]["negative_elbo"]
        grid = np.linspace(0, max(rates.max(), total - dists.min()) * 1.05, 50)
        ax.plot(grid, total - grid, "k--", lw=1, label=f"R + D = {total:.1f} (-ELBO at beta 1)")
    ax.plot(rates, dists, color="grey", lw=0.5, zorder=1)  # the points in beta order
    ax.set_xlabel("rate R (nats)")
    ax.set_ylabel("distortion D (nats)")
    ax.set_title(f"latent {latent}: beta {betas.min():g} to {betas.max():g}")
    ax.set_ylim(dists.min() - 5, dists.max() + 5)
    ax.set_xlim(-1, rates.max() * 1.08 + 1)
    ax.legend(fontsize=6, loc="upper right")


def rate_distortion_figure(runs):
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, latent in zip(axes, (2, 32)):
        rows = sweep_rows(runs, latent)
        if rows:
            _plane(ax, rows, latent)
    fig.suptitle("The rate-distortion plane (Alemi et al. 2018), mnist-mini, 1,000 test images; "
                 "short lines: slope -beta")
    fig.tight_layout()
    return fig


COLLAPSE = (("collapse_plain", "beta 5"), ("collapse_free_bits", "beta 5, free bits 0.5"),
            ("collapse_cyclical", "beta 5, cyclical"))


def collapse_figure(runs):
    """Per epoch, for each collapse run: the KL of each dimension, active units, I_q."""
    present = [(name, label) for name, label in COLLAPSE if name in runs]
    fig, axes = plt.subplots(3, max(1, len(present)), figsize=(4.2 * max(1, len(present)), 9),
                             squeeze=False, sharey="row")
    for column, (name, label) in enumerate(present):
        history = runs[name]["history"]
        epochs = history["epoch"]
        per_dim = np.array([history["kl_per_dim"][f"z{j}"] for j in range(len(history["kl_per_dim"]))])
        axes[0, column].plot(epochs, per_dim.T, lw=0.8)
        axes[0, column].set_title(label)
        axes[0, column].set_ylabel("KL per dimension (nats)")
        axes[1, column].plot(epochs, history["active_units"], "k-")
        axes[1, column].set_ylabel("active units (of 32)")
        axes[2, column].plot(epochs, history["mutual_info"], "b-", label="I_q")
        axes[2, column].plot(epochs, history["rate"], "r--", label="rate R")
        axes[2, column].axhline(math.log(1000), color="grey", lw=0.5, label="log 1000")
        axes[2, column].set_ylabel("nats")
        axes[2, column].set_xlabel("epoch")
        axes[2, column].legend(fontsize=7)
    fig.suptitle("Collapse (latent 32, beta 5) and two cures, on 1,000 test images per epoch")
    fig.tight_layout()
    return fig


SATURATED = 0.1  # an I_q within this of log F is at the estimator's cap (LI4)


def _info_cells(row):
    """I_q and the marginal KL as table cells: at the cap, I_q is a lower bound of the true
    mutual information and R - I_q an upper bound of the marginal KL."""
    info = f"{row['mutual_info']:.2f} +- {row['mutual_info_se']:.2f}"
    marginal = f"{row['marginal_kl']:.2f}"
    if row["mutual_info"] > row["mutual_info_cap"] - SATURATED:
        return f">= {info} (cap)", f"<= {marginal}"
    return info, marginal


def _table(rows):
    lines = ["| run | latent | beta | R | D | -ELBO | I_q | marginal KL | active units | "
             "test -ELBO (2,000) | train s (wall) |", "|" + "---|" * 11]
    for r in rows:
        info, marginal = _info_cells(r)
        lines.append(f"| {r['name']} | {r['latent']} | {r['beta']:g} | {r['rate']:.2f} | "
                     f"{r['distortion']:.2f} | {r['negative_elbo']:.2f} | {info} | {marginal} | "
                     f"{r['active_units']} | {r['test_negative_elbo_all']:.2f} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines)


def write_report(runs_folder, out_folder):
    runs = load_runs(runs_folder)
    out = Path(out_folder)
    summary = dict(cpu=CPU, python=platform.python_version(),
                   sweep={str(latent): sweep_rows(runs, latent) for latent in (2, 32)},
                   collapse=[summary_row(runs[name]) for name, _ in COLLAPSE if name in runs],
                   total_train_seconds=sum(r["train_seconds"] for r in runs.values()))
    atomic_write_bytes(out / "results.json", (json.dumps(summary, indent=1) + "\n").encode())
    text = ["# The rate-distortion plane and posterior collapse: results", "",
            "Made by `python -m experiments.rate_distortion` then `--stage report`; "
            f"CPU: {CPU}. R, D, I_q (+- its standard error, at most log 1000 = 6.91), the "
            "marginal KL = R - I_q and the active units on the first 1,000 test images of "
            "mnist-mini (binarised with seed 2018), in nats per image; the test -ELBO on all "
            "2,000. Where I_q is within 0.1 of log 1000 the estimate is at its cap: the true "
            "mutual information is higher (marked >=) and the marginal KL lower (<=). `train s`: "
            "wall-clock seconds of training on the shared machine, not CPU time.", ""]
    for latent in (2, 32):
        text += [f"## Beta sweep, latent {latent}", "", _table(sweep_rows(runs, latent)), ""]
    text += ["## Collapse and its cures (latent 32, beta 5)", "",
             _table(summary["collapse"]), "",
             f"Training time of all {len(runs)} runs: {summary['total_train_seconds'] / 60:.0f} "
             f"minutes (CPU time per run is far less: the machine was shared).", ""]
    atomic_write_bytes(out / "results.md", "\n".join(text).encode())
    save(rate_distortion_figure(runs), out / "rate_distortion.png")
    save(collapse_figure(runs), out / "collapse.png")
    plt.close("all")
    print(f"report of {len(runs)} runs written to {out}")
