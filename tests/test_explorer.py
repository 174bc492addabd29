"""numvae explore without a browser: the page embeds the checkpoint's weights bit for bit,
stays self-contained and small, names the panels it cannot draw; the shipped model."""
import base64
import json
import re
import zipfile

import numpy as np
import pytest

from numvae.commands.cli import main
from numvae.diagnostics.inspect import trace_step
from numvae.explorer.bundle import missing_panels
from numvae.explorer.page import explorer_html
from numvae.explorer.shipped import shipped_path
from numvae.io import datasets
from numvae.model.objectives import IWAE
from numvae.model.two_layer import TwoLayerVAE
from numvae.model.vae import VAE
from numvae.training.checkpoint import load_checkpoint, save_checkpoint


def embedded(page):
    """The JSON the page carries, read from the HTML text as a browser would."""
    text = re.search(r'<script type="application/json" id="numvae-data">(.*?)</script>',
                     page, re.DOTALL).group(1)
    return json.loads(text)


def raw_bytes(packed):
    return base64.b64decode(packed["data"])


@pytest.fixture(scope="module")
def shipped_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore") / "page.html"
    assert main(["explore", "--out", str(out)]) == 0
    return out


def test_shipped_model_is_the_slides_and_small():
    with zipfile.ZipFile(shipped_path()) as archive:  # parameters only: no optimiser state
        assert not [n for n in archive.namelist() if n.startswith("optimizer")]
    assert shipped_path().stat().st_size <= 2_000_000
    model = load_checkpoint(shipped_path()).model
    shared_dim = model.config["architecture"]["shared_dim"]
    assert (model.latent_dim, shared_dim, model.dtype) == (2, 128, np.float32)


def test_page_weights_are_the_checkpoints_bit_for_bit(shipped_page):
    bundle = embedded(shipped_page.read_text("utf-8"))
    model = load_checkpoint(shipped_path()).model
    network = bundle["network"]
    layers = {f"encoder.compressor.{i}": layer for i, layer in enumerate(network["compressor"])}
    layers.update({f"decoder.decompressor.{i}": layer for i,
                   layer in enumerate(network["decoder"])})
    layers.update({f"encoder.{name}": head for name, head in network["heads"].items()})
    for name, value in model.params.items():
        prefix, key = name.rsplit(".", 1)
        packed = layers[prefix][key]
        assert packed["dtype"] == "float32" and packed["shape"] == list(value.shape)
        assert raw_bytes(packed) == value.astype("<f4").tobytes(), name
    assert len(model.params) == 2 * sum(1 for layer in layers.values() if "W" in layer)


def test_page_is_self_contained_and_under_4_mb(shipped_page):
    page = shipped_page.read_text("utf-8")
    assert shipped_page.stat().st_size < 4_000_000
    # the one URL is SVG's namespace, a name that is never fetched
    assert set(re.findall(r"https?://[^\s\"']*", page)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)


def test_scatter_is_the_encoder_means_and_rows_are_inspects(shipped_page):
    bundle = embedded(shipped_page.read_text("utf-8"))
    model, test = load_checkpoint(shipped_path()).model, datasets.load_mnist_mini()[1]
    means = np.frombuffer(raw_bytes(bundle["test"]["means"]), "<f4").reshape(-1, 2)
    np.testing.assert_allclose(means, model.encode(test.images)[0], rtol=0, atol=1e-6)
    x = np.frombuffer(raw_bytes(bundle["step"]["x"]), "<f4").reshape(8, 784)
    eps = np.frombuffer(raw_bytes(bundle["step"]["eps"]), "<f8").reshape(1, 8, 2)
    trace = trace_step(model.copy(np.float64), x.astype(np.float64), eps)
    assert [row["name"] for row in bundle["step"]["rows"]] == trace.names()
    assert [row["formula"] for row in bundle["step"]["rows"]] == [r.formula for r in trace]


@pytest.mark.parametrize("settings, panels", [
    (dict(architecture="conv"), {"plane", "encode", "step"}),
    (dict(posterior="iaf"), {"encode", "step"}),
    (dict(posterior="point", objective="reconstruction"), {"encode", "step"}),
    (dict(objective=IWAE(k=2)), {"step"}),
    (dict(prior="mixture", n_classes=4, likelihood="gaussian"), set()),
])
def test_panels_drawn_for_each_model(settings, panels, tmp_path, capsys):
    model = VAE(64, 8, 2, encoder_hidden=(10,), decoder_hidden=(6,), seed=0, **settings)
    assert set(missing_panels(model)) == panels
    save_checkpoint(tmp_path / "model.npz", model)
    assert main(["explore", str(tmp_path / "model.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(panels) + 1 and lines[-1].startswith("wrote ")
    assert all(f"panel {p!r} is not drawn" in "\n".join(lines) for p in panels)
    page = (tmp_path / "explorer.html").read_text("utf-8")
    assert ("step" in embedded(page)) == ("step" not in panels)


def test_two_stochastic_layers_scatter_only(tmp_path, capsys):
    model = TwoLayerVAE(64, (4, 2), ((10,), (6,)), seed=0)
    save_checkpoint(tmp_path / "model.npz", model)
    assert main(["explore", str(tmp_path / "model.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all("two_layer model" in line for line in lines[:3])
    bundle = embedded((tmp_path / "explorer.html").read_text("utf-8"))
    toy = datasets.make_toy(2000, side=8, seed=0)  # the command's data for width 64, seed 0
    means = np.frombuffer(raw_bytes(bundle["test"]["means"]), "<f4").reshape(-1, 2)
    np.testing.assert_allclose(means, model.encode(toy.images)[0], rtol=0, atol=1e-6)


def test_refuses_to_overwrite_and_bad_suffix(tmp_path, capsys):
    out = tmp_path / "page.html"
    out.write_text("keep me")
    assert main(["explore", "--out", str(out)]) == 1
    assert out.read_text() == "keep me" and "--overwrite" in capsys.readouterr().err
    assert main(["explore", "--out", str(tmp_path / "page.txt")]) == 2
    assert main(["explore", str(tmp_path / "missing.npz")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_json_cannot_end_the_script_element():
    model = VAE(64, 8, 2, encoder_hidden=(10,), decoder_hidden=(6,), seed=0)
    toy = datasets.make_toy(50, side=8, seed=0)
    page, _ = explorer_html(model, toy.images, toy.labels, title="</script><b>x")
    assert page.count("</script>") == 2 and "&lt;/script&gt;" in page
