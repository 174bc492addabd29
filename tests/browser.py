"""Headless Chromium for the browser tests (Debian's chromium and chromium-driver, driven
by selenium offline), one session per test module; a clean skip where either is absent."""
import base64
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OPTIONS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-extensions", "--window-size=1200,900")


def start_chromium():
    """A selenium driver of headless Chromium that reads the browser's console log, or a
    skip (one line) where Chromium, chromedriver or selenium is absent."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e .[test])")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Chromium is absent (apt-get install chromium chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must not look for a driver online
    profile = tempfile.mkdtemp(prefix="numvae-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for option in OPTIONS:
        options.add_argument(option)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.profile_dir = profile
    return driver


def stop_chromium(driver):
    driver.quit()
    shutil.rmtree(driver.profile_dir, ignore_errors=True)


def console_errors(driver):
    """The console's errors since the last call (the log is emptied by reading it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def requests_off_machine(driver):
    """The URLs of every resource the page loaded (and of the page itself) that is not a
    file, data or blob URL: what left the machine, or tried to."""
    urls = driver.execute_script(
        "return performance.getEntriesByType('navigation').concat("
        "performance.getEntriesByType('resource')).map(e => e.name)")
    return [url for url in urls if not url.startswith(("file:", "data:", "blob:", "about:"))]


def from_page(packed):
    """An array the page exported as {shape, data: base64 float64}."""
    return np.frombuffer(base64.b64decode(packed["data"]), "<f8").reshape(packed["shape"])


def screenshot_pixels(driver):
    """The screenshot as an (h, w, channels) float array (PNG read by matplotlib)."""
    import io

    from matplotlib import image
    return image.imread(io.BytesIO(driver.get_screenshot_as_png()), format="png")
