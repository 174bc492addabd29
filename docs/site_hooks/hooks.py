"""MkDocs hooks that make numvae's site from the repository as it is (``mkdocs.yml``
names this file under ``hooks``):

- pages whose Markdown lives outside ``docs/``: the README (home), the changelog, the
  tutorials' README, the data's README, the Burda table; the teaching guide if it exists;
- each tutorial, rendered with the outputs and figures of its ``--quick`` run
  (``tutorials.py``);
- an API reference page per module of numvae (mkdocstrings);
- the explorer of the shipped model (``numvae explore``), embedded in ``explorer.md``;
- every relative link sent to a page of the site (``links.py``).
"""
import os
import sys
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
import links  # noqa: E402

import tutorials  # noqa: E402

ROOT = links.ROOT
OUTSIDE = {"index.md": "README.md", "changelog.md": "CHANGELOG.md",
           "tutorials/index.md": "tutorials/README.md", "data.md": "numvae/data/README.md",
           "iwae_table_results.md": "experiments/iwae_table/results/iwae_table.md"}
STATE = {}


def _modules():
    found = []
    for path in sorted((ROOT / "numvae").rglob("*.py")):
        repo = path.relative_to(ROOT).as_posix()
        if "/stubs/" in repo or repo.endswith("__main__.py"):
            continue
        found.append(links.module_page(repo))
    return found


def _sources(config):
    """{site path: repository path} of every Markdown page, and {repository path: site path}."""
    sources = {site: repo for site, repo in OUTSIDE.items() if (ROOT / repo).is_file()}
    for script in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py")):
        sources[f"tutorials/{script.stem}.md"] = f"tutorials/{script.name}"
    docs = Path(config["docs_dir"])
    for page in docs.rglob("*.md"):
        site = page.relative_to(docs).as_posix()
        if not site.startswith(("site_hooks/", "assets/")):
            sources[site] = f"docs/{site}"
    return sources, {repo: site for site, repo in sources.items()}


def on_config(config):
    nav = config["nav"]
    if (Path(config["docs_dir"]) / "teaching.md").is_file():
        nav.insert(next(i for i, entry in enumerate(nav) if "Exercises" in entry) + 1,
                   {"Teaching guide": "teaching.md"})
    scripts = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
    tutorial_nav = [{"Overview": "tutorials/index.md"}] + [
        {script.stem.replace("_", " ", 1).replace("_", " "): f"tutorials/{script.stem}.md"}
        for script in scripts]
    api_nav = [{dotted: site} for site, dotted in _modules()]
    for entry in nav:
        if "Tutorials" in entry:
            entry["Tutorials"] = tutorial_nav
        if "API reference" in entry:
            entry["API reference"] = api_nav
    return config


def _add(files, config, site, content=None, source=None):
    if files.get_file_from_path(site) is None:
        if content is not None:
            files.append(File.generated(config, site, content=content))
        else:
            files.append(File.generated(config, site, abs_src_path=str(source)))


def on_files(files, config):
    sources, pages = _sources(config)
    STATE.update(sources=sources, pages=pages)
    for site, repo in OUTSIDE.items():
        if site in sources:
            _add(files, config, site, (ROOT / repo).read_text(encoding="utf-8"))
    for site, dotted in _modules():
        _add(files, config, site, f"# `{dotted}`\n\n::: {dotted}\n")
    cache = Path(os.environ.get("NUMVAE_SITE_CACHE", ROOT / ".site-cache"))
    for stem, result in tutorials.run_all(cache).items():
        markdown, pictures = tutorials.page(ROOT / "tutorials" / f"{stem}.py", result)
        _add(files, config, f"tutorials/{stem}.md", markdown)
        for site, source in pictures.items():
            _add(files, config, site, source=source)
    _add_explorer(files, config)
    for site, repo in list(sources.items()):
        text = _markdown(files, site)
        for target, kind, target_repo in links.targets(text, repo, pages):
            if kind == "copy":
                _add(files, config, target, source=ROOT / target_repo)
            elif kind == "text":
                _add(files, config, target, links.text_page(target_repo))
            elif kind == "folder":
                _add(files, config, target, links.folder_page(target_repo))
    return files


def _markdown(files, site):
    file = files.get_file_from_path(site)
    return file.content_string if file is not None else ""


def _add_explorer(files, config):
    from numvae.explorer.page import explorer_html
    from numvae.explorer.shipped import load_shipped
    from numvae.io import datasets
    test = datasets.load_mnist_mini()[1]
    page, _ = explorer_html(load_shipped(), test.images, test.labels)
    _add(files, config, "assets/numvae-explorer.html", page)


def on_page_markdown(markdown, page, config, files):
    site = page.file.src_uri
    source = STATE["sources"].get(site, f"docs/{site}")
    return links.rewrite(markdown, source, site, STATE["pages"])
