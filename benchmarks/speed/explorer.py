"""Speed of the explorer page in headless Chromium (issue 23's targets): decoding a point
of the slides' model (median <= 5 ms, for smooth dragging) and one forward and backward
step of a batch of 8 (< 100 ms).

    python -m benchmarks.speed.explorer [--repeats 200] [--out benchmarks/speed/results/explorer_speed.json]

Builds the page of the shipped model (``numvae explore``), opens it in Debian's Chromium
(driven by selenium, the tests' helper in tests/browser.py) and times, with the page's own
``performance.now()`` (a resolution of 0.1 ms in Chromium):

- ``decode``: the decoder on one latent point (2 -> 32 -> 256 -> 784), float64;
- ``pointer``: what a pointer move costs: decode, draw the 28x28 image scaled up, redraw
  the overlay;
- ``step``: ``NV.step``, the forward pass, loss and every gradient of a batch of 8.

Medians and quartiles after 10 warm-up runs; the CPU is named beside the figures.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from browser import start_chromium, stop_chromium  # noqa: E402
from numvae.commands.cli import main  # noqa: E402


def cpu_name():
    """'Model name' from lscpu, else what platform knows."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def summary(times):
    q = statistics.quantiles(times, n=4)
    return {"median_ms": round(statistics.median(times), 3), "q1_ms": round(q[0], 3),
            "q3_ms": round(q[2], 3), "runs": len(times)}


def measure(repeats):
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "explorer.html"
        main(["explore", "--out", str(page)])
        driver = start_chromium()
        try:
            driver.get(page.as_uri())
            version = driver.capabilities.get("browserVersion")
            results = {}
            for name, call, n in [("decode", "timeDecodeOnly", repeats),
                                  ("pointer", "timeDecode", repeats),
                                  ("step", "timeStep", max(20, repeats // 5))]:
                driver.execute_script(f"return numvaeExplorer.{call}(10)")  # warm-up (JIT)
                results[name] = summary(driver.execute_script(f"return numvaeExplorer.{call}({n})"))
        finally:
            stop_chromium(driver)
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
            "chromium": version, "model": "slides' (784-256-128-2, shipped)", "batch": 8, **results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", help="a JSON file for the figures")
    args = parser.parse_args()
    result = measure(args.repeats)
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
