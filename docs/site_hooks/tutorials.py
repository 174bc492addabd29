"""The tutorials as pages: each script's cells (``# %%`` percent format), each code cell
followed by what it printed and the figures it saved, from one run of the script in its
``--quick`` mode at build time.

The run: the script is copied with a marker printed after each code cell, executed with
``tutorials/`` on the path and ``--quick --out <a temporary folder>``; its output is cut at
the markers, and each "figure: <path>" line becomes the picture. Results are cached by the
hash of the script, ``tutorials/_common.py`` and the package's sources (``.site-cache/``),
so that a second build is fast and a changed tutorial runs again.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"
MARKER = "<<<numvae-site-cell-{}>>>"
FIGURE = re.compile(r"^figure: (.+\.png)\s*$", re.M)


def cells(script_text):
    """[(kind, text)]: kind "markdown" (the comment marks removed) or "code"."""
    found, kind, lines = [], None, []
    for line in script_text.splitlines():
        if line.startswith("# %%"):
            if kind is not None:
                found.append((kind, "\n".join(lines).strip("\n")))
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(re.sub(r"^# ?", "", line) if kind == "markdown" else line)
    if kind is not None:
        found.append((kind, "\n".join(lines).strip("\n")))
    return [(k, t) for k, t in found if t.strip()]


def _fingerprint(script):
    digest = hashlib.sha256(script.read_bytes())
    digest.update((TUTORIALS / "_common.py").read_bytes())
    for source in sorted((ROOT / "numvae").rglob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def run(script, cache):
    """{"outputs": [text per code cell], "figures": {cell: [png paths]}, "error": str}."""
    folder = cache / f"{script.stem}-{_fingerprint(script)}"
    if (folder / "result.json").exists():
        return json.loads((folder / "result.json").read_text())
    code = [text for kind, text in cells(script.read_text()) if kind == "code"]
    marked = "\n".join(f"{text}\nprint({MARKER.format(i)!r}, flush=True)" for i, text in enumerate(code))
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        copy = Path(work) / script.name
        copy.write_text(marked)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TUTORIALS), str(ROOT)]),
                   OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
        done = subprocess.run([sys.executable, str(copy), "--quick", "--out", str(folder)],
                              cwd=work, env=env, capture_output=True, text=True, timeout=900)
    pieces = re.split(r"\n?<<<numvae-site-cell-\d+>>>\n", done.stdout)
    outputs = (pieces + [""] * len(code))[:len(code)]
    figures = {i: [str(folder / Path(p).name) for p in FIGURE.findall(text)]
               for i, text in enumerate(outputs)}
    result = {"outputs": [FIGURE.sub(lambda m: f"figure: {Path(m.group(1)).name}", t)
                          for t in outputs], "figures": figures,
              "error": "" if done.returncode == 0 else
              [f"The quick run stopped: {(done.stderr.strip().splitlines() or ['?'])[-1]}"]}
    (folder / "result.json").write_text(json.dumps(result))
    return result


# not run at build time, with the reason the page gives
NOT_RUN = {"21_graduating_to_pytorch": "it needs PyTorch and starts two training processes "
                                       "(DistributedDataParallel); run it yourself"}


def run_all(cache, workers=2):
    """{script stem: result} for every tutorial, ``workers`` at a time. With the
    environment variable NUMVAE_SITE_RUN_TUTORIALS=0, none runs (a quick look at the
    site's other pages): each page says so."""
    scripts = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
    def not_run(script, reason):
        return {"outputs": [""] * len(cells(script.read_text())), "figures": {},
                "error": [f"This page shows no output: {reason}."]}
    if os.environ.get("NUMVAE_SITE_RUN_TUTORIALS") == "0":
        return {s.stem: not_run(s, "NUMVAE_SITE_RUN_TUTORIALS=0") for s in scripts}
    results = {s.stem: not_run(s, NOT_RUN[s.stem]) for s in scripts if s.stem in NOT_RUN}
    scripts = [s for s in scripts if s.stem not in NOT_RUN]
    with ThreadPoolExecutor(workers) as pool:
        results.update(zip((s.stem for s in scripts), pool.map(lambda s: run(s, cache), scripts)))
    return results


def page(script, result):
    """The Markdown of a tutorial's page, and {site path: source png} of its figures."""
    parts, pictures, code_index = [], {}, 0
    for kind, text in cells(script.read_text()):
        if kind == "markdown":
            parts.append(text)
            continue
        parts.append(f"```python\n{text}\n```")
        output = result["outputs"][code_index].strip("\n")
        if output:
            parts.append(f'```text title="output"\n{output}\n```')
        for source in result["figures"].get(str(code_index), result["figures"].get(code_index, [])):
            target = f"tutorials/{script.stem}/{Path(source).name}"
            pictures[target] = source
            parts.append(f"![{Path(source).stem}]({script.stem}/{Path(source).name})")
        code_index += 1
    if result["error"]:
        parts.append(f'!!! warning "Not run when this site was built"\n    {result["error"][0]}'
                     if "stopped" not in result["error"][0] else
                     f'!!! failure "The quick run failed"\n    {result["error"][0]}')
    header = ("*The outputs and figures below are those of the script's `--quick` run when this "
              "site was built; the full run prints larger numbers of the same kind.*\n")
    return "\n\n".join([parts[0], header, *parts[1:]]) + "\n", pictures


def clear(cache):
    shutil.rmtree(cache, ignore_errors=True)
