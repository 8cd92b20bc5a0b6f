"""Partial fine-tuning: the last N layer groups and the head train; earlier groups stay frozen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from headstart.backbones import Backbone
from headstart.data import DataSplits
from headstart.strategies.base import FitContext, StrategyResult
from headstart.strategies.declared import PartialOptions
from headstart.strategies.finetune import finetune


@dataclass(frozen=True)
class Partial(PartialOptions):
    """Fine-tune the last ``unfreeze`` layer groups with layer-wise learning-rate decay."""

    name: ClassVar[str] = "partial"

    def fit(self, backbone: Backbone, splits: DataSplits, ctx: FitContext) -> StrategyResult:
        """Fine-tune the later groups of a copy of ``backbone``."""
        return finetune(backbone, splits, ctx, unfreeze=self.unfreeze, lr=self.lr, head_lr=self.head_lr,
                        lr_decay=self.lr_decay)
