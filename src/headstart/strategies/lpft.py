"""LP-FT: a linear probe on cached features first, then fine-tuning that starts from that head.

Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution":
starting from a fitted head keeps the early gradients from wrecking the pretrained features. The backbone
trains at a tenth of the head's learning rate (at the head's rate, MobileNetV2 on 300 MNIST digits lost the
probe's 0.90 validation accuracy in the first epoch and ended below it; at a tenth it kept the start), and
the probe's model is scored before the first step and kept unless an epoch beats it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from headstart.backbones import Backbone
from headstart.data import DataSplits
from headstart.strategies.base import FitContext, StrategyResult
from headstart.strategies.declared import LPFTOptions
from headstart.strategies.finetune import DEFAULT_LR, finetune
from headstart.strategies.linear import Linear

BACKBONE_LR_SHARE = 0.1  # the backbone's top group learns at this share of the (fitted) head's rate


@dataclass(frozen=True)
class LPFT(LPFTOptions):
    """Linear probe, then fine-tune the last ``unfreeze`` groups (all when None) from that head."""

    name: ClassVar[str] = "lp-ft"

    def fit(self, backbone: Backbone, splits: DataSplits, ctx: FitContext) -> StrategyResult:
        """Probe from the feature cache, then fine-tune from its head, the backbone at a tenth of its rate."""
        same_mode = dataclasses.replace(ctx, extraction=dataclasses.replace(ctx.extraction,
                                                                          precision=ctx.train_precision))
        probe = Linear().fit(backbone, splits, same_mode)  # features as fine-tuning computes them
        head_lr = DEFAULT_LR[backbone.modality]
        lr = self.lr if self.lr is not None else head_lr * BACKBONE_LR_SHARE
        result = finetune(backbone, splits, ctx, unfreeze=self.unfreeze, lr=lr, head_lr=head_lr,
                          lr_decay=self.lr_decay, head=probe.model.head)
        main = f"val_{ctx.task.main_metric}"
        result.info["probe"] = {"C": probe.info["C"], main: max(c[main] for c in probe.history)}
        return result
