"""The table of ``python -m experiments.iwae_table --table``: every row's last stage (and
its ``--final`` evaluation on all the test images) beside Burda et al.'s figures, the test
NLL at each stage's end, paired differences and the paper's orderings, and the figure
results/nll_vs_epochs.png. Reads the rows' results.json and final*.json only."""
from pathlib import Path

from experiments.iwae_table import paper
from experiments.iwae_table.orderings import (
    difference_text,
    ordering_lines,
    paired,
)
from experiments.iwae_table.result_files import read_row

RESULTS = Path(__file__).resolve().parent / "results"

TABLE_HEAD = ("| row | epochs | test NLL (K, images) | test -ELBO | log p(x) - ELBO | paper NLL "
              "| NLL - paper | active units | paper's |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def paper_nll(args):
    """The paper's NLL for the row's layers, model and k (None: the paper has no such row)."""
    key = paper.row_key(args)
    return None if key is None else paper.NLL[key]


def table_row(name, figures, args):
    """One row of the table: ``figures`` (a stage's or the final evaluation's) beside the
    paper's NLL and active units for the row's layers, model and k."""
    nll_paper = paper_nll(args)
    gap = f"{figures['nll'] - nll_paper:+.2f}" if nll_paper else ""
    active = "+".join(str(n) for n in figures.get("active_units", []))
    key = paper.row_key(args)
    paper_active = "" if key is None else paper.ACTIVE[key]
    return (f"| {name} | {figures['epoch']} | {figures['nll']:.2f} +- {figures['nll_se']:.2f} "
            f"({figures['k']}, {figures['n_images']}) | {figures['negative_elbo']:.2f} | "
            f"{figures['negative_elbo'] - figures['nll']:.2f} | {nll_paper or ''} | {gap} | "
            f"{active} | {paper_active} |")


def write_table(folder=RESULTS):
    """results/iwae_table.md: every row's last stage beside the paper, and paired
    differences of rows evaluated at the same epoch on the same images."""
    rows = {}
    for path in sorted(folder.glob("*/results.json")):
        row = read_row(path.parent)
        rows[row["row"]] = row
    lines = list(TABLE_HEAD)
    for name, result in rows.items():
        lines.append(table_row(name, result["stages"][-1], result["args"]))
    epochs = sorted({stage["epoch"] for result in rows.values() for stage in result["stages"]})
    lines += ["", "Test NLL at the end of each stage (nats):", "",
              "| row | " + " | ".join(f"epoch {epoch}" for epoch in epochs) + " |",
              "|---|" + "---:|" * len(epochs)]
    for name, result in rows.items():
        by_epoch = {stage["epoch"]: stage for stage in result["stages"]}
        cells = [f"{by_epoch[e]['nll']:.2f}" if e in by_epoch else "" for e in epochs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences (same epoch, same test images): NLL_a - NLL_b +- SE", ""]
    names = list(rows)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            stages_a = {s["epoch"]: s for s in rows[a]["stages"]}
            stages_b = {s["epoch"]: s for s in rows[b]["stages"]}
            for epoch in sorted(stages_a.keys() & stages_b.keys()):
                sa, sb = stages_a[epoch], stages_b[epoch]
                if sa["n_images"] != sb["n_images"]:
                    continue
                mean, se = paired(sa["per_example_log_px"], sb["per_example_log_px"])
                lines.append(f"- epoch {epoch}: {a} - {b} = {difference_text(mean, se)}")
    lines += ordering_lines(rows)
    lines += final_lines(rows)
    text = "\n".join(lines) + "\n"
    (folder / "iwae_table.md").write_text(text)
    print(text)
    if rows:
        plot_curves(rows, folder / "nll_vs_epochs.png")


def final_lines(rows):
    """The rows evaluated by ``--final`` on every test image, as the paper's table is (a
    row evaluated at two epochs twice), with the paired differences of two rows'."""
    finals = [(name, final) for name, result in rows.items() for final in result["finals"]]
    if not finals:
        return []
    lines = ["", "On all the test images, as in the paper (``--final``, at the epoch given):",
             "", *TABLE_HEAD]
    for name, final in finals:
        lines.append(table_row(name, final, rows[name]["args"]))
    lines += ["", "Paired differences on all the test images (two rows at the same epoch, or "
                  "one row at two epochs: what training gained): NLL_a - NLL_b +- SE", ""]
    for i, (a, final_a) in enumerate(finals):
        for b, final_b in finals[i + 1:]:
            if a != b and final_a["epoch"] != final_b["epoch"]:
                continue  # two rows at different epochs do not compare
            mean, se = paired(final_a["per_example_log_px"], final_b["per_example_log_px"])
            lines.append(f"- {a} (epoch {final_a['epoch']}) - {b} (epoch {final_b['epoch']}) "
                         f"= {difference_text(mean, se)}")
    return lines


def plot_curves(rows, path):
    """Test NLL at each stage's end against epochs, each row beside the paper's final value."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10.5, 4.8), layout="constrained")
    ax = fig.subplots()
    for index, (name, result) in enumerate(rows.items()):
        epochs = [stage["epoch"] for stage in result["stages"]]
        nll = [stage["nll"] for stage in result["stages"]]
        first = result["stages"][-1]["n_images"]
        ax.plot(epochs, nll, "o-", color=f"C{index}",
                label=f"{name} (numvae, first {first:,} test images)")
        for number, final in enumerate(result["finals"]):  # --final: all the test images
            ax.plot([final["epoch"]], [final["nll"]], "s", color=f"C{index}", fillstyle="none",
                    markersize=9,
                    label=None if number else f"{name}: all {final['n_images']:,} test images")
        nll_paper = paper_nll(result["args"])
        if nll_paper:
            ax.axhline(nll_paper, color=f"C{index}", linestyle=":", linewidth=0.8)
            ax.plot([3280], [nll_paper], "*", color=f"C{index}", markersize=12,
                    label=f"{name}: the paper, 3280 epochs ({nll_paper})")
    ax.set_xscale("log")
    ax.set_xlabel("epoch (end of a stage of the schedule)")
    ax.set_ylabel("test NLL, nats (K = 5000)")
    ax.set_title("Burda et al. (2016), Table 1 (rows ending _2layers: two stochastic layers)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # off the curves
    fig.savefig(path, dpi=110)
