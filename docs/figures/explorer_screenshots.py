"""The README's screenshots of the explorer's three panels (docs/figures/explorer_*.png),
taken in headless Chromium from the page of the shipped slides' model:

    python docs/figures/explorer_screenshots.py

The pointer rests on the plane at z = (0.9, 1.3) (upper right of the origin); Encode shows
test image 0; the step panel stands at its 26th row (the first gradient of the decoder's
middle Dense layer's bias), Check pressed.
"""
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))  # the tests' Chromium helper

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402

from browser import start_chromium, stop_chromium  # noqa: E402
from numvae.commands.cli import main  # noqa: E402


def take():
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "explorer.html"
        main(["explore", "--out", str(page)])
        driver = start_chromium()
        try:
            driver.set_window_size(1200, 2400)
            driver.get(page.as_uri())
            plane = driver.find_element("id", "plane-over")
            ActionChains(driver).move_to_element_with_offset(plane, 60, -80).perform()
            for _ in range(25):
                driver.find_element("id", "step-next").click()
            driver.find_element("id", "step-check").click()
            for panel in ("plane", "encode", "step"):
                driver.find_element("id", panel).screenshot(str(HERE / f"explorer_{panel}.png"))
                print(f"wrote {HERE / f'explorer_{panel}.png'}")
        finally:
            stop_chromium(driver)


if __name__ == "__main__":
    take()
