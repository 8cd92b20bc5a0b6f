"""Transfer learning: the backbone stays frozen; a linear head is fitted on its cached features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from headstart.backbones import Backbone
from headstart.data import DataSplits
from headstart.training.heads import Classifier
from headstart.strategies.base import FitContext, StrategyResult
from headstart.strategies.declared import LinearOptions
from headstart.strategies.spread import probe_with_pool


@dataclass(frozen=True)
class Linear(LinearOptions):
    """The task's linear probe on frozen features (logistic, one-vs-rest logistic, or ridge); its strength ``C``
    is picked on validation."""

    name: ClassVar[str] = "linear"
    frozen_backbone: ClassVar[bool] = True  # it never changes the backbone: advice about fine-tuning does not apply

    def fit(self, backbone: Backbone, splits: DataSplits, ctx: FitContext) -> StrategyResult:
        """Extract (or reuse cached) features, then fit the head in seconds."""
        x_train = ctx.cache.features(backbone, splits.train, ctx.extraction)
        x_val = ctx.cache.features(backbone, splits.val, ctx.extraction)
        s = ctx.settings  # the probe sees every item at once: a balanced sampler becomes class weights
        weights = np.asarray(s.class_weights) if s.balance != "none" and s.class_weights else None
        train, val = (x_train, ctx.targets["train"]), (x_val, ctx.targets["val"])
        if ctx.unlabelled is None:
            probe, pool = ctx.task.probe(*train, *val, self.cs, s.seed, weights), {}
        else:  # label spreading over the unlabelled pool's features (headstart.strategies.spread)
            x_pool = ctx.cache.features(backbone, ctx.unlabelled, ctx.extraction)
            probe, pool = probe_with_pool(ctx.task, train, val, x_pool, self.cs, s.seed, weights, ctx.progress)
        head_params = sum(p.numel() for p in probe.head.parameters())
        return StrategyResult(
            model=Classifier(backbone.module, probe.head), trainable_params=head_params,
            history=probe.candidates, frozen_backbone=True,
            info={"C": probe.C, "balance": "weights" if weights is not None else "none",
                  "selected_on": f"val_{ctx.task.select_metric}", **pool},
        )
