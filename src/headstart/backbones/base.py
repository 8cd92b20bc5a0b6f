"""The one surface every backbone exposes: pooled features, layer groups, preprocessing, description."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import nn

from headstart.backbones.audio_preprocessing import AudioPreprocessing
from headstart.backbones.preprocessing import ImagePreprocessing, TextPreprocessing
from headstart.backbones.registry import family_of

if TYPE_CHECKING:
    from headstart.backbones.families.base import Family

Preprocessing = Union[ImagePreprocessing, TextPreprocessing, AudioPreprocessing]
Batch = Union[torch.Tensor, dict]


@dataclass
class Backbone:
    """A pretrained module that maps a preprocessed batch to pooled features ``[B, feature_dim]``.

    ``group_matcher`` is a timm-style dict of regexes over the module's parameter names; the layer
    groups it yields run from the input side to the output side.
    """

    name: str
    modality: str
    module: nn.Module
    feature_dim: int
    group_matcher: dict
    preprocessing: Preprocessing
    arch: dict  # JSON: how to rebuild ``module`` without weights; ``arch["family"]`` names its family
    source: str  # where the weights came from, for people
    weights_id: str  # identity of the weights, for cache keys

    @property
    def family(self) -> "Family":
        """The model family that knows this backbone's kind: LoRA targets, freeze boundary, export."""
        return family_of(self.arch)

    @property
    def channels_last(self) -> bool:
        """True when batches run fastest in channels-last layout (image CNNs)."""
        return self.family.channels_last

    def layer_groups(self) -> list[list[str]]:
        """Parameter names per layer group, input side first."""
        from timm.models import group_parameters  # here: timm's import (about 2.8 s of CPU) only where groups are used

        grouped = group_parameters(self.module, self.group_matcher)
        return [grouped[k] for k in sorted(grouped)]

    def features(self, batch: Batch) -> torch.Tensor:
        """Pooled pre-logit features of one preprocessed batch."""
        return self.module(batch)

    @property
    def depthwise(self) -> bool:
        """True for CNNs built on grouped convolutions, which gain little from bf16 training on CPUs."""
        return any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in self.module.modules())

    def describe(self) -> dict[str, Any]:
        """Name, modality, parameter count, feature size, layer groups and weights source."""
        return {
            "name": self.name,
            "modality": self.modality,
            "parameters": sum(p.numel() for p in self.module.parameters()),
            "feature_dim": self.feature_dim,
            "layer_groups": len(self.layer_groups()),
            "source": self.source,
            "preprocessing": self.preprocessing.to_dict(),
        }


def batch_to(batch: Batch, device: torch.device, channels_last: bool = False) -> Batch:
    """Move a batch to ``device`` (image tensors optionally in channels-last layout)."""
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return batch.to(device, non_blocking=True, memory_format=fmt)

