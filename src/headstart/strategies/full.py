"""Full fine-tuning: every layer group trains, lower ones with smaller learning rates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from headstart.backbones import Backbone
from headstart.data import DataSplits
from headstart.strategies.base import FitContext, StrategyResult
from headstart.strategies.declared import FullOptions
from headstart.strategies.finetune import finetune


@dataclass(frozen=True)
class Full(FullOptions):
    """Fine-tune all layer groups with layer-wise learning-rate decay."""

    name: ClassVar[str] = "full"

    def fit(self, backbone: Backbone, splits: DataSplits, ctx: FitContext) -> StrategyResult:
        """Fine-tune every group of a copy of ``backbone``."""
        return finetune(backbone, splits, ctx, unfreeze=None, lr=self.lr, head_lr=self.head_lr,
                        lr_decay=self.lr_decay)
