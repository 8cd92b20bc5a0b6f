"""The contract every strategy meets, and the context a fit runs in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn

from headstart.backbones import Backbone
from headstart.data import DataSplits, Dataset
from headstart.training.engine import TrainSettings
from headstart.features.cache import Extraction, FeatureCache
from headstart.tasks import Task


@dataclass
class FitContext:
    """What a strategy needs besides its hyperparameters: targets, cache, devices, loop settings."""

    targets: dict[str, np.ndarray]  # the task's targets for "train", "val" (and "test"): see Task.targets
    cache: FeatureCache
    extraction: Extraction  # how frozen features are computed
    device: torch.device
    train_precision: str
    settings: TrainSettings
    progress: bool = True
    cache_boundary: bool | None = None  # partial, no augmentation: frozen groups run once; None: on CPUs
    balance: dict | None = None  # how class imbalance is handled (headstart.training.balance.resolve_balance)
    task: Task | None = None  # what the labels ask: head width, loss, probe, scores (headstart.tasks)
    unlabelled: Dataset | None = None  # items nobody labelled, to learn from (``--unlabelled``; linear only)


@dataclass
class StrategyResult:
    """A fitted classifier (backbone + head) and how it was fitted."""

    model: nn.Module
    trainable_params: int
    history: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    frozen_backbone: bool = False  # True when the backbone is untouched, so cached features stay valid


class Strategy(Protocol):
    """A way to adapt a backbone: hyperparameters in the dataclass fields, work in ``fit``.

    ``fit`` must leave the strategy object and the backbone's pretrained weights untouched and return
    a new StrategyResult (its model owns a copy of the weights when it changes them). A strategy that never
    changes the backbone may say so up front with a class attribute ``frozen_backbone = True`` (as ``linear``
    does), so that advice about fine-tuning is not given before its fit.
    """

    name: str

    def fit(self, backbone: Backbone, splits: DataSplits, ctx: FitContext) -> StrategyResult:
        """Adapt ``backbone`` to ``splits.train``, selecting on ``splits.val``."""
        ...
