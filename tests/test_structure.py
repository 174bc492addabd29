"""The shape of numvae/ that the style notes ask for, kept true as parts are added:

* subpackages import one way, from a floor to the floors below it: io, nn < model <
  diagnostics, interop < training < plots, exercises, explorer < commands (``FLOORS``);
* no import cycle among numvae's modules (an import anywhere in a file counts);
* no module over 400 lines, no function over 60 (argparse parser builders excepted);
* no test of a likelihood by its name outside numvae/model/likelihoods.py: a new likelihood is
  a class and a registry entry, never a new branch elsewhere.
"""
import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "numvae"
NAME_TEST = re.compile(r"likelihood\s*(==|!=)|likelihood\s+(not\s+)?in\s*[(\[{]\s*[\"']")


def modules():
    """{dotted module name: path} of every .py file in the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported(name, path, known):
    """The package modules that module ``name`` imports (relative or absolute)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level \
                else []
            module = ".".join(base + ([node.module] if node.module else []))
            candidates = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        targets |= {c for c in candidates if c in known and c != name and c != "numvae"}
    return targets


def find_cycle(graph):
    """One import cycle as a list of modules, or None (depth-first search)."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target, stack + [target])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


# The floors of the subpackages: a module may import from its own floor and the ones
# below, never from a higher one. numvae.validation (argument checks) lies under them all;
# the package's top (numvae/__init__.py, __main__.py, moved.py) may import anything.
FLOORS = {"io": 0, "nn": 0, "model": 1, "diagnostics": 2, "interop": 2, "training": 3,
          "plots": 4, "exercises": 4, "explorer": 4, "commands": 5}
UNDER_ALL = {"numvae.validation": -1}


def floor(module):
    """The floor of ``module`` (a dotted name), or None for the package's top."""
    if module in UNDER_ALL:
        return UNDER_ALL[module]
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def upward_imports(graph):
    """Every import from a lower floor to a higher one, as "a -> b" lines."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = floor(module), floor(target)
            if low is not None and high is not None and high > low:
                found.append(f"{module} -> {target}")
    return found


def test_subpackages_import_downwards_only():
    known = modules()
    graph = {name: imported(name, path, known) for name, path in known.items()}
    assert not upward_imports(graph), "imports from a lower floor to a higher one"
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(FLOORS), "every subpackage has a floor in FLOORS"
    assert "numvae.training.loop" in graph["numvae.commands.train"]  # the graph is not empty


def test_the_order_check_finds_an_upward_import():
    """A check of the check, on a made-up graph."""
    graph = {"numvae.model.vae": {"numvae.training.loop", "numvae.nn.layers"},
             "numvae.training.loop": {"numvae.model.vae", "numvae.diagnostics.evaluate"},
             "numvae.interop.safetensors_io": {"numvae.diagnostics.evaluate"},
             "numvae.validation": {"numvae.io.files"}, "numvae": {"numvae.commands.cli"}}
    assert upward_imports(graph) == ["numvae.model.vae -> numvae.training.loop",
                                     "numvae.validation -> numvae.io.files"]


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    known = modules()
    graph = {name: imported(name, path, known) for name, path in known.items()}
    # the parser sees relative imports of both kinds (a check of the check)
    assert {"numvae.commands.train", "numvae.commands.common"} <= graph["numvae.commands.cli"]
    assert "numvae.model.parts" in graph["numvae.model.vae"]
    assert find_cycle(graph) is None


@pytest.mark.parametrize("name, path", sorted(modules().items()))
def test_module_and_function_lengths(name, path):
    source = path.read_text()
    assert len(source.splitlines()) <= 400, f"{path.name}: {len(source.splitlines())} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "parser" not in node.name:
            length = node.end_lineno - node.lineno + 1
            assert length <= 60, f"{path.name}:{node.lineno} {node.name} has {length} lines"


def test_no_likelihood_is_tested_by_name_outside_its_part():
    offending = []
    for path in modules().values():
        if "likelihood" in path.name:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if NAME_TEST.search(line.split("#", 1)[0]):
                offending.append(f"{path.name}:{number}: {line.strip()}")
    assert not offending
    assert NAME_TEST.search('if model.likelihood == "bernoulli":')  # the pattern can match
