"""One formula, one place: every equation label of docs/derivations.md maps to the one
function that implements it; the derivation's section names that function, the
function's docstring names the label, and no other function of the package writes the
formula out again (checked for the formulas most often copied)."""
import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "derivations.md"

# label -> the function that implements it (for a layer or a part whose class docstring
# holds the formula, the class: its forward and backward are the formula and its gradient)
FORMULAS = {
    "V1": "numvae.model.objectives.ELBO",
    "K1": "numvae.model.kl.kl_divergence",
    "K2": "numvae.model.kl.kl_divergence_backward",
    "K3": "numvae.model.kl.MonteCarloKL",
    "K4": "numvae.model.kl.MonteCarloKL.backward",
    "R1": "numvae.model.posteriors.reparameterise",
    "B1": "numvae.model.likelihoods.bernoulli_nll_from_probs",
    "B2": "numvae.model.likelihoods.bernoulli_nll_from_probs_backward",
    "B3": "numvae.model.likelihoods.bernoulli_nll",
    "B4": "numvae.model.likelihoods.bernoulli_nll_backward",
    "G1": "numvae.model.likelihoods.gaussian_nll",
    "G2": "numvae.model.likelihoods.gaussian_nll_backward",
    "S1": "numvae.model.objectives.seed_loss",
    "S2": "numvae.model.objectives.seed_loss_backward",
    "D1": "numvae.nn.layers.Dense",
    "D2": "numvae.nn.layers.Dense.backward",
    "D3": "numvae.nn.layers.ReLU",
    "D4": "numvae.nn.layers.sigmoid",
    "D5": "numvae.nn.layers.Tanh",
    "O1": "numvae.training.optim.SGD",
    "O2": "numvae.training.optim.Adam",
    "C1": "numvae.diagnostics.gradcheck.numerical_gradient",
    "C2": "numvae.diagnostics.gradcheck.directional_check",
    "I1": "numvae.model.objectives.log_weights",
    "I2": "numvae.diagnostics.evaluate.iwae_log_likelihood",
    "CV1": "numvae.nn.conv.Conv2d.forward",
    "CV2": "numvae.nn.conv.im2col",
    "CV3": "numvae.nn.conv.col2im",
    "CV4": "numvae.nn.conv.Conv2d.backward",
    "CV5": "numvae.nn.conv.Conv2d.backward",
    "CV6": "numvae.nn.conv.Conv2d.backward",
    "CV7": "numvae.nn.conv.ConvTranspose2d.forward",
    "CV8": "numvae.nn.conv_phases.transposed_conv_by_phases",
    "GM1": "numvae.model.priors.GaussianMixture.log_prob",
    "GM2": "numvae.model.priors.GaussianMixture.responsibilities",
    "GM3": "numvae.model.priors.GaussianMixture.log_prob_backward",
    "CD1": "numvae.model.labels.condition",
    "IW1": "numvae.model.objectives.IWAE",
    "IW2": "numvae.model.objectives.IWAE.backward",
    "IW3": "numvae.model.objectives.IWAE.backward",
    "IF1": "numvae.nn.flows.MaskedDense",
    "IF2": "numvae.nn.flows.made_masks",
    "IF3": "numvae.nn.flows.IAFStep",
    "IF4": "numvae.model.posteriors.IAF.log_prob",
    "IF5": "numvae.nn.flows.IAFStep.backward",
    "IF6": "numvae.model.posteriors.IAF.log_prob_backward",
    "H1": "numvae.model.two_layer.TwoLayerVAE.log_weights",
    "H2": "numvae.model.two_layer_parts.elbo_weights",
    "H3": "numvae.model.two_layer_parts.iwae_weights",
    "H4": "numvae.model.two_layer_parts.density_cache",
    "H8": "numvae.diagnostics.evaluate.active_units_per_layer",
    "LI1": "numvae.diagnostics.latent_info.latent_information",
    "LI2": "numvae.diagnostics.latent_info.mutual_information",
    "LI3": "numvae.diagnostics.latent_info.latent_information",
    "LI4": "numvae.diagnostics.latent_info.mutual_information",
    "FB1": "numvae.model.free_bits.FreeBitsELBO",
    "FB2": "numvae.model.free_bits.FreeBitsELBO.backward",
    "KA1": "numvae.training.kl_schedules.Cyclical",
    "DP1": "numvae.training.two_processes.TwoProcesses.add_halves",
}
# the named steps of the VAE's backward pass: one function runs them all, in order
STEPS = {label: "numvae.model.vae.VAE.backward" for label in ("V2", "V3", "V4", "V5", "V6")}
STEPS.update({label: "numvae.model.two_layer.TwoLayerVAE.backward" for label in ("H5", "H6", "H7")})
# probabilistic PCA (section 15) is worked in tutorial 11, outside the package
TUTORIAL = {"P1": "ppca_ml", "P2": "run", "P3": "LinearVAE.exact_negative_elbo",
            "P4": "LinearVAE.loss_and_grad"}
TUTORIAL_FILE = ROOT / "tutorials" / "11_linear_vae_ppca.py"

# a formula's code, as ast.unparse writes it, that only its own function may hold; the
# PyTorch mirror (numvae.interop.torch_modules) writes the formulas again in torch's
# operations on purpose: it is the independent second implementation the tests compare with
MIRROR = "numvae.interop.torch_modules"
# the exercises' graders write the VAE out with switchable mistakes, on purpose
PLANTED = ("numvae.exercises.mistakes", "numvae.exercises.broken_vae", "numvae.diagnostics.gallery",
           # and the property checks compare the parts with formulas written independently
           "numvae.diagnostics.properties")
FINGERPRINTS = {
    "K1": (r"-\s*1(\.0)?\s*-\s*log_var", (*PLANTED, MIRROR)),
    "R1": (r"exp\(0\.5 \* log_var", (*PLANTED, MIRROR)),
    "B3": (r"softplus\(logits\) - x \* logits", (MIRROR,)),
    "G1": (r"np\.log\(2 \* np\.pi \* sigma \*\* 2\)", (*PLANTED, MIRROR)),
    "I1": (r"-nll \+ log_p - log_q", (MIRROR,)),
}

# where a formula's code is, when its function is a thin wrapper (K1 sums the KL per dimension)
WRITTEN_IN = {"K1": "numvae.model.kl.kl_divergence_per_dim"}


def doc_sections():
    """{label: the text of the doc's section ("## ...") that anchors it}."""
    sections = re.split(r"\n(?=## )", DOC.read_text(encoding="utf-8"))
    return {label: section for section in sections
            for label in re.findall(r"\*\*\(([A-Z]{1,2}\d)\)\*\*", section)}


def cited_labels(text):
    """The labels a text names, ranges such as "V2-V6" expanded."""
    labels = set(re.findall(r"\b[A-Z]{1,2}\d\b", text))
    for letters, start, end in re.findall(r"\b([A-Z]{1,2})(\d)\s*-\s*\1(\d)\b", text):
        labels |= {f"{letters}{n}" for n in range(int(start), int(end) + 1)}
    return labels


def resolve(dotted):
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


def code_without_docstrings(function_node):
    body = function_node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return "\n".join(ast.unparse(statement) for statement in body)


def package_functions():
    """(dotted name, code without docstrings) of every function and method in numvae."""
    for path in sorted((ROOT / "numvae").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        stack = [(module, node) for node in tree.body]
        while stack:
            prefix, node = stack.pop()
            if isinstance(node, ast.ClassDef):
                stack += [(f"{prefix}.{node.name}", child) for child in node.body]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{prefix}.{node.name}", code_without_docstrings(node)


def test_every_label_of_the_derivations_is_mapped():
    assert set(FORMULAS) | set(STEPS) | set(TUTORIAL) == set(doc_sections())


@pytest.mark.parametrize("label, dotted", sorted({**FORMULAS, **STEPS}.items()))
def test_the_function_exists_names_the_label_and_is_named_by_the_derivation(label, dotted):
    function = resolve(dotted)
    assert callable(function), dotted
    assert label in cited_labels(function.__doc__ or ""), (
        f"{dotted}'s docstring does not name eq. {label}")
    assert f"[`{dotted}`]" in doc_sections()[label], (
        f"the section of ({label}) in {DOC.name} does not name {dotted}")


@pytest.mark.parametrize("label, name", sorted(TUTORIAL.items()))
def test_tutorial_formulas_are_cited_where_they_are_computed(label, name):
    text = TUTORIAL_FILE.read_text(encoding="utf-8")
    assert re.search(rf"def {name.split('.')[-1]}\b", text), name
    assert f"({label})" in text
    assert TUTORIAL_FILE.name in doc_sections()[label]


@pytest.mark.parametrize("label", sorted(FINGERPRINTS))
def test_the_formula_is_written_in_its_own_function_only(label):
    pattern, allowed_modules = FINGERPRINTS[label]
    found = [name for name, code in package_functions() if re.search(pattern, code)
             and not name.startswith(allowed_modules or ("\0",))]
    assert found == [WRITTEN_IN.get(label, FORMULAS[label])], f"eq. {label} is written out in {found}"


def test_the_fingerprint_check_can_fail():
    """A copy of K1 in another function is found (the check is not vacuous)."""
    copied = ast.parse("def f(mean, log_var):\n    return 0.5 * (mean ** 2 + var - 1.0 - log_var)")
    assert re.search(FINGERPRINTS["K1"][0], code_without_docstrings(copied.body[0]))
