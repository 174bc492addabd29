"""The paper's orderings, row pair by row pair: Burda et al.'s Table 1 puts two stochastic
layers ahead of one (same objective and k), the IWAE ahead of the VAE (same layers, the
IWAE's k at least the VAE's),
and k = 50 ahead of k = 5 (the IWAE, same layers). For every such pair of rows evaluated at
the same epoch on the same test images, the paired difference NLL_ahead - NLL_behind with
its standard error, beside the paper's difference (after 3,280 epochs)."""
import math

import numpy as np

from experiments.iwae_table import paper


def key(result):
    """(layers, model, k) of a row the paper has, else None."""
    return paper.row_key(result["args"])


def why_ahead(ahead, behind):
    """The paper's reason for ``ahead`` (layers, model, k) to lead ``behind``, or None."""
    (layers_a, model_a, k_a), (layers_b, model_b, k_b) = ahead, behind
    if (model_a, k_a) == (model_b, k_b) and (layers_a, layers_b) == (2, 1):
        return f"two layers ahead of one ({model_a} k={k_a})"
    if layers_a == layers_b and k_a >= k_b and (model_a, model_b) == ("iwae", "vae"):
        return f"IWAE k={k_a} ahead of VAE k={k_b} ({layers_a} layer{'s' * (layers_a > 1)})"
    if layers_a == layers_b and model_a == model_b == "iwae" and (k_a, k_b) == (50, 5):
        return f"k=50 ahead of k=5 (IWAE, {layers_a} layer{'s' * (layers_a > 1)})"
    return None


def paired(a, b):
    """Mean and standard error of NLL_a - NLL_b from per-example log p(x) lists."""
    diff = np.asarray(b) - np.asarray(a)
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))


def difference_text(mean, se):
    """``+m.mm +- s.ss nats (N SE)``; SE 0: "(identical)" if the mean is 0 too, else
    "(the same difference on every image)" (no division by zero)."""
    size = (f"{abs(mean) / se:.0f} SE" if se else
            "identical" if mean == 0 else "the same difference on every image")
    return f"{mean:+.2f} +- {se:.2f} nats ({size})"


def evaluations(result):
    """A row's evaluations by (epoch, test images, K): each stage's end, and its ``--final``
    evaluations on all the test images (``finals``, as ``result_files.read_row`` reads a row)."""
    found = {(s["epoch"], s["n_images"], s["k"]): s for s in result["stages"]}
    for final in result.get("finals", []):
        found[(final["epoch"], final["n_images"], final["k"])] = final
    return found


def ordering_lines(rows):
    """Markdown lines: each ordering of the paper met at a common epoch on the same test
    images (a stage's end, or ``--final``'s all test images), held or not."""
    keyed = {name: key(result) for name, result in rows.items() if key(result)}
    lines = ["", "The paper's orderings (same epoch, same test images): NLL_ahead - NLL_behind "
                 "+- SE; negative where the paper's order holds", ""]
    for ahead, key_a in keyed.items():
        for behind, key_b in keyed.items():
            reason = why_ahead(key_a, key_b)
            if reason is None:
                continue
            of_behind = evaluations(rows[behind])
            for (epoch, images, k), figures in sorted(evaluations(rows[ahead]).items()):
                other = of_behind.get((epoch, images, k))
                if other is None:
                    continue
                mean, se = paired(figures["per_example_log_px"], other["per_example_log_px"])
                in_paper = paper.NLL[key_a] - paper.NLL[key_b]
                verdict = "holds" if mean < -2 * se else (
                    "reversed" if mean > 2 * se else "within 2 SE of 0")
                lines.append(f"- {reason}, epoch {epoch} ({images:,} test images): {ahead} - "
                             f"{behind} = {mean:+.2f} +- {se:.2f} nats (paper {in_paper:+.2f}): "
                             f"{verdict}")
    return lines
