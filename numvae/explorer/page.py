"""The explorer page: one self-contained HTML file, no network, no framework.

The template, the style sheet and the scripts are package data files in
``numvae/explorer/static/`` (``explorer.html``, ``explorer.css``; ``vae.js``, the VAE in
JavaScript; ``plane.js``, the latent plane and the Encode panel; ``step.js``, one training
step); ``explorer_html`` pours them and the bundle of ``numvae.explorer.bundle`` into one
string, ``write_explorer`` writes it atomically.
"""
import html
import json
from importlib import resources

import numvae
from numvae.explorer.bundle import make_bundle
from numvae.io.files import as_path, atomic_write_bytes
from numvae.model.parts import flat_config

SCRIPTS = ("vae.js", "plane.js", "step.js")
DIGIT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf")


def static_text(name):
    """A file of ``numvae/explorer/static`` as text."""
    return resources.files("numvae.explorer").joinpath("static", name).read_text("utf-8")


def describe(model):
    """One line naming the model's parts, for the page's header."""
    if "architecture" not in model.config:  # not numvae.model.vae.VAE: the two-layer model, say
        return repr(model)
    c = flat_config(model.config)  # 0.2's flat settings: one name per part
    parts = [f"{c['architecture']} {c['input_dim']}-{c['shared_dim']}-{c['latent_dim']}",
             f"{c['likelihood']} likelihood", f"{c['posterior']} posterior", f"{c['prior']} prior",
             f"{c['objective']} objective"]
    if model.n_classes:
        parts.append(f"conditional on {model.n_classes} classes")
    return ", ".join(parts)


def explorer_html(model, images, labels, *, title=None, seed=0):
    """The page for ``model``: images (n, input_dim) in [0, 1] and labels (n,) are the test
    set whose encoder means make the scatter. Returns (html text, bundle)."""
    title = title or describe(model)
    bundle = make_bundle(model, images, labels, title=title, seed=seed)
    # "</" would end the script element that holds the data: JSON allows "<\/" instead
    data = json.dumps(bundle, separators=(",", ":")).replace("</", "<\\/")
    legend = "".join(f'<span style="color:{colour}">&#9632; {digit}</span>'
                     for digit, colour in enumerate(DIGIT_COLOURS))
    page = static_text("explorer.html")
    for key, value in [("CSS", static_text("explorer.css")), ("LEGEND", legend),
                       ("VERSION", numvae.__version__), ("TITLE", html.escape(title)),
                       ("SCRIPTS", "\n".join(static_text(name) for name in SCRIPTS)),
                       ("DATA", data)]:  # the data last: nothing is substituted inside it
        page = page.replace("{{" + key + "}}", value)
    return page, bundle


def write_explorer(path, model, images, labels, *, title=None, seed=0):
    """Write the page to ``path`` atomically; returns the bundle it embeds."""
    path = as_path(path, "out")
    page, bundle = explorer_html(model, images, labels, title=title, seed=seed)
    atomic_write_bytes(path, page.encode("utf-8"))
    return bundle
