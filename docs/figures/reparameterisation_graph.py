"""Draw docs/figures/reparameterisation_graph.png: the computation graph of the ELBO before
and after the reparameterisation trick (the slides' "Original form" and "Reparameterized
form", after Kingma & Welling 2019, figure 2.3).

    python docs/figures/reparameterisation_graph.py
"""
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

HERE = Path(__file__).resolve().parent
DETERMINISTIC, RANDOM = "#cfe2f3", "#f4cccc"


def node(ax, xy, text, kind):
    """A deterministic node (a square) or a random node (a circle)."""
    style = "circle,pad=0.35" if kind == "random" else "square,pad=0.45"
    colour = RANDOM if kind == "random" else DETERMINISTIC
    ax.text(*xy, text, ha="center", va="center", fontsize=13,
            bbox=dict(boxstyle=style, facecolor=colour, edgecolor="black"))


def arrow(ax, start, end, gradient=False, blocked=False, bend=0.0, shrink=(22, 22)):
    """A forward edge (black), or the path of a gradient (red, dashed), back from f;
    ``shrink``: the gaps, in points, left at the start and at the end (a node's size)."""
    style = dict(color="#c00000", linestyle="--", linewidth=1.6) if gradient else \
        dict(color="black", linewidth=1.2)
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14,
                                 shrinkA=shrink[0], shrinkB=shrink[1], connectionstyle=f"arc3,rad={bend}",
                                 **style))
    if blocked:
        middle = ((start[0] + end[0]) / 2 + 0.02, (start[1] + end[1]) / 2 + 0.02)
        ax.text(*middle, "X", color="#c00000", fontsize=18, fontweight="bold",
                ha="center", va="center")


def panel(ax, title, reparameterised):
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.set_title(title, fontsize=13)
    phi, x, z, f = (0.2, 0.75), (0.8, 0.75), (0.5, 0.45), (0.5, 0.12)
    node(ax, phi, r"$\phi$", "deterministic")
    node(ax, x, r"$x$", "deterministic")
    node(ax, f, r"$f$", "deterministic")
    if reparameterised:
        eps = (0.5, 0.85)
        node(ax, eps, r"$\varepsilon$", "random")
        node(ax, z, r"$z = g(\phi, x, \varepsilon)$", "deterministic")
        arrow(ax, eps, z)
        arrow(ax, z, phi, gradient=True, bend=-0.25)
    else:
        node(ax, z, r"$z \sim q_\phi(z \mid x)$", "random")
        arrow(ax, z, phi, gradient=True, blocked=True, bend=-0.25, shrink=(44, 22))
    big = 22 if reparameterised else 44         # the random z is a large circle
    arrow(ax, phi, z, shrink=(22, big))
    arrow(ax, x, z, shrink=(22, big))
    arrow(ax, z, f, shrink=(big, 22))
    arrow(ax, f, z, gradient=True, bend=-0.35, shrink=(22, big))


def draw(path=HERE / "reparameterisation_graph.png"):
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    panel(left, "Original form: z is drawn, no gradient through it", False)
    panel(right, "Reparameterised form: z = mean + std * eps", True)
    fig.text(0.5, 0.01, "square: deterministic node;  circle: random node;  black arrow: "
             "evaluation of f;  red dashed arrow: differentiation of f (backpropagation)",
             ha="center", fontsize=10)
    fig.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    print(draw())
