"""docs/derivations.md and the code point at each other: check both directions.

* Every link [`numvae.x.y`](../numvae/x.py) names an object that exists, in the file linked.
* Every equation label the package or a tutorial cites ("eq. K1", "eqs. V1-V6" in
  docstrings, "(B4, V2)" in numvae.diagnostics.inspect's formulas and the tutorials' text) is an
  anchor
  in the doc, and every anchor is cited.
"""
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "derivations.md"
PACKAGE = ROOT / "numvae"
TUTORIALS = ROOT / "tutorials"

# [`numvae.model.kl.kl_divergence`](../numvae/model/kl.py)
LINK = re.compile(r"\[`(numvae(?:\.\w+)+)`\]\((\.\./numvae/[\w/]+\.py)\)")
# Anything that looks like such a link, to catch malformed ones (wrong path, extra text).
LOOSE_LINK = re.compile(r"\[`(numvae\.[^`]*)`\]\(([^)]*)\)")
# A label: one or two capitals and a digit, such as K1 or CV3.
LABEL = r"[A-Z]{1,2}\d"
# The anchor of a label: a bold tag such as **(K1)**.
ANCHOR = re.compile(rf"\*\*\(({LABEL})\)\*\*")
# Citations in docstrings: "eq. K1", "eq. B3 or G1", "eqs. V1-V6".
CITATION = re.compile(rf"eqs?\.\s+({LABEL})((?:\s*(?:-|,|or|and)\s*{LABEL})*)")
# Citations in formulas shown to users (numvae.diagnostics.inspect): "(D2)", "(B4, V2)".
BRACKETED = re.compile(rf"\(({LABEL})((?:,\s*{LABEL})*)\)")
MIN_REFERENCES = 25


def doc_text():
    return DOC.read_text(encoding="utf-8")


def doc_links():
    """The (dotted path, relative file) pairs linked from the doc, in order, duplicates kept.
    Empty if the doc is missing, so that collection works and the test below says why."""
    return LINK.findall(doc_text()) if DOC.is_file() else []


def expand(first, rest):
    """Labels of one citation: "V1", "-V6" -> V1..V6; "B3", " or G1" -> B3, G1."""
    labels = [first]
    for separator, label in re.findall(rf"\s*(-|,|or|and)\s*({LABEL})", rest):
        previous = labels[-1]
        if separator == "-":
            (letters, end), (previous_letters, start) = (
                (value[:-1], int(value[-1])) for value in (label, previous))
            if letters != previous_letters or end < start:
                raise ValueError(f"bad label range {previous}-{label}")
            labels += [f"{letters}{n}" for n in range(start + 1, end + 1)]
        else:
            labels.append(label)
    return labels


def cited_labels():
    """{label: [file names citing it]} over the package's and the tutorials' Python files."""
    cited = {}
    for path in [*sorted(PACKAGE.rglob("*.py")), *sorted(TUTORIALS.glob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        for match in [*CITATION.finditer(text), *BRACKETED.finditer(text)]:
            for label in expand(match.group(1), match.group(2)):
                cited.setdefault(label, []).append(path.name)
    return cited


def resolve(dotted):
    """Import the longest importable module prefix of ``dotted``, then getattr the rest.

    Returns (object, the object it was taken from).
    """
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is not None and not module_name.startswith(err.name):
                raise  # the module exists but one of its own imports failed
            continue
        owner = obj
        for attribute in parts[split:]:
            owner, obj = obj, getattr(obj, attribute)  # AttributeError names the culprit
        return obj, owner
    raise ImportError(f"no importable module in {dotted!r}")


def defining_file(obj, owner):
    """The source file of ``obj``; for a plain value (a constant), that of its owner."""
    target = obj if (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj)
                     or isinstance(obj, property)) else owner
    if isinstance(target, property):
        target = target.fget
    return Path(inspect.getsourcefile(inspect.unwrap(target))).resolve()


# --- the parsers themselves -------------------------------------------------------------

def test_citation_parser_expands_ranges_and_lists():
    text = "see eq. K1, eqs. V1-V3 and (eq. B3 or G1); eqs. D1, D2; eqs. CV4-CV6"
    found = [label for m in CITATION.finditer(text) for label in expand(m.group(1), m.group(2))]
    assert found == ["K1", "V1", "V2", "V3", "B3", "G1", "D1", "D2", "CV4", "CV5", "CV6"]
    text = "dL/da = sigmoid(a) - x  (B4, V2); d x = d y W^T  (D2); f(x) (not a label)"
    found = [label for m in BRACKETED.finditer(text) for label in expand(m.group(1), m.group(2))]
    assert found == ["B4", "V2", "D2"]


def test_link_parser_reads_the_house_format():
    text = ("[`numvae.model.kl.kl_divergence`](../numvae/model/kl.py) and "
            "[`numvae.model.vae.VAE.loss_and_grad`](../numvae/model/vae.py)")
    assert LINK.findall(text) == [("numvae.model.kl.kl_divergence", "../numvae/model/kl.py"),
                                  ("numvae.model.vae.VAE.loss_and_grad", "../numvae/model/vae.py")]


# --- doc -> code ------------------------------------------------------------------------

def test_doc_exists_and_has_enough_references():
    assert DOC.is_file(), f"{DOC} is missing"
    distinct = set(doc_links())
    assert len(distinct) >= MIN_REFERENCES, (
        f"only {len(distinct)} distinct code references in {DOC.name}; expected at least "
        f"{MIN_REFERENCES}, so the checks below cannot pass vacuously")


def test_every_code_link_has_the_house_format():
    """A link to numvae code that the strict pattern misses would escape the checks below."""
    malformed = [f"[`{name}`]({target})" for name, target in LOOSE_LINK.findall(doc_text())
                 if not LINK.fullmatch(f"[`{name}`]({target})")]
    assert not malformed, f"malformed code links in {DOC.name}: {malformed}"


@pytest.mark.parametrize("dotted, target", sorted(set(doc_links())))
def test_link_resolves_to_the_file_that_defines_it(dotted, target):
    linked = (DOC.parent / target).resolve()
    assert linked.is_file(), f"{dotted}: linked file {target} does not exist"
    obj, owner = resolve(dotted)
    defined_in = defining_file(obj, owner)
    assert defined_in == linked, (
        f"{dotted} is defined in {defined_in.relative_to(ROOT)}, but the doc links "
        f"{linked.relative_to(ROOT)}")


# --- code -> doc ------------------------------------------------------------------------

def test_package_cites_labels():
    """Guards the scan: if the regex stopped matching, the next test would pass vacuously."""
    assert len(cited_labels()) >= 20


def test_every_cited_label_is_an_anchor_in_the_doc():
    anchors = ANCHOR.findall(doc_text())
    missing = {label: files for label, files in cited_labels().items() if label not in anchors}
    assert not missing, f"labels cited in docstrings but not anchored in {DOC.name}: {missing}"


def test_each_anchor_appears_once():
    anchors = ANCHOR.findall(doc_text())
    duplicated = sorted({label for label in anchors if anchors.count(label) > 1})
    assert not duplicated, f"labels anchored more than once in {DOC.name}: {duplicated}"


def test_every_anchor_is_cited_by_the_code():
    """An anchor no docstring cites is a derivation the reader cannot reach from the code."""
    uncited = sorted(set(ANCHOR.findall(doc_text())) - set(cited_labels()))
    assert not uncited, f"anchors in {DOC.name} that no docstring cites: {uncited}"


def test_display_maths_is_balanced():
    text = re.sub(r"`[^`\n]*`", "", doc_text())  # code spans may contain dollars
    assert text.count("$$") % 2 == 0, "an odd number of $$ delimiters"
