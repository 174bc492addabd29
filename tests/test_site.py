"""The course as a website (mkdocs.yml): ``mkdocs build --strict`` passes; every page loads in
headless Chromium with no console error and no request leaving the machine; every formula
is rendered by the vendored KaTeX; each tutorial that saves a figure shows it; no internal
link is broken; the search box finds pages.

Marked ``site`` and left out of the default run (setup.cfg's addopts): the build renders the
API reference of every module and runs each tutorial's --quick mode (a few minutes).
``.ci/run`` runs them as a step of their own: ``python -m pytest -q -m site``.
"""
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from browser import console_errors, start_chromium, stop_chromium

pytestmark = pytest.mark.site
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed (pip install -e .[docs])")
    if os.environ.get("NUMVAE_TEST_SITE_DIR"):  # a site you built already, to check it again
        return Path(os.environ["NUMVAE_TEST_SITE_DIR"])
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_build_is_strict_and_complete(site):
    for page in ("index.html", "derivations/index.html", "explorer/index.html", "changelog/index.html",
                 "tutorials/01_autoencoders/index.html", "api/numvae.model.kl/index.html",
                 "assets/numvae-explorer.html", "assets/katex/katex.min.js"):
        assert (site / page).is_file(), page


def pages(site):
    # 404.html is served at any depth, so its links are absolute (site_url's root)
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                  if p.name == "index.html")


def test_no_internal_link_is_broken(site):
    broken = []
    for page in pages(site):
        html = (site / page).read_text(encoding="utf-8")
        for target in re.findall(r'(?:href|src)="([^"#?]+)', html):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
                continue
            path = (site / page).parent / unquote(target)
            if not (path.is_file() or (path / "index.html").is_file()):
                broken.append(f"{page} -> {target}")
    assert not broken, broken[:20]


def test_nothing_points_off_the_machine(site):
    """No page loads a script, style, font or image from another host (a CDN default)."""
    remote = []
    for path in site.rglob("*"):
        if path.suffix in (".html", ".css", ".js") and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            remote += [f"{path.name}: {m}" for m in re.findall(
                r'(?:src=|@import\s|url\()\s*["\']?(https?://[^"\')\s]+)', text)]
    assert not remote, remote[:10]


SEARCH_INDEX = "search/search_index.json"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class EmptyIndexHandler(QuietHandler):
    """The site with its search index emptied (the same config, no documents). At every
    page load the theme's search builds its index from the 1.2 MB file in a worker, about
    0.6 s of CPU a page here: the visits of every page took 80 s with it and 25 without.
    They check each page's own content; ``test_the_search_finds_pages`` checks the
    search, with the whole index."""

    def do_GET(self):
        if self.path.split("?")[0].endswith("/" + SEARCH_INDEX):
            config = json.loads((Path(self.directory) / SEARCH_INDEX).read_text())["config"]
            body = json.dumps({"config": config, "docs": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


def serve(site, handler):
    """The site over HTTP on 127.0.0.1 (the search index is fetched, which file: forbids)."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def served(site):
    yield from serve(site, QuietHandler)


@pytest.fixture(scope="module")
def served_with_an_empty_index(site):
    yield from serve(site, EmptyIndexHandler)


@pytest.fixture(scope="module")
def browsers():
    """Two headless Chromium sessions: a page visit mostly waits (for the server, the load
    event), so two at once take about half the time of one on two cores."""
    drivers = [start_chromium()]
    try:
        drivers.append(start_chromium())
        yield drivers
    finally:
        for driver in drivers:
            stop_chromium(driver)


STATE = """return {
  raw: document.querySelector('article') ? document.querySelector('article').innerText.includes('$$') : false,
  pending: document.querySelectorAll('.arithmatex:not([data-rendered])').length,
  katex: document.querySelectorAll('.katex').length,
  errors: document.querySelectorAll('.katex-error').length,
  images: Array.from(document.querySelectorAll('article img')).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
  urls: performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map(e => e.name)};"""


@pytest.fixture(scope="module")
def visits(site, served_with_an_empty_index, browsers):
    """Each page loaded once: {page: (its state (STATE), console errors, page source)}.
    The two browsers take every other page, each in a thread of its own (a driver is
    used by one thread only)."""
    found, every_page = {}, pages(site)

    def visit(driver, share):
        for page in share:
            driver.get(served_with_an_empty_index + page.removesuffix("index.html"))
            found[page] = (driver.execute_script(STATE), console_errors(driver), driver.page_source)
    with ThreadPoolExecutor(len(browsers)) as pool:
        done = [pool.submit(visit, driver, every_page[i::len(browsers)])
                for i, driver in enumerate(browsers)]
        for future in done:
            future.result()  # a visit's error, raised here
    assert sorted(found) == every_page
    return found


def test_every_page_loads_cleanly(served_with_an_empty_index, visits):
    """No console error, no request off 127.0.0.1, no formula left raw or in error, every
    image of the article drawn."""
    problems, host = {}, urlparse(served_with_an_empty_index).netloc
    for page, (state, errors, _) in visits.items():
        found = [f"console: {e['message'][:160]}" for e in errors]
        found += [f"request: {u}" for u in state["urls"] if urlparse(u).netloc not in (host, "")]
        found += ["raw $$"] * state["raw"] + [f"{state['pending']} formulas not rendered"] * bool(
            state["pending"]) + [f"{state['errors']} KaTeX errors"] * bool(state["errors"])
        found += [f"image not drawn: {src}" for src, ok in state["images"] if not ok]
        if found:
            problems[page] = found
    assert len(visits) > 100 and not problems, problems


def test_derivations_formulas_are_rendered(visits):
    state = visits["derivations/index.html"][0]
    assert state["katex"] > 500 and state["errors"] == 0 and not state["raw"]


def test_each_tutorial_that_saves_a_figure_shows_it(visits):
    missing = []
    for script in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py")):
        if "figure_path(" not in script.read_text():
            continue
        state, _, source = visits[f"tutorials/{script.stem}/index.html"]
        if script.stem == "21_graduating_to_pytorch":  # needs torch and two processes: not run
            assert "Not run when this site was built" in source
            continue
        assert "The quick run stopped" not in source, script.stem
        if not any(ok for _, ok in state["images"]):
            missing.append(script.stem)
    assert not missing, missing


def test_the_search_finds_pages(served, browsers):
    """The search box, with its index loaded, lists the pages that hold a word."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver = browsers[0]  # another port than the visits': its cache holds no empty index
    driver.get(served)
    box = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
    box.click()
    box.send_keys("reparameterisation")
    links = WebDriverWait(driver, 30).until(lambda d: [
        a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, ".md-search-result__link")])
    assert any("/derivations/" in link for link in links), links[:10]
    assert console_errors(driver) == []
