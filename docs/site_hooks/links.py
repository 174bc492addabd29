"""The site's link policy: every relative link of a page is read as a path in the
repository (from where the page's source lives) and sent to the page that shows it.

    a page's source (README.md, CHANGELOG.md, tutorials/README.md, docs/*.md, ...)  that page
    a tutorial script tutorials/NN_name.py                     its rendered page
    a module numvae/.../x.py                                   its API reference page, at the
                                                               object the link's text names
    any other file (benchmarks/, tests/, scripts/, data)       a page showing the file
                                                               (text), or the file itself
    a folder                                                   a page listing it

so that ``mkdocs build --strict`` finds every target while the Markdown files keep the
links that work on GitHub and on disk.
"""
import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)(\s+\"[^\"]*\")?\)")
BINARY = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".npz", ".gz", ".pdf"}
LANGUAGE = {".py": "python", ".json": "json", ".md": "markdown", ".cfg": "ini", ".toml": "toml",
            ".sh": "bash", ".csv": "text", ".txt": "text", ".yml": "yaml", ".yaml": "yaml"}


def is_external(target):
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target)) or target.startswith(("#", "/"))


def module_page(repo_path):
    """numvae/model/kl.py -> ("api/numvae.model.kl.md", "numvae.model.kl")."""
    dotted = repo_path[:-3].replace("/", ".").removesuffix(".__init__")
    return f"api/{dotted}.md", dotted


def resolve(target, source, pages):
    """The site file (a docs-relative path) and anchor a link ``target`` in the page whose
    repository source is ``source`` goes to, and what must be generated for it:
    (site_path or None, anchor, kind) with kind "page", "api", "copy", "text" or "folder"."""
    path, _, anchor = target.partition("#")
    repo = posixpath.normpath(posixpath.join(posixpath.dirname(source), path)) if path else source
    if repo in pages:
        return pages[repo], anchor, "page"
    if repo.startswith("docs/") and (ROOT / repo).is_file():
        return repo[len("docs/"):], anchor, "page"
    if repo.startswith("numvae/") and repo.endswith(".py") and (ROOT / repo).is_file():
        return module_page(repo)[0], anchor, "api"
    full = ROOT / repo
    if repo.startswith("..") or not full.exists():
        return None, anchor, "missing"
    if full.is_dir():
        return f"files/{repo}/index.md", anchor, "folder"
    if full.suffix in BINARY:
        return f"files/{repo}", anchor, "copy"
    return f"files/{repo}.md", anchor, "text"


def rewrite(markdown, source, site_path, pages):
    """``markdown`` with each relative link sent where ``resolve`` says, relative to
    ``site_path`` (the page's docs-relative path). An API link whose text is a dotted
    name in backticks gets that name as its anchor (mkdocstrings' ids)."""
    def replace(match):
        bang, text, target, title = match.groups()
        if is_external(target):
            return match.group(0)
        site, anchor, kind = resolve(target, source, pages)
        if site is None:
            return match.group(0)
        named = re.fullmatch(r"`(numvae(?:\.\w+)+)(?:\(\))?`", text)
        if kind == "api" and not anchor:
            anchor = named.group(1) if named else module_page(
                posixpath.normpath(posixpath.join(posixpath.dirname(source), target.partition("#")[0])))[1]
        relative = posixpath.relpath(site, posixpath.dirname(site_path) or ".")
        return f"{bang}[{text}]({relative}{'#' + anchor if anchor else ''}{title or ''})"
    return LINK.sub(replace, markdown)


def targets(markdown, source, pages):
    """[(site_path, kind, repo_path)] for every relative link of ``markdown``."""
    found = []
    for _, _, target, _ in LINK.findall(markdown):
        if is_external(target):
            continue
        site, _, kind = resolve(target, source, pages)
        if site is not None:
            path = target.partition("#")[0]
            repo = posixpath.normpath(posixpath.join(posixpath.dirname(source), path)) if path else source
            found.append((site, kind, repo))
    return found


def text_page(repo):
    """A page showing the text of the repository's file ``repo``."""
    full = ROOT / repo
    fence = "````"
    language = LANGUAGE.get(full.suffix, "text")
    return (f"# `{repo}`\n\nThe file as it is in the repository.\n\n"
            f"{fence}{language}\n{full.read_text(encoding='utf-8', errors='replace')}\n{fence}\n")


def folder_page(repo):
    """A page listing the repository's folder ``repo``."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in (ROOT / repo).iterdir()
                   if not p.name.startswith((".", "__pycache__")))
    return f"# `{repo}/`\n\n" + "\n".join(f"- `{name}`" for name in names) + "\n"
