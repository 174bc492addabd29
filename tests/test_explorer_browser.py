"""The explorer page in headless Chromium: its decoder, encoder and training step equal
NumPy's and ``numvae inspect``'s, its own finite differences agree, dragging changes the
image, and it logs no error and requests nothing from the network.

Two pages, one browser session: the shipped slides' model (Bernoulli, standard normal) and
a tiny conditional model with a Gaussian likelihood, a mixture prior, tanh and latent 3.
"""
import numpy as np
import pytest

from browser import (
    console_errors,
    from_page,
    requests_off_machine,
    screenshot_pixels,
    start_chromium,
    stop_chromium,
)
from helpers import vae
from numvae.diagnostics.inspect import trace_step
from numvae.explorer.bundle import unpack
from numvae.explorer.page import write_explorer
from numvae.explorer.shipped import load_shipped
from numvae.io import datasets
from numvae.model.vae import VAE

pytestmark = pytest.mark.browser


def tiny_model():
    model = vae(64, 10, 3, encoder_hidden=(12,), decoder_hidden=(9,), likelihood="gaussian",
                sigma=0.7, activation="tanh", prior="mixture", prior_components=4, n_classes=4,
                kl_weight=0.8, seed=3)
    rng = np.random.default_rng(4)  # non-trivial prior weights and variances
    model.params["prior.logits"][...] = rng.normal(size=4)
    model.params["prior.log_var"][...] = rng.normal(scale=0.3, size=(4, 3))
    return model


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium()
    yield driver
    stop_chromium(driver)


@pytest.fixture(scope="module", params=["slides", "tiny"])
def page(request, browser, tmp_path_factory):
    """(driver, model, bundle) with the page loaded and ready."""
    if request.param == "slides":
        model, test = load_shipped(), datasets.load_mnist_mini()[1]
    else:
        model, test = tiny_model(), datasets.make_toy(300, side=8, seed=1)
    path = tmp_path_factory.mktemp("explorer") / f"{request.param}.html"
    bundle = write_explorer(path, model, test.images, test.labels)
    browser.get(path.as_uri())
    browser.execute_script("return 1")
    assert browser.find_element("css selector", "body").get_attribute("data-ready") == "yes"
    return browser, model, bundle


def close(a, b):
    """max|a - b| <= 1e-5 max(1, max|b|)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.size == b.size, (a.shape, b.shape)
    bound = 1e-5 * max(1.0, float(np.max(np.abs(b))))
    return float(np.max(np.abs(a.ravel() - b.ravel()))) <= bound


def test_decoder_equals_numpy(page):
    driver, model, _ = page
    z = np.random.default_rng(0).normal(size=(5, model.latent_dim)) * 1.5
    y = [0, 1, 2, 3, 1] if model.n_classes else None
    got = from_page(driver.execute_script("return numvaeExplorer.decode(arguments[0], arguments[1])",
                                          z.tolist(), y))
    expected = model.copy(np.float64).decode(z, None if y is None else np.array(y))
    assert close(got, expected)


def test_encoder_equals_numpy(page):
    driver, model, bundle = page
    x = unpack(bundle["test"]["pick"])[:3] / 255.0
    y = [2, 0, 1] if model.n_classes else None
    got = driver.execute_script("return numvaeExplorer.encode(arguments[0], arguments[1])",
                                x.tolist(), y)
    mean, log_var = model.copy(np.float64).encode(x, None if y is None else np.array(y))
    assert close(from_page(got["mean"]), mean) and close(from_page(got["log_var"]), log_var)


@pytest.fixture(scope="module")
def step(page):
    """The page's step and ``trace_step``'s on the float64 copy, same batch and eps."""
    driver, model, bundle = page
    s = bundle["step"]
    trace = trace_step(model.copy(np.float64), unpack(s["x"]).astype(np.float64),
                       unpack(s["eps"]), y=unpack(s["y"]).astype(int) if model.n_classes else None)
    return driver.execute_script("return numvaeExplorer.exportStep()"), trace


def test_every_node_equals_inspect(step):
    exported, trace = step
    assert len(trace) > 40
    differ = [row.name for row in trace if not close(from_page(exported[row.name]), row.value)]
    assert not differ
    for name, value in trace.model.grads.items():  # the mixture prior's own gradients too
        if name.startswith("prior."):
            assert close(from_page(exported[f"{name} (grad)"]), value), name


def test_page_finite_differences_agree(page, step):
    driver, _, _ = page
    _, trace = step
    errors = {row.name: driver.execute_script("return numvaeExplorer.check(arguments[0], 5, 1).error",
                                              row.name)
              for row in trace if row.phase == "backward"}
    assert max(errors.values()) < 1e-5, errors


def test_dragging_changes_the_image(page):
    driver, _, _ = page
    from selenium.webdriver.common.action_chains import ActionChains
    plane = driver.find_element("id", "plane-over")
    image = "return document.getElementById('plane-decoded').toDataURL()"
    ActionChains(driver).move_to_element_with_offset(plane, -120, -100).perform()
    before = driver.execute_script(image)
    ActionChains(driver).move_to_element_with_offset(plane, 130, 90).perform()
    assert driver.execute_script(image) != before


def test_no_console_error_no_network_and_not_blank(page):
    driver, _, _ = page
    # every node of the step, the last one checked, and a new eps: errors in handlers reach
    # the console
    driver.execute_script("for (let i = 0; i < 80; i++) document.getElementById('step-next').click();"
                          " document.getElementById('step-check').click();")
    driver.find_element("id", "encode-eps").click()
    assert console_errors(driver) == []
    assert requests_off_machine(driver) == []
    pixels = screenshot_pixels(driver)[..., :3]
    assert pixels.std() > 0.05 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


def test_pages_with_panels_not_drawn_load_cleanly(browser, tmp_path):
    from numvae.model.two_layer import TwoLayerVAE
    toy = datasets.make_toy(200, side=8, seed=0)
    for name, model in [("conv", VAE(64, 8, 2, architecture="conv", seed=0)),
                        ("iaf", VAE(64, 8, 2, posterior="iaf", seed=0)),
                        ("two_layer", TwoLayerVAE(64, (4, 2), ((10,), (6,)), seed=0))]:
        write_explorer(tmp_path / f"{name}.html", model, toy.images, toy.labels)
        browser.get((tmp_path / f"{name}.html").as_uri())
        assert browser.find_element("css selector", "body").get_attribute("data-ready") == "yes"
        assert browser.find_element("id", "step-missing").is_displayed(), name
        assert console_errors(browser) == [], name
