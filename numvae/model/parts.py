"""Part objects from names: the one place where a string becomes a likelihood, a posterior,
a prior or an objective.

A part is given to ``numvae.VAE`` as an object that holds its settings
(``Gaussian(sigma=0.5)``, ``IAF(steps=2, hidden=(200,))``, ``GaussianMixture(components=10)``,
``IWAE(k=5)``), or as its registry name for the default settings (``"gaussian"``). The
checkpoint reader, the safetensors reader and the command line name parts by strings too;
they all come through ``make_part`` here:

* a name, with 0.2's flat settings (``sigma``, ``kl_weight``, ``n_samples``,
  ``prior_components``, ``flow_steps``, ``flow_hidden``: the command line's options and
  0.2's ``VAE`` keywords), each routed to the part that has it (``flat_names``);
* a checkpoint's entry ``{"name": ..., **settings}`` (format 2 wrote the settings under
  their flat names; ``make_part`` reads both).

``config_from_flat`` and ``flat_config`` convert between ``VAE.config`` (nested per part,
as checkpoints store it) and 0.2's flat configuration, which version-1 checkpoints and the
safetensors files' metadata hold.
"""
import warnings

from numvae.model.likelihoods import LIKELIHOODS
from numvae.model.objectives import OBJECTIVES
from numvae.model.posteriors import POSTERIORS
from numvae.model.priors import PRIORS
from numvae.validation import check_choice

REGISTRIES = {"likelihood": LIKELIHOODS, "posterior": POSTERIORS, "prior": PRIORS,
              "objective": OBJECTIVES}
PART_KINDS = tuple(REGISTRIES)
DEFAULT_PARTS = {"likelihood": "bernoulli", "posterior": "diagonal_gaussian",
                 "prior": "standard_normal", "objective": "elbo"}
# 0.2's flat settings: the kind of part that has each, and its spelling as a part object
FLAT_SETTINGS = {"sigma": ("likelihood", "Gaussian(sigma=...)"),
                 "flow_steps": ("posterior", "IAF(steps=...)"),
                 "flow_hidden": ("posterior", "IAF(hidden=...)"),
                 "prior_components": ("prior", "GaussianMixture(components=...)"),
                 "kl_weight": ("objective", "ELBO(kl_weight=...)"),
                 "n_samples": ("objective", "ELBO(n_samples=...) or IWAE(k=...)"),
                 "free_bits": ("objective", "FreeBitsELBO(free_bits=...)")}
# the architecture entry of VAE.config, in the order checkpoints write it
NETWORK_KEYS = ("input_dim", "shared_dim", "latent_dim", "encoder_hidden", "decoder_hidden",
                "activation", "n_classes")


def part_class(kind, name):
    """The class registered as ``name`` for ``kind``, or a ValueError naming the choices."""
    return REGISTRIES[kind][check_choice(name, kind, REGISTRIES[kind])]


def make_part(kind, spec, flat=None):
    """The ``kind`` part ("likelihood", "posterior", "prior" or "objective") that ``spec``
    describes: a part object (returned as it is), a registry name (with the ``flat``
    settings its class names; 0.2 ignored the others, and so does this), or a checkpoint's
    entry {"name": ..., **settings}. ``flat``: {0.2 keyword: value}; for a part object or an
    entry, a flat setting of this kind is an error (it would be a second value)."""
    flat = {key: value for key, value in (flat or {}).items()
            if FLAT_SETTINGS[key][0] == kind}
    if isinstance(spec, str):
        cls = part_class(kind, spec)
        if hasattr(cls, "check_flat"):
            cls.check_flat(flat)
        return cls(**{setting: flat[key] for key, setting in cls.flat_names.items()
                      if key in flat})
    if flat:
        key = next(iter(flat))
        raise ValueError(f"{key}= and a {kind} part object both set the {kind}: give the "
                         f"setting to the part only, e.g. {kind}={FLAT_SETTINGS[key][1]}")
    if isinstance(spec, dict):
        entry = dict(spec)
        cls = part_class(kind, entry.pop("name", None))
        fixed = getattr(cls, "flat_fixed", {})
        return cls(**{cls.flat_names.get(key, key): value for key, value in entry.items()
                      if key not in fixed})
    if not all(hasattr(spec, method) for method in ("settings", "build", "name")):
        raise TypeError(f"{kind} must be a part object (a class of numvae.model.{kind}s "
                        f"or one like them) or one of {', '.join(map(repr, REGISTRIES[kind]))}; "
                        f"got {type(spec).__name__}")
    return spec


def build_parts(specs, flat=None):
    """{kind: part} for the four kinds, from ``specs`` {kind: part, name or entry} (a kind
    left out: its default, ``DEFAULT_PARTS``) and 0.2's ``flat`` settings."""
    return {kind: make_part(kind, specs.get(kind, DEFAULT_PARTS[kind]), flat)
            for kind in PART_KINDS}


def part_entry(part):
    """A part as ``VAE.config`` and checkpoints hold it: {"name": ..., **settings}."""
    return {"name": part.name, **part.settings()}


def config_from_flat(flat):
    """0.2's flat configuration (a version-1 checkpoint's, a safetensors file's metadata:
    ``numvae.VAE``'s 0.2 keywords) as ``VAE.config``; missing keys take the defaults."""
    flat = dict(flat)
    architecture = {"name": flat.pop("architecture", "mlp")}
    architecture.update({key: flat.pop(key) for key in NETWORK_KEYS if key in flat})
    names = {kind: flat.pop(kind, DEFAULT_PARTS[kind]) for kind in PART_KINDS}
    dtype = flat.pop("dtype", "float32")
    unknown = [key for key in flat if key not in FLAT_SETTINGS]
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r}; expected "
                         f"{', '.join([*NETWORK_KEYS, *PART_KINDS, *FLAT_SETTINGS])}")
    parts = build_parts(names, flat)
    return {"architecture": architecture,
            **{kind: part_entry(part) for kind, part in parts.items()}, "dtype": dtype}


def flat_settings(part):
    """A part's settings under 0.2's flat names ({"flow_steps": 2, "flow_hidden": (50,)}),
    as 0.2's flat configuration held them."""
    settings = part.settings()
    return {**getattr(part, "flat_fixed", {}),
            **{key: settings[setting] for key, setting in part.flat_names.items()}}


def flat_config(config):
    """``VAE.config`` in 0.2's flat shape, key for key in 0.2's order (the safetensors
    metadata, whose bytes do not change): the network, each part's name and its settings
    under their flat names, the number of classes; no dtype."""
    architecture = dict(config["architecture"])
    flat = {key: architecture.pop(key) for key in ("input_dim", "shared_dim", "latent_dim")}
    flat["architecture"] = architecture.pop("name")
    n_classes = architecture.pop("n_classes", None)
    flat.update(architecture)
    for kind in PART_KINDS:
        part = make_part(kind, config[kind])
        flat[kind] = part.name
        flat.update(flat_settings(part))
    if n_classes is not None:
        flat["n_classes"] = n_classes
    return flat


def deprecated_settings(settings):
    """0.2's per-part keywords of ``numvae.VAE`` (sigma, kl_weight, ...), which go in 0.4:
    checked, each with a DeprecationWarning naming the part object that holds it now (the
    warning points at the caller of ``VAE``)."""
    for name in settings:
        if name not in FLAT_SETTINGS:
            raise TypeError(f"VAE() got an unexpected keyword argument {name!r}")
        kind, spelling = FLAT_SETTINGS[name]
        warnings.warn(f"VAE({name}=...) is deprecated and goes in numvae 0.4: the setting "
                      f"belongs to the {kind}, {kind}={spelling}", DeprecationWarning,
                      stacklevel=3)
    return settings
