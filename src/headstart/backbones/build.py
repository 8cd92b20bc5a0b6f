"""Build a backbone's module from its architecture record alone (no weights): the inverse of ``arch``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from headstart.backbones.sources import REMOTE_CODE_KEYS
from headstart.errors import ModelNotFoundError, RemoteCodeError

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

# Layer groups of a Hugging Face encoder wrapped in MeanPooledEncoder: embeddings, then one per block.
TEXT_GROUPS = dict(
    embeddings=r"^model\.(?:.*\.)?embeddings\.",
    blocks=r"^model\.(?:.*\.)?(?:layer|layers|block|blocks)\.(\d+)\.",
)


class PooledCNN(nn.Module):
    """A CNN feature extractor followed by global average pooling."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)


class MeanPooledEncoder(nn.Module):
    """A transformers encoder whose token states are averaged over the attention mask."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> torch.Tensor:
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def build_module(arch: dict) -> nn.Module:
    """A random-initialised module for an architecture record."""
    family = arch.get("family")
    if family == "torchvision" and arch.get("name") == "mobilenet_v2":
        import torchvision

        return PooledCNN(torchvision.models.mobilenet_v2().features)
    if family == "timm":
        import timm

        return timm.create_model(arch["name"], pretrained=False, num_classes=0)
    if family == "hf":
        from transformers import AutoConfig, AutoModel

        if any(key in arch["config"] for key in REMOTE_CODE_KEYS):
            raise RemoteCodeError("The architecture record asks to run Python code shipped with the model "
                                  "('auto_map'); headstart never runs code from model folders.")
        config = AutoConfig.for_model(**arch["config"])
        kwargs = {"add_pooling_layer": False} if has_pooler(config) else {}
        return MeanPooledEncoder(AutoModel.from_config(config, trust_remote_code=False, **kwargs))
    raise ModelNotFoundError(
        f"Unknown architecture record {arch!r}: expected family 'timm', 'hf' or 'torchvision'. "
        "Was this run written by a newer headstart?"
    )


def surface(arch: dict, module: nn.Module) -> tuple[int, dict]:
    """``(feature_dim, group_matcher)`` of a module built for ``arch``."""
    if arch["family"] == "torchvision":
        return 1280, MOBILENETV2_GROUPS
    if arch["family"] == "timm":
        return module.num_features, module.group_matcher(coarse=True)
    return arch["config"]["hidden_size"], TEXT_GROUPS


def has_pooler(config) -> bool:
    """True for BERT-like configs whose models accept ``add_pooling_layer``."""
    return config.model_type in {"bert", "roberta", "xlm-roberta", "electra", "camembert", "ernie"}
